"""Panoptic quality equals COCO's ``pq_compute`` (panopticapi), crowd regions and void included.

panopticapi is not on PyPI, so :func:`reference_pq` below is an independent, dict-based rewrite of
its algorithm (``pq_compute_single_core`` and ``PQStat.pq_average``) on COCO's own data form: an
id map per image (0 = void) and ``segments_info`` with ``category_id`` and ``iscrowd``. The
evaluation must give its numbers on random images (hypothesis), on hand-made cases and on a COCO
panoptic directory read by ``coco_samples``; and huge segments must not lose a match to rounding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmentation_ros.engine.imageio import write_png
from segmentation_ros.engine.labels import get_label_set
from segmentation_ros.engine.panoptic import id_to_rgb
from segmentation_ros.engine.results import PanopticResult, Segmentation
from segmentation_ros.tools.evaluate import EvalSample, coco_samples, evaluate
from segmentation_ros.tools.evaluate.metrics import _PanopticMetric

SHAPES = get_label_set("shapes")
GROUND, SKY, BOX, SPHERE, CYLINDER = 1, 2, 3, 4, 5
STUFF, THINGS = (GROUND, SKY), (BOX, SPHERE, CYLINDER)
DIV = 1000
CATEGORIES = {
    c.id: {"id": c.id, "name": c.name, "isthing": int(c.isthing)} for c in SHAPES.classes if c.id != SHAPES.void_id
}


# ---- the reference: COCO's algorithm on COCO's data form ------------------------------------------
def reference_pq(images: list[tuple[np.ndarray, list[dict], np.ndarray, list[dict]]]) -> dict:
    """``images``: (gt ids, gt segments_info, predicted ids, predicted segments_info) per image; ids 0
    are void. Returns per category ``[iou, tp, fp, fn]`` and the All / Things / Stuff averages."""
    stat = {c: [0.0, 0, 0, 0] for c in CATEGORIES}
    for gt_ids, gt_info, pred_ids, pred_info in images:
        gt_segs = {s["id"]: dict(s) for s in gt_info}
        pred_segs = {s["id"]: dict(s) for s in pred_info}
        for segs, ids in ((gt_segs, gt_ids), (pred_segs, pred_ids)):
            for sid, seg in segs.items():
                seg["area"] = int((ids == sid).sum())
        overlap: dict[tuple[int, int], int] = {}
        for g, p in zip(gt_ids.ravel().tolist(), pred_ids.ravel().tolist(), strict=True):
            overlap[(g, p)] = overlap.get((g, p), 0) + 1
        gt_matched, pred_matched = set(), set()
        for (g, p), inter in overlap.items():
            if g not in gt_segs or p not in pred_segs or gt_segs[g]["iscrowd"]:
                continue
            if gt_segs[g]["category_id"] != pred_segs[p]["category_id"]:
                continue
            union = pred_segs[p]["area"] + gt_segs[g]["area"] - inter - overlap.get((0, p), 0)
            if inter / union > 0.5:
                cat = gt_segs[g]["category_id"]
                stat[cat][0] += inter / union
                stat[cat][1] += 1
                gt_matched.add(g)
                pred_matched.add(p)
        crowd = {}
        for g, seg in gt_segs.items():
            if g in gt_matched:
                continue
            if seg["iscrowd"]:
                crowd[seg["category_id"]] = g
                continue
            stat[seg["category_id"]][3] += 1
        for p, seg in pred_segs.items():
            if p in pred_matched:
                continue
            ignored = overlap.get((0, p), 0)
            if seg["category_id"] in crowd:
                ignored += overlap.get((crowd[seg["category_id"]], p), 0)
            if ignored / seg["area"] > 0.5:
                continue
            stat[seg["category_id"]][2] += 1
    out: dict = {"per_class": stat}
    for name, isthing in (("all", None), ("things", True), ("stuff", False)):
        pq = sq = rq = 0.0
        n = 0
        for cat, info in CATEGORIES.items():
            if isthing is not None and isthing != (info["isthing"] == 1):
                continue
            iou, tp, fp, fn = stat[cat]
            if tp + fp + fn == 0:
                continue
            n += 1
            pq += iou / (tp + 0.5 * fp + 0.5 * fn)
            sq += iou / tp if tp else 0.0
            rq += tp / (tp + 0.5 * fp + 0.5 * fn)
        out[name] = {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n} if n else None
    return out


# ---- COCO's form -> the evaluation's ----------------------------------------------------------------
def encode_truth(ids: np.ndarray, info: list[dict]) -> np.ndarray:
    """COCO ground truth as an EvalSample's panoptic map: things numbered, stuff and crowd instance 0."""
    panoptic = np.zeros(ids.shape, np.int64)  # void: class 0
    for k, seg in enumerate(info, start=1):
        cid = seg["category_id"]
        thing = CATEGORIES[cid]["isthing"] and not seg["iscrowd"]
        panoptic[ids == seg["id"]] = cid * DIV + (k if thing else 0)
    return panoptic


