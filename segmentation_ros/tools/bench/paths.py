"""The three paths, each as a variant to time: ours (:class:`SegmentationCore` from Image messages
to output messages), the engine's networks alone (forward) and the naive torchvision node."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from segmentation_ros.tools.bench.measure import _Variant
from segmentation_ros.tools.bench.workloads import BenchOptions, Workload


def _camera_frames(width: int, height: int, count: int, seed: int) -> list[np.ndarray]:
    """Deterministic camera frames: rendered synthetic scenes (objects on ground and sky), so that a
    trained model (the ``demo`` preset) sees class borders and objects as on a robot."""
    from segmentation_ros.tools.synthetic import generate_scene

    return [generate_scene(seed, width, height, split="test", index=i).image for i in range(count)]


def _shape_random_detector(module: torch.nn.Module) -> None:
    """Zero Mask R-CNN's box regressions (RPN and ROI): random weights otherwise give degenerate
    boxes that no mask pixel survives; this way detections are anchor-sized boxes."""
    with torch.no_grad():
        for path in ("rpn.head.bbox_pred", "roi_heads.box_predictor.bbox_pred"):
            layer = module.get_submodule(path)
            layer.weight.zero_()
            if layer.bias is not None:
                layer.bias.zero_()


def _weights(workload: Workload, options: BenchOptions) -> str:
    return workload.weights or options.weights


def _make_core(
    workload: Workload,
    options: BenchOptions,
    device: torch.device,
    precision: str,
    min_size: int,
    cameras: list[str],
    runtime: str = "torch",
) -> Any:
    from segmentation_ros.ros.messages import RosbagsFactory
    from segmentation_ros.ros.node_core import SegmentationCore

    params: dict[str, Any] = {
        "task": workload.task,
        "device": str(device),
        "precision": precision,
        "runtime": runtime,
        "score_threshold": options.score_threshold,
        "max_detections": options.max_detections,
        "instance_min_size": min_size,
        "semantic_input_size": options.semantic_input_size,
        "cameras": cameras,
        "semantic_weights": _weights(workload, options),
        "instance_weights": _weights(workload, options),
    }
    if workload.semantic_model:
        params["semantic_model"] = workload.semantic_model
    if workload.instance_model:
        params["instance_model"] = workload.instance_model
    core = SegmentationCore(params, RosbagsFactory())
    torch.manual_seed(options.seed)  # every core (and the naive copy) gets the same weights
    core.configure()
    if core.engine.instance_model is not None and _weights(workload, options).lower() == "none":
        # before the first frame: ONNX Runtime exports the networks then, with these weights
        _shape_random_detector(core.engine.instance_model.module)
    return core


def _image_frames(core: Any, frames: list[np.ndarray]) -> list[Any]:
    from segmentation_ros.ros.conversions import numpy_to_image
    from segmentation_ros.ros.messages import make_header
    from segmentation_ros.ros.node_core import Frame

    f = core.factory
    out = []
    for camera, pixels in zip(core.cameras, frames, strict=True):
        header = make_header(f, 1_700_000_000_000_000_000, camera or "camera")
        out.append(Frame(camera, numpy_to_image(pixels, "rgb8", header, f)))
    return out


def _count_detections(outputs: list[Any]) -> int:
    return sum(len(o.msg.detections) for o in outputs if o.type == "vision_msgs/msg/Detection2DArray")


def _ours(name: str, core: Any, messages: list[Any], visual: bool = True) -> _Variant:
    subscribed = None if visual else (lambda topic: False)
    engine = core.engine
    models = [m.module for m in (engine.semantic_model, engine.instance_model) if m is not None]
    counted = engine.instance_model is not None

    def step() -> int | None:
        outputs = core.process(messages, subscribed)
        return _count_detections(outputs) if counted else None

    return _Variant(name, step, len(messages), models)


def _forward(name: str, core: Any, frames: list[np.ndarray]) -> tuple[_Variant, dict[str, list[int]]]:
    """The engine's networks on a prepared device input (see the module docstring), in the same
    passes as the engine (on the CPU, several frames may be split over passes)."""
    engine = core.engine
    shapes: dict[str, list[int]] = {}
    height, width = frames[0].shape[:2]
    step_size = engine._frames_per_pass(height, width)
    passes: list[tuple[Any, Any]] = []  # (semantic input, instance ImageList) per pass
    with torch.inference_mode():
        for k in range(0, len(frames), step_size):
            batch = engine._upload(frames[k : k + step_size], "rgb")
            semantic_x = images = None
            if engine.semantic_model is not None:
                semantic_x = engine._semantic_input(batch)
                shapes["semantic"] = list(semantic_x.shape[-2:])
            if engine.instance_model is not None:
                images = engine._instance_input(batch)
                shapes["instance"] = list(images.image_sizes[0])
                shapes["instance_padded"] = list(images.tensors.shape[-2:])
            passes.append((semantic_x, images))

    @torch.inference_mode()
    def step() -> int | None:
        found = None
        for semantic_x, images in passes:
            if semantic_x is not None:
                logits = engine._semantic_forward(semantic_x)
                if logits.shape[-2:] != (height, width):  # what torchvision's forward ends with
                    torch.nn.functional.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            if images is not None:
                found = (found or 0) + sum(int(d["boxes"].shape[0]) for d in engine._detect(images))
        return found

    models = [m.module for m in (engine.semantic_model, engine.instance_model) if m is not None]
    return _Variant(name, step, len(frames), models), shapes


def _naive_panoptic(
    labels: np.ndarray,
    masks: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    overlap: float,
    stuff_area: int,
) -> tuple[np.ndarray, int]:
    """Host-side fusion as a hand-written node does it: instances by score, then stuff.

    Args:
        labels: (H, W) semantic class ids.
        masks: (N, H, W) bool instance masks; scores, classes: (N,).

    Returns:
        (H, W) int32 ``class * 1000 + instance`` map and the number of instances kept.
    """
    panoptic = np.zeros(labels.shape, np.int32)
    taken = np.zeros(labels.shape, bool)
    kept = 0
    for k in np.argsort(-scores):
        area = int(masks[k].sum())
        if area == 0:
            continue
        free = masks[k] & ~taken
        if free.sum() < (1.0 - overlap) * area:  # mostly covered by higher scores
            continue
        kept += 1
        panoptic[free] = int(classes[k]) * 1000 + kept
        taken |= free
    for c in np.unique(labels[~taken]):
        region = (labels == c) & ~taken
        if c != 0 and region.sum() >= stuff_area:
            panoptic[region] = int(c) * 1000
    return panoptic, kept


def _naive(
    core: Any, frames: list[np.ndarray], min_size: int, semantic_size: list[int] | None, options: BenchOptions
) -> _Variant:
    """The typical node: eager FP32 torchvision with host preprocessing and torchvision's postprocessing.

    ``semantic_size``: the (h, w) our semantic network sees; the naive loop resizes on the host to
    it when it is not the camera's, so that both run the network at the same resolution.
    """
    import torch.nn.functional as F
    import torchvision.transforms.functional as TF

    from segmentation_ros.engine.config import IMAGENET_MEAN, IMAGENET_STD
    from segmentation_ros.engine.registry import build_model

    engine = core.engine
    device = engine.device
    height, width = frames[0].shape[:2]

    def fp32_copy(loaded: Any) -> torch.nn.Module:
        model = build_model(loaded.entry.name, "none", labels=loaded.labels).module
        model.load_state_dict(loaded.module.state_dict())  # the same weights as ours
        return model.to(device).eval()  # NCHW, FP32, eager

    semantic = fp32_copy(engine.semantic_model) if engine.semantic_model is not None else None
    instance = fp32_copy(engine.instance_model) if engine.instance_model is not None else None
    if instance is not None:
        instance.roi_heads.score_thresh = options.score_threshold
        instance.roi_heads.detections_per_img = options.max_detections
        if min_size > 0:
            instance.transform.min_size = (min_size,)
        elif min_size == 0:  # camera resolution: torchvision's transform then leaves the size alone
            instance.transform.min_size = (min(height, width),)
            instance.transform.max_size = max(height, width)
        # min_size -1: the model's own input size, in torchvision's transform as in the engine
    resize = tuple(semantic_size) if semantic_size and tuple(semantic_size) != (height, width) else None

    @torch.inference_mode()
    def step() -> int | None:
        labels = None
        if semantic is not None:
            x = torch.stack([TF.normalize(TF.to_tensor(f), IMAGENET_MEAN, IMAGENET_STD) for f in frames])
            if resize is not None:  # on the host, like the rest of its preprocessing
                x = F.interpolate(x, size=resize, mode="bilinear", align_corners=False)
            logits = semantic(x.to(device))["out"]
            if logits.shape[-2:] != (height, width):
                logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            labels = logits.argmax(1).to(torch.uint8).cpu().numpy()
        if instance is None:
            return None
        outputs = instance([TF.to_tensor(f).to(device) for f in frames])
        count = 0
        for i, o in enumerate(outputs):
            masks = (o["masks"][:, 0] > 0.5).cpu().numpy()
            boxes, scores, classes = (
                o["boxes"].cpu().numpy(),
                o["scores"].cpu().numpy(),
                o["labels"].cpu().numpy(),
            )
            if labels is not None:
                _, kept = _naive_panoptic(labels[i], masks, scores, classes, 0.5, 4096)
                count += kept
            else:
                count += len(boxes)
        return count

    return _Variant("naive", step, len(frames), [m for m in (semantic, instance) if m is not None])
