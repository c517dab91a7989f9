"""``segmentation-ros bench``: this package's pipeline against a naive node and the bare network.

For each case (a workload, a camera size and a number of cameras) it measures, interleaved on the
same device:

- ``naive``: what a typical Python node does. Eager FP32 torchvision; per frame, numpy -> float
  tensor and (semantic) normalisation on the host, then to the device; torchvision's own pre- and
  postprocessing (``model(images)`` with ``GeneralizedRCNNTransform`` and ``paste_masks_in_image``);
  label maps / binary masks, boxes and scores to the host; panoptic fusion in numpy. The cameras
  of a case go through as one batch, as ours do.
- ``ours_<precision>``: :meth:`SegmentationCore.process` with a :class:`RosbagsFactory`, from Image
  messages to every output message (``subscribed=None``); ``..._no_visual`` leaves out the lazy
  colour and overlay images, as a node without an rviz subscriber does; ``..._native`` runs Mask
  R-CNN at the camera's resolution (``instance_min_size=0``); ``..._separate`` (several cameras)
  processes the cameras one at a time, as separate single-camera pipelines would.
- ``forward_<precision>``: the networks alone, exactly as the engine runs them (precision, memory
  format, CUDA graphs) on an input already normalised, resized and on the device. For Mask R-CNN:
  backbone, FPN, RPN (with its proposal filtering) and the ROI box and mask heads, giving 28x28
  mask probabilities, without mask pasting, id painting or copies to the host.

Runtime (``--runtime torch --runtime onnxruntime``): each of ours and forward is measured once per
runtime of the fixed-shape networks (``EngineConfig.runtime``), the ONNX Runtime variants named
``..._ort`` (``ours_fp32_ort``, ``forward_fp32_ort``); ONNX Runtime's CPU sessions take torch's thread
count (``--threads``), and its one export per shape happens in the untimed warm-up. ``runtime_speedup``
= the torch variant / its ``_ort`` twin. On the CPU, LR-ASPP and DeepLabV3-MobileNetV3 (one camera,
``--semantic-input-size 0``: the network at camera resolution) are judged against ONNX Runtime >=
1.5x torch eager end to end.

Frames are rendered synthetic scenes. Figures are medians over warm, repeated runs; ``--quick``
(the CPU default: LR-ASPP and Mask R-CNN at 320x240 and 640x480, Mask R-CNN at camera resolution,
and the ``demo`` preset at 640x480) finishes in about two minutes on two cores, ``--full`` (the
CUDA default) is every preset at 640x480 and 1280x720 with one and four cameras, FP32 and BF16,
Mask R-CNN at torchvision's 800-pixel input plus at camera resolution.

Tracking (``tracking``, always on the CPU): one frame's :meth:`Tracker.update` and
:func:`apply_track_ids` (instance id map, ids and panoptic relabelled) at 100 moving synthetic
boxes on a 640x480 frame, 30 Hz of header time, with its latency percentiles and the share of
detections that keep their id from one frame to the next.

Depth (``depth``; ``--no-depth`` skips it): the node core with the demo panoptic models on a rendered
640x480 frame and its exact depth, without depth, with depth and only ``detections_3d`` (the lazy
``points`` and ``markers`` unsubscribed) and with every 3D output, interleaved; ``added_fraction``
is what depth adds to the frame's median latency (target: at most 10 %).

Ratios: ``overhead_ratio`` = ours / forward (median step time), ``speedup_vs_naive`` = naive / ours,
``multicam_speedup`` = separate / batched, ``paste_speedup`` = torchvision's
``paste_masks_in_image`` / :func:`paste_masks` at the same boxes.

With random weights (``--weights none``, the default) Mask R-CNN's boxes are degenerate and its
scores meaningless, so the instance workload is shaped identically for every path: the box
regression layers (RPN and ROI) are zeroed, which makes detections anchor-sized boxes, and
``score_threshold=0`` with ``max_detections`` fixes the number of detections per frame. Naive and
ours share the same weights. Random weights also make a semantic network predict one class
everywhere, which leaves no class borders to interpolate; the ``demo`` preset (the trained demo
models with their shipped weights, always) measures those costs on real borders and objects.

Modules:

- :mod:`.workloads`: what is measured: workloads, cases, options and the quick and full presets.
- :mod:`.measure`: warming up, interleaved timing, latency percentiles and peak memory of variants.
- :mod:`.paths`: the three paths as variants: ours, forward and the naive node.
- :mod:`.cases`: one case's variants measured together with their ratios; the mask-paste comparison;
  the tracking cost; the depth fusion cost.
- :mod:`.report`: :func:`run_benchmark`: the machine, the definitions, every case, the targets.
- :mod:`.targets`: the targets judged for the device measured.
- :mod:`.output`: the report as plain-text and Markdown tables.
- :mod:`.command`: ``segmentation-ros bench`` (:func:`add_subcommand`).
"""

from segmentation_ros.tools.bench.command import add_subcommand, options_from_args
from segmentation_ros.tools.bench.measure import AUTO_MAX_ITERS, AUTO_RUN_S
from segmentation_ros.tools.bench.output import format_markdown, format_table
from segmentation_ros.tools.bench.report import DEFINITIONS, machine_info, run_benchmark
from segmentation_ros.tools.bench.targets import (
    DEPTH_TARGET_FRACTION,
    FPS_TARGETS,
    RUNTIME_SPEEDUP_TARGET,
    TRACKING_TARGET_MS,
    judge_targets,
)
from segmentation_ros.tools.bench.workloads import (
    WORKLOADS,
    BenchOptions,
    CaseSpec,
    Workload,
    full_options,
    parse_workload,
    quick_options,
)

__all__ = [
    "BenchOptions",
    "CaseSpec",
    "Workload",
    "WORKLOADS",
    "parse_workload",
    "quick_options",
    "full_options",
    "run_benchmark",
    "judge_targets",
    "format_table",
    "format_markdown",
    "add_subcommand",
    # public names of the single module this package was, kept importable from here
    "AUTO_MAX_ITERS",
    "AUTO_RUN_S",
    "DEFINITIONS",
    "FPS_TARGETS",
    "TRACKING_TARGET_MS",
    "DEPTH_TARGET_FRACTION",
    "RUNTIME_SPEEDUP_TARGET",
    "machine_info",
    "options_from_args",
]