def encode_prediction(ids: np.ndarray, info: list[dict]) -> Segmentation:
    panoptic = np.zeros(ids.shape, np.int32)
    for k, seg in enumerate(info, start=1):
        cid = seg["category_id"]
        panoptic[ids == seg["id"]] = cid * DIV + (k if CATEGORIES[cid]["isthing"] else 0)
    height, width = ids.shape
    return Segmentation(height, width, panoptic=PanopticResult(ids.astype(np.int32), panoptic, [], SHAPES, DIV))


class ReplayEngine:
    def __init__(self, results: list[Segmentation]):
        self.results = list(results)

    def __call__(self, frames):
        return [self.results.pop(0) for _ in frames]


def ours(images: list[tuple[np.ndarray, list[dict], np.ndarray, list[dict]]]) -> dict:
    samples = [
        EvalSample(np.zeros((*g.shape, 3), np.uint8), encode_truth(g, gi), DIV, name=f"#{i}")
        for i, (g, gi, _, _) in enumerate(images)
    ]
    engine = ReplayEngine([encode_prediction(p, pi) for _, _, p, pi in images])
    return evaluate(engine, samples, label_set=SHAPES)["panoptic"]


def check_equal(report: dict, reference: dict) -> None:
    for cat, (iou, tp, fp, fn) in reference["per_class"].items():
        row = report["per_class"][CATEGORIES[cat]["name"]]
        assert (row["tp"], row["fp"], row["fn"]) == (tp, fp, fn), CATEGORIES[cat]["name"]
        if tp:
            assert row["sq"] == pytest.approx(iou / tp, rel=1e-12)
    for group in ("all", "things", "stuff"):
        if reference[group] is None:
            assert report[group]["n"] == 0
            continue
        for key in ("pq", "sq", "rq"):
            assert report[group][key] == pytest.approx(reference[group][key], rel=1e-12), (group, key)
        assert report[group]["n"] == reference[group]["n"]


def segments(categories: list[int], ids: np.ndarray, crowd: set[int] = frozenset()) -> list[dict]:
    """segments_info of the segments 1..N present in ``ids``; ``crowd``: those with iscrowd 1."""
    present = set(np.unique(ids).tolist())
    return [
        {"id": k, "category_id": c, "iscrowd": int(k in crowd)}
        for k, c in enumerate(categories, start=1)
        if k in present
    ]


