"""The engine's settings and its input rules: :class:`EngineConfig` (what to run, where, with which
thresholds), :func:`resolve_device`, :func:`validate_frame` (which frames can be segmented) and the
limits they enforce. Imported by :mod:`segmentation_ros.engine.pipeline`, which re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from segmentation_ros.engine.registry import get_model_entry
from segmentation_ros.engine.runtimes import RUNTIMES

__all__ = [
    "EngineConfig",
    "resolve_device",
    "validate_frame",
    "TASKS",
    "PRECISIONS",
    "RUNTIME_PARAMETERS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CPU_BATCH_PIXELS",
    "MIN_FRAME_SIDE",
    "MAX_ASPECT_RATIO",
    "MAX_NETWORK_SIDE",
]

#: On the CPU one forward pass takes at most this many network-input pixels (frames x h x w); more
#: frames of a size go through in several passes. Batched 640x480 frames ran slower than the same
#: frames one at a time on a 2-core EPYC (LR-ASPP: 4 cameras 0.74-0.82x of four single passes;
#: 320x240: 1.0-1.4x; a small network at its own 224x168 input: 1.6x): the activations of a large
#: batch outgrow the caches. A GPU takes every frame of a size in one pass.
CPU_BATCH_PIXELS = 4 * 320 * 240

#: A frame's shorter side must be at least this many pixels (:func:`validate_frame`): below it
#: there is nothing to segment, and resizing the short side to a network's input size (168 px for
#: the demo models, 800 for Mask R-CNN) would multiply the pixels by its square.
MIN_FRAME_SIDE = 16
#: A frame's longer side may be at most this many times its shorter side (:func:`validate_frame`):
#: 8:1 holds four 16:9 cameras side by side; a line-scan strip is not an image to segment.
MAX_ASPECT_RATIO = 8
#: No side of any network input exceeds this many pixels, whatever the frame and the sizes
#: configured: the engine's resizing, like torchvision's ``GeneralizedRCNNTransform``, scales the
#: short side to its target unless that makes the long side longer than its cap (the node's size
#: parameters stop at the same 4096). With :data:`MAX_ASPECT_RATIO` it bounds a forward pass's
#: input at 4096 x 4096 pixels per frame.
MAX_NETWORK_SIDE = 4096

TASKS = ("semantic", "instance", "panoptic")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Parameters that may change while the engine runs (the node exposes them as dynamic parameters).
RUNTIME_PARAMETERS = ("score_threshold", "mask_threshold", "overlap_threshold", "stuff_area_threshold", "classes")


@dataclass
class EngineConfig:
    """Everything that selects and tunes the engine. Defaults follow torchvision and Panoptic FPN.

    Attributes:
        task: "semantic", "instance" or "panoptic" (a semantic and an instance model, fused).
        semantic_model, instance_model: registry names (see :func:`list_models`).
        semantic_weights, instance_weights: "DEFAULT", a torchvision weights name, a file, "none".
        semantic_labels, instance_labels: label set override for weights that carry none.
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
        precision: "fp32", or "fp16"/"bf16" autocast on CUDA (CPU stays fp32).
        score_threshold: minimum instance score (detections and fusion), inclusive: a score ``s``
            passes when ``float64(s) >= score_threshold`` (never a float32-rounded threshold).
        mask_threshold: mask probability above which a pixel is inside: ``float64(p) >
            mask_threshold`` for the pasted (float32) probability ``p``.
        overlap_threshold: panoptic fusion: maximum claimed fraction of an instance, inclusive,
            the fraction divided in float64 (29 of 100 pixels pass 0.29; see :func:`fuse_panoptic`).
        stuff_area_threshold: panoptic fusion: minimum stuff segment area in pixels.
        max_detections: instances per frame at most.
        label_divisor: panoptic encoding ``class * label_divisor + instance``.
        classes: keep only instances of these class ids (empty: all).
        instance_min_size, instance_max_size: Mask R-CNN input resize, as torchvision's: the short
            side becomes ``instance_min_size`` unless that makes the long side exceed
            ``instance_max_size``; -1 takes the model's own (torchvision's: 800, 1333; the demo
            models': their training size); ``instance_min_size=0`` runs at the camera's native
            resolution, shrunk only to an ``instance_max_size`` that is set. Both at most
            :data:`MAX_NETWORK_SIDE`.
        semantic_input_size: shorter side the semantic network sees; 0 runs at the camera's
            resolution, -1 takes the model's own (registry ``input_size``: 0 for torchvision's,
            the training size for the demo models). At most :data:`MAX_NETWORK_SIDE`.
        channels_last: the networks' input in NHWC memory format (runtime "torch"): faster
            convolutions on CUDA's tensor cores and in oneDNN on the CPU; on CUDA the models' weights
            too. False: plain NCHW.
        cuda_graphs: replay the fixed-shape parts (whole semantic network; Mask R-CNN backbone,
            FPN and RPN head) as CUDA graphs, captured once per input shape (CUDA only, runtime
            "torch").
        runtime: what runs those fixed-shape parts: "torch" (eager; CUDA graphs on CUDA) or
            "onnxruntime" (exported to ONNX on first use per model, weights and input shape, cached
            on disk, run by ONNX Runtime: see :mod:`segmentation_ros.engine.runtimes.onnx`; needs
            ``pip install 'segmentation-ros[onnx]'``). The rest of the pipeline is the same. With
            "onnxruntime", precision "fp16" lets TensorRT use FP16 kernels (other providers run
            FP32); "bf16" is refused.
        onnx_providers: ONNX Runtime execution providers in order ("tensorrt", "cuda", "cpu" or
            full names); empty: ``SEGMENTATION_ROS_ONNX_PROVIDERS``, else TensorRT > CUDA > CPU
            (those installed) on CUDA, CPU on the CPU.
        onnx_cache_dir: where exports are cached (None: ``SEGMENTATION_ROS_ONNX_CACHE``, else
            ``~/.cache/segmentation_ros/onnx``).
        offline: never download weights (None: ``SEGMENTATION_ROS_OFFLINE``).

    Frame geometry: every frame is checked by :func:`validate_frame` (sides at least
    :data:`MIN_FRAME_SIDE`, aspect ratio at most :data:`MAX_ASPECT_RATIO`), and no network input
    side exceeds :data:`MAX_NETWORK_SIDE` (the long side is capped, the short side follows), so any
    accepted frame costs at most a 4096 x 4096 forward pass per network.
    """

    task: str = "semantic"
    semantic_model: str = "deeplabv3_resnet50"
    instance_model: str = "maskrcnn_resnet50_fpn"
    semantic_weights: str | None = "DEFAULT"
    instance_weights: str | None = "DEFAULT"
    semantic_labels: str | None = None
    instance_labels: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    score_threshold: float = 0.5
    mask_threshold: float = 0.5
    overlap_threshold: float = 0.5
    stuff_area_threshold: int = 4096
    max_detections: int = 100
    label_divisor: int = 1000
    classes: tuple[int, ...] = ()
    instance_min_size: int = -1
    instance_max_size: int = -1
    semantic_input_size: int = -1
    channels_last: bool = True
    cuda_graphs: bool = True
    runtime: str = "torch"
    onnx_providers: tuple[str, ...] = ()
    onnx_cache_dir: str | None = None
    offline: bool | None = None

    def validate(self, *, device: bool = True) -> EngineConfig:
        """Raise ``ValueError`` naming the first bad value; return self.

        ``device=False`` leaves out the one check that depends on this machine (that the device
        exists): the node's parameters are checked so when they are set, the device when the models
        load.
        """
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {self.precision!r}")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {self.runtime!r}")
        if self.runtime == "onnxruntime" and self.precision == "bf16":
            raise ValueError(
                "precision bf16 is not available with runtime 'onnxruntime' (fp16 lets TensorRT use FP16 "
                "kernels; fp32 otherwise)"
            )
        if self.onnx_providers:
            if self.runtime != "onnxruntime":
                raise ValueError(
                    f"onnx_providers {list(self.onnx_providers)} given, but runtime is {self.runtime!r}"
                )
            from segmentation_ros.engine.runtimes.onnx import canonical_provider

            for provider in self.onnx_providers:
                canonical_provider(provider)  # raises ValueError naming it
        for name in ("score_threshold", "mask_threshold", "overlap_threshold"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.stuff_area_threshold < 0:
            raise ValueError(f"stuff_area_threshold must be >= 0, got {self.stuff_area_threshold}")
        if not 1 <= self.max_detections <= 1000:
            raise ValueError(f"max_detections must be in [1, 1000], got {self.max_detections}")
        if self.label_divisor <= self.max_detections:
            raise ValueError(
                f"label_divisor ({self.label_divisor}) must exceed max_detections ({self.max_detections}) "
                "so that every instance id fits"
            )
        if self.instance_min_size < -1 or (self.instance_max_size != -1 and self.instance_max_size < max(self.instance_min_size, 1)):
            raise ValueError(
                f"need instance_min_size >= -1 and instance_max_size -1 or >= instance_min_size, got "
                f"{self.instance_min_size}, {self.instance_max_size}"
            )
        if self.semantic_input_size < -1:
            raise ValueError(f"semantic_input_size must be >= -1, got {self.semantic_input_size}")
        for name in ("instance_min_size", "instance_max_size", "semantic_input_size"):
            if getattr(self, name) > MAX_NETWORK_SIDE:
                raise ValueError(
                    f"{name} must be at most {MAX_NETWORK_SIDE} (MAX_NETWORK_SIDE, the largest network "
                    f"input side), got {getattr(self, name)}"
                )
        if self.task in ("semantic", "panoptic") and get_model_entry(self.semantic_model).task != "semantic":
            raise ValueError(f"semantic_model {self.semantic_model!r} is not a semantic model")
        if self.task in ("instance", "panoptic") and get_model_entry(self.instance_model).task != "instance":
            raise ValueError(f"instance_model {self.instance_model!r} is not an instance model")
        if any(int(c) < 0 for c in self.classes):
            raise ValueError(f"classes must be non-negative class ids, got {list(self.classes)}")
        if device:
            resolve_device(self.device)
        return self


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cpu``; ``cuda``/``cuda:N`` (must exist)."""
    spec = str(spec).strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {spec!r}") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} asked for, but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {spec!r}")
    return device


