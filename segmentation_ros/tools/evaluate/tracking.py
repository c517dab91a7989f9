"""Identity consistency over time: the standard MOT metrics (``motmetrics``) of an instance model
on camera drives whose true object identities are known (``segmentation-ros eval --task tracking``).

Each frame's detections get two sets of ids, and each set is scored against the ground truth:

- ``tracked``: the ids :class:`~segmentation_ros.engine.tracking.Tracker` gives them
  (``Tracker.update(stamp_ns, boxes, scores, class_ids)``, one tracker per sequence);
- ``untracked``: the per-frame ids the engine gives them (``InstanceResult.ids``: 1..N in
  descending score order), what a consumer sees without tracking.

Matching: in every frame a prediction can match a ground-truth object when their masks overlap
with IoU >= ``iou_threshold`` (0.5); the distance is ``1 - IoU`` (NaN, "cannot match", below the
threshold) and ``motmetrics.MOTAccumulator`` does the rest: it keeps last frame's pairs where they
can still match, then assigns the rest by least distance (Hungarian), and counts a switch when an
object's matched id changes. Matching is class-agnostic (the ground truth here are the synthetic
``Scene.instances``: visible pixels, one id per object, stable across the frames of a sequence via
``Scene.instance_object_ids``).

Metrics per id set (fractions in [0, 1] except MOTA, which is <= 1 and can be negative; ``None``
where undefined): IDF1, IDP, IDR (identity F1, precision, recall: the best one-to-one mapping of
whole ground-truth tracks to whole predicted tracks over a sequence), MOTA (``1 - (misses + false
positives + switches) / ground-truth instances``), ID switches, fragmentations, detection precision
and recall, and the counts behind them. Numbers over several sequences are computed from the
summed counts (``motmetrics``' ``OVERALL``), each sequence scored on its own (ids never carry over).

**Over detected objects** (``over_detected``): identity consistency alone. Each frame, only the
(ground truth, prediction) pairs that the plain accumulator of the same id set matched in that
frame (mask IoU >= the threshold; the matching above) are fed to a second accumulator, each object
able to match only its own prediction: objects no prediction matches (misses) and predictions that
match no object (false positives) are left out of the frame. So misses and false positives are 0,
precision and recall 1, the matched pairs are the plain ``matches + switches``, the switches are
the plain switches, and IDF1 = IDP = IDR is the fraction of matched pairs whose id agrees with the
best one-to-one mapping of whole ground-truth tracks to whole predicted tracks: 1.0 when every
detected object keeps one id of its own for as long as it is detected, however many objects the
detector misses or invents. The plain IDF1 is capped by the detector's recall and precision; this
one is not.

**Recall by visible area** (``recall_by_area``): the plain recall of the first id set, per band of
the objects' visible area (:data:`AREA_BANDS`: under 64, 64-256, 256-1024, 1024 pixels and more).
Standard IDF1 and MOTA cannot exceed what the detector finds; this says which objects it misses.

Example::

    engine = SegmentationEngine(EngineConfig(task="instance", instance_model="shapes_maskrcnn", device="cpu"))
    drives = [generate_sequence(30, seed, split="test") for seed in range(4)]
    report = evaluate_tracking(engine, drives)
    report["tracking"]["tracked"]["idf1"], report["tracking"]["untracked"]["idf1"]
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from segmentation_ros.engine.results import InstanceResult
from segmentation_ros.tools.evaluate.evaluation import Segmenter, segment_in_batches
from segmentation_ros.tools.evaluate.metrics import MASK_SOURCES
from segmentation_ros.tools.evaluate.report import percent

__all__ = [
    "IOU_THRESHOLD",
    "VARIANTS",
    "AREA_BANDS",
    "mask_iou",
    "match_distances",
    "TrackingMetric",
    "evaluate_tracking",
    "format_tracking_report",
]

#: Minimum mask IoU of a prediction and a ground-truth object that may match.
IOU_THRESHOLD = 0.5

#: The id sets :func:`evaluate_tracking` scores.
VARIANTS = ("tracked", "untracked")

#: Bands of an object's visible area (pixels, lower bound inclusive) for the recall by size:
#: where a detector's misses are (most are small objects, which no tracker can bring back).
AREA_BANDS = (0, 64, 256, 1024)

#: What the reports call them, from motmetrics' names (``motp``: reported as the mean IoU instead).
_METRICS = {
    "idf1": "idf1",
    "idp": "idp",
    "idr": "idr",
    "mota": "mota",
    "motp": "motp",
    "num_switches": "switches",
    "num_fragmentations": "fragmentations",
    "precision": "precision",
    "recall": "recall",
    "num_false_positives": "false_positives",
    "num_misses": "misses",
    "num_matches": "matches",
    "num_objects": "gt_instances",
    "num_predictions": "predictions",
    "num_unique_objects": "gt_objects",
    "mostly_tracked": "mostly_tracked",
    "mostly_lost": "mostly_lost",
    "num_frames": "frames",
}

#: An engine: a batch of (H, W, 3) uint8 RGB frames in, one Segmentation per frame out.

DEFINITIONS = {
    "matching": "per frame, prediction and ground-truth object may match when their mask IoU >= the "
    "threshold (distance 1 - IoU); motmetrics keeps last frame's pairs where possible, then assigns "
    "by least distance; class-agnostic",
    "tracked": "ids from segmentation_ros.engine.tracking.Tracker.update(stamp_ns, boxes, scores, class_ids)",
    "untracked": "per-frame ids InstanceResult.ids (1..N by descending score)",
    "over_detected": "per frame, only the (ground truth, prediction) pairs the plain metrics matched "
    "(mask IoU >= the threshold): neither misses nor false positives count, so IDF1 measures only "
    "whether detected objects keep their ids",
    "overall": "summed over sequences (motmetrics OVERALL); each sequence scored on its own",
    "mean_iou": "mean mask IoU of matched pairs (1 - motmetrics MOTP)",
    "recall_by_area": "the first id set's plain recall (matched / ground-truth instances) per band of the "
    "objects' visible area in pixels, [low, high)",
}


def mask_iou(gt_masks: np.ndarray, pred_masks: np.ndarray) -> np.ndarray:
    """(G, P) mask IoU of (G, H, W) ground-truth and (P, H, W) predicted bool masks (0 where both
    are empty)."""
    gt = np.asarray(gt_masks, dtype=bool)
    pred = np.asarray(pred_masks, dtype=bool)
    if gt.ndim != 3 or pred.ndim != 3 or gt.shape[1:] != pred.shape[1:]:
        raise ValueError(
            f"masks must be (G, H, W) and (P, H, W) of one size, got {gt.shape} and {pred.shape}"
        )
    pixels = gt.shape[1] * gt.shape[2]
    g = gt.reshape(gt.shape[0], pixels).astype(np.float64)
    p = pred.reshape(pred.shape[0], pixels).astype(np.float64)
    inter = g @ p.T
    union = g.sum(1)[:, None] + p.sum(1)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_distances(
    gt_masks: np.ndarray, pred_masks: np.ndarray, iou_threshold: float = IOU_THRESHOLD
) -> np.ndarray:
    """(G, P) motmetrics distances: ``1 - IoU``, NaN (cannot match) where IoU < ``iou_threshold``."""
    iou = mask_iou(gt_masks, pred_masks)
    return np.where(iou >= iou_threshold, 1.0 - iou, np.nan)


def _frame_pairs(
    accumulator: Any, frame: Any, gt: np.ndarray, hyp: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The (object, prediction) pairs ``accumulator`` matched in ``frame`` (its last update), as
    (K,) rows of ``gt`` and (K,) columns of ``hyp``: the objects whose last match
    (``MOTAccumulator.last_match``) is this frame, with their matched id (``MOTAccumulator.m``)."""
    try:
        last_match, matched = accumulator.last_match, accumulator.m
    except AttributeError as error:  # pragma: no cover - motmetrics' state changed
        raise RuntimeError(f"this motmetrics version does not expose its matches: {error}") from error
    column = {h: j for j, h in enumerate(hyp.tolist())}
    pairs = [(i, column[matched[o]]) for i, o in enumerate(gt.tolist()) if last_match.get(o) == frame]
    rows = np.array([i for i, _ in pairs], dtype=np.int64)
    return rows, np.array([j for _, j in pairs], dtype=np.int64)