# ---- random images ------------------------------------------------------------------------------
@st.composite
def panoptic_image(draw):
    """One image: COCO's ground truth (at most one segment per stuff class and one crowd per thing
    class, as in COCO) and a prediction: the ground truth's segments (crowds as plain segments),
    some relabelled, some merged, plus a few more, and a quarter of the pixels scribbled over."""
    height, width = draw(st.integers(2, 6)), draw(st.integers(2, 6))
    n = height * width
    categories = st.sampled_from(STUFF + THINGS)
    gt_categories, crowd = [], set()
    for cid in draw(st.lists(categories, min_size=1, max_size=6)):
        is_crowd = cid in THINGS and draw(st.booleans())
        if (cid in STUFF or is_crowd) and any(
            c == cid and (k in crowd) == is_crowd for k, c in enumerate(gt_categories, start=1)
        ):
            continue
        gt_categories.append(cid)
        if is_crowd:
            crowd.add(len(gt_categories))
    pred_categories = [draw(st.just(c) | categories) for c in gt_categories]
    pred_categories += draw(st.lists(categories, max_size=3))
    m = len(pred_categories)
    pred_categories = [  # one segment per stuff class in a prediction too
        c if c in THINGS or c not in pred_categories[:k] else BOX
        for k, c in enumerate(pred_categories)
    ]
    copy = [draw(st.just(k) | st.integers(0, m)) for k in range(len(gt_categories) + 1)]
    gt = np.array(draw(st.lists(st.integers(0, len(gt_categories)), min_size=n, max_size=n)))
    scribble = draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, m)), min_size=n, max_size=n))
    pred = np.array([copy[g] if keep else s for g, (keep, s) in zip(gt.tolist(), scribble, strict=True)])
    gt, pred = gt.reshape(height, width), pred.reshape(height, width)
    return gt, segments(gt_categories, gt, crowd), pred, segments(pred_categories, pred)


@settings(derandomize=True, max_examples=150, deadline=None)
@given(st.lists(panoptic_image(), min_size=1, max_size=3))
def test_panoptic_quality_equals_cocos_pq_compute_on_random_images(images):
    check_equal(ours(images), reference_pq(images))


# ---- hand-made cases -----------------------------------------------------------------------------
def one_image(gt, gt_categories, pred, pred_categories, crowd=frozenset()):
    gt, pred = np.array(gt), np.array(pred)
    images = [(gt, segments(gt_categories, gt, set(crowd)), pred, segments(pred_categories, pred))]
    report, reference = ours(images), reference_pq(images)
    check_equal(report, reference)
    return report["per_class"]


def test_false_positive_mostly_on_a_crowd_of_its_class_is_not_counted():
    # ground 1 everywhere but a box crowd (2); the predicted box lies 3/4 on the crowd
    gt = [[1, 1, 1, 1], [1, 2, 2, 2], [1, 1, 1, 1]]
    pred = [[1, 1, 1, 1], [2, 2, 2, 2], [1, 1, 1, 1]]
    box = one_image(gt, [GROUND, BOX], pred, [GROUND, BOX], crowd={2})["box"]
    assert (box["tp"], box["fp"], box["fn"]) == (0, 0, 0)  # the crowd is no false negative either


def test_a_crowd_of_another_class_excuses_nothing():
    # the crowd is spheres: the predicted box on it is a false positive (void would excuse it)
    gt = [[1, 1, 1, 1], [1, 2, 2, 2], [1, 1, 1, 1]]
    pred = [[1, 1, 1, 1], [2, 2, 2, 2], [1, 1, 1, 1]]
    per_class = one_image(gt, [GROUND, SPHERE], pred, [GROUND, BOX], crowd={2})
    assert (per_class["box"]["fp"], per_class["sphere"]["fn"], per_class["sphere"]["fp"]) == (1, 0, 0)


def test_crowd_pixels_stay_in_the_union():
    # a 4-pixel box (2) beside a 4-pixel box crowd (3); the prediction covers both as one box:
    # IoU = 4 / (8 + 4 - 4) = 0.5, no match (void would leave the crowd out: IoU 1); and the
    # prediction lies only half on the crowd, so it is a false positive
    gt = [[1, 1, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3], [1, 1, 1, 1]]
    pred = [[1, 1, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2], [1, 1, 1, 1]]
    box = one_image(gt, [GROUND, BOX, BOX], pred, [GROUND, BOX], crowd={3})["box"]
    assert (box["tp"], box["fp"], box["fn"]) == (0, 1, 1)


