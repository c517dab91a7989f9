"""Accuracy of the engine on labelled data: mIoU, COCO mask/box AP and panoptic quality.

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

Data: :class:`~segmentation_ros.tools.synthetic.Scene` objects (the synthetic generator), a dataset
directory in the layout :func:`~segmentation_ros.tools.synthetic.write_dataset` writes, or
:class:`EvalSample` objects. All numbers are fractions in [0, 1]; ``None`` where a metric is
undefined (a class that occurs nowhere, AP without ground truth).

Example::

    engine = SegmentationEngine(EngineConfig(task="panoptic", ...))
    report = evaluate(engine, generate_scenes(100, seed=0, split="test"))
    report["semantic"]["miou"], report["instance"]["segm"]["ap"], report["panoptic"]["all"]["pq"]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segmentation_ros.engine.labels import LabelSet
from segmentation_ros.engine.panoptic import decode_panoptic
from segmentation_ros.engine.results import InstanceResult, PanopticResult, Segmentation

__all__ = [
    "EvalSample",
    "MASK_SOURCES",
    "evaluate",
    "coco_samples",
    "to_rle",
    "format_report",
    "add_subcommand",
]

MASK_SOURCES = ("masks", "instance_ids")
"""Which predicted pixels the mask AP scores: each detection's full mask (``InstanceResult.masks``,
overlaps allowed, as torchvision and detectron2 evaluate Mask R-CNN), or the detection's visible
pixels in the non-overlapping id map (``InstanceResult.instance_ids``)."""

DEFAULT_SYNTHETIC_SIZE = (320, 240)
DEFAULT_SYNTHETIC_NUM = 100

#: An engine as :func:`evaluate` uses it: a batch of (H, W, 3) uint8 RGB frames in, one
#: :class:`Segmentation` per frame out (``SegmentationEngine.__call__``).
Segmenter = Callable[[list[np.ndarray]], list[Segmentation]]


# ---- data ---------------------------------------------------------------------------------------
@dataclass
class EvalSample:
    """One image and its ground truth, in the class ids of the data's label set.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        panoptic: (H, W) integer ``class_id * label_divisor + instance_id`` (stuff: instance 0;
            void pixels: the void id's class), or None when there is no panoptic ground truth.
        label_divisor: see ``panoptic``.
        semantic: (H, W) integer class ids (void: the label set's void id); None: ``panoptic //
            label_divisor``.
        instances: COCO annotations (``segmentation`` as RLE or polygons, ``category_id``,
            optional ``iscrowd``, ``area``, ``bbox``); None: one per thing segment of ``panoptic``.
        image_id: COCO image id, or None; with ``name``, it names the sample in messages (the
            metrics number the images in data order themselves, so ids need not be unique).
        name: names the sample in messages.
    """

    image: np.ndarray
    panoptic: np.ndarray | None
    label_divisor: int = 1000
    semantic: np.ndarray | None = None
    instances: list[dict] | None = None
    image_id: int | None = None
    name: str = ""

    @classmethod
    def from_scene(cls, scene: Any, image_id: int | None = None) -> EvalSample:
        """A synthetic :class:`~segmentation_ros.tools.synthetic.Scene`: its exact maps; instances are its
        visible instance-id map, as :func:`~segmentation_ros.tools.synthetic.to_coco` exports them."""
        annotations = [
            _annotation(scene.instances == k, int(c))
            for k, c in enumerate(scene.instance_class_ids.tolist(), start=1)
        ]
        return cls(
            image=scene.image,
            panoptic=scene.panoptic,
            label_divisor=scene.label_divisor,
            semantic=scene.semantic,
            instances=annotations,
            image_id=image_id,
        )


def _annotation(mask: np.ndarray, category_id: int, iscrowd: int = 0) -> dict:
    """COCO annotation (RLE, area, bbox) of one (H, W) bool mask."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {
        "segmentation": rle,
        "category_id": int(category_id),
        "iscrowd": int(iscrowd),
        "area": float(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
    }


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read COCO annotations {path}: {exc}") from exc


def _label_set_from_categories(name: str, categories: Sequence[dict], *, all_things: bool) -> LabelSet:
    """COCO ``categories`` plus a void class: id 0 unless a category has it, then the next free id."""
    ids = [int(c["id"]) for c in categories]
    if not ids:
        raise ValueError(f"{name}: the annotations list no categories")
    void = 0 if 0 not in ids else max(ids) + 1
    classes = [{"id": void, "name": "unlabeled", "color": [0, 0, 0], "isthing": False}]
    classes += [{**c, "isthing": True if all_things else bool(c.get("isthing", 1))} for c in categories]
    return LabelSet.from_dict({"name": name, "void_id": void, "classes": classes})


class _SizedSamples(Iterator[EvalSample]):
    """A lazy iterator over samples that knows how many it yields in all (``len``)."""

    def __init__(self, samples: Iterator[EvalSample], count: int):
        self._samples = samples
        self._count = count

    def __next__(self) -> EvalSample:
        return next(self._samples)

    def __len__(self) -> int:
        return self._count


def coco_samples(
    root: str | Path,
    *,
    num: int | None = None,
    images_dir: str | Path | None = None,
    instances_json: str | Path | None = None,
    panoptic_json: str | Path | None = None,
    panoptic_dir: str | Path | None = None,
) -> tuple[LabelSet, Iterator[EvalSample]]:
    """Read a COCO / COCO-panoptic dataset from disk, lazily.

    Default layout (what :func:`~segmentation_ros.tools.synthetic.write_dataset` writes): ``images/``,
    ``annotations/instances.json``, ``annotations/panoptic.json`` and ``annotations/panoptic/*.png``;
    each path can be given on its own. Either JSON may be missing (then the metrics it feeds are
    not computed; instances then come from the panoptic things).

    Semantic ground truth is each panoptic segment's category (void where no segment is listed).
    For panoptic quality a crowd segment counts as void (torchmetrics has no crowd regions).

    Returns:
        the label set (the categories plus a void class) and the samples in file order (the
        first ``num`` of them); ``len`` of the samples is their number.
    """
    from segmentation_ros.engine.imageio import read_image
    from segmentation_ros.engine.panoptic import rgb_to_id

    root = Path(root)
    images_dir = Path(images_dir) if images_dir else root / "images"
    instances_json = Path(instances_json) if instances_json else root / "annotations" / "instances.json"
    panoptic_json = Path(panoptic_json) if panoptic_json else root / "annotations" / "panoptic.json"
    panoptic_dir = Path(panoptic_dir) if panoptic_dir else root / "annotations" / "panoptic"
    if not images_dir.is_dir():
        raise ValueError(f"COCO dataset {root}: no image directory {images_dir}")
    panoptic = _read_json(panoptic_json) if panoptic_json.is_file() else None
    instances = _read_json(instances_json) if instances_json.is_file() else None
    if panoptic is None and instances is None:
        raise ValueError(f"COCO dataset {root}: neither {panoptic_json} nor {instances_json} exists")
    main = panoptic if panoptic is not None else instances
    assert main is not None
    label_set = _label_set_from_categories(
        f"{root.name or 'coco'} categories", main["categories"], all_things=panoptic is None
    )
    void = label_set.void_id
    assert void is not None
    images = main["images"][:num] if num is not None else main["images"]
    by_image: dict[int, list[dict]] = {}
    if instances is not None:
        for ann in instances.get("annotations", []):
            by_image.setdefault(int(ann["image_id"]), []).append(ann)
    pan_by_image = {int(a["image_id"]): a for a in panoptic["annotations"]} if panoptic is not None else {}

    def samples() -> Iterator[EvalSample]:
        for info in images:
            image_id = int(info["id"])
            image = read_image(images_dir / info["file_name"])
            if image.ndim == 2:
                image = np.repeat(image[:, :, None], 3, axis=2)
            sample = EvalSample(image=image, panoptic=None, image_id=image_id, name=str(info["file_name"]))
            if image_id in pan_by_image:
                entry = pan_by_image[image_id]
                rgb = read_image(panoptic_dir / entry["file_name"])
                segment_ids = rgb_to_id(rgb)
                found, inverse = np.unique(segment_ids, return_inverse=True)
                segments = {int(s["id"]): s for s in entry["segments_info"]}
                divisor = max(1000, len(segments) + 1)
                semantic_lut = np.full(found.size, void, dtype=np.int64)
                panoptic_lut = np.full(found.size, void * divisor, dtype=np.int64)
                thing_number = 0
                for i, sid in enumerate(found.tolist()):
                    seg = segments.get(sid)
                    if seg is None:
                        continue
                    cid = int(seg["category_id"])
                    semantic_lut[i] = cid
                    if seg.get("iscrowd", 0):
                        continue
                    if label_set[cid].isthing:
                        thing_number += 1
                        panoptic_lut[i] = cid * divisor + thing_number
                    else:
                        panoptic_lut[i] = cid * divisor
                shape = segment_ids.shape
                sample.semantic = semantic_lut[inverse].reshape(shape)
                sample.panoptic = panoptic_lut[inverse].reshape(shape)
                sample.label_divisor = divisor
                if instances is None:
                    sample.instances = [
                        _annotation(segment_ids == sid, int(s["category_id"]), int(s.get("iscrowd", 0)))
                        for sid, s in segments.items()
                        if label_set[int(s["category_id"])].isthing
                    ]
            if instances is not None:
                sample.instances = by_image.get(image_id, [])
            yield sample

    return label_set, _SizedSamples(samples(), len(images))


# ---- metric accumulators --------------------------------------------------------------------------
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


# ---- evaluation -----------------------------------------------------------------------------------
def _samples_and_labels(
    data: Any, label_set: LabelSet | str | None, num: int | None
) -> tuple[LabelSet, Iterator[EvalSample], str, int | None]:
    """Normalise the accepted data forms to (label set, samples, description, number of samples
    or None where the data does not say)."""
    from segmentation_ros.engine.labels import get_label_set
    from segmentation_ros.tools.synthetic import CocoDataset, Scene

    if isinstance(data, CocoDataset):
        data = data.root
    if isinstance(data, str | Path):
        coco_labels, samples = coco_samples(data, num=num)
        labels = get_label_set(label_set) if label_set is not None else coco_labels
        return labels, samples, str(data), len(samples)
    total = len(data) if isinstance(data, Sized) else None
    if num is not None:
        total = num if total is None else min(num, total)
    iterator = iter(data)
    if num is not None:
        iterator = islice(iterator, num)
    first = next(iterator, None)
    if first is None:
        raise ValueError("no images to evaluate: the data is empty")
    rest = chain([first], iterator)
    if isinstance(first, Scene):
        labels = get_label_set(label_set if label_set is not None else "shapes")
        samples = (EvalSample.from_scene(s) for s in rest)
        return labels, samples, "synthetic scenes", total
    if isinstance(first, EvalSample):
        if label_set is None:
            raise ValueError("evaluating EvalSample objects needs label_set= (the class ids their maps use)")
        return get_label_set(label_set), rest, "samples", total  # type: ignore[return-value]
    raise ValueError(
        f"data must be synthetic Scenes, EvalSamples, a COCO dataset directory or a CocoDataset, "
        f"got {type(first).__name__}"
    )


def _engine_config(engine: Any) -> dict | None:
    config = getattr(engine, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        return None
    out = dataclasses.asdict(config)
    for part in ("semantic", "instance"):
        loaded = getattr(engine, f"{part}_model", None)
        if loaded is not None and getattr(loaded, "weights", None) is not None:
            out[f"{part}_weights_source"] = str(loaded.weights)  # LoadedModel: where they came from
    return out


def evaluate(
    engine: Segmenter,
    data: Iterable[Any] | str | Path,
    *,
    label_set: LabelSet | str | None = None,
    num: int | None = None,
    mask_source: str = "masks",
    batch_size: int = 1,
    progress: bool = False,
) -> dict:
    """Run ``engine`` over labelled images and score every part of its results.

    Which metrics are computed follows the results: ``semantic`` when they carry a
    :class:`SemanticResult`, ``instance`` for an :class:`InstanceResult` (the panoptic task's fused
    instances too), ``panoptic`` for a :class:`PanopticResult` (and ground truth for it exists).

    Args:
        engine: a :class:`~segmentation_ros.engine.pipeline.SegmentationEngine`, or any callable taking a list
            of (H, W, 3) uint8 RGB frames and returning one :class:`Segmentation` per frame at the
            frame's resolution. Frames come in data order.
        data: synthetic ``Scene`` objects (a list or :func:`~segmentation_ros.tools.synthetic.generate_scenes`),
            :class:`EvalSample` objects, or a COCO dataset directory / ``CocoDataset``.
        label_set: the class ids the ground truth uses. Default: ``shapes`` for scenes, the
            categories for a COCO directory; required for EvalSamples. The model's classes must be
            the same ids with the same names.
        num: evaluate only the first ``num`` images.
        mask_source: see :data:`MASK_SOURCES`.
        batch_size: frames per engine call.
        progress: show a progress bar.

    Returns:
        a JSON-ready dict: ``semantic``, ``instance``, ``panoptic`` (those computed), ``data``
        (image count, resolutions, label set), ``timing`` (``wall_time_s``, ``inference_time_s``,
        ``images_per_second``) and ``engine`` (its config, when it has one). Metrics are fractions.

    Raises:
        ValueError: empty data, label sets that do not match, results of the wrong size.
    """
    from tqdm import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if mask_source not in MASK_SOURCES:
        raise ValueError(f"mask_source must be one of {MASK_SOURCES}, got {mask_source!r}")
    start = time.perf_counter()
    labels, samples, description, total = _samples_and_labels(data, label_set, num)
    semantic: _SemanticMetric | None = None
    instance: _InstanceMetric | None = None
    panoptic: _PanopticMetric | None = None
    checked: set[str] = set()
    resolutions: dict[str, int] = {}
    count = 0
    inference = 0.0

    def check(part: str, predicted: LabelSet) -> None:
        if part not in checked:
            _check_label_space(predicted, labels, part)
            checked.add(part)

    bar = tqdm(total=total, desc="eval", unit="image", disable=not progress)
    try:
        while batch := list(islice(samples, batch_size)):
            t0 = time.perf_counter()
            results = engine([s.image for s in batch])
            inference += time.perf_counter() - t0
            if len(results) != len(batch):
                raise ValueError(f"the engine returned {len(results)} results for {len(batch)} frames")
            for sample, result in zip(batch, results, strict=True):
                count += 1
                name = sample.name or (
                    f"id {sample.image_id}" if sample.image_id is not None else f"#{count}"
                )
                height, width = sample.image.shape[:2]
                if (result.height, result.width) != (height, width):
                    raise ValueError(
                        f"image {name}: result is {result.width}x{result.height}, image is {width}x{height}"
                    )
                key = f"{width}x{height}"
                resolutions[key] = resolutions.get(key, 0) + 1
                gt_semantic = sample.semantic
                if gt_semantic is None and sample.panoptic is not None:
                    gt_semantic = decode_panoptic(sample.panoptic, sample.label_divisor)[0]
                if result.semantic is not None and gt_semantic is not None:
                    check("semantic", result.semantic.label_set)
                    semantic = semantic or _SemanticMetric(labels)
                    semantic.update(result.semantic.labels, gt_semantic)
                if result.instances is not None and labels.thing_ids:
                    check("instance", result.instances.label_set)
                    gt_instances = sample.instances
                    if gt_instances is None:
                        gt_instances = _instances_from_panoptic(sample, labels)
                    instance = instance or _InstanceMetric(labels, mask_source)
                    instance.update(name, height, width, gt_instances, result.instances)
                if result.panoptic is not None and sample.panoptic is not None:
                    check("panoptic", result.panoptic.label_set)
                    panoptic = panoptic or _PanopticMetric(labels)
                    panoptic.update(result.panoptic, sample.panoptic, sample.label_divisor)
            bar.update(len(batch))
    finally:
        bar.close()
    if count == 0:
        raise ValueError("no images to evaluate: the data is empty")
    report: dict[str, Any] = {}
    if semantic is not None:
        report["semantic"] = semantic.compute()
    if instance is not None:
        report["instance"] = instance.compute()
    if panoptic is not None:
        report["panoptic"] = panoptic.compute()
    wall = time.perf_counter() - start
    report["data"] = {
        "source": description,
        "images": count,
        "resolutions": resolutions,
        "label_set": labels.name,
    }
    report["timing"] = {
        "wall_time_s": round(wall, 3),
        "inference_time_s": round(inference, 3),
        "images_per_second": round(count / inference, 3) if inference > 0 else None,
    }
    config = _engine_config(engine)
    if config is not None:
        report["engine"] = config
    return report


def _instances_from_panoptic(sample: EvalSample, labels: LabelSet) -> list[dict]:
    """One COCO annotation per thing segment of the sample's panoptic map."""
    if sample.panoptic is None:
        return []
    panoptic = np.asarray(sample.panoptic)
    values = np.unique(panoptic)
    class_ids, instance_ids = decode_panoptic(values, sample.label_divisor)
    things = set(labels.thing_ids)
    return [
        _annotation(panoptic == value, class_id)
        for value, class_id, instance_id in zip(
            values.tolist(), class_ids.tolist(), instance_ids.tolist(), strict=True
        )
        if instance_id and class_id in things
    ]


# ---- report -------------------------------------------------------------------------------------
def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.1f}"


def format_report(report: dict) -> str:
    """The report as a text table: one row per class, then all / things / stuff; percentages."""
    sem, inst, pan = report.get("semantic"), report.get("instance"), report.get("panoptic")
    columns: list[str] = []
    if sem:
        columns += ["IoU", "Acc"]
    if inst:
        columns += ["AP", "AP50", "boxAP"]
    if pan:
        columns += ["PQ", "SQ", "RQ"]
    names: dict[str, bool] = {}
    for part in (sem, pan):
        for name, row in (part or {}).get("per_class", {}).items():
            names.setdefault(name, row["isthing"])
    for name in (inst or {}).get("segm", {}).get("per_class", {}):
        names.setdefault(name, True)
    width = max([len(n) for n in names] + [10])
    lines = [f"{'class':{width}} {'kind':5} " + " ".join(f"{c:>6}" for c in columns)]
    lines.append("-" * len(lines[0]))

    def row(label: str, kind: str, cells: list[str]) -> str:
        return f"{label:{width}} {kind:5} " + " ".join(f"{c:>6}" for c in cells)

    for name, isthing in names.items():
        cells = []
        if sem:
            r = sem["per_class"].get(name, {})
            cells += [_pct(r.get("iou")), _pct(r.get("accuracy"))]
        if inst:
            segm = inst["segm"]["per_class"].get(name, {})
            box = inst["bbox"]["per_class"].get(name, {})
            cells += [_pct(segm.get("ap")), _pct(segm.get("ap50")), _pct(box.get("ap"))]
        if pan:
            r = pan["per_class"].get(name, {})
            cells += [_pct(r.get("pq")), _pct(r.get("sq")), _pct(r.get("rq"))]
        lines.append(row(name, "thing" if isthing else "stuff", cells))
    lines.append("-" * len(lines[0]))
    for label, sem_key, pan_key in (
        ("all", "miou", "all"),
        ("things", "miou_things", "things"),
        ("stuff", "miou_stuff", "stuff"),
    ):
        cells = []
        if sem:
            cells += [_pct(sem[sem_key]), _pct(sem["mean_accuracy"]) if label == "all" else "-"]
        if inst:
            if label == "stuff":
                cells += ["-", "-", "-"]
            else:
                cells += [_pct(inst["segm"]["ap"]), _pct(inst["segm"]["ap50"]), _pct(inst["bbox"]["ap"])]
        if pan:
            p = pan[pan_key]
            cells += [_pct(p["pq"]), _pct(p["sq"]), _pct(p["rq"])]
        lines.append(row(label, "", cells))
    notes = []
    data = report.get("data", {})
    notes.append(
        f"{data.get('images', '?')} images ({', '.join(data.get('resolutions', {}))}), label set {data.get('label_set')}"
    )
    if sem:
        notes.append(
            f"semantic: mIoU {_pct(sem['miou'])}, pixel accuracy {_pct(sem['pixel_accuracy'])} over "
            f"{sem['pixels']} pixels; void id {sem['void_id']} ignored"
        )
    if inst:
        notes.append(
            f"instance: COCO AP@[.5:.95] {_pct(inst['segm']['ap'])} (AP75 {_pct(inst['segm']['ap75'])}), "
            f"box AP {_pct(inst['bbox']['ap'])}; {inst['predictions']} detections, {inst['gt_instances']} "
            f"ground-truth instances; masks: {inst['mask_source']}"
        )
    if pan:
        notes.append(f"panoptic: PQ {_pct(pan['all']['pq'])} over {pan['all']['n']} classes")
    timing = report.get("timing", {})
    if timing:
        notes.append(
            f"wall time {timing['wall_time_s']:.1f} s, inference {timing['inference_time_s']:.1f} s "
            f"({timing['images_per_second'] or 0:.1f} images/s)"
        )
    return "\n".join(lines + [""] + notes)


# ---- command line -------------------------------------------------------------------------------
def _eval_command(args: argparse.Namespace) -> int:
    from segmentation_ros.engine.imageio import write_json
    from segmentation_ros.engine.pipeline import SegmentationEngine
    from segmentation_ros.tools.cli import engine_config_from_args
    from segmentation_ros.tools.synthetic import generate_scenes, parse_synthetic_spec

    config = engine_config_from_args(args)
    if args.num is not None and args.num < 1:
        raise ValueError(f"--num must be >= 1, got {args.num}")
    size = parse_synthetic_spec(args.data, DEFAULT_SYNTHETIC_SIZE)
    data_config: dict[str, Any] = {"data": args.data}
    if size is not None:
        width, height = size
        num = args.num if args.num is not None else DEFAULT_SYNTHETIC_NUM
        data: Any = generate_scenes(num, args.seed, width, height, split="test")
        data_config.update(split="test", seed=args.seed, num=num, resolution=f"{width}x{height}")
    elif Path(args.data).is_dir():
        data, num = args.data, args.num
        data_config.update(num=num)
    else:
        raise ValueError(
            f"--data must be 'synthetic', 'synthetic:WxH' or a COCO dataset directory, got {args.data!r}"
        )
    engine = SegmentationEngine(config)
    report = evaluate(
        engine,
        data,
        num=num,
        mask_source=args.mask_source,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    task = config.task
    parts = {"semantic": ("semantic",), "instance": ("instance",), "panoptic": ("semantic", "instance")}[task]
    data_config["num"] = report["data"]["images"]
    data_config["resolution"] = data_config.get("resolution") or ", ".join(report["data"]["resolutions"])
    report = {
        "config": {
            "task": task,
            "models": {p: getattr(config, f"{p}_model") for p in parts},
            "weights": {p: getattr(config, f"{p}_weights") for p in parts},
            "labels": {p: getattr(engine, f"{p}_model").labels.name for p in parts},
            **data_config,
            **({"mask_source": args.mask_source} if "instance" in parts else {}),
        },
        **report,
    }
    print(format_report(report))
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def add_subcommand(subparsers: Any) -> None:
    """Add ``eval`` to the ``segmentation-ros`` command line (see :mod:`segmentation_ros.tools.cli`)."""
    from segmentation_ros.tools.cli import add_model_arguments

    p = subparsers.add_parser(
        "eval",
        help="score a model on synthetic or COCO data: mIoU, COCO mask/box AP, PQ",
        description="Run the engine over labelled images and print per-class and overall mIoU, pixel "
        "accuracy, COCO mask and box AP (pycocotools) and panoptic quality (torchmetrics).",
    )
    add_model_arguments(p)
    p.add_argument(
        "--data",
        required=True,
        metavar="SRC",
        help="'synthetic' or 'synthetic:WxH' (the generator's held-out test split, default "
        f"{DEFAULT_SYNTHETIC_SIZE[0]}x{DEFAULT_SYNTHETIC_SIZE[1]}) or a COCO dataset directory "
        "(images/, annotations/instances.json, annotations/panoptic.json + panoptic/)",
    )
    p.add_argument(
        "--num",
        type=int,
        default=None,
        help=f"images to evaluate (synthetic default {DEFAULT_SYNTHETIC_NUM}, COCO: all)",
    )
    p.add_argument("--seed", type=int, default=0, help="synthetic data seed (default: %(default)s)")
    p.add_argument("--json", metavar="FILE", help="write every number and the configuration here")
    p.add_argument("--batch-size", type=int, default=1, help="frames per forward pass (default: %(default)s)")
    p.add_argument(
        "--mask-source",
        choices=MASK_SOURCES,
        default="masks",
        help="mask AP from each detection's full mask or its visible id-map pixels (default: %(default)s)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_eval_command)
