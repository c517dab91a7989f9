"""The evaluation: :func:`evaluate` runs an engine over labelled data and feeds the metric
accumulators; the plumbing that turns each accepted data form into samples and a label set."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np

from segmentation_ros.engine.labels import LabelSet
from segmentation_ros.engine.panoptic import decode_panoptic
from segmentation_ros.engine.results import Segmentation
from segmentation_ros.tools.evaluate.data import EvalSample, _annotation, coco_samples
from segmentation_ros.tools.evaluate.metrics import (
    MASK_SOURCES,
    _check_label_space,
    _InstanceMetric,
    _PanopticMetric,
    _SemanticMetric,
)

#: An engine as :func:`evaluate` uses it: a batch of (H, W, 3) uint8 RGB frames in, one
#: :class:`Segmentation` per frame out (``SegmentationEngine.__call__``).
Segmenter = Callable[[list[np.ndarray]], list[Segmentation]]


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


def _sample_name(sample: EvalSample) -> str:
    return sample.name or (f"id {sample.image_id}" if sample.image_id is not None else "")


def segment_in_batches(
    engine: Segmenter, items: Iterable[Any], batch_size: int, name: Callable[[Any], str] = lambda item: ""
) -> Iterator[tuple[list[Any], list[Segmentation], float]]:
    """Run ``engine`` over ``items`` (anything with an ``image``), ``batch_size`` at a time.

    Yields each batch, its results and the seconds the engine took. The results are checked: one
    per item, each at its item's size (a ValueError names the item with ``name`` otherwise).
    """
    iterator = iter(items)
    while batch := list(islice(iterator, batch_size)):
        t0 = time.perf_counter()
        results = engine([item.image for item in batch])
        seconds = time.perf_counter() - t0
        if len(results) != len(batch):
            raise ValueError(f"the engine returned {len(results)} results for {len(batch)} frames")
        for item, result in zip(batch, results, strict=True):
            height, width = np.asarray(item.image).shape[:2]
            if (result.height, result.width) != (height, width):
                raise ValueError(
                    f"{name(item) or 'an image'}: result is {result.width}x{result.height}, image is {width}x{height}"
                )
        yield batch, results, seconds


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
        for batch, results, seconds in segment_in_batches(engine, samples, batch_size, _sample_name):
            inference += seconds
            for sample, result in zip(batch, results, strict=True):
                count += 1
                name = _sample_name(sample) or f"#{count}"
                height, width = result.height, result.width
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
    """One COCO annotation per thing segment of the sample's panoptic map; a thing class with
    instance 0 is a crowd region (``iscrowd: 1``), as in ``EvalSample.panoptic``."""
    if sample.panoptic is None:
        return []
    panoptic = np.asarray(sample.panoptic)
    values = np.unique(panoptic)
    class_ids, instance_ids = decode_panoptic(values, sample.label_divisor)
    things = set(labels.thing_ids)
    return [
        _annotation(panoptic == value, class_id, iscrowd=int(instance_id == 0))
        for value, class_id, instance_id in zip(
            values.tolist(), class_ids.tolist(), instance_ids.tolist(), strict=True
        )
        if class_id in things
    ]
