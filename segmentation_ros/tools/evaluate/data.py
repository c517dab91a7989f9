"""The data the evaluation reads: :class:`EvalSample` (one image and its ground truth),
:class:`CocoReader` (a COCO / COCO-panoptic dataset directory, image by image, with the label set of
its categories; training reads COCO data through it too) and :func:`coco_samples` (its samples,
read lazily)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segmentation_ros.engine.labels import LabelSet


@dataclass
class EvalSample:
    """One image and its ground truth, in the class ids of the data's label set.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        panoptic: (H, W) integer ``class_id * label_divisor + instance_id`` (stuff: instance 0;
            a thing class with instance 0: a crowd region of that class, COCO's ``iscrowd``, which
            panoptic quality neither requires nor penalises; void pixels: the void id's class or
            any class outside the label set), or None when there is no panoptic ground truth.
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


def _segments_info(entry: dict, segment_ids: np.ndarray, label_set: LabelSet, png: str) -> dict[int, dict]:
    """A COCO-panoptic annotation's ``segments_info`` by segment id, checked against its PNG's
    (H, W) ids and the label set (:class:`CocoReader` lists what is refused)."""
    segments = {int(s["id"]): s for s in entry.get("segments_info", [])}
    for sid, seg in segments.items():
        cid = int(seg["category_id"])
        if cid not in label_set or cid == label_set.void_id:
            raise ValueError(f"{png}: segment {sid} has category_id {cid}, which the categories do not list")
        if seg.get("iscrowd", 0) and not label_set[cid].isthing:
            raise ValueError(
                f"{png}: segment {sid} is a crowd region (iscrowd) of the stuff category {cid} "
                f"({label_set[cid].name}); COCO marks only thing segments as crowd"
            )
    in_png = set(np.unique(segment_ids).tolist())
    unlisted = sorted(in_png - set(segments) - {0})
    absent = sorted(set(segments) - in_png)
    if unlisted or absent or 0 in segments:
        problems = [
            f"ids {unlisted[:8]} are in the PNG but not in segments_info" if unlisted else "",
            f"segments {absent[:8]} of segments_info are not in the PNG" if absent else "",
            "segments_info lists id 0, which is void" if 0 in segments else "",
        ]
        raise ValueError(f"{png}: {'; '.join(p for p in problems if p)}")
    return segments


def synthetic_data_config(spec: str, width: int, height: int, *, split: str, seed: int, num: int) -> dict[str, Any]:
    """What a report's ``config`` says of synthetic data (``segmentation-ros eval`` and the demo):
    the ``--data`` spec, split, seed, number of scenes and resolution."""
    return {"data": spec, "split": split, "seed": seed, "num": num, "resolution": f"{width}x{height}"}


class _SizedSamples(Iterator[EvalSample]):
    """A lazy iterator over samples that knows how many it yields in all (``len``)."""

    def __init__(self, samples: Iterator[EvalSample], count: int):
        self._samples = samples
        self._count = count

    def __next__(self) -> EvalSample:
        return next(self._samples)

    def __len__(self) -> int:
        return self._count


