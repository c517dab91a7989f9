"""The ROS-free segmentation engine: camera frames in, results at camera resolution out.

Design for speed: frames are uploaded as uint8 (through reused pinned buffers on CUDA) and
normalised, resized, thresholded, pasted and painted on the device; a batch of same-sized frames
(several cameras) runs in one forward pass; only the final small maps come back to the host.

Example::

    engine = SegmentationEngine(EngineConfig(task="panoptic", device="auto"))
    result = engine.segment(rgb_frame)              # (H, W, 3) uint8
    result.panoptic.panoptic                         # (H, W) int32 class * 1000 + instance
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import concat_box_prediction_layers
from torchvision.models.segmentation import FCN, LRASPP, DeepLabV3

from segmentation_ros.engine.config import (
    CPU_BATCH_PIXELS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MAX_ASPECT_RATIO,
    MAX_NETWORK_SIDE,
    MIN_FRAME_SIDE,
    PRECISIONS,
    RUNTIME_PARAMETERS,
    TASKS,
    EngineConfig,
    resolve_device,
    validate_frame,
)
from segmentation_ros.engine.cuda_graphs import GraphedCallable
from segmentation_ros.engine.labels import LabelClass, LabelSet
from segmentation_ros.engine.masks import (
    bincount,
    exceeds,
    float32_cutoff,
    lookup,
    paint_instance_ids,
    paste_masks,
)
from segmentation_ros.engine.panoptic import encode_panoptic, fuse_panoptic
from segmentation_ros.engine.registry import LoadedModel, build_model
from segmentation_ros.engine.results import InstanceResult, PanopticResult, Segmentation, SemanticResult
from segmentation_ros.engine.runtimes import RUNTIMES
from segmentation_ros.engine.upsample import upsampled_argmax

if TYPE_CHECKING:
    from segmentation_ros.engine.runtimes.onnx import NetworkSpec

__all__ = [
    "EngineConfig",
    "SegmentationEngine",
    "resolve_device",
    "validate_frame",
    "panoptic_label_space",
    "TASKS",
    "PRECISIONS",
    "RUNTIMES",
    "RUNTIME_PARAMETERS",
    "upsampled_argmax",
    "CPU_BATCH_PIXELS",
    "MIN_FRAME_SIDE",
    "MAX_ASPECT_RATIO",
    "MAX_NETWORK_SIDE",
]

log = logging.getLogger(__name__)

def panoptic_label_space(semantic: LabelSet, instance: LabelSet) -> tuple[LabelSet, torch.Tensor, torch.Tensor]:
    """The panoptic classes: the instance model's things plus the semantic model's stuff.

    A stuff class keeps its semantic id unless that id is taken, then gets the next free id; when
    both models share a label set the mapping is the identity.

    Returns:
        (label set, thing_map (instance.num_classes,) int64 instance id -> panoptic id or -1,
        stuff_map (semantic.num_classes,) int64 semantic id -> panoptic stuff id or -1).
    """
    classes: dict[int, LabelClass] = {c.id: c for c in instance.classes if c.isthing and c.id != instance.void_id}
    void = instance.void_id if instance.void_id is not None else semantic.void_id
    if void is not None:
        void_class = (instance[void] if void in instance else None) or (semantic[void] if void in semantic else None)
        classes[void] = LabelClass(void, void_class.name if void_class else "void", (0, 0, 0), False)
    thing_map = torch.full((instance.num_classes,), -1, dtype=torch.int64)
    for cid in classes:
        if cid != void:
            thing_map[cid] = cid
    stuff_map = torch.full((semantic.num_classes,), -1, dtype=torch.int64)
    stuff = [c for c in semantic.classes if not c.isthing and c.id != semantic.void_id]
    taken = set(classes) | {c.id for c in stuff}  # stuff ids that are free keep them: no cascade
    next_id = max(taken) + 1 if taken else 1
    for c in stuff:
        if c.id in classes:  # the id is a thing (or void) of the instance model: move the stuff class
            pid, next_id = next_id, next_id + 1
        else:
            pid = c.id
        classes[pid] = LabelClass(pid, c.name, c.color, False)
        stuff_map[c.id] = pid
    name = semantic.name if semantic.name == instance.name else f"{instance.name}+{semantic.name}"
    return LabelSet(name, tuple(classes.values()), void), thing_map, stuff_map


class _Uploader:
    """Moves a batch of uint8 frames to the device as (B, 3, H, W) uint8 RGB.

    On CUDA the host copy goes through a pinned buffer kept per batch shape and reused, so the
    transfer is asynchronous and nothing is allocated per frame.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self._pinned: dict[tuple[int, ...], torch.Tensor] = {}

    def __call__(self, frames: Sequence[np.ndarray], color_order: str) -> torch.Tensor:
        shape = (len(frames), *frames[0].shape)
        if self.device.type == "cuda":
            buffer = self._pinned.get(shape)
            if buffer is None:
                buffer = self._pinned[shape] = torch.empty(shape, dtype=torch.uint8).pin_memory()
            else:
                torch.cuda.current_stream(self.device).synchronize()  # previous upload has finished
            host = buffer.numpy()
            for i, frame in enumerate(frames):
                np.copyto(host[i], frame)  # any layout, read-only too, no warning
            batch = buffer.to(self.device, non_blocking=True)
        elif len(frames) == 1 and frames[0].flags.c_contiguous and frames[0].flags.writeable:
            batch = torch.from_numpy(frames[0])[None]  # zero copy
        else:
            batch = torch.from_numpy(np.stack(frames))
        if batch.dim() == 3:  # grayscale: replicate to three channels
            return batch[:, None].expand(-1, 3, -1, -1)
        batch = batch.permute(0, 3, 1, 2)
        return batch.flip(1) if color_order == "bgr" else batch


