"""The segmentation engine: models, weights, labels, inference and results. No ROS here.

Frames (numpy images) in, results at camera resolution out (:mod:`.results`), on any torch device.

* :mod:`.pipeline`: :class:`EngineConfig` and :class:`SegmentationEngine`, the per-frame pipeline
  (upload, normalise, forward, labels, thresholds, mask paste, fusion, id maps).
* :mod:`.registry` (``register_model`` / ``build_model`` / ``list_models``), :mod:`.weights`,
  :mod:`.labels`: what a model is, the weights it loads and the classes it names.
* :mod:`.models`: model families registered as plugins (the demo ``shapes_*`` models).
* :mod:`.panoptic` (fusion, a pure function), :mod:`.masks` (mask paste), :mod:`.upsample`
  (semantic labels at camera size), :mod:`.cuda_graphs`; :mod:`.runtimes` (ONNX Runtime for the
  fixed-shape network parts, ``runtime: onnxruntime``).
* :mod:`.tracking`: instance ids that persist across frames (ByteTrack-style).
* :mod:`.depth`: segmented 3D from an aligned depth image (back-projection, robust 3D boxes, points).
* Shared helpers every layer uses: :mod:`.imageio` (image files, atomic writes), :mod:`.paths`
  (installed data), :mod:`.visualize` (colour maps and overlays).

May import: torch, torchvision, numpy, OpenCV and the rest of this package's engine. Never
:mod:`segmentation_ros.ros`, :mod:`segmentation_ros.tools` or rclpy (checked by import-linter,
``setup.cfg``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["EngineConfig", "SegmentationEngine"]


def __getattr__(name: str) -> Any:
    # Lazy, so that light users of the engine's helpers (launch files reading paths) do not import torch.
    if name in __all__:
        from segmentation_ros.engine import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