def test_exactly_half_on_void_and_crowd_is_still_a_false_positive():
    # the predicted box: 1 pixel on void, 1 on its crowd, 2 on ground: 2/4 is not "more than half"
    gt = [[0, 3, 1, 1], [1, 1, 1, 1]]
    pred = [[2, 2, 2, 2], [1, 1, 1, 1]]
    per_class = one_image(gt, [GROUND, BOX, BOX], pred, [GROUND, BOX], crowd={3})
    assert per_class["box"]["fp"] == 1
    gt = [[0, 3, 3, 1], [1, 1, 1, 1]]  # 3/4: excused
    assert one_image(gt, [GROUND, BOX, BOX], pred, [GROUND, BOX], crowd={3})["box"]["fp"] == 0


# ---- the data: COCO panoptic files -----------------------------------------------------------------
def write_coco_panoptic(root: Path, images: list[tuple[np.ndarray, list[dict]]]) -> Path:
    """A COCO panoptic dataset (images, panoptic.json, PNGs) with these ground truths."""
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "panoptic").mkdir(parents=True)
    infos, annotations = [], []
    for image_id, (ids, info) in enumerate(images, start=1):
        name = f"{image_id:06d}.png"
        write_png(root / "images" / name, np.zeros((*ids.shape, 3), np.uint8))
        write_png(root / "annotations" / "panoptic" / name, id_to_rgb(ids))
        infos.append({"id": image_id, "file_name": name, "height": ids.shape[0], "width": ids.shape[1]})
        annotations.append({"image_id": image_id, "file_name": name, "segments_info": info})
    panoptic = {"images": infos, "annotations": annotations, "categories": list(CATEGORIES.values())}
    (root / "annotations" / "panoptic.json").write_text(json.dumps(panoptic))
    return root


def test_coco_panoptic_crowd_reaches_the_metric(tmp_path):
    """Crowd segments read from a COCO panoptic directory are scored as pq_compute scores them."""
    gt = np.array([[1, 1, 1, 1], [7, 9, 9, 9], [7, 9, 9, 9], [1, 1, 1, 1]])
    gt_info = [
        {"id": 1, "category_id": GROUND, "iscrowd": 0},
        {"id": 7, "category_id": BOX, "iscrowd": 0},
        {"id": 9, "category_id": SPHERE, "iscrowd": 1},
    ]
    # a box over the box and the sphere crowd: IoU 2/8, unmatched, and a sphere crowd excuses no box
    pred = np.array([[1, 1, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2], [1, 1, 1, 1]])
    pred_info = segments([GROUND, BOX], pred)
    root = write_coco_panoptic(tmp_path / "coco", [(gt, gt_info)])
    report = evaluate(ReplayEngine([encode_prediction(pred, pred_info)]), root)["panoptic"]
    check_equal(report, reference_pq([(gt, gt_info, pred, pred_info)]))
    assert (report["per_class"]["box"]["fp"], report["per_class"]["box"]["fn"]) == (1, 1)
    assert report["per_class"]["sphere"]["pq"] is None  # a crowd alone: the class occurs nowhere


@pytest.mark.parametrize(
    ("info", "png_ids", "message"),
    [
        ([{"id": 1, "category_id": GROUND}], [[1, 5]], r"ids \[5\] are in the PNG but not in segments_info"),
        (
            [{"id": 1, "category_id": GROUND}, {"id": 4, "category_id": BOX}],
            [[1, 1]],
            r"segments \[4\] of segments_info are not in the PNG",
        ),
        ([{"id": 1, "category_id": 42}], [[1, 1]], "segment 1 has category_id 42, which the categories do not list"),
        ([{"id": 1, "category_id": SKY, "iscrowd": 1}], [[1, 1]], "crowd region .* stuff category 2 .sky."),
        ([{"id": 1, "category_id": GROUND}], [[1, 1, 1]], r"is \(1, 3, 3\), expected .* \(1, 2, 3\)"),
    ],
)
def test_coco_panoptic_annotations_that_disagree_are_refused(tmp_path, info, png_ids, message):
    root = write_coco_panoptic(tmp_path / "coco", [(np.array([[1, 1]]), info)])
    write_png(root / "annotations" / "panoptic" / "000001.png", id_to_rgb(np.array(png_ids)))
    _, samples = coco_samples(root)
    with pytest.raises(ValueError, match=message):
        next(samples)