class SegmentationEngine:
    """Semantic, instance or panoptic segmentation of camera frames.

    Args:
        config: an :class:`EngineConfig` (validated here).
        **overrides: fields of the config to replace.

    Raises:
        ValueError: a bad configuration value.
        WeightsError: weights that cannot be loaded.
    """

    def __init__(self, config: EngineConfig | None = None, **overrides: object):
        self.config = dataclasses.replace(config or EngineConfig(), **overrides).validate()
        self.device = resolve_device(self.config.device)
        cfg = self.config
        if cfg.precision != "fp32" and self.device.type != "cuda":
            log.warning("precision %s needs CUDA; running fp32 on %s", cfg.precision, self.device)
        if cfg.runtime == "onnxruntime":  # before the weights load: a missing extra fails at once
            from segmentation_ros.engine.runtimes.onnx import import_onnxruntime

            import_onnxruntime()
        self.semantic_model: LoadedModel | None = None
        self.instance_model: LoadedModel | None = None
        if cfg.task in ("semantic", "panoptic"):
            self.semantic_model = self._load(cfg.semantic_model, cfg.semantic_weights, cfg.semantic_labels)
        if cfg.task in ("instance", "panoptic"):
            self.instance_model = self._load(cfg.instance_model, cfg.instance_weights, cfg.instance_labels)
            labels = self.instance_model.labels
            if not labels.thing_ids:
                raise ValueError(
                    f"label set {labels.name!r} marks no class as a thing (isthing: true); "
                    f"instance model {cfg.instance_model!r} needs its object classes marked"
                )
            transform = self.instance_model.module.transform
            self._inst_mean, self._inst_std = self._pixel_scale(transform.image_mean, transform.image_std)
        self._sem_mean, self._sem_std = self._pixel_scale(IMAGENET_MEAN, IMAGENET_STD)
        self._upload = _Uploader(self.device)
        self._semantic_forward = self._accelerate(self._semantic_network, "semantic")
        self._instance_trunk = self._accelerate(self._instance_network, "instance")
        if cfg.task == "panoptic":
            assert self.semantic_model is not None and self.instance_model is not None
            self.panoptic_labels, _, stuff_map = panoptic_label_space(
                self.semantic_model.labels, self.instance_model.labels
            )
            self._stuff_map = stuff_map.to(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    # ---- public API -----------------------------------------------------------------------------
    @property
    def labels(self) -> LabelSet:
        """The label set of the task's main output (panoptic: the fused label space)."""
        if self.config.task == "panoptic":
            return self.panoptic_labels
        model = self.semantic_model or self.instance_model
        assert model is not None
        return model.labels

    def update(self, **params: object) -> None:
        """Change runtime parameters (thresholds, class filter); validated, all or nothing."""
        unknown = set(params) - set(RUNTIME_PARAMETERS)
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)} at runtime; changeable: {RUNTIME_PARAMETERS}")
        if "classes" in params:
            params["classes"] = tuple(int(c) for c in params["classes"])  # type: ignore[union-attr]
        self.config = dataclasses.replace(self.config, **params).validate()

    def segment(self, frame: np.ndarray, color_order: str = "rgb") -> Segmentation:
        """Segment one frame: (H, W, 3) or (H, W) uint8 in ``color_order`` ("rgb" or "bgr")."""
        return self([frame], color_order)[0]

    @torch.inference_mode()
    def __call__(
        self, frames: Sequence[np.ndarray] | np.ndarray, color_order: str | Sequence[str] = "rgb"
    ) -> list[Segmentation]:
        """Segment several frames (for example one per camera) in as few forward passes as possible.

        Args:
            frames: (H, W, 3) or (H, W) uint8 arrays, or one (B, H, W, 3) array.
            color_order: "rgb" or "bgr", for all frames or one per frame.

        Frames of the same size (and colour order) run as one batch (on the CPU, batches of at most
        :data:`CPU_BATCH_PIXELS` network-input pixels). Results come back in input order.
        """
        if isinstance(frames, np.ndarray):
            frames = [frames] if frames.ndim in (2, 3) else list(frames)
        orders = [color_order] * len(frames) if isinstance(color_order, str) else list(color_order)
        if len(orders) != len(frames):
            raise ValueError(f"got {len(orders)} colour orders for {len(frames)} frames")
        for order in orders:
            if order not in ("rgb", "bgr"):
                raise ValueError(f"color_order must be 'rgb' or 'bgr', got {order!r}")
        frames = [validate_frame(f, i) for i, f in enumerate(frames)]
        results: list[Segmentation | None] = [None] * len(frames)
        groups: dict[tuple, list[int]] = {}
        for i, f in enumerate(frames):
            groups.setdefault((f.shape, orders[i] if f.ndim == 3 else "rgb"), []).append(i)
        for (shape, order), indices in groups.items():
            step = self._frames_per_pass(*shape[:2])
            for chunk in (indices[k : k + step] for k in range(0, len(indices), step)):
                for i, r in zip(chunk, self._run_batch([frames[i] for i in chunk], order), strict=True):
                    results[i] = r
        return results  # type: ignore[return-value]

    @property
    def execution_providers(self) -> dict[str, str | None]:
        """runtime "onnxruntime": the ONNX Runtime execution provider each network part ("semantic",
        "instance") actually runs on, None before its first frame; runtime "torch": empty."""
        from segmentation_ros.engine.runtimes.onnx import OnnxNetwork

        return {
            part: network.provider
            for part, network in (("semantic", self._semantic_forward), ("instance", self._instance_trunk))
            if isinstance(network, OnnxNetwork)
        }

    @property
    def runtime_info(self) -> str:
        """One line for diagnostics: ``torch``, or ``onnxruntime (CPUExecutionProvider)`` with the
        provider(s) actually used (``no frame yet`` before the first)."""
        if self.config.runtime == "torch":
            return "torch"
        used = sorted({p for p in self.execution_providers.values() if p})
        return f"onnxruntime ({', '.join(used) or 'no frame yet'})"

    def network_spec(self, part: str) -> NetworkSpec:
        """The fixed-shape network part ``part`` ("semantic" or "instance") of a loaded model, as
        :mod:`segmentation_ros.engine.runtimes.onnx` exports it: Mask R-CNN's backbone + FPN + RPN
        head, or a whole semantic network to its logits at the output stride; with its metadata
        (labels, input normalisation, what the outputs are)."""
        from segmentation_ros.engine.runtimes.onnx import NetworkSpec

        loaded = {"semantic": self.semantic_model, "instance": self.instance_model}.get(part)
        if loaded is None:
            raise ValueError(f"no {part!r} network: this engine's task is {self.config.task!r}")
        if part == "semantic":
            mean, std, outputs = IMAGENET_MEAN, IMAGENET_STD, ("logits",)
            fn: Callable[[torch.Tensor], Any] = self._semantic_network
            what = (
                "the whole semantic network; output: class logits (batch, classes, h', w') at the network's "
                "output stride (upsample bilinearly to the input size, align_corners=False, then argmax)"
            )
        else:
            transform = loaded.module.transform
            mean, std = tuple(transform.image_mean), tuple(transform.image_std)
            outputs, fn = ("features", "objectness", "deltas"), self._instance_network
            what = (
                "Mask R-CNN's backbone + FPN + RPN head; outputs: FPN features per level (features.<level>), "
                "RPN objectness and box deltas per level (objectness.<i>, deltas.<i>); anchors, proposals and "
                "the ROI heads run after it (torchvision's MaskRCNN)"
            )
        metadata = {
            "model": loaded.entry.name,
            "task": loaded.entry.task,
            "part": part,
            "description": what,
            "weights": loaded.weights,
            "labels": loaded.labels.to_dict(),
            "normalisation": {
                "input": "(batch, 3, h, w) float32, RGB, NCHW",
                "formula": "(pixel / 255 - mean) / std, per channel",
                "mean": [float(v) for v in mean],
                "std": [float(v) for v in std],
            },
        }
        if part == "instance":
            metadata["size_divisible"] = int(loaded.module.transform.size_divisible)
        return NetworkSpec(loaded.entry.name, part, loaded.module, fn, outputs, metadata)

    def network_input_size(self, part: str, height: int, width: int, padded: bool = True) -> tuple[int, int]:
        """The (h, w) network part ``part`` sees for a camera frame of ``height`` x ``width``:
        the semantic input size, or Mask R-CNN's resized input, zero-padded at the bottom and
        right to its size divisor when ``padded``."""
        if part == "semantic" and self.semantic_model is not None:
            return self._semantic_size(height, width)
        if part == "instance" and self.instance_model is not None:
            h, w = self._instance_size(height, width)
            divisor = self.instance_model.module.transform.size_divisible if padded else 1
            return h + (-h) % divisor, w + (-w) % divisor
        raise ValueError(f"no {part!r} network: this engine's task is {self.config.task!r}")

    def close(self) -> None:
        """Release the models and the GPU memory they held."""
        for network in (self._semantic_forward, self._instance_trunk):
            if hasattr(network, "close"):
                network.close()
        self.semantic_model = self.instance_model = None
        self._upload = _Uploader(self.device)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # ---- internals ------------------------------------------------------------------------------
    def _load(self, name: str, weights: str | None, labels: str | None) -> LoadedModel:
        loaded = build_model(name, weights, labels=labels, offline=self.config.offline)
        loaded.module.to(self.device)
        if self.device.type == "cuda" and self.config.channels_last:
            loaded.module.to(memory_format=torch.channels_last)
        return loaded

    def _accelerate(self, fn: Callable[[torch.Tensor], Any], part: str) -> Callable[[torch.Tensor], Any]:
        """The fixed-shape network part ``part`` ("semantic" or "instance", computed by ``fn``) as it
        runs: through ONNX Runtime with runtime "onnxruntime"; otherwise ``fn`` under autocast, as a
        CUDA graph on CUDA when ``cuda_graphs`` is set."""
        cfg = self.config
        loaded = self.semantic_model if part == "semantic" else self.instance_model
        if cfg.runtime == "onnxruntime" and loaded is not None:
            from segmentation_ros.engine.runtimes.onnx import OnnxNetwork, default_cache_dir

            cache = Path(cfg.onnx_cache_dir).expanduser() if cfg.onnx_cache_dir else default_cache_dir()
            return OnnxNetwork(
                self.network_spec(part),
                device=self.device,
                providers=cfg.onnx_providers,
                cache_dir=cache,
                fp16=cfg.precision == "fp16",
            )
        if self.device.type == "cuda" and cfg.cuda_graphs:
            dtype = PRECISIONS[cfg.precision] if cfg.precision != "fp32" else None
            return GraphedCallable(fn, autocast_dtype=dtype)

        def eager(x: torch.Tensor) -> Any:
            with self._autocast():
                return fn(x)

        return eager

    def _semantic_network(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at the network's own output stride: torchvision's segmentation models end by
        upsampling every class channel to the input size; the engine upsamples once, to the camera's
        size, and takes the confidence before upsampling (C times fewer exponentials)."""
        module = self.semantic_model.module  # type: ignore[union-attr]
        if isinstance(module, LRASPP):
            return module.classifier(module.backbone(x))
        if isinstance(module, (FCN, DeepLabV3)) and module.aux_classifier is None:
            return module.classifier(module.backbone(x)["out"])
        return module(x)["out"]

    def _instance_network(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], list, list]:
        """The fixed-shape part of Mask R-CNN: backbone + FPN features and the RPN head's outputs."""
        model = self.instance_model.module  # type: ignore[union-attr]
        features = model.backbone(x)
        objectness, deltas = model.rpn.head(list(features.values()))
        return features, objectness, deltas

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self.device.type == "cuda" and self.config.precision != "fp32":
            with torch.autocast("cuda", dtype=PRECISIONS[self.config.precision]):
                yield
        else:
            yield

    def _pixel_scale(self, mean: Sequence[float], std: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalisation constants for 0..255 pixel values, (1, 3, 1, 1) on the device."""
        return tuple(torch.tensor(v, device=self.device).view(1, 3, 1, 1) * 255.0 for v in (mean, std))  # type: ignore[return-value]

    def _normalize(
        self,
        batch: torch.Tensor,
        mean: torch.Tensor,
        std: torch.Tensor,
        resize: Callable[[torch.Tensor], torch.Tensor] | None = None,
        shrinks: bool = False,
    ) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> float ``(x / 255 - mean) / std``, resized by ``resize`` if given
        (``mean`` and ``std`` from :meth:`_pixel_scale`, in 0..255 units).

        Normalising is affine per channel, so it commutes with bilinear resizing: it runs after a
        resize that ``shrinks`` the image and before one that enlarges it, on the fewer pixels.
        """
        x = batch.to(torch.float32)
        if resize is not None and shrinks:
            x = resize(x)
        x = x.sub_(mean).div_(std)
        if resize is not None and not shrinks:
            x = resize(x)
        # NHWC for torch's networks on every device: tensor-core convolutions on CUDA, oneDNN's NHWC
        # kernels on the CPU (DeepLabV3-MobileNet at 640x480, one thread: 175 ms against 260-290 ms
        # NCHW). A colour upload is already NHWC in memory (a permuted view of the frame), so this
        # costs nothing there; a grayscale frame (its channel expanded) needs the copy. ONNX Runtime
        # takes NCHW.
        nhwc = self.config.channels_last and self.config.runtime == "torch"
        return x.contiguous(memory_format=torch.channels_last if nhwc else torch.contiguous_format)

    def _run_batch(self, frames: list[np.ndarray], color_order: str) -> list[Segmentation]:
        height, width = frames[0].shape[:2]
        batch = self._upload(frames, color_order)
        out = [Segmentation(height, width) for _ in frames]
        sem = self._semantic(batch) if self.semantic_model is not None else None
        inst = self._instances(batch) if self.instance_model is not None else None
        if self.config.task == "panoptic":
            assert sem is not None and inst is not None
            for i, r in enumerate(out):
                self._fuse(r, sem[0][i], sem[1][i], inst[i])
            return out
        if sem is not None:
            labels, confidence = sem
            # One device->host copy of the whole batch's small maps.
            labels_np = _labels_to_host(labels, self.semantic_model.labels)  # type: ignore[union-attr]
            confidence_np = confidence.cpu().numpy()
            for i, r in enumerate(out):
                r.semantic = SemanticResult(labels_np[i], confidence_np[i], self.semantic_model.labels)  # type: ignore[union-attr]
        if inst is not None:
            for r, parts in zip(out, inst, strict=True):
                r.instances = self._instance_result(*parts)
        return out

    def _semantic(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) uint8 -> labels (B, H, W) (uint8 for label sets of <= 256 ids, else int64)
        and confidence (B, H, W) uint8."""
        height, width = batch.shape[-2:]
        logits = self._semantic_forward(self._semantic_input(batch)).float()  # (B, C, h, w)
        confidence = torch.softmax(logits, 1).amax(1, keepdim=True)  # at the network's resolution
        if logits.shape[-2:] != (height, width):
            confidence = F.interpolate(confidence, size=(height, width), mode="bilinear", align_corners=False)
        narrow = self.semantic_model.labels.label_dtype == np.uint8  # type: ignore[union-attr]
        labels = upsampled_argmax(logits, (height, width), torch.uint8 if narrow else torch.int64)
        return labels, confidence[:, 0].mul_(255.0).round_().to(torch.uint8)

    def _semantic_input(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 -> the semantic network's input: normalised, resized to
        ``semantic_input_size`` (the model's own for -1, camera resolution for 0)."""
        height, width = batch.shape[-2:]
        target = self._semantic_size(height, width)
        if target == (height, width):
            return self._normalize(batch, self._sem_mean, self._sem_std)

        def resize(x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x, size=target, mode="bilinear", align_corners=False)

        return self._normalize(batch, self._sem_mean, self._sem_std, resize, shrinks=target[0] < height)

    def _semantic_size(self, height: int, width: int) -> tuple[int, int]:
        """The semantic network's input (h, w) for a camera frame of ``height`` x ``width``: the
        short side at ``semantic_input_size`` (the model's own for -1, the camera's for 0), the
        long side at most :data:`MAX_NETWORK_SIDE`."""
        size = self.config.semantic_input_size
        if size < 0:
            size = self.semantic_model.entry.input_size  # type: ignore[union-attr]
        scale = size / min(height, width) if size else 1.0
        scale = min(scale, MAX_NETWORK_SIDE / max(height, width))
        if scale == 1.0:
            return height, width
        return max(1, round(height * scale)), max(1, round(width * scale))

    def _instance_size(self, height: int, width: int) -> tuple[int, int]:
        """Mask R-CNN's input (h, w), unpadded, for a camera frame of ``height`` x ``width``.

        As torchvision's ``GeneralizedRCNNTransform``: scaled so that the short side is
        ``instance_min_size`` unless the long side would exceed ``instance_max_size`` (the model's
        own for -1); ``instance_min_size=0`` keeps the camera's resolution, shrunk only to an
        ``instance_max_size`` that is set. The long side is at most :data:`MAX_NETWORK_SIDE`.
        Sides are floored, as ``F.interpolate(scale_factor=..., recompute_scale_factor=True)``.
        """
        cfg = self.config
        model = self.instance_model.module  # type: ignore[union-attr]
        short, long = min(height, width), max(height, width)
        min_size = cfg.instance_min_size if cfg.instance_min_size >= 0 else model.transform.min_size[-1]
        if min_size:
            max_size = cfg.instance_max_size if cfg.instance_max_size > 0 else model.transform.max_size
            scale = min(min_size / short, max_size / long)
        else:  # native, unless an instance_max_size is set
            scale = min(1.0, cfg.instance_max_size / long) if cfg.instance_max_size > 0 else 1.0
        scale = min(scale, MAX_NETWORK_SIDE / long)
        if scale == 1.0:
            return height, width
        return max(1, math.floor(height * scale)), max(1, math.floor(width * scale))

    def _frames_per_pass(self, height: int, width: int) -> int:
        """How many frames of this size one forward pass takes: all on a GPU; on the CPU as many as
        keep the networks' input within :data:`CPU_BATCH_PIXELS`."""
        if self.device.type != "cpu":
            return 1 << 30
        pixels = 1
        if self.semantic_model is not None:
            pixels = max(pixels, math.prod(self._semantic_size(height, width)))
        if self.instance_model is not None:
            pixels = max(pixels, math.prod(self._instance_size(height, width)))
        return max(1, CPU_BATCH_PIXELS // pixels)

    def _instances(self, batch: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(B, 3, H, W) uint8 -> per frame (boxes (N, 4), scores (N,), classes (N,), masks (N, H, W)).

        Runs Mask R-CNN's stages directly so that masks are pasted in one batched op at camera
        resolution instead of torchvision's per-box loop.
        """
        cfg = self.config
        height, width = batch.shape[-2:]
        images = self._instance_input(batch)
        h, w = images.image_sizes[0]
        detections = self._detect(images)
        ratio = torch.tensor([width / w, height / h, width / w, height / h], device=self.device)
        allowed = self._allowed_classes()
        counts, boxes, scores, classes, masks = [], [], [], [], []
        for det in detections:
            # the score threshold, exactly (float64(s) >= t), whatever torchvision's own comparison
            # (_detect sets its prefilter to keep every passing float32 score)
            keep = allowed[det["labels"]] & exceeds(det["scores"], cfg.score_threshold, inclusive=True)
            boxes.append(det["boxes"][keep].float() * ratio)
            scores.append(det["scores"][keep].float())
            classes.append(det["labels"][keep])
            masks.append(det["masks"][keep].float())
            counts.append(int(boxes[-1].shape[0]))
        boxes_all = torch.cat(boxes)
        boxes_all[:, 0::2] = boxes_all[:, 0::2].clamp(0, width)
        boxes_all[:, 1::2] = boxes_all[:, 1::2].clamp(0, height)
        pasted = paste_masks(torch.cat(masks), boxes_all, height, width, cfg.mask_threshold).split(counts)
        return list(zip(boxes_all.split(counts), scores, classes, pasted, strict=True))

    def _allowed_classes(self) -> torch.Tensor:
        """(num_classes,) bool on the device: thing classes the label set names (not the N/A gaps
        of COCO's id space, not void), narrowed to ``classes`` when that filter is set."""
        key = tuple(self.config.classes)
        if getattr(self, "_allowed_key", None) != key:
            labels = self.instance_model.labels  # type: ignore[union-attr]
            allowed = torch.zeros(labels.num_classes, dtype=torch.bool)
            allowed[[c for c in labels.thing_ids if not key or c in key]] = True
            self._allowed, self._allowed_key = allowed.to(self.device), key
        return self._allowed

    def _instance_input(self, batch: torch.Tensor) -> ImageList:
        """(B, 3, H, W) uint8 -> Mask R-CNN's input: normalised, resized (``instance_min_size``) and
        zero-padded to the size divisor; ``image_sizes`` hold the unpadded (h, w)."""
        model = self.instance_model.module  # type: ignore[union-attr]
        height, width = batch.shape[-2:]
        target = self._instance_size(height, width)

        def resize(x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x, size=target, mode="bilinear", align_corners=False)

        resizes = target != (height, width)
        shrinks = target[0] < height
        x = self._normalize(batch, self._inst_mean, self._inst_std, resize if resizes else None, shrinks)
        h, w = x.shape[-2:]
        divisor = model.transform.size_divisible
        x = F.pad(x, (0, (-w) % divisor, 0, (-h) % divisor))
        return ImageList(x, [(h, w)] * x.shape[0])

    def _detect(self, images: ImageList) -> list[dict[str, torch.Tensor]]:
        """Mask R-CNN's networks on a prepared input: backbone, FPN, RPN and ROI box and mask heads.

        Returns torchvision's per-frame dicts in network-input pixels, with (N, 1, 28, 28) mask
        probabilities (not pasted). ``segmentation-ros bench`` times this as the forward pass.
        """
        cfg = self.config
        model = self.instance_model.module  # type: ignore[union-attr]
        # torchvision keeps scores > score_thresh in float32: just below the smallest float32 that
        # passes the threshold, it keeps every passing score; _instances then applies it exactly.
        passing = float32_cutoff(cfg.score_threshold, inclusive=True)
        model.roi_heads.score_thresh = float(np.nextafter(passing, np.float32(-np.inf)))
        model.roi_heads.detections_per_img = cfg.max_detections
        features, objectness, deltas = self._instance_trunk(images.tensors)
        # The data-dependent rest of the RPN (as torchvision's RegionProposalNetwork.forward).
        rpn = model.rpn
        feature_list = list(features.values())
        anchors = rpn.anchor_generator(images, feature_list)
        per_level = [o[0].numel() for o in objectness]
        objectness, deltas = concat_box_prediction_layers(objectness, deltas)
        proposals = rpn.box_coder.decode(deltas.detach(), anchors).view(len(anchors), -1, 4)
        proposals, _ = rpn.filter_proposals(proposals, objectness, images.image_sizes, per_level)
        with self._autocast():
            detections, _ = model.roi_heads(features, proposals, images.image_sizes)
        return detections

    def _instance_result(
        self, boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, masks: torch.Tensor
    ) -> InstanceResult:
        """Paint the id map; drop instances that no pixel shows so map ids == instance ids."""
        ids = paint_instance_ids(masks)
        visible = bincount(ids, masks.shape[0] + 1)[1:] > 0
        if not bool(visible.all()):
            lut = torch.zeros(masks.shape[0] + 1, dtype=torch.int32, device=ids.device)
            lut[1:] = torch.where(visible, torch.cumsum(visible, 0, dtype=torch.int32), 0)
            ids = lookup(lut, ids)
            boxes, scores, classes, masks = boxes[visible], scores[visible], classes[visible], masks[visible]
        return self._to_instance_result(boxes, scores, classes, masks, ids, self.instance_model.labels)  # type: ignore[union-attr]

    @staticmethod
    def _to_instance_result(
        boxes: torch.Tensor,
        scores: torch.Tensor,
        classes: torch.Tensor,
        masks: torch.Tensor,
        ids: torch.Tensor,
        label_set: LabelSet,
    ) -> InstanceResult:
        n = int(boxes.shape[0])
        # one device->host transfer for boxes, scores and classes (class ids < 2**24 are exact)
        table = torch.cat([boxes.float(), scores.float()[:, None], classes.float()[:, None]], 1).cpu().numpy()
        return InstanceResult(
            ids=np.arange(1, n + 1, dtype=np.int32),
            class_ids=table[:, 5].astype(np.int64),
            scores=table[:, 4].copy(),
            boxes=table[:, :4].copy(),
            masks=masks,
            instance_ids=ids.to(torch.int32).cpu().numpy().astype(np.uint16),
            label_set=label_set,
        )

    def _fuse(
        self,
        result: Segmentation,
        labels: torch.Tensor,
        confidence: torch.Tensor,
        instances: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    ) -> None:
        cfg = self.config
        boxes, scores, classes, masks = instances
        # _instances kept only the instance model's things, which keep their ids in the panoptic
        # space (panoptic_label_space): no per-frame copy of the masks to filter or remap them.
        fusion = fuse_panoptic(
            labels,
            masks,
            scores,
            classes,
            self._stuff_map,
            score_threshold=cfg.score_threshold,
            overlap_threshold=cfg.overlap_threshold,
            stuff_area_threshold=cfg.stuff_area_threshold,
            semantic_confidence=confidence,
        )
        semantic_labels = self.semantic_model.labels  # type: ignore[union-attr]
        result.semantic = SemanticResult(
            _labels_to_host(labels, semantic_labels), confidence.cpu().numpy(), semantic_labels
        )
        kept = fusion.kept
        fused_ids = torch.arange(1, kept.numel() + 1, device=self.device)[:, None, None]
        result.instances = self._to_instance_result(
            boxes[kept],
            scores[kept],
            classes[kept],
            fusion.instance_ids[None] == fused_ids,  # each kept instance's pixels after fusion
            fusion.instance_ids,
            self.instance_model.labels,  # type: ignore[union-attr]
        )
        encoded = encode_panoptic(fusion.segment_ids, fusion.segments, cfg.label_divisor)
        result.panoptic = PanopticResult(
            segment_ids=fusion.segment_ids.cpu().numpy(),
            panoptic=encoded.cpu().numpy(),
            segments=fusion.segments,
            label_set=self.panoptic_labels,
            label_divisor=cfg.label_divisor,
        )


def _labels_to_host(labels: torch.Tensor, label_set: LabelSet) -> np.ndarray:
    """(..., H, W) integer class ids -> uint8 (or uint16) numpy, narrowed on the device first."""
    if label_set.label_dtype == np.uint8:
        return labels.to(torch.uint8).cpu().numpy()
    return labels.to(torch.int32).cpu().numpy().astype(np.uint16)