def _json_number(value: Any) -> float | int | None:
    if isinstance(value, int | np.integer):
        return int(value)
    value = float(value)
    return None if not math.isfinite(value) else value


def _row(values: Mapping[str, Any]) -> dict:
    """motmetrics' numbers under the report's names; MOTP (mean distance) as the mean IoU."""
    row = {_METRICS[k]: _json_number(values[k]) for k in _METRICS}
    motp = row.pop("motp")
    row["mean_iou"] = None if motp is None else 1.0 - motp
    return row


def _ids(values: Any, count: int, name: str) -> np.ndarray:
    ids = np.asarray(values, dtype=np.int64).reshape(-1)
    if ids.shape[0] != count:
        raise ValueError(f"{name}: {ids.shape[0]} ids for {count} masks")
    if np.unique(ids).shape[0] != count:
        raise ValueError(f"{name}: ids within a frame must be unique, got {ids.tolist()}")
    return ids


class TrackingMetric:
    """``motmetrics`` accumulators for several id sets of the same predictions, one per sequence,
    each also over the detected objects only (the matched pairs; see the module docstring).

    Call :meth:`start_sequence` before each sequence's frames, :meth:`update` per frame, then
    :meth:`compute`.
    """

    def __init__(self, variants: Sequence[str] = VARIANTS, iou_threshold: float = IOU_THRESHOLD):
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if not variants or len(set(variants)) != len(variants):
            raise ValueError(f"variants must be distinct names, got {list(variants)}")
        self.variants = tuple(variants)
        self.iou_threshold = float(iou_threshold)
        self.sequences: list[str] = []
        self._accumulators: list[dict[tuple[str, bool], Any]] = []
        # Per AREA_BANDS band: ground-truth instances, and those the first id set matched.
        self._area_instances = np.zeros(len(AREA_BANDS), dtype=np.int64)
        self._area_matched = np.zeros(len(AREA_BANDS), dtype=np.int64)

    def start_sequence(self, name: str | None = None) -> None:
        """Begin a sequence: new accumulators (ground-truth and predicted ids do not carry over)."""
        import motmetrics

        name = name if name is not None else f"#{len(self.sequences) + 1}"
        if name in self.sequences:
            raise ValueError(f"sequence name {name!r} given twice")
        self.sequences.append(name)
        self._accumulators.append(
            {
                (v, detected): motmetrics.MOTAccumulator(auto_id=True)
                for v in self.variants
                for detected in (False, True)
            }
        )

    def update(
        self,
        gt_ids: Any,
        gt_masks: np.ndarray,
        pred_masks: np.ndarray,
        ids: Mapping[str, Any],
    ) -> np.ndarray:
        """Add one frame.

        Args:
            gt_ids: (G,) the ground-truth objects' identities (stable over the sequence).
            gt_masks: (G, H, W) bool, their pixels.
            pred_masks: (P, H, W) bool, the predictions' pixels.
            ids: for each variant, (P,) the ids it gives the predictions (unique within the frame).

        Returns:
            the (G, P) distance matrix fed to the accumulators.
        """
        if not self._accumulators:
            self.start_sequence()
        if set(ids) != set(self.variants):
            raise ValueError(f"ids must be given for exactly {list(self.variants)}, got {sorted(ids)}")
        gt = _ids(gt_ids, np.asarray(gt_masks).shape[0], "ground truth")
        count = np.asarray(pred_masks).shape[0]
        hypotheses = {v: _ids(ids[v], count, v) for v in self.variants}
        distances = match_distances(gt_masks, pred_masks, self.iou_threshold)
        accumulators = self._accumulators[-1]
        areas = np.asarray(gt_masks).sum((1, 2)) if gt.size else np.zeros(0, dtype=np.int64)
        bands = np.searchsorted(AREA_BANDS, areas, side="right") - 1
        for v, hyp in hypotheses.items():
            plain = accumulators[v, False]
            frame = plain.update(gt.tolist(), hyp.tolist(), distances)
            g, p = _frame_pairs(plain, frame, gt, hyp)
            if v == self.variants[0]:
                np.add.at(self._area_instances, bands, 1)
                np.add.at(self._area_matched, bands[g], 1)
            paired = np.full((g.size, g.size), np.nan)  # each object can match only its own prediction
            paired[np.arange(g.size), np.arange(g.size)] = distances[g, p]
            accumulators[v, True].update(gt[g].tolist(), hyp[p].tolist(), paired)
        return distances

    def compute(self) -> dict:
        """The metrics: ``{variant: overall, "over_detected": {variant: overall}, "sequences":
        [{"name", variant: ..., "over_detected": {variant: ...}}], "iou_threshold"}``, where each
        ``...`` has the keys of :data:`_METRICS`' values plus ``mean_iou``."""
        import motmetrics

        if not self._accumulators:
            raise ValueError("no frames to score")
        handler = motmetrics.metrics.create()
        metrics = list(_METRICS)
        per_sequence: list[dict] = [{"name": n, "over_detected": {}} for n in self.sequences]
        out: dict[str, Any] = {"over_detected": {}}
        for v in self.variants:
            for detected in (False, True):
                # compute + compute_overall: what compute_many does, without its root-logger lines
                partials = [
                    handler.compute(
                        a[v, detected], metrics=metrics, return_dataframe=False, return_cached=True
                    )
                    for a in self._accumulators
                ]
                overall = handler.compute_overall(partials, metrics=metrics, return_dataframe=False)
                rows = [_row(values) for values in [*partials, overall]]
                for entry, row in zip(per_sequence, rows, strict=False):
                    (entry["over_detected"] if detected else entry)[v] = row
                (out["over_detected"] if detected else out)[v] = rows[-1]
        out["sequences"] = per_sequence
        out["iou_threshold"] = self.iou_threshold
        highs = [*AREA_BANDS[1:], None]
        out["recall_by_area"] = [
            {
                "pixels": [low, high],
                "gt_instances": int(n),
                "matched": int(m),
                "recall": float(m / n) if n else None,
            }
            for low, high, n, m in zip(AREA_BANDS, highs, self._area_instances, self._area_matched, strict=True)
        ]
        return out


