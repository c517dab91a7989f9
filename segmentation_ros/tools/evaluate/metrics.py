"""Metric accumulators: one per part of the results, each fed image by image, then computed.

The semantic and instance metrics come from maintained libraries; this module only feeds them and
collects the numbers:

- semantic: a torchmetrics ``MulticlassConfusionMatrix`` (pixels whose ground truth is the label
  set's void id are ignored), from which per-class IoU ``TP / (TP + FP + FN)``, per-class accuracy,
  mIoU (mean over the classes that occur in the ground truth or the prediction), mean class accuracy
  and pixel accuracy are read;
- instance: pycocotools ``COCOeval`` with ``iouType="segm"`` and ``"bbox"`` (the COCO definition:
  AP averaged over IoU 0.50:0.95 and 101 recall points, up to 100 detections per image), thing
  classes only, predictions as RLE (``pycocotools.mask.encode``);
- panoptic: COCO's ``pq_compute`` (panopticapi's algorithm, which is not on PyPI; torchmetrics'
  ``PanopticQuality`` knows no crowd regions and divides its pixel counts in float32, where a
  segment of 2**24 pixels can lose a match to rounding). Areas are exact integer pixel counts,
  "IoU > 0.5" and "more than half" are integer comparisons, IoU is a double.

Panoptic quality, as COCO's panopticapi defines it, per image:

- a ground-truth segment and a predicted segment of the same class match when their IoU is above
  0.5, where the union leaves out the predicted pixels on ground-truth void (pixels of no thing or
  stuff class); pixels the *prediction* leaves void count against the ground-truth segment they
  cover;
- an unmatched ground-truth segment is a false negative, unless it is a crowd region (COCO's
  ``iscrowd``: in the ground-truth map a thing class with instance 0), which never counts;
- an unmatched predicted segment is a false positive unless more than half of it lies on
  ground-truth void or on a crowd region of its own class (a crowd of another class excuses
  nothing, and crowd pixels stay in a segment's area when its IoU is computed);
- per class PQ = IoU sum / (TP + FP/2 + FN/2), SQ = IoU sum / TP, RQ = TP / (TP + FP/2 + FN/2),
  averaged over the classes that occur (TP + FP + FN > 0) for all, things and stuff.

One difference from panopticapi: it keeps only the last crowd segment of a class listed in an
image (a dict keyed by class); here all crowd pixels of a class are one region.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from segmentation_ros.engine.labels import LabelSet
from segmentation_ros.engine.results import InstanceResult, PanopticResult

MASK_SOURCES = ("masks", "instance_ids")
"""Which predicted pixels the mask AP scores: each detection's full mask (``InstanceResult.masks``,
overlaps allowed, as torchvision and detectron2 evaluate Mask R-CNN), or the detection's visible
pixels in the non-overlapping id map (``InstanceResult.instance_ids``)."""


def _nan_to_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _check_label_space(predicted: LabelSet, data: LabelSet, part: str) -> None:
    """Predicted class ids must mean the data's classes: same id, same name."""
    bad = [
        f"{c.id}:{c.name}"
        for c in predicted.classes
        if c.id != predicted.void_id and (c.id not in data or data[c.id].name != c.name)
    ]
    if bad:
        from segmentation_ros.engine.labels import builtin_label_sets

        hint = data.name if data.name in builtin_label_sets() else "SET (a label set YAML with these classes)"
        raise ValueError(
            f"the {part} model's label set {predicted.name!r} does not match the data's {data.name!r}: classes "
            f"{bad[:8]}{' ...' if len(bad) > 8 else ''} are not in it under the same id; expected ids and names "
            f"{[f'{c.id}:{c.name}' for c in data.classes]} (weights that carry no classes take them from "
            f"--labels {hint})"
        )