# ---- rounding -------------------------------------------------------------------------------------
def test_huge_segments_cannot_lose_a_match_to_rounding():
    """IoU (2**24 + 1) / (2**25 + 1) is above 0.5; in float32 both round to powers of two: 0.5."""
    from segmentation_ros.tools.evaluate.metrics import _match_segments  # COCO's matching, on pixel counts

    inter, union = 2**24 + 1, 2**25 + 1
    gt_area = pred_area = (union + inter) // 2
    box = ((BOX, 1), (BOX, 1))
    overlaps = {box: inter, ((BOX, 1), (GROUND, 0)): gt_area - inter, ((GROUND, 0), (BOX, 1)): pred_area - inter}
    counts = _match_segments(overlaps, THINGS)[BOX]
    assert (counts.tp, counts.fp, counts.fn) == (1, 0, 0)
    assert counts.iou == inter / union


def test_huge_segments_in_an_image_keep_their_match():
    """The same through the metric, on a 4096x4097 image: IoU (2**23 + 2) / (2**24 + 3)."""
    height, width = 4096, 4097
    inter, union = 2**23 + 2, 2**24 + 3
    gt_area, pred_area = (union + inter) // 2, (union + inter + 1) // 2
    start = gt_area - inter  # the box of the prediction begins inside the ground truth's
    truth = np.full(height * width, GROUND * DIV, np.int64)
    truth[:gt_area] = BOX * DIV + 1
    predicted = np.full(height * width, GROUND * DIV, np.int32)
    predicted[start : start + pred_area] = BOX * DIV + 1
    metric = _PanopticMetric(SHAPES)
    panoptic = predicted.reshape(height, width)
    metric.update(PanopticResult(panoptic, panoptic, [], SHAPES, DIV), truth.reshape(height, width), DIV)
    box = metric.compute()["per_class"]["box"]
    assert (box["tp"], box["fp"], box["fn"]) == (1, 0, 0)
    assert box["sq"] == inter / union


def test_label_divisors_beyond_int32_change_nothing():
    """Ground truth encoded with label_divisor 2**40 or 2**60 (int64 values) scores as with 1000."""
    truth = np.full((4, 4), GROUND * DIV, np.int64)
    truth[1:3, 1:3] = BOX * DIV + 1
    truth[0, 0] = 0  # void
    predicted = np.full((4, 4), GROUND * DIV, np.int32)
    predicted[1:3, 1:4] = BOX * DIV + 7  # IoU 4/6
    result = PanopticResult(predicted, predicted, [], SHAPES, DIV)
    reports = []
    for divisor in (DIV, 2**40, 2**60):
        metric = _PanopticMetric(SHAPES)
        metric.update(result, truth // DIV * divisor + truth % DIV, divisor)
        reports.append(metric.compute())
    assert reports[1] == reports[0] and reports[2] == reports[0]
    assert reports[0]["per_class"]["box"]["sq"] == 4 / 6


def test_a_sample_without_instances_keeps_its_crowd_regions_for_mask_ap():
    """Mask AP's ground truth derived from the panoptic map: a thing class with instance 0 is a
    crowd annotation (COCO's ``iscrowd: 1``), not dropped."""
    from segmentation_ros.tools.evaluate.evaluation import _instances_from_panoptic

    labels = get_label_set("shapes")
    thing = labels.thing_ids[0]
    panoptic = np.zeros((8, 8), np.int64)
    panoptic[:4] = thing * DIV + 1
    panoptic[4:] = thing * DIV  # crowd of the same class
    annotations = _instances_from_panoptic(EvalSample(np.zeros((8, 8, 3), np.uint8), panoptic, DIV), labels)
    assert sorted((a["iscrowd"], a["area"]) for a in annotations) == [(0, 32.0), (1, 32.0)]