def _prediction_masks(instances: InstanceResult, mask_source: str) -> np.ndarray:
    if mask_source == "masks":
        return instances.masks.detach().cpu().numpy().astype(bool, copy=False)
    return instances.instance_ids[None] == np.asarray(instances.ids).reshape(-1, 1, 1)


def _gt_masks(scene: Any) -> tuple[np.ndarray, np.ndarray]:
    """A scene's visible objects: (G,) identities and (G, H, W) masks."""
    object_ids = np.asarray(scene.instance_object_ids, dtype=np.int64).reshape(-1)
    numbers = np.arange(1, object_ids.shape[0] + 1)
    return object_ids, np.asarray(scene.instances)[None] == numbers[:, None, None]


def _engine_config(engine: Any) -> dict | None:
    config = getattr(engine, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        return None
    out = dataclasses.asdict(config)
    loaded = getattr(engine, "instance_model", None)
    if loaded is not None and getattr(loaded, "weights", None) is not None:
        out["instance_weights_source"] = str(loaded.weights)
    return out


def evaluate_tracking(
    engine: Segmenter,
    sequences: Iterable[Iterable[Any]],
    *,
    names: Sequence[str] | None = None,
    tracker_config: Any = None,
    iou_threshold: float = IOU_THRESHOLD,
    mask_source: str = "masks",
    batch_size: int = 1,
    progress: bool = False,
    total_frames: int | None = None,
) -> dict:
    """Run ``engine`` over camera drives, track its detections and score both id sets.

    Args:
        engine: a :class:`~segmentation_ros.engine.pipeline.SegmentationEngine` with instance
            results (task ``instance`` or ``panoptic``), or any callable taking a list of (H, W, 3)
            uint8 RGB frames and returning one :class:`Segmentation` per frame.
        sequences: drives, each an iterable of frames in time order with ``image``, ``stamp_ns``,
            ``instances`` ((H, W) ids 1..G, 0 = none) and ``instance_object_ids`` ((G,) the true
            identities): :func:`~segmentation_ros.tools.synthetic.generate_sequence`'s Scenes.
        names: one name per sequence (default ``#1``, ``#2``, ...).
        tracker_config: a :class:`~segmentation_ros.engine.tracking.TrackerConfig` (default: its
            defaults); one tracker, reset before each sequence.
        iou_threshold: minimum mask IoU of a match.
        mask_source: the predicted pixels: each detection's full mask or its visible pixels in the
            id map (see :data:`~segmentation_ros.tools.evaluate.metrics.MASK_SOURCES`).
        batch_size: frames per engine call (the tracker still sees them one by one, in order).
        progress: show a progress bar (``total_frames`` sizes it).

    Returns:
        a JSON-ready dict: ``tracking`` (:meth:`TrackingMetric.compute`, plus ``definitions``),
        ``data`` (sequences, frames, resolutions, label set), ``timing`` and ``engine``.

    Raises:
        ValueError: no frames, results without instances, results of the wrong size.
    """
    from tqdm import tqdm

    from segmentation_ros.engine.tracking import Tracker, TrackerConfig

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if mask_source not in MASK_SOURCES:
        raise ValueError(f"mask_source must be one of {MASK_SOURCES}, got {mask_source!r}")
    start = time.perf_counter()
    config = tracker_config if tracker_config is not None else TrackerConfig()
    tracker = Tracker(config)
    metric = TrackingMetric(VARIANTS, iou_threshold)
    resolutions: dict[str, int] = {}
    label_set: str | None = None
    frames = 0
    inference = tracking = 0.0
    bar = tqdm(total=total_frames, desc="eval tracking", unit="frame", disable=not progress)
    try:
        for index, sequence in enumerate(sequences):
            name = names[index] if names is not None and index < len(names) else f"#{index + 1}"
            tracker.reset()
            metric.start_sequence(name)
            batches = segment_in_batches(engine, sequence, batch_size, lambda frame, name=name: name)
            for batch, results, seconds in batches:
                inference += seconds
                for frame, result in zip(batch, results, strict=True):
                    frames += 1
                    height, width = result.height, result.width
                    instances = result.instances
                    if instances is None:
                        raise ValueError("tracking needs instance results (task 'instance' or 'panoptic')")
                    label_set = label_set or instances.label_set.name
                    key = f"{width}x{height}"
                    resolutions[key] = resolutions.get(key, 0) + 1
                    t0 = time.perf_counter()
                    track_ids = tracker.update(
                        int(frame.stamp_ns), instances.boxes, instances.scores, instances.class_ids
                    )
                    tracking += time.perf_counter() - t0
                    gt_ids, gt_masks = _gt_masks(frame)
                    metric.update(
                        gt_ids,
                        gt_masks,
                        _prediction_masks(instances, mask_source),
                        {"tracked": track_ids, "untracked": instances.ids},
                    )
                bar.update(len(batch))
    finally:
        bar.close()
    if frames == 0:
        raise ValueError("no frames to evaluate: the sequences are empty")
    report: dict[str, Any] = {
        "tracking": {**metric.compute(), "mask_source": mask_source, "definitions": dict(DEFINITIONS)},
        "tracker": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else repr(config),
        "data": {
            "sequences": len(metric.sequences),
            "frames": frames,
            "resolutions": resolutions,
            "label_set": label_set,
        },
        "timing": {
            "wall_time_s": round(time.perf_counter() - start, 3),
            "inference_time_s": round(inference, 3),
            "frames_per_second": round(frames / inference, 3) if inference > 0 else None,
            "tracker_ms_per_frame": round(1e3 * tracking / frames, 4),
        },
    }
    engine_config = _engine_config(engine)
    if engine_config is not None:
        report["engine"] = engine_config
    return report


def format_tracking_report(report: dict) -> str:
    """The tracking report as a text table: one row per id set (and per id set over detected
    objects); percentages, then counts and notes."""
    tracking = report["tracking"]
    columns = ["IDF1", "IDP", "IDR", "MOTA", "IDsw", "Frag", "Prec", "Rec", "FP", "Miss", "IoU"]
    rows = [(v, tracking[v]) for v in VARIANTS if v in tracking]
    rows += [
        (f"{v} (detected)", tracking["over_detected"][v]) for v in VARIANTS if v in tracking["over_detected"]
    ]
    width = max(len(label) for label, _ in rows)
    header = f"{'ids':{width}} " + " ".join(f"{c:>6}" for c in columns)
    lines = [header, "-" * len(header)]
    for label, m in rows:
        cells = [
            percent(m["idf1"]),
            percent(m["idp"]),
            percent(m["idr"]),
            percent(m["mota"]),
            str(m["switches"]),
            str(m["fragmentations"]),
            percent(m["precision"]),
            percent(m["recall"]),
            str(m["false_positives"]),
            str(m["misses"]),
            percent(m["mean_iou"]),
        ]
        lines.append(f"{label:{width}} " + " ".join(f"{c:>6}" for c in cells))
    data = report.get("data", {})
    first = tracking[VARIANTS[0]]
    notes = [
        f"{data.get('sequences', '?')} sequences, {data.get('frames', '?')} frames "
        f"({', '.join(data.get('resolutions', {}))}), label set {data.get('label_set')}; "
        f"{first['gt_objects']} objects, {first['gt_instances']} ground-truth instances, "
        f"{first['predictions']} detections",
        f"match: mask IoU >= {tracking['iou_threshold']:g} ({tracking.get('mask_source', 'masks')}), "
        "class-agnostic; tracked: Tracker ids; untracked: per-frame ids by score",
        "(detected): per frame, only the (object, prediction) pairs matched above (mask IoU >= the "
        "threshold): neither misses nor false positives count, IDF1 is identity consistency alone",
    ]
    bands = [
        f"{b['pixels'][0]}-{b['pixels'][1]}" if b["pixels"][1] is not None else f">= {b['pixels'][0]}"
        for b in tracking.get("recall_by_area", [])
    ]
    if bands:
        total = sum(b["gt_instances"] for b in tracking["recall_by_area"]) or 1
        cells = [
            f"{name} px {percent(b['recall'])} % of {b['gt_instances']} ({100 * b['gt_instances'] / total:.0f} %)"
            for name, b in zip(bands, tracking["recall_by_area"], strict=True)
        ]
        notes.append("recall by visible area: " + ", ".join(cells))
    per_sequence = ", ".join(
        f"{s['name']} {percent(s['tracked']['idf1'])}/{percent(s['untracked']['idf1'])}"
        for s in tracking.get("sequences", [])
        if "tracked" in s and "untracked" in s
    )
    if per_sequence:
        notes.append(f"IDF1 tracked/untracked per sequence: {per_sequence}")
    timing = report.get("timing", {})
    if timing:
        notes.append(
            f"wall time {timing['wall_time_s']:.1f} s, inference {timing['inference_time_s']:.1f} s "
            f"({timing['frames_per_second'] or 0:.1f} frames/s), tracker {timing['tracker_ms_per_frame']:.3f} ms/frame"
        )
    return "\n".join(lines + [""] + notes)