class _SemanticMetric:
    """Confusion matrix over the data's classes (torchmetrics), void ground truth ignored.

    The matrix is indexed by the classes, not by their ids: the data's classes are 0..n-1 in id
    order and n is "void or nothing the data knows", ignored as ground truth and a wrong answer as a
    prediction. So a label set of a few classes with large ids (up to 65535) costs an (n+1)^2 matrix,
    not 65536^2. Ids outside the label set count as void on both sides.
    """

    def __init__(self, label_set: LabelSet):
        from torchmetrics.classification import MulticlassConfusionMatrix

        self.label_set = label_set
        self.classes = [c for c in label_set.classes if c.id != label_set.void_id]
        n = len(self.classes)
        self.index = torch.full((label_set.num_classes,), n, dtype=torch.int64)  # id -> class index
        self.index[[c.id for c in self.classes]] = torch.arange(n)
        self.matrix = MulticlassConfusionMatrix(n + 1, ignore_index=n, validate_args=False)

    def _indices(self, ids: np.ndarray) -> torch.Tensor:
        ids = torch.from_numpy(ids.astype(np.int64, copy=False)).reshape(-1)
        known = (ids >= 0) & (ids < self.index.numel())
        return torch.where(known, self.index[ids.clamp(0, self.index.numel() - 1)], len(self.classes))

    def update(self, predicted: np.ndarray, target: np.ndarray) -> None:
        self.matrix.update(self._indices(predicted), self._indices(target))

    def compute(self) -> dict:
        cm = self.matrix.compute().to(torch.float64)  # rows: ground truth, columns: prediction
        true_positives = cm.diagonal()
        gt_pixels = cm.sum(1)
        pred_pixels = cm.sum(0)
        union = gt_pixels + pred_pixels - true_positives
        per_class = {}
        for k, c in enumerate(self.classes):
            per_class[c.name] = {
                "id": c.id,
                "isthing": c.isthing,
                "iou": _nan_to_none(float(true_positives[k] / union[k])) if union[k] > 0 else None,
                "accuracy": _nan_to_none(float(true_positives[k] / gt_pixels[k])) if gt_pixels[k] > 0 else None,
                "gt_pixels": int(gt_pixels[k]),
                "pred_pixels": int(pred_pixels[k]),
            }
        total = float(gt_pixels.sum())
        rows = per_class.values()
        return {
            "miou": _mean(r["iou"] for r in rows),
            "miou_things": _mean(r["iou"] for r in rows if r["isthing"]),
            "miou_stuff": _mean(r["iou"] for r in rows if not r["isthing"]),
            "mean_accuracy": _mean(r["accuracy"] for r in rows),
            "pixel_accuracy": float(true_positives.sum()) / total if total > 0 else None,
            "pixels": int(total),
            "void_id": self.label_set.void_id,
            "per_class": per_class,
        }


_COCO_STATS = (
    "ap",
    "ap50",
    "ap75",
    "ap_small",
    "ap_medium",
    "ap_large",
    "ar1",
    "ar10",
    "ar100",
    "ar_small",
    "ar_medium",
    "ar_large",
)


class _InstanceMetric:
    """Collects ground truth and detections as COCO dicts; runs ``COCOeval`` for segm and bbox."""

    def __init__(self, label_set: LabelSet, mask_source: str):
        if mask_source not in MASK_SOURCES:
            raise ValueError(f"mask_source must be one of {MASK_SOURCES}, got {mask_source!r}")
        self.label_set = label_set
        self.mask_source = mask_source
        self.images: list[dict] = []
        self.ground_truth: list[dict] = []
        self.detections: list[dict] = []

    def update(self, name: str, height: int, width: int, gt: list[dict], result: InstanceResult) -> None:
        """Add one image (``name`` for messages); its COCO id is its number, unique by construction."""
        from pycocotools import mask as mask_utils

        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "height": height, "width": width})
        for ann in gt:
            ann = dict(ann, image_id=image_id, id=len(self.ground_truth) + 1)
            ann.setdefault("iscrowd", 0)
            if "area" not in ann or "bbox" not in ann:
                rle = to_rle(ann["segmentation"], height, width)
                ann.setdefault("area", float(mask_utils.area(rle)))
                ann.setdefault("bbox", [float(v) for v in mask_utils.toBbox(rle)])
            self.ground_truth.append(ann)
        n = len(result)
        if n == 0:
            return
        if self.mask_source == "masks":
            masks = result.masks.detach().to("cpu", torch.uint8).permute(1, 2, 0).numpy()
        else:
            masks = (result.instance_ids[:, :, None] == result.ids[None, None, :]).astype(np.uint8)
        if masks.shape[:2] != (height, width):
            raise ValueError(
                f"image {name}: instance masks are {masks.shape[:2]}, the image is {(height, width)}"
            )
        rles = mask_utils.encode(np.asfortranarray(masks))
        for rle, class_id, score, (x1, y1, x2, y2) in zip(
            rles, result.class_ids.tolist(), result.scores.tolist(), result.boxes.tolist(), strict=True
        ):
            self.detections.append(
                {
                    "image_id": image_id,
                    "category_id": int(class_id),
                    "score": float(score),
                    "segmentation": rle,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                }
            )

    def compute(self) -> dict:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        categories = [
            {"id": c.id, "name": c.name} for c in self.label_set.classes if c.id in self.label_set.thing_ids
        ]
        out: dict[str, Any] = {
            "mask_source": self.mask_source,
            "gt_instances": sum(1 for a in self.ground_truth if not a["iscrowd"]),
            "predictions": len(self.detections),
        }
        quiet = io.StringIO()  # pycocotools prints its progress and summary
        with contextlib.redirect_stdout(quiet):
            gt = COCO()
            gt.dataset = {"images": self.images, "annotations": self.ground_truth, "categories": categories}
            gt.createIndex()
            for iou_type in ("segm", "bbox"):
                # One field per iouType, as detectron2 does: loadRes takes the area from a bbox if present.
                drop = "bbox" if iou_type == "segm" else "segmentation"
                results = [{k: v for k, v in d.items() if k != drop} for d in self.detections]
                if results:
                    dt = gt.loadRes(results)
                else:
                    dt = COCO()
                    dt.dataset = {"images": self.images, "annotations": [], "categories": categories}
                    dt.createIndex()
                coco_eval = COCOeval(gt, dt, iouType=iou_type)
                coco_eval.evaluate()
                coco_eval.accumulate()
                coco_eval.summarize()
                stats = {
                    k: _nan_to_none(v) if v >= 0 else None
                    for k, v in zip(_COCO_STATS, coco_eval.stats, strict=True)
                }
                # precision: [IoU threshold, recall, class, area range, max detections]; -1: no ground truth
                precision = coco_eval.eval["precision"]
                per_class = {}
                for k, cat_id in enumerate(coco_eval.params.catIds):
                    every = precision[:, :, k, 0, -1]
                    at50 = precision[0, :, k, 0, -1]
                    per_class[self.label_set.name_of(cat_id)] = {
                        "id": int(cat_id),
                        "ap": float(every[every > -1].mean()) if (every > -1).any() else None,
                        "ap50": float(at50[at50 > -1].mean()) if (at50 > -1).any() else None,
                    }
                out[iou_type] = {**stats, "per_class": per_class}
        return out