class CocoReader:
    """A COCO / COCO-panoptic dataset directory, image by image: ``reader[i]`` reads the ``i``-th
    image of the JSON (file order) and its ground truth as an :class:`EvalSample`, in the ids of
    :attr:`label_set` (the categories plus a void class).

    Default layout (what :func:`~segmentation_ros.tools.synthetic.write_dataset` writes): ``images/``,
    ``annotations/instances.json``, ``annotations/panoptic.json`` and ``annotations/panoptic/*.png``;
    each path can be given on its own. Either JSON may be missing (:attr:`has_instances`,
    :attr:`has_panoptic`; instances then come from the panoptic things, and without panoptic JSON a
    sample has no panoptic or semantic ground truth). Images and categories are those of the
    panoptic JSON where there is one.

    Semantic ground truth is each panoptic segment's category (void where the PNG's id is 0).
    A crowd segment (``iscrowd`` 1) keeps its category with instance 0 in ``panoptic``, where
    panoptic quality treats it as COCO's ``pq_compute`` does.

    Raises:
        ValueError: (on construction) no image directory, neither JSON, a JSON that cannot be read,
            no categories; (when a sample is read) a panoptic PNG whose ids and ``segments_info``
            disagree (an id on one side only; id 0 is void and never listed), a segment whose
            category is not in ``categories``, a crowd segment of a stuff category (COCO marks
            only things as crowd), or a PNG of another size than its image.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        images_dir: str | Path | None = None,
        instances_json: str | Path | None = None,
        panoptic_json: str | Path | None = None,
        panoptic_dir: str | Path | None = None,
    ):
        self.root = root = Path(root)
        self.images_dir = Path(images_dir) if images_dir else root / "images"
        self.instances_json = Path(instances_json) if instances_json else root / "annotations" / "instances.json"
        self.panoptic_json = Path(panoptic_json) if panoptic_json else root / "annotations" / "panoptic.json"
        self.panoptic_dir = Path(panoptic_dir) if panoptic_dir else root / "annotations" / "panoptic"
        if not self.images_dir.is_dir():
            raise ValueError(f"COCO dataset {root}: no image directory {self.images_dir}")
        panoptic = _read_json(self.panoptic_json) if self.panoptic_json.is_file() else None
        instances = _read_json(self.instances_json) if self.instances_json.is_file() else None
        if panoptic is None and instances is None:
            raise ValueError(f"COCO dataset {root}: neither {self.panoptic_json} nor {self.instances_json} exists")
        self.has_panoptic, self.has_instances = panoptic is not None, instances is not None
        main = panoptic if panoptic is not None else instances
        assert main is not None
        source = self.panoptic_json if panoptic is not None else self.instances_json
        try:
            self.label_set = _label_set_from_categories(
                f"{root.name or 'coco'} categories", main["categories"], all_things=panoptic is None
            )
            self.images: list[dict] = list(main["images"])
        except (KeyError, TypeError, ValueError) as exc:  # a file that is not COCO: name it
            reason = f"no {exc} field" if isinstance(exc, KeyError) else str(exc)
            raise ValueError(f"COCO annotations {source}: {reason}") from exc
        self._instances_by_image: dict[int, list[dict]] = {}
        if instances is not None:
            for ann in instances.get("annotations", []):
                self._instances_by_image.setdefault(int(ann["image_id"]), []).append(ann)
        self._panoptic_by_image = {int(a["image_id"]): a for a in panoptic["annotations"]} if panoptic is not None else {}

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> EvalSample:
        from segmentation_ros.engine.imageio import read_image
        from segmentation_ros.engine.panoptic import rgb_to_id

        label_set, void = self.label_set, self.label_set.void_id
        assert void is not None
        info = self.images[i]
        image_id = int(info["id"])
        image = read_image(self.images_dir / info["file_name"])
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        sample = EvalSample(image=image, panoptic=None, image_id=image_id, name=str(info["file_name"]))
        if image_id in self._panoptic_by_image:
            entry = self._panoptic_by_image[image_id]
            png = self.panoptic_dir / entry["file_name"]
            rgb = read_image(png)
            if rgb.shape != (*image.shape[:2], 3):
                raise ValueError(
                    f"panoptic PNG {png} is {rgb.shape}, expected an RGB image the size of "
                    f"{info['file_name']}, {(*image.shape[:2], 3)}"
                )
            segment_ids = rgb_to_id(rgb)
            segments = _segments_info(entry, segment_ids, label_set, str(png))
            found, inverse = np.unique(segment_ids, return_inverse=True)
            divisor = max(1000, len(segments) + 1)
            semantic_lut = np.full(found.size, void, dtype=np.int64)
            panoptic_lut = np.full(found.size, void * divisor, dtype=np.int64)
            thing_number = 0
            for k, sid in enumerate(found.tolist()):
                seg = segments.get(sid)
                if seg is None:  # id 0: void
                    continue
                cid = int(seg["category_id"])
                semantic_lut[k] = cid
                if label_set[cid].isthing and not seg.get("iscrowd", 0):
                    thing_number += 1
                    panoptic_lut[k] = cid * divisor + thing_number
                else:  # stuff, or a crowd region: instance 0
                    panoptic_lut[k] = cid * divisor
            shape = segment_ids.shape
            sample.semantic = semantic_lut[inverse].reshape(shape)
            sample.panoptic = panoptic_lut[inverse].reshape(shape)
            sample.label_divisor = divisor
            if not self.has_instances:
                sample.instances = [
                    _annotation(segment_ids == sid, int(s["category_id"]), int(s.get("iscrowd", 0)))
                    for sid, s in segments.items()
                    if label_set[int(s["category_id"])].isthing
                ]
        if self.has_instances:
            sample.instances = self._instances_by_image.get(image_id, [])
        return sample


def coco_samples(
    root: str | Path,
    *,
    num: int | None = None,
    images_dir: str | Path | None = None,
    instances_json: str | Path | None = None,
    panoptic_json: str | Path | None = None,
    panoptic_dir: str | Path | None = None,
) -> tuple[LabelSet, Iterator[EvalSample]]:
    """Read a COCO / COCO-panoptic dataset from disk, lazily: the samples of a :class:`CocoReader`
    (its layout, its paths, its ground truth), in file order. Where a JSON is missing, the metrics
    it feeds are not computed.

    Raises:
        ValueError: (here) what :class:`CocoReader` refuses on construction; (when the samples are
            read) what it refuses when a sample is read: a panoptic PNG whose ids and
            ``segments_info`` disagree, a segment of an unlisted category, a crowd segment of a
            stuff category, or a PNG of another size than its image.

    Returns:
        the label set (the categories plus a void class) and the samples in file order (the
        first ``num`` of them); ``len`` of the samples is their number.
    """
    reader = CocoReader(
        root,
        images_dir=images_dir,
        instances_json=instances_json,
        panoptic_json=panoptic_json,
        panoptic_dir=panoptic_dir,
    )
    indices = range(len(reader))[:num]
    return reader.label_set, _SizedSamples((reader[i] for i in indices), len(indices))
