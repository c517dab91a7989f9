"""Accuracy of the engine on labelled data: mIoU, COCO mask/box AP and panoptic quality.

Data: :class:`~segmentation_ros.tools.synthetic.Scene` objects (the synthetic generator), a dataset
directory in the layout :func:`~segmentation_ros.tools.synthetic.write_dataset` writes, or
:class:`EvalSample` objects. All numbers are fractions in [0, 1]; ``None`` where a metric is
undefined (a class that occurs nowhere, AP without ground truth).

Example::

    engine = SegmentationEngine(EngineConfig(task="panoptic", ...))
    report = evaluate(engine, generate_scenes(100, seed=0, split="test"))
    report["semantic"]["miou"], report["instance"]["segm"]["ap"], report["panoptic"]["all"]["pq"]

Submodules:

- ``data``: :class:`EvalSample`, :class:`CocoReader` and :func:`coco_samples` (COCO / COCO-panoptic
  datasets on disk, the label set of their categories; training reads COCO data through the reader).
- ``metrics``: the metric accumulators (semantic mIoU via torchmetrics, instance mask/box AP via
  pycocotools, panoptic quality as COCO's pq_compute computes it, void and crowd regions included),
  :data:`MASK_SOURCES` and :func:`to_rle`.
- ``evaluation``: :func:`evaluate` and the plumbing from data forms to samples and label set.
- ``report``: :func:`format_report`.
- ``tracking``: identity consistency over time (``eval --task tracking``): :func:`evaluate_tracking`
  scores a tracker's ids and the per-frame ids on synthetic drives with the MOT metrics
  (motmetrics: IDF1, MOTA, ID switches), :class:`TrackingMetric`, :func:`format_tracking_report`.
- ``command``: ``segmentation-ros eval`` (:func:`add_subcommand`).
"""

from __future__ import annotations

from segmentation_ros.tools.evaluate.command import add_subcommand
from segmentation_ros.tools.evaluate.data import CocoReader, EvalSample, coco_samples
from segmentation_ros.tools.evaluate.evaluation import evaluate
from segmentation_ros.tools.evaluate.metrics import MASK_SOURCES, to_rle
from segmentation_ros.tools.evaluate.report import format_report
from segmentation_ros.tools.evaluate.tracking import TrackingMetric, evaluate_tracking, format_tracking_report

__all__ = [
    "CocoReader",
    "EvalSample",
    "MASK_SOURCES",
    "evaluate",
    "coco_samples",
    "to_rle",
    "format_report",
    "TrackingMetric",
    "evaluate_tracking",
    "format_tracking_report",
    "add_subcommand",
]
