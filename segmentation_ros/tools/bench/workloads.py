"""What the benchmark measures: workloads (a task and its models), cases (a workload on some
cameras of one size) and the run's options, with the ``--quick`` and ``--full`` presets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Workload:
    """A task with its model(s), by registry name, and optionally the weights they always use."""

    name: str
    task: str
    semantic_model: str | None = None
    instance_model: str | None = None
    weights: str | None = None  # None: the run's ``--weights``

    @property
    def models(self) -> list[str]:
        return [m for m in (self.semantic_model, self.instance_model) if m]


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("lraspp", "semantic", semantic_model="lraspp_mobilenet_v3_large"),
        Workload("deeplabv3", "semantic", semantic_model="deeplabv3_resnet50"),
        Workload("deeplabv3_mobilenet", "semantic", semantic_model="deeplabv3_mobilenet_v3_large"),
        Workload("maskrcnn", "instance", instance_model="maskrcnn_resnet50_fpn"),
        Workload(
            "panoptic",
            "panoptic",
            semantic_model="deeplabv3_resnet50",
            instance_model="maskrcnn_resnet50_fpn",
        ),
        # The trained demo models (weights shipped in models/, nothing downloaded) on rendered
        # scenes: real class borders and detections, where random weights give one class and
        # anchor-sized boxes.
        Workload("demo", "panoptic", semantic_model="shapes_lraspp", instance_model="shapes_maskrcnn", weights="DEFAULT"),
    )
}


def parse_workload(spec: str) -> Workload:
    """A preset name (see :data:`WORKLOADS`) or ``semantic:MODEL``, ``instance:MODEL``,
    ``panoptic:SEMANTIC+INSTANCE`` with registry names."""
    if spec in WORKLOADS:
        return WORKLOADS[spec]
    task, _, models = spec.partition(":")
    names = [m for m in models.split("+") if m]
    if task == "semantic" and len(names) == 1:
        return Workload(spec, task, semantic_model=names[0])
    if task == "instance" and len(names) == 1:
        return Workload(spec, task, instance_model=names[0])
    if task == "panoptic" and len(names) == 2:
        return Workload(spec, task, semantic_model=names[0], instance_model=names[1])
    raise ValueError(
        f"workload must be one of {sorted(WORKLOADS)} or semantic:MODEL, instance:MODEL, "
        f"panoptic:SEMANTIC+INSTANCE; got {spec!r}"
    )


@dataclass(frozen=True)
class CaseSpec:
    """One case: a workload on ``batch`` cameras of ``width`` x ``height``."""

    workload: Workload
    width: int
    height: int
    batch: int


@dataclass
class BenchOptions:
    """What to run and how often.

    Attributes:
        device: "auto", "cpu", "cuda" or "cuda:N".
        cases: the (workload, width, height, batch) cases, in order.
        precisions: our pipeline's precisions (the naive loop is always fp32).
        runtimes: what runs our networks (``EngineConfig.runtime``): "torch" and/or "onnxruntime";
            each runtime's variants are measured side by side, the ONNX Runtime ones named
            ``..._ort`` (``ours_fp32_ort``, ``forward_fp32_ort``), at the same thread count.
        warmup: untimed steps per variant before the timed runs.
        repeats: timed runs per variant (variants interleaved, run by run).
        iters: steps per timed run; 0 = enough for about :data:`AUTO_RUN_S` (at most
            :data:`AUTO_MAX_ITERS`), from the slowest variant's last warmup step.
        instance_min_size: Mask R-CNN input short side for naive and ours (torchvision: 800);
            0 = camera resolution for both, -1 = the model's own input size.
        native: also run ours (and its forward) at camera resolution when ``instance_min_size`` > 0.
        semantic_input_size: semantic network input short side for ours and naive; -1 = the
            model's own (torchvision's: camera resolution), 0 = camera resolution.
        score_threshold, max_detections: fix the instance workload (see the module docstring).
        paste_detections: masks per frame in the mask-paste comparison.
        paste_sizes: (width, height) of the paste comparison (default: the cases' sizes).
        tracking_detections: moving boxes per frame in the tracking case (640x480).
        depth: run the depth fusion case (the demo panoptic models at 640x480 with and without depth).
        weights: model weights for every model ("none" = random initialisation, never downloads).
        seed: weights, frames and paste inputs.
    """

    device: str = "auto"
    cases: list[CaseSpec] = field(default_factory=list)
    precisions: tuple[str, ...] = ("fp32",)
    runtimes: tuple[str, ...] = ("torch",)
    warmup: int = 1
    repeats: int = 3
    iters: int = 1
    instance_min_size: int = 800
    native: bool = True
    semantic_input_size: int = -1
    score_threshold: float = 0.0
    max_detections: int = 20
    paste_detections: int = 100
    paste_sizes: tuple[tuple[int, int], ...] = ()
    tracking_detections: int = 100
    depth: bool = True
    weights: str = "none"
    seed: int = 0
    label: str = ""  # "quick", "full" or "custom", recorded in the report


def runtime_tag(runtime: str) -> str:
    """What a runtime adds to a variant's name: nothing for torch, ``_ort`` for onnxruntime."""
    return "" if runtime == "torch" else "_ort"


def _product(
    workloads: Sequence[str], sizes: Sequence[tuple[int, int]], batches: Sequence[int]
) -> list[CaseSpec]:
    return [CaseSpec(parse_workload(w), sw, sh, b) for w in workloads for (sw, sh) in sizes for b in batches]


def quick_options(device: str = "cpu") -> BenchOptions:
    """The reduced CPU set (a few minutes on two cores): LR-ASPP at 320x240 and 640x480 with one
    and four cameras, Mask R-CNN at camera resolution with one camera, and the trained demo
    models' panoptic pipeline at 640x480."""
    cases = (
        _product(["lraspp"], [(320, 240), (640, 480)], [1, 4])
        + _product(["maskrcnn"], [(320, 240), (640, 480)], [1])
        + _product(["demo"], [(640, 480)], [1])
    )
    return BenchOptions(
        device=device, cases=cases, instance_min_size=0, label="quick", **_repeat_defaults(device)
    )


def full_options(device: str = "cuda") -> BenchOptions:
    """The whole matrix: every preset workload at 640x480 and 1280x720, one and four cameras."""
    cases = _product(list(WORKLOADS), [(640, 480), (1280, 720)], [1, 4])
    return BenchOptions(device=device, cases=cases, label="full", **_repeat_defaults(device))


def _repeat_defaults(device: str) -> dict[str, Any]:
    from segmentation_ros.engine.config import resolve_device

    if resolve_device(device).type == "cuda":
        return {"warmup": 10, "repeats": 5, "iters": 20, "precisions": ("fp32", "bf16")}
    return {"warmup": 1, "repeats": 5, "iters": 0, "precisions": ("fp32",)}
