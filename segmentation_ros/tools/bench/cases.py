"""Cases: one case's variants (naive, ours and forward at each precision) measured together, with
their ratios; the mask-paste comparison; the tracking cost; the depth fusion cost."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
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
from segmentation_ros.tools.bench.workloads import BenchOptions, CaseSpec, runtime_tag


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
        for runtime in options.runtimes:
            p = f"{precision}{runtime_tag(runtime)}"  # fp32, fp32_ort
            core = _make_core(w, options, device, precision, matched, cameras, runtime)
            cores.append(core)
            messages = _image_frames(core, frames)
            ours = _ours(f"ours_{p}", core, messages)
            forward, shapes = _forward(f"forward_{p}", core, frames)
            if not variants:
                variants.append(_naive(core, frames, matched, shapes.get("semantic"), options))
            variants += [ours, _ours(f"ours_{p}_no_visual", core, messages, visual=False), forward]
            if spec.batch > 1:

                def separate(core: Any = core, messages: list[Any] = messages) -> int | None:
                    found = [core.process([m]) for m in messages]
                    return sum(_count_detections(o) for o in found) if has_instance else None

                variants.append(_Variant(f"ours_{p}_separate", separate, spec.batch, ours.models))
            if has_instance and matched and options.native:
                native = _make_core(w, options, device, precision, 0, cameras, runtime)
                cores.append(native)
                variants.append(_ours(f"ours_{p}_native", native, _image_frames(native, frames)))
                forward_native, native_shapes = _forward(f"forward_{p}_native", native, frames)
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

    overhead, vs_naive, multicam, vs_torch = {}, {}, {}, {}
    for precision in options.precisions:
        for runtime in options.runtimes:
            p = f"{precision}{runtime_tag(runtime)}"
            for suffix in ("", "_no_visual", "_native"):
                overhead[f"ours_{p}{suffix}"] = ratio(
                    f"ours_{p}{suffix}", f"forward_{p}{'_native' if suffix == '_native' else ''}"
                )
                vs_naive[f"ours_{p}{suffix}"] = ratio("naive", f"ours_{p}{suffix}")
            multicam[f"ours_{p}"] = ratio(f"ours_{p}_separate", f"ours_{p}")
            if runtime != "torch":  # the same variant under torch / under this runtime
                for path in ("ours", "forward"):
                    for suffix in ("", "_no_visual", "_native") if path == "ours" else ("", "_native"):
                        vs_torch[f"{path}_{p}{suffix}"] = ratio(
                            f"{path}_{precision}{suffix}", f"{path}_{p}{suffix}"
                        )
    primary = f"ours_{options.precisions[0]}{runtime_tag(options.runtimes[0])}"
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
            "runtime_speedup": {k: v for k, v in vs_torch.items() if v is not None},
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


#: The tracking case's camera size and frame rate (header time between frames).
TRACKING_SIZE = (640, 480)
TRACKING_RATE_HZ = 30.0
_TRACKING_CYCLE = 300  # frames; the motion repeats exactly after this many


def _tracking_scene(detections: int, seed: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, Any]:
    """A moving synthetic set of boxes and one frame's results to relabel.

    Each object circles its own centre (radius 10-60 px, one or two turns per cycle, so the motion
    is periodic and smooth across the cycle's end) with a pixel of box noise per frame; its score
    (0.3-1.0, noisy per frame) puts some detections in ByteTrack's second stage. The results: an
    instance id map painted from the first frame's boxes (higher scores on top) and the panoptic
    maps over it (the boxes as things, sky and ground as stuff), as the engine would return.

    Returns:
        (boxes per frame in the cycle, scores (cycle, N), class ids (N,), the Segmentation).
    """
    from segmentation_ros.engine.labels import get_label_set
    from segmentation_ros.engine.panoptic import Segment
    from segmentation_ros.engine.pipeline import panoptic_label_space
    from segmentation_ros.engine.results import InstanceResult, PanopticResult, Segmentation

    width, height = TRACKING_SIZE
    n, cycle = detections, _TRACKING_CYCLE
    rng = np.random.default_rng(seed)
    size = rng.uniform(0.04, 0.12, (n, 2)) * (width, height)
    centre = rng.uniform(size / 2 + 60, (width, height) - size / 2 - 60, (n, 2))
    radius = rng.uniform(10, 60, (n, 1))
    phase = rng.uniform(0, 2 * math.pi, (n, 1))
    turns = rng.choice([-2, -1, 1, 2], (n, 1))
    base_score = np.sort(rng.uniform(0.3, 1.0, n))[::-1]
    frames = []
    for k in range(cycle):
        angle = phase + 2 * math.pi * turns * k / cycle
        c = centre + radius * np.concatenate([np.cos(angle), np.sin(angle)], 1)
        frames.append(np.concatenate([c - size / 2, c + size / 2], 1) + rng.normal(0, 1.0, (n, 4)))
    scores = np.clip(base_score + rng.normal(0, 0.1, (cycle, n)), 0.05, 1.0).astype(np.float32)
    labels = get_label_set("shapes")
    classes = rng.choice(labels.thing_ids, n).astype(np.int64)

    id_map = np.zeros((height, width), dtype=np.uint16)
    for i, (x1, y1, x2, y2) in enumerate(np.clip(frames[0], 0, (width, height, width, height)).astype(int)):
        region = id_map[y1:y2, x1:x2]
        region[region == 0] = i + 1  # a higher score (a lower index) stays on top
    ground, sky = labels.by_name("ground"), labels.by_name("sky")
    segment_ids = id_map.astype(np.int32)
    segment_ids[(id_map == 0) & (np.arange(height)[:, None] < height // 2)] = n + 1
    segment_ids[(id_map == 0) & (np.arange(height)[:, None] >= height // 2)] = n + 2
    areas = np.bincount(segment_ids.ravel(), minlength=n + 3)
    segments = [
        Segment(i + 1, int(classes[i]), True, int(areas[i + 1]), (0, 0, 0, 0), float(scores[0, i]), i + 1)
        for i in range(n)
    ] + [
        Segment(n + 1, sky.id, False, int(areas[n + 1]), (0, 0, width, height // 2), 1.0, 0),
        Segment(n + 2, ground.id, False, int(areas[n + 2]), (0, height // 2, width, height // 2), 1.0, 0),
    ]
    divisor = 1000
    codes = np.array([0] + [s.class_id * divisor + s.instance_id for s in segments], dtype=np.int32)
    segmentation = Segmentation(
        height,
        width,
        instances=InstanceResult(
            ids=np.arange(1, n + 1, dtype=np.int32),
            class_ids=classes,
            scores=scores[0],
            boxes=frames[0].astype(np.float32),
            masks=torch.zeros((n, 0, 0), dtype=torch.bool),  # apply_track_ids does not read them
            instance_ids=id_map,
            label_set=labels,
        ),
        panoptic=PanopticResult(
            segment_ids=segment_ids,
            panoptic=codes[segment_ids],
            segments=segments,
            label_set=panoptic_label_space(labels, labels)[0],
            label_divisor=divisor,
        ),
    )
    return frames, scores, classes, segmentation


def _tracking_case(options: BenchOptions) -> dict[str, Any]:
    """One frame's tracking cost on the CPU: :meth:`Tracker.update` and :func:`apply_track_ids` at
    ``options.tracking_detections`` moving boxes on a 640x480 frame with panoptic results, frame
    after frame at 30 Hz of header time."""
    from segmentation_ros.engine.tracking import Tracker, TrackerConfig, apply_track_ids

    n = options.tracking_detections
    frames, scores, classes, segmentation = _tracking_scene(n, options.seed)
    divisor = segmentation.panoptic.label_divisor  # type: ignore[union-attr]
    tracker = Tracker(TrackerConfig(max_id=divisor - 1))  # ids fit the panoptic encoding
    period_ns = round(1e9 / TRACKING_RATE_HZ)
    state = {"frame": 0, "previous": None, "kept": 0, "compared": 0}

    def step() -> int:
        k = state["frame"]
        state["frame"] = k + 1
        ids = tracker.update(k * period_ns, frames[k % len(frames)], scores[k % len(frames)], classes)
        apply_track_ids(segmentation, ids)
        if state["previous"] is not None:
            state["kept"] += int(np.count_nonzero(ids == state["previous"]))
            state["compared"] += ids.size
        state["previous"] = ids
        return ids.size

    # many short steps: the percentiles need samples (at least 3 warm frames: tracks and velocities)
    tracking_options = dataclasses.replace(options, warmup=max(options.warmup, 3), iters=options.iters or 100)
    (measured,) = _measure([_Variant("tracking", step, 1)], tracking_options, torch.device("cpu")).values()
    width, height = TRACKING_SIZE
    return {
        "width": width,
        "height": height,
        "detections": n,
        "step_ms": measured["step_ms"],
        "latency_ms": measured["latency_ms"],
        "id_continuity": round(state["kept"] / state["compared"], 5) if state["compared"] else None,
    }


#: The depth case's camera size: an RGB-D camera's usual aligned stream.
DEPTH_SIZE = (640, 480)


def _depth_case(options: BenchOptions, device: torch.device) -> dict[str, Any]:
    """What depth fusion adds to a frame: the node core with the demo panoptic models on a rendered
    640x480 frame with its exact depth, without depth, with depth (3D detections only: the lazy
    ``points`` and ``markers`` unsubscribed), and with every 3D output subscribed; interleaved."""
    from segmentation_ros.ros.conversions import numpy_to_image
    from segmentation_ros.ros.messages import RosbagsFactory, make_header
    from segmentation_ros.ros.node_core import Frame, SegmentationCore
    from segmentation_ros.tools.demo import DEMO_PARAMETERS
    from segmentation_ros.tools.synthetic import generate_scene

    width, height = DEPTH_SIZE
    # a busy frame: the demo detector finds about a dozen objects covering a quarter of it
    scene = generate_scene(options.seed, width, height, split="test", index=3, num_objects=(10, 14))
    factory = RosbagsFactory("jazzy")
    params = {**DEMO_PARAMETERS, "device": str(device), "stuff_area_threshold": 512}  # ~0.2 % of the frame
    plain = SegmentationCore(params, factory)
    fused = SegmentationCore({**params, "depth": True}, factory)
    cores = [plain, fused]
    for core in cores:
        core.configure()
    header = make_header(factory, 1_700_000_000_000_000_000, "camera_optical_frame")
    image = numpy_to_image(scene.image, "rgb8", header, factory)
    depth = numpy_to_image(
        np.where(np.isfinite(scene.depth), scene.depth, np.nan).astype(np.float32), "32FC1", header, factory
    )
    k = scene.intrinsics
    info = factory.new(
        "sensor_msgs/msg/CameraInfo", header=header, height=height, width=width, k=list(k.k), p=list(k.p)
    )
    models = [m.module for m in (fused.engine.semantic_model, fused.engine.instance_model) if m is not None]  # type: ignore[union-attr]
    found = {"objects": 0, "points": 0}

    def variant(name: str, core: Any, with_depth: bool, subscribed: Any) -> _Variant:
        def step() -> int:
            if with_depth:
                core.receive_depth("", depth)
            outputs = core.process([Frame("", image, info)], subscribed)
            for o in outputs:
                if o.topic == "detections_3d":
                    found["objects"] = len(o.msg.detections)
                elif o.topic == "points":
                    found["points"] = int(o.msg.width)
            return _count_detections(outputs)

        return _Variant(name, step, 1, models)

    variants = [
        variant("panoptic", plain, False, lambda topic: False),
        variant("panoptic_depth", fused, True, lambda topic: False),
        variant("panoptic_depth_all_3d", fused, True, lambda topic: topic in ("points", "markers")),
    ]
    measured = _measure(variants, dataclasses.replace(options, iters=options.iters or 10), device)
    for core in cores:
        core.cleanup()
    base = measured["panoptic"]["latency_ms"]["p50"]

    def added(name: str) -> float | None:
        return round(measured[name]["latency_ms"]["p50"] / base - 1.0, 4) if base else None

    return {
        "width": width,
        "height": height,
        "variants": {name: {"latency_ms": v["latency_ms"]} for name, v in measured.items()},
        "objects_3d": found["objects"],
        "points": found["points"],
        "added_fraction": added("panoptic_depth"),
        "added_fraction_all_3d": added("panoptic_depth_all_3d"),
    }