def to_rle(segmentation: Any, height: int, width: int) -> dict:
    """A COCO annotation's ``segmentation`` (polygons, uncompressed or compressed RLE) as
    compressed RLE (``pycocotools.mask.decode`` turns it into an (H, W) mask)."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):  # polygons
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation.get("counts"), list):  # uncompressed RLE
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


_Segment = tuple[int, int]
"""A panoptic segment of one image: ``(class id, instance id)``."""


@dataclass
class _PQCounts:
    """One class's panoptic counts: the IoU sum of its matches and its TP, FP and FN."""

    iou: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0


def _match_segments(
    overlaps: Mapping[tuple[_Segment | None, _Segment | None], int], things: Collection[int]
) -> dict[int, _PQCounts]:
    """COCO's panoptic matching of one image (panopticapi's ``pq_compute_single_core``), on pixel counts.

    Args:
        overlaps: the pixels each (ground-truth segment, predicted segment) pair shares; None on
            either side is void. A ground-truth segment of a thing class with instance 0 is a crowd
            region of that class.
        things: the thing class ids.

    Returns:
        the counts of this image per class id (classes absent from the image are left out).

    Areas are exact integers and the thresholds integer comparisons; IoU (a double) only adds up.
    """
    gt_area: Counter[_Segment | None] = Counter()
    pred_area: Counter[_Segment | None] = Counter()
    pred_on_void: Counter[_Segment | None] = Counter()
    for (gt, pred), pixels in overlaps.items():
        gt_area[gt] += pixels
        pred_area[pred] += pixels
        if gt is None:
            pred_on_void[pred] += pixels

    def is_crowd(gt: _Segment) -> bool:
        return gt[0] in things and gt[1] == 0

    counts: dict[int, _PQCounts] = defaultdict(_PQCounts)
    gt_matched: set[_Segment] = set()
    pred_matched: set[_Segment] = set()
    for (gt, pred), intersection in overlaps.items():
        if gt is None or pred is None or gt[0] != pred[0] or is_crowd(gt):
            continue
        # Ground-truth void is left out of the prediction's area; crowd pixels are not.
        union = pred_area[pred] + gt_area[gt] - intersection - pred_on_void[pred]
        if 2 * intersection > union:  # IoU > 0.5 (unique: two matches would need > the whole segment)
            counts[gt[0]].tp += 1
            counts[gt[0]].iou += intersection / union
            gt_matched.add(gt)
            pred_matched.add(pred)
    for gt in gt_area:
        if gt is not None and gt not in gt_matched and not is_crowd(gt):
            counts[gt[0]].fn += 1
    for pred, area in pred_area.items():
        if pred is None or pred in pred_matched:
            continue
        # No false positive when more than half of it lies on void or on a crowd of its own class.
        excused = pred_on_void[pred]
        if pred[0] in things:
            excused += overlaps.get(((pred[0], 0), pred), 0)
        if 2 * excused <= area:
            counts[pred[0]].fp += 1
    return dict(counts)


