"""Cases: one case's variants (naive, ours and forward at each precision) measured together, with
their ratios; and the mask-paste comparison."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from segmentation_ros.tools.bench.measure import _measure, _Variant
from segmentation_ros.tools.bench.paths import (
    _camera_frames,
    _count_detections,
    _forward,
    _image_frames,
    _make_core,
    _naive,
    _ours,
    _weights,
)
from segmentation_ros.tools.bench.workloads import BenchOptions, CaseSpec


def _run_case(spec: CaseSpec, options: BenchOptions, device: torch.device) -> dict[str, Any]:
    w = spec.workload
    has_instance = w.instance_model is not None
    cameras = [f"cam{i}" for i in range(spec.batch)]
    frames = _camera_frames(spec.width, spec.height, spec.batch, options.seed)
    matched = options.instance_min_size if has_instance else 0
    variants: list[_Variant] = []
    shapes: dict[str, Any] = {}
    cores = []
    for precision in options.precisions:
        core = _make_core(w, options, device, precision, matched, cameras)
        cores.append(core)
        messages = _image_frames(core, frames)
        ours = _ours(f"ours_{precision}", core, messages)
        forward, shapes = _forward(f"forward_{precision}", core, frames)
        if not variants:
            variants.append(_naive(core, frames, matched, shapes.get("semantic"), options))
        variants += [ours, _ours(f"ours_{precision}_no_visual", core, messages, visual=False), forward]
        if spec.batch > 1:

            def separate(core: Any = core, messages: list[Any] = messages) -> int | None:
                found = [core.process([m]) for m in messages]
                return sum(_count_detections(o) for o in found) if has_instance else None

            variants.append(_Variant(f"ours_{precision}_separate", separate, spec.batch, ours.models))
        if has_instance and matched and options.native:
            native = _make_core(w, options, device, precision, 0, cameras)
            cores.append(native)
            variants.append(_ours(f"ours_{precision}_native", native, _image_frames(native, frames)))
            forward_native, native_shapes = _forward(f"forward_{precision}_native", native, frames)
            shapes["instance_native"] = native_shapes["instance"]
            variants.append(forward_native)
    measured = _measure(variants, options, device)
    for core in cores:
        core.cleanup()
    del cores, variants
    if device.type == "cuda":
        torch.cuda.empty_cache()

    def ratio(a: str, b: str) -> float | None:
        if a not in measured or b not in measured:
            return None
        return round(measured[a]["step_ms"] / measured[b]["step_ms"], 3)

    overhead, vs_naive, multicam = {}, {}, {}
    for p in options.precisions:
        for suffix in ("", "_no_visual", "_native"):
            overhead[f"ours_{p}{suffix}"] = ratio(
                f"ours_{p}{suffix}", f"forward_{p}{'_native' if suffix == '_native' else ''}"
            )
            vs_naive[f"ours_{p}{suffix}"] = ratio("naive", f"ours_{p}{suffix}")
        multicam[f"ours_{p}"] = ratio(f"ours_{p}_separate", f"ours_{p}")
    primary = f"ours_{options.precisions[0]}"
    return {
        "workload": w.name,
        "task": w.task,
        "models": w.models,
        "weights": _weights(w, options),
        "width": spec.width,
        "height": spec.height,
        "batch": spec.batch,
        "instance_min_size": matched if has_instance else None,
        "network_input": shapes,
        "variants": measured,
        "overhead_ratio": overhead[primary],
        "overhead_ratio_no_visual": overhead[f"{primary}_no_visual"],
        "speedup_vs_naive": vs_naive[primary],
        "multicam_speedup": multicam[primary],
        "ratios": {
            "overhead": {k: v for k, v in overhead.items() if v is not None},
            "speedup_vs_naive": {k: v for k, v in vs_naive.items() if v is not None},
            "multicam_speedup": {k: v for k, v in multicam.items() if v is not None},
        },
    }


def _paste_case(width: int, height: int, options: BenchOptions, device: torch.device) -> dict[str, Any]:
    """Batched :func:`paste_masks` vs torchvision's ``paste_masks_in_image`` (then thresholded)."""
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    from segmentation_ros.engine.masks import paste_masks

    n = options.paste_detections
    g = torch.Generator().manual_seed(options.seed)
    masks = torch.rand(n, 1, 28, 28, generator=g)
    size = torch.tensor([width, height], dtype=torch.float32)
    wh = (torch.rand(n, 2, generator=g) * 0.35 + 0.05) * size  # 5 % to 40 % of the image side
    xy = torch.rand(n, 2, generator=g) * (size - wh)
    boxes = torch.cat([xy, xy + wh], 1)
    masks, boxes = masks.to(device), boxes.to(device)
    with torch.inference_mode():
        ours = paste_masks(masks, boxes, height, width, 0.5)
        theirs = paste_masks_in_image(masks, boxes, (height, width), padding=1)[:, 0] > 0.5
        agreement = float((ours == theirs).float().mean())

    @torch.inference_mode()
    def ours_step() -> None:
        paste_masks(masks, boxes, height, width, 0.5)

    @torch.inference_mode()
    def torchvision_step() -> None:
        paste_masks_in_image(masks, boxes, (height, width), padding=1)[:, 0].gt(0.5)

    paste_options = dataclasses.replace(
        options, warmup=max(options.warmup, 2), iters=options.iters and max(options.iters, 3)
    )
    measured = _measure(
        [_Variant("ours", ours_step, 1), _Variant("torchvision", torchvision_step, 1)], paste_options, device
    )
    return {
        "width": width,
        "height": height,
        "detections": n,
        "ours_ms": measured["ours"]["step_ms"],
        "torchvision_ms": measured["torchvision"]["step_ms"],
        "paste_speedup": round(measured["torchvision"]["step_ms"] / measured["ours"]["step_ms"], 2),
        "pixel_agreement": round(agreement, 5),
    }
