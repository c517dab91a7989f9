"""Targets: the issue's targets judged against a report, for the device it was measured on."""

from __future__ import annotations

from typing import Any

#: GPU frame-rate targets (640x480, one camera, end to end): workload -> (fps, p99 ms or None).
FPS_TARGETS = {"deeplabv3": (400.0, None), "maskrcnn": (150.0, None), "panoptic": (100.0, 10.0)}
#: CPU target: one frame's Tracker.update + apply_track_ids, median latency (100 detections, 640x480).
TRACKING_TARGET_MS = 2.0
#: Depth fusion may add at most this fraction to the panoptic frame time (lazy 3D outputs unsubscribed).
DEPTH_TARGET_FRACTION = 0.10
#: CPU: ONNX Runtime end to end at least this many times faster than torch eager (same threads) for
#: these network-bound semantic models with the network at camera resolution, one camera.
RUNTIME_SPEEDUP_TARGET = 1.5
RUNTIME_TARGET_MODELS = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large")


def judge_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, judged for the device measured; ``passed`` is None where not judged.

    GPU targets (640x480, end to end, all outputs) are only judged on CUDA: ours >= 5x naive,
    overhead ratio <= 1.10, the frame rates of :data:`FPS_TARGETS`, four cameras batched >= 2x four
    separate pipelines. The speedup target takes our fastest precision at the naive loop's
    network resolution, the frame-rate targets our fastest variant, native resolution included
    (named in ``variant``). CPU targets are judged on the CPU: every case's overhead ratio <= 1.10, the
    batched mask paste >= 10x torchvision's at 100 detections, and tracking (update + apply_track_ids)
    at 100 detections on 640x480 within :data:`TRACKING_TARGET_MS` (median), and depth fusion adding at
    most :data:`DEPTH_TARGET_FRACTION` to the panoptic frame time (judged on the device measured). With
    ONNX Runtime variants measured: for the models of :data:`RUNTIME_TARGET_MODELS` (semantic, one
    camera, the network at camera resolution) ONNX Runtime end to end >= :data:`RUNTIME_SPEEDUP_TARGET`
    times torch eager, on the CPU.
    """
    on = report["machine"]["device_type"]
    targets: list[dict[str, Any]] = []

    def add(
        scope: str, target: str, case: str, value: float | None, ok: bool | None, variant: str = ""
    ) -> None:
        if scope == on:
            note = "" if value is not None else "not measured"
        elif scope == "cuda":  # CPU figures say nothing about a GPU target: leave them out
            note, value, variant = "needs CUDA", None, ""
        else:
            note = "judged on the CPU only"
        judged = scope == on and value is not None
        targets.append(
            {
                "device": scope,
                "target": target,
                "case": case,
                "variant": variant,
                "value": value,
                "passed": bool(ok) if judged else None,
                "note": note,
            }
        )

    def fastest(case: dict[str, Any], native: bool) -> str:
        """Our fastest variant with every output; ``native``: Mask R-CNN at camera resolution allowed."""
        skip = ("_no_visual", "_separate") if native else ("_no_visual", "_separate", "_native")
        names = [n for n in case["variants"] if n.startswith("ours_") and not n.endswith(skip)]
        return min(names, key=lambda n: case["variants"][n]["step_ms"])

    cases = report["cases"]
    vga = {c["workload"]: c for c in cases if (c["width"], c["height"]) == (640, 480) and c["batch"] == 1}
    for name in sorted(set(vga) | set(FPS_TARGETS)):
        case = vga.get(name)
        label = f"{name} 640x480 b1"
        if case is None:
            if name in FPS_TARGETS:
                add("cuda", f"{name} end to end >= {FPS_TARGETS[name][0]:g} fps", label, None, None)
            continue
        matched = fastest(case, native=False)  # the naive loop's network input resolution
        speed = case["ratios"]["speedup_vs_naive"].get(matched)
        add(
            "cuda",
            "end to end >= 5x the naive loop",
            label,
            speed,
            speed is not None and speed >= 5.0,
            matched,
        )
        best = fastest(case, native=True)
        for variant, value in case["ratios"]["overhead"].items():
            if not variant.endswith("_no_visual"):
                add("cuda", "overhead ratio <= 1.10", label, value, value <= 1.10, variant)
        if name in FPS_TARGETS:
            fps, p99 = FPS_TARGETS[name]
            got = case["variants"][best]
            add(
                "cuda",
                f"{name} end to end >= {fps:g} fps",
                label,
                got["throughput_fps"],
                got["throughput_fps"] >= fps,
                best,
            )
            if p99 is not None:
                lat = got["latency_ms"]["p99"]
                add("cuda", f"{name} p99 latency <= {p99:g} ms", label, lat, lat <= p99, best)
    multi = [c for c in cases if (c["width"], c["height"]) == (640, 480) and c["batch"] == 4]
    for case in multi:
        best = max(case["ratios"]["multicam_speedup"].items(), key=lambda kv: kv[1], default=(None, None))
        add(
            "cuda",
            "4 cameras batched >= 2x four separate pipelines",
            f"{case['workload']} 640x480 b4",
            best[1],
            best[1] is not None and best[1] >= 2.0,
            best[0] or "",
        )
    if not multi:
        add("cuda", "4 cameras batched >= 2x four separate pipelines", "640x480 b4", None, None)
    for case in cases:
        value = case["overhead_ratio"]
        label = f"{case['workload']} {case['width']}x{case['height']} b{case['batch']}"
        add(
            "cpu",
            "overhead ratio <= 1.10",
            label,
            value,
            value is not None and value <= 1.10,
            next(iter(case["ratios"]["overhead"])),
        )
    for paste in report["paste"]:
        value = paste["paste_speedup"] if paste["detections"] == 100 else None
        add(
            "cpu",
            "batched mask paste >= 10x torchvision (100 detections)",
            f"{paste['width']}x{paste['height']}",
            value,
            value is not None and value >= 10.0,
        )
    tracking = report.get("tracking")
    if tracking is not None:
        value = tracking["latency_ms"]["p50"] if tracking["detections"] == 100 else None
        add(
            "cpu",
            f"tracking update + apply_track_ids <= {TRACKING_TARGET_MS:g} ms (100 detections, median)",
            f"{tracking['width']}x{tracking['height']}",
            value,
            value is not None and value <= TRACKING_TARGET_MS,
        )
    for case in cases:
        network = case.get("network_input", {}).get("semantic")
        at_camera = network == [case["height"], case["width"]]
        models = case.get("models", [])
        named = set(models) & set(RUNTIME_TARGET_MODELS)
        if case["batch"] != 1 or case.get("task") != "semantic" or not named:
            continue
        speedups = case["ratios"].get("runtime_speedup", {})
        judged = [name for name in speedups if name.startswith("ours_") and name.endswith("_ort")]
        for name in judged if at_camera else []:
            value = speedups[name]
            add(
                "cpu",
                f"onnxruntime end to end >= {RUNTIME_SPEEDUP_TARGET:g}x torch eager (network at camera resolution)",
                f"{models[0]} {case['width']}x{case['height']} b1",
                value,
                value >= RUNTIME_SPEEDUP_TARGET,
                name,
            )
    depth = report.get("depth")
    if depth is not None:
        value = depth["added_fraction"]
        add(
            on,
            f"depth fusion adds <= {DEPTH_TARGET_FRACTION:.0%} to the panoptic frame (lazy 3D outputs off)",
            f"{depth['width']}x{depth['height']}",
            value,
            value is not None and value <= DEPTH_TARGET_FRACTION,
        )
    return targets