def _segment_overlaps(
    gt: np.ndarray, pred: np.ndarray, gt_divisor: int, pred_divisor: int
) -> dict[tuple[_Segment | None, _Segment | None], int]:
    """Pixels per (ground-truth segment, predicted segment) pair of two (H, W) int64 encoded
    panoptic maps whose void pixels are -1."""
    gt, pred = gt.ravel(), pred.ravel()
    offset = int(pred.max(initial=-1)) + 2
    if (int(gt.max(initial=-1)) + 2) * offset < 2**62:  # each pair as one int64: a single sort
        pairs, pixels = np.unique((gt + 1) * offset + (pred + 1), return_counts=True)
        gt_of, pred_of = pairs // offset - 1, pairs % offset - 1
    else:  # values too large to pair in int64 (a huge label divisor): number them first
        gt_values, gt_index = np.unique(gt, return_inverse=True)
        pred_values, pred_index = np.unique(pred, return_inverse=True)
        pairs, pixels = np.unique(gt_index.astype(np.int64) * pred_values.size + pred_index, return_counts=True)
        gt_of, pred_of = gt_values[pairs // pred_values.size], pred_values[pairs % pred_values.size]

    def segment(value: int, divisor: int) -> _Segment | None:
        return None if value < 0 else (value // divisor, value % divisor)

    return {
        (segment(g, gt_divisor), segment(p, pred_divisor)): count
        for g, p, count in zip(gt_of.tolist(), pred_of.tolist(), pixels.tolist(), strict=True)
    }


class _PanopticMetric:
    """Panoptic quality as COCO's ``pq_compute`` defines it (module docstring), image by image."""

    def __init__(self, label_set: LabelSet):
        self.label_set = label_set
        self.things = set(label_set.thing_ids)
        self.stuff = set(label_set.stuff_ids)
        self.counts: dict[int, _PQCounts] = defaultdict(_PQCounts)
        # is_scored[c]: class c is a thing or stuff; one more False entry for every other class
        self.is_scored = np.zeros(max(self.things | self.stuff, default=0) + 2, dtype=bool)
        self.is_scored[list(self.things | self.stuff)] = True

    def _segments(self, panoptic: np.ndarray, divisor: int) -> np.ndarray:
        """(H, W) int64 encoded panoptic values, -1 where the class is neither thing nor stuff (void)."""
        if int(divisor) < 1:
            raise ValueError(f"a panoptic label_divisor must be a positive integer, got {divisor!r}")
        values = np.asarray(panoptic, dtype=np.int64)
        classes = values // int(divisor)
        np.clip(classes, -1, self.is_scored.size - 1, out=classes)  # -1 indexes the last entry: False
        return np.where(self.is_scored[classes], values, -1)

    def update(self, predicted: PanopticResult, target: np.ndarray, target_divisor: int) -> None:
        """Add one image: ``target`` is (H, W) ``class_id * target_divisor + instance_id`` (see
        :class:`~segmentation_ros.tools.evaluate.data.EvalSample`, whose crowd regions are a thing
        class with instance 0)."""
        if np.shape(predicted.panoptic) != np.shape(target):
            raise ValueError(
                f"the panoptic ground truth is {np.shape(target)}, the prediction {np.shape(predicted.panoptic)}"
            )
        overlaps = _segment_overlaps(
            self._segments(target, target_divisor),
            self._segments(predicted.panoptic, predicted.label_divisor),
            target_divisor,
            predicted.label_divisor,
        )
        for class_id, counts in _match_segments(overlaps, self.things).items():
            total = self.counts[class_id]
            total.iou += counts.iou
            total.tp += counts.tp
            total.fp += counts.fp
            total.fn += counts.fn

    def compute(self) -> dict:
        per_class: dict[str, dict] = {}
        for c in self.label_set.classes:
            if c.id not in self.things and c.id not in self.stuff:
                continue
            counts = self.counts.get(c.id, _PQCounts())
            tp, fp, fn = counts.tp, counts.fp, counts.fn
            present = tp + fp + fn > 0  # COCO leaves classes that occur nowhere out of the averages
            sq = counts.iou / tp if tp else 0.0
            rq = tp / (tp + 0.5 * fp + 0.5 * fn) if present else 0.0
            per_class[c.name] = {
                "id": c.id,
                "isthing": c.id in self.things,
                "pq": sq * rq if present else None,
                "sq": sq if present else None,
                "rq": rq if present else None,
                "tp": tp,
                "fp": fp,
                "fn": fn,
            }

        def summary(rows: list[dict]) -> dict:
            rows = [r for r in rows if r["pq"] is not None]
            return {
                "pq": _mean(r["pq"] for r in rows),
                "sq": _mean(r["sq"] for r in rows),
                "rq": _mean(r["rq"] for r in rows),
                "n": len(rows),
            }

        rows = list(per_class.values())
        return {
            "all": summary(rows),
            "things": summary([r for r in rows if r["isthing"]]),
            "stuff": summary([r for r in rows if not r["isthing"]]),
            "per_class": per_class,
        }
