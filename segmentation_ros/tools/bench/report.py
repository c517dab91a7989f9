"""The report: the machine, the definitions of what is reported, every case, the mask paste, the
tracking cost and the targets (:func:`run_benchmark`)."""

from __future__ import annotations

import datetime
import os
import platform
import resource
import sys
from collections.abc import Callable
from typing import Any

import torch

from segmentation_ros.tools.bench.cases import _depth_case, _paste_case, _run_case, _tracking_case
from segmentation_ros.tools.bench.targets import judge_targets
from segmentation_ros.tools.bench.workloads import BenchOptions, runtime_tag


def machine_info(device: torch.device) -> dict[str, Any]:
    """Where the figures come from: CPU, cores, GPU, library versions, date and load."""
    import torchvision

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info: dict[str, Any] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": str(device),
        "device_type": device.type,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "cuda_available": torch.cuda.is_available(),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


DEFINITIONS = {
    "naive": "eager FP32 torchvision; host to_tensor (+ normalise for semantic) per frame, then to the device; "
    "torchvision's GeneralizedRCNNTransform and paste_masks_in_image; maps, masks, boxes, scores to the host; "
    "panoptic fused in numpy; the case's frames as one batch",
    "ours_<p>": "SegmentationCore.process with a RosbagsFactory, Image messages in, every output message built "
    "(subscribed=None), precision <p>",
    "ours_<p>_no_visual": "as ours_<p> without the lazy colour and overlay images (no rviz subscriber)",
    "ours_<p>_native": "as ours_<p> with Mask R-CNN at camera resolution (instance_min_size=0)",
    "ours_<p>_separate": "the case's cameras one after another through single-frame process() calls",
    "<variant>_ort": "the variant with runtime onnxruntime (the fixed-shape networks exported to ONNX and run by "
    "ONNX Runtime, its provider chosen as the engine does, the CPU provider on the CPU at torch's thread count; "
    "the export happens in the untimed warm-up); without the suffix: runtime torch",
    "runtime_speedup": "the torch variant / the same variant with onnxruntime (<variant>_ort), median step time",
    "forward_<p>": "the engine's networks alone (same precision, memory format, CUDA graphs) on an input already "
    "normalised, resized and on the device; Mask R-CNN: backbone + FPN + RPN (proposal filtering included) + ROI box "
    "and mask heads (28x28 mask probabilities), no mask pasting, id painting or host copies",
    "overhead_ratio": "ours_<p> / forward_<p>, median step time (first precision; all in ratios.overhead)",
    "speedup_vs_naive": "naive / ours_<p>, median step time",
    "multicam_speedup": "ours_<p>_separate / ours_<p> (batched), median step time",
    "paste_speedup": "torchvision paste_masks_in_image (+ threshold) / batched paste_masks, median",
    "tracking": "one frame's Tracker.update + apply_track_ids (instance id map, ids, panoptic) on the CPU, "
    "tracking_detections moving boxes at 640x480 and 30 Hz of header time; latency_ms per frame, id_continuity "
    "the share of detections keeping the previous frame's id",
    "depth": "the node core (demo panoptic models, 640x480 rendered frame with its exact depth) without depth, "
    "with depth and only detections_3d (points and markers unsubscribed, as lazy outputs are), and with every 3D "
    "output; added_fraction = panoptic_depth / panoptic - 1, median latency",
    "step_ms": "median over timed runs of the mean step time (one step = every camera of the case)",
    "latency_ms": "percentiles of single steps over all timed runs",
    "peak_gpu_mb": "the variant's model weights + most allocated on top of what was allocated before it ran "
    "(torch.cuda.max_memory_allocated, reset per run)",
    "peak_host_mb": "peak resident set of the whole process during the variant's runs (VmHWM reset per run on "
    "Linux; otherwise ru_maxrss since start)",
    "detections_per_frame": "naive and ours: detections in the output (panoptic: instances kept by fusion); "
    "forward: ROI head detections",
}


def run_benchmark(options: BenchOptions, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every case and the mask-paste comparison; return the report (JSON-serialisable)."""
    from segmentation_ros.engine.config import PRECISIONS, resolve_device
    from segmentation_ros.engine.runtimes import RUNTIMES

    device = resolve_device(options.device)
    for p in options.precisions:
        if p not in PRECISIONS:
            raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {p!r}")
        if p != "fp32" and device.type != "cuda":
            raise ValueError(f"precision {p} needs CUDA; on {device} measure fp32 only")
    if not options.runtimes or any(r not in RUNTIMES for r in options.runtimes):
        raise ValueError(f"runtimes must be one or more of {RUNTIMES}, got {list(options.runtimes)}")
    if not options.cases:
        raise ValueError("no cases to run")
    for spec in options.cases:
        if spec.width < 1 or spec.height < 1 or spec.batch < 1:
            raise ValueError(
                f"sizes and batches must be positive, got {spec.width}x{spec.height} batch {spec.batch}"
            )
    if not 1 <= options.tracking_detections <= 999:
        raise ValueError(f"tracking_detections must be in 1..999, got {options.tracking_detections}")
    if min(options.warmup, options.repeats - 1, options.iters) < 0:
        raise ValueError(
            f"need warmup >= 0, repeats >= 1, iters >= 0 (0 = auto); got {options.warmup}, {options.repeats}, {options.iters}"
        )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    say = progress or (lambda message: None)
    report: dict[str, Any] = {
        "machine": machine_info(device),
        "options": {
            "set": options.label or "custom",
            "precisions": list(options.precisions),
            "runtimes": list(options.runtimes),
            "warmup": options.warmup,
            "repeats": options.repeats,
            "iters": options.iters,
            "instance_min_size": options.instance_min_size,
            "semantic_input_size": options.semantic_input_size,
            "score_threshold": options.score_threshold,
            "max_detections": options.max_detections,
            "weights": options.weights,
            "seed": options.seed,
            "tracking_detections": options.tracking_detections,
        },
        "definitions": DEFINITIONS,
        "cases": [],
        "paste": [],
    }
    for k, spec in enumerate(options.cases, 1):
        say(f"[{k}/{len(options.cases)}] {spec.workload.name} {spec.width}x{spec.height} batch {spec.batch}")
        case = _run_case(spec, options, device)
        report["cases"].append(case)
        primary = case["variants"][f"ours_{options.precisions[0]}{runtime_tag(options.runtimes[0])}"]
        say(
            f"    ours {primary['throughput_fps']} fps, "
            f"naive {case['variants']['naive']['throughput_fps']} fps, overhead {case['overhead_ratio']}"
        )
    sizes = options.paste_sizes or tuple(dict.fromkeys((c.width, c.height) for c in options.cases))
    for width, height in sizes:
        say(f"mask paste {width}x{height}, {options.paste_detections} detections")
        report["paste"].append(_paste_case(width, height, options, device))
    say(f"tracking, {options.tracking_detections} detections")
    report["tracking"] = _tracking_case(options)
    if options.depth:
        say("depth fusion, 640x480, demo panoptic models")
        report["depth"] = _depth_case(options, device)
    if hasattr(os, "getloadavg"):
        report["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report["machine"]["process_max_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10), 1
    )
    report["targets"] = judge_targets(report)
    return report