def validate_frame(frame: object, index: int = 0) -> np.ndarray:
    """Check one camera frame; return it as (H, W) or (H, W, 3) uint8.

    The one per-frame check of an input image: what it accepts, the engine segments at a bounded
    cost; what it refuses raises ``ValueError`` naming the frame (``index``) and the reason.
    Accepts (H, W), (H, W, 1) and (H, W, 3) uint8 arrays, non-contiguous or read-only ones too
    (subclasses such as ``np.matrix`` or masked arrays are read as their plain array), whose sides
    are both at least :data:`MIN_FRAME_SIDE` (16) pixels and whose long side is at most
    :data:`MAX_ASPECT_RATIO` (8) times the short one. (Large frames are accepted: the networks'
    inputs are capped at :data:`MAX_NETWORK_SIDE`; the node bounds a frame's pixels when it decodes.)
    """
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame {index}: expected a numpy array, got {type(frame).__name__}")
    if type(frame) is not np.ndarray:  # np.matrix cannot be stacked into a batch; a mask means nothing here
        frame = frame.view(np.ndarray)
    if frame.dtype != np.uint8:
        raise ValueError(f"frame {index}: expected dtype uint8, got {frame.dtype}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] != 3):
        raise ValueError(
            f"frame {index}: expected shape (H, W), (H, W, 1) or (H, W, 3), got {frame.shape} "
            "(drop an alpha channel before segmenting)"
        )
    height, width = frame.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"frame {index}: zero-sized image {frame.shape}")
    if min(height, width) < MIN_FRAME_SIDE:
        raise ValueError(
            f"frame {index}: {width}x{height} (width x height) is too small to segment: both sides must "
            f"be at least {MIN_FRAME_SIDE} pixels"
        )
    if max(height, width) > MAX_ASPECT_RATIO * min(height, width):
        raise ValueError(
            f"frame {index}: {width}x{height} (width x height) is too elongated to segment: the long "
            f"side may be at most {MAX_ASPECT_RATIO} times the short side"
        )
    return frame
