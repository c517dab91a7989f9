"""Metric accumulators: one per part of the results, each fed image by image, then computed.

Every metric comes from a maintained library; this module only feeds it and collects the numbers:

- semantic: a torchmetrics ``MulticlassConfusionMatrix`` (pixels whose ground truth is the label
  set's void id are ignored), from which per-class IoU ``TP / (TP + FP + FN)``, per-class accuracy,
  mIoU (mean over the classes that occur in the ground truth or the prediction), mean class accuracy
  and pixel accuracy are read;
- instance: pycocotools ``COCOeval`` with ``iouType="segm"`` and ``"bbox"`` (the COCO definition:
  AP averaged over IoU 0.50:0.95 and 101 recall points, up to 100 detections per image), thing
  classes only, predictions as RLE (``pycocotools.mask.encode``);
- panoptic: torchmetrics ``PanopticQuality`` (things and stuff from the label set).

Void, as COCO's panopticapi treats it: ground-truth void pixels are left out of a predicted segment's
area when its IoU is computed, and a predicted segment lying more than half on ground-truth void is
no false positive. Pixels the *prediction* leaves void count against the ground-truth segment they
cover, and an unmatched ground-truth segment is always a false negative. (torchmetrics on its own
also excuses predicted-void pixels; here they are given a placeholder stuff class that no ground truth
has, which gives COCO's numbers, and that class is left out of every average.)
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from segmentation_ros.engine.labels import LabelSet
from segmentation_ros.engine.panoptic import decode_panoptic
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
    """Confusion matrix over the data's class ids (torchmetrics), void ground truth ignored."""

    def __init__(self, label_set: LabelSet):
        from torchmetrics.classification import MulticlassConfusionMatrix

        self.label_set = label_set
        self.num_classes = max(label_set.num_classes, (label_set.void_id or 0) + 1)
        self.matrix = MulticlassConfusionMatrix(
            self.num_classes, ignore_index=label_set.void_id, validate_args=False
        )

    def update(self, predicted: np.ndarray, target: np.ndarray) -> None:
        predicted = predicted.astype(np.int64)
        # An id beyond the data's classes (a model's own void id) is a wrong answer: count it as void.
        predicted[(predicted < 0) | (predicted >= self.num_classes)] = self.label_set.void_id or 0
        self.matrix.update(
            torch.from_numpy(predicted).reshape(-1),
            torch.from_numpy(target.astype(np.int64, copy=False)).reshape(-1),
        )

    def compute(self) -> dict:
        cm = self.matrix.compute().to(torch.float64)  # rows: ground truth, columns: prediction
        true_positives = cm.diagonal()
        gt_pixels = cm.sum(1)
        pred_pixels = cm.sum(0)
        union = gt_pixels + pred_pixels - true_positives
        per_class = {}
        for c in self.label_set.classes:
            if c.id == self.label_set.void_id:
                continue
            per_class[c.name] = {
                "id": c.id,
                "isthing": c.isthing,
                "iou": _nan_to_none(float(true_positives[c.id] / union[c.id])) if union[c.id] > 0 else None,
                "accuracy": _nan_to_none(float(true_positives[c.id] / gt_pixels[c.id]))
                if gt_pixels[c.id] > 0
                else None,
                "gt_pixels": int(gt_pixels[c.id]),
                "pred_pixels": int(pred_pixels[c.id]),
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


class _PanopticMetric:
    """torchmetrics ``PanopticQuality`` with COCO's handling of predicted void (module docstring)."""

    def __init__(self, label_set: LabelSet):
        from torchmetrics.detection import PanopticQuality

        self.label_set = label_set
        self.things = set(label_set.thing_ids)
        self.stuff = set(label_set.stuff_ids)
        # Placeholder stuff class for pixels the prediction leaves void: never in the ground truth.
        self.unpredicted = max(label_set.ids + [label_set.void_id or 0]) + 1
        self.metric = PanopticQuality(things=self.things, stuffs=self.stuff | {self.unpredicted})

    def update(self, predicted: PanopticResult, target: np.ndarray, target_divisor: int) -> None:
        pred_class, pred_instance = decode_panoptic(predicted.panoptic, predicted.label_divisor)
        unpredicted = ~np.isin(pred_class, list(self.things | self.stuff))  # void, or the void class
        pred_class[unpredicted] = self.unpredicted
        pred_instance[unpredicted] = 0
        # Target classes outside things and stuff (void) are torchmetrics' void.
        preds = torch.from_numpy(np.stack([pred_class, pred_instance], axis=-1))[None]
        gt = torch.from_numpy(np.stack(decode_panoptic(target, target_divisor), axis=-1))[None]
        self.metric.update(preds, gt)

    def compute(self) -> dict:
        m = self.metric
        per_class: dict[str, dict] = {}
        for c in self.label_set.classes:
            if c.id not in self.things and c.id not in self.stuff:
                continue
            k = m.cat_id_to_continuous_id[c.id]
            tp, fp, fn = int(m.true_positives[k]), int(m.false_positives[k]), int(m.false_negatives[k])
            iou_sum = float(m.iou_sum[k])
            present = tp + fp + fn > 0  # COCO leaves classes that occur nowhere out of the averages
            sq = iou_sum / tp if tp else 0.0
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
