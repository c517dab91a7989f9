"""Tests of segmentation_ros.tools.evaluate.tracking (``segmentation-ros eval --task tracking``).

The metric plumbing runs on hand-made frames (square masks, ids chosen by the test) whose MOT
numbers are known; one end-to-end run scores the demo instance model on a tiny synthetic drive.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from segmentation_ros.tools.cli import main
from segmentation_ros.tools.evaluate import TrackingMetric, format_tracking_report
from segmentation_ros.tools.evaluate.tracking import mask_iou, match_distances

H, W = 20, 40
FRAMES = 6


def square(x: int, y: int = 5, size: int = 8) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y : y + size, x : x + size] = True
    return mask


def masks(*items: np.ndarray) -> np.ndarray:
    return np.stack(items) if items else np.zeros((0, H, W), bool)


#: Two ground-truth objects (identities 7 and 9) side by side, still.
GT_IDS = np.array([7, 9])
GT_MASKS = masks(square(2), square(20))


def score(frames: list[tuple[np.ndarray, np.ndarray, dict]], variants=("tracked",)) -> dict:
    """Feed (gt_masks, pred_masks, ids per variant) frames of one sequence; the computed metrics."""
    metric = TrackingMetric(variants)
    metric.start_sequence("s")
    for gt_masks, pred_masks, ids in frames:
        metric.update(GT_IDS[: len(gt_masks)], gt_masks, pred_masks, ids)
    return metric.compute()


def test_mask_iou_and_distances():
    a, b = square(0, size=4), square(2, size=4)  # overlap 2x4 = 8 of a union of 24
    iou = mask_iou(masks(a), masks(a, b, np.zeros((H, W), bool)))
    assert iou.shape == (1, 3)
    assert iou[0, 0] == 1.0 and iou[0, 1] == pytest.approx(8 / 24) and iou[0, 2] == 0.0
    distances = match_distances(masks(a), masks(a, b))
    assert distances[0, 0] == 0.0 and math.isnan(distances[0, 1])  # IoU 1/3 < 0.5: cannot match
    assert match_distances(masks(a), masks(a, b), iou_threshold=0.3)[0, 1] == pytest.approx(1 - 8 / 24)
    assert match_distances(masks(), masks(a)).shape == (0, 1)
    with pytest.raises(ValueError, match="one size"):
        mask_iou(masks(a), np.zeros((1, H, W + 1), bool))


def test_perfect_tracking_scores_one_and_no_switches():
    frames = [(GT_MASKS, GT_MASKS, {"tracked": [1, 2]}) for _ in range(FRAMES)]
    m = score(frames)["tracked"]
    assert m["idf1"] == 1.0 and m["mota"] == 1.0 and m["switches"] == 0
    assert m["precision"] == 1.0 and m["recall"] == 1.0 and m["mean_iou"] == pytest.approx(1.0)
    assert (m["frames"], m["gt_instances"], m["gt_objects"], m["predictions"]) == (
        FRAMES,
        2 * FRAMES,
        2,
        2 * FRAMES,
    )


def test_swapping_two_ids_mid_sequence_switches_and_lowers_idf1():
    half = FRAMES // 2
    frames = [
        (GT_MASKS, GT_MASKS, {"tracked": [1, 2], "untracked": [1, 2] if t < half else [2, 1]})
        for t in range(FRAMES)
    ]
    result = score(frames, variants=("tracked", "untracked"))
    tracked, swapped = result["tracked"], result["untracked"]
    assert tracked["idf1"] == 1.0 and tracked["switches"] == 0
    assert swapped["switches"] == 2  # both objects change id once
    assert swapped["idf1"] == pytest.approx(0.5)  # each object keeps one id for half the frames
    assert swapped["mota"] == pytest.approx(1 - 2 / (2 * FRAMES))
    assert swapped["precision"] == 1.0 and swapped["recall"] == 1.0  # the detections are all right


def test_over_detected_objects_ignores_misses():
    """Object 9 is missed in frames 2 and 3; the ids of what is detected never change."""
    frames = []
    for t in range(FRAMES):
        if t in (2, 3):
            frames.append((GT_MASKS, masks(square(2)), {"tracked": [1]}))
        else:
            frames.append((GT_MASKS, GT_MASKS, {"tracked": [1, 2]}))
    result = score(frames)
    plain, detected = result["tracked"], result["over_detected"]["tracked"]
    assert plain["misses"] == 2 and plain["recall"] == pytest.approx(1 - 2 / (2 * FRAMES))
    assert plain["idf1"] < 1.0 and plain["mota"] < 1.0
    assert detected["misses"] == 0 and detected["gt_instances"] == 2 * FRAMES - 2
    assert detected["idf1"] == 1.0 and detected["mota"] == 1.0 and detected["switches"] == 0


def test_recall_by_visible_area_counts_each_band_apart():
    """A 4x4 object (16 pixels: under 64) missed in every frame and an 8x8 one (64 pixels: the
    64-256 band) missed in two: each band's recall is its own."""
    small, large = square(30, size=4), square(2)
    metric = TrackingMetric(("tracked", "untracked"))
    metric.start_sequence("s")
    for t in range(FRAMES):
        pred = masks() if t in (2, 3) else masks(large)
        ids = {"tracked": list(range(1, len(pred) + 1)), "untracked": list(range(1, len(pred) + 1))}
        metric.update(GT_IDS, masks(large, small), pred, ids)
    metric.update(GT_IDS[:0], masks(), masks(large), {"tracked": [1], "untracked": [1]})  # no objects in view
    report = metric.compute()
    bands = {tuple(b["pixels"]): b for b in report["recall_by_area"]}
    assert list(bands) == [(0, 64), (64, 256), (256, 1024), (1024, None)]
    assert (bands[0, 64]["gt_instances"], bands[0, 64]["matched"], bands[0, 64]["recall"]) == (FRAMES, 0, 0.0)
    assert (bands[64, 256]["gt_instances"], bands[64, 256]["matched"]) == (FRAMES, FRAMES - 2)
    assert bands[64, 256]["recall"] == pytest.approx(report["tracked"]["recall"] * 2)  # half the objects
    assert bands[256, 1024]["recall"] is None and bands[256, 1024]["gt_instances"] == 0
    text = format_tracking_report({"tracking": {**report, "mask_source": "masks"}, "data": {}})
    assert "recall by visible area: 0-64 px 0.0 % of 6 (50 %), 64-256 px 66.7 % of 6 (50 %)" in text


def test_over_detected_objects_ignores_false_positives_and_poor_overlaps():
    """Perfect ids with extra predictions: one overlapping object 9 too little (IoU < 0.5, so
    object 9 is missed) and one on nothing. The plain metrics count both false positives and the
    miss; over detected objects only the (object 7, id 1) pairs count, so IDF1 is 1."""
    poor = square(26)  # 2 of 8 columns of object 9: IoU 16/112
    stray = square(30, y=12, size=4)  # overlaps nothing that matches
    frames = [(GT_MASKS, masks(square(2), poor, stray), {"tracked": [1, 2, 3]}) for _ in range(FRAMES)]
    result = score(frames)
    plain, detected = result["tracked"], result["over_detected"]["tracked"]
    assert plain["false_positives"] == 2 * FRAMES and plain["misses"] == FRAMES
    assert plain["idf1"] == pytest.approx(2 * FRAMES / (2 * FRAMES + 3 * FRAMES))
    assert detected["false_positives"] == 0 and detected["misses"] == 0
    assert detected["gt_objects"] == 1 and detected["predictions"] == FRAMES
    assert detected["idf1"] == 1.0 and detected["mota"] == 1.0 and detected["switches"] == 0


def test_over_detected_objects_scores_a_swap_amid_misses_and_false_positives():
    """Both objects detected in every frame, plus a stray prediction; object 9 missed in frame 0.
    Ids 1 and 2 swap from frame 3 on: over detected objects, 6 + 5 = 11 pairs, of which the best
    track mapping (7 -> 1, 9 -> 2 over frames 0-2, i.e. 3 + 2 pairs; or the swapped mapping over
    frames 3-5, 3 + 3 pairs) keeps 6: IDF1 6/11; both objects switch once."""
    stray = square(30, y=12, size=4)
    frames = []
    for t in range(FRAMES):
        ids = [1, 2] if t < 3 else [2, 1]
        if t == 0:
            frames.append((GT_MASKS, masks(square(2), stray), {"tracked": [ids[0], 3]}))
        else:
            frames.append((GT_MASKS, masks(square(2), square(20), stray), {"tracked": [*ids, 3]}))
    result = score(frames)
    plain, detected = result["tracked"], result["over_detected"]["tracked"]
    assert plain["false_positives"] == FRAMES and plain["misses"] == 1
    assert detected["false_positives"] == 0 and detected["misses"] == 0
    assert detected["matches"] + detected["switches"] == 11  # (motmetrics counts a switch apart)
    assert detected["idf1"] == pytest.approx(6 / 11)
    assert detected["idp"] == detected["idr"] == detected["idf1"]
    assert detected["switches"] == plain["switches"] == 2  # the same pairs, the same switches


def test_sequences_are_scored_apart_and_summed():
    """The same ids in two sequences are two tracks each: no switch where a sequence starts over
    with other ids, and the overall counts are the sums."""
    metric = TrackingMetric(("tracked",))
    for name, ids in (("a", [1, 2]), ("b", [5, 6])):
        metric.start_sequence(name)
        for _ in range(FRAMES):
            metric.update(GT_IDS, GT_MASKS, GT_MASKS, {"tracked": ids})
    result = metric.compute()
    assert [s["name"] for s in result["sequences"]] == ["a", "b"]
    assert all(s["tracked"]["idf1"] == 1.0 for s in result["sequences"])
    assert result["tracked"]["switches"] == 0 and result["tracked"]["gt_instances"] == 4 * FRAMES
    with pytest.raises(ValueError, match="given twice"):
        metric.start_sequence("a")


def test_bad_input_is_an_error():
    metric = TrackingMetric(("tracked", "untracked"))
    with pytest.raises(ValueError, match="exactly"):
        metric.update(GT_IDS, GT_MASKS, GT_MASKS, {"tracked": [1, 2]})
    with pytest.raises(ValueError, match="unique"):
        metric.update(GT_IDS, GT_MASKS, GT_MASKS, {"tracked": [1, 1], "untracked": [1, 2]})
    with pytest.raises(ValueError, match="2 masks"):
        metric.update(GT_IDS, GT_MASKS, GT_MASKS, {"tracked": [1], "untracked": [1, 2]})
    with pytest.raises(ValueError, match="no frames"):
        TrackingMetric().compute()


def test_cli_eval_tracking_end_to_end(tmp_path, capsys):
    """The demo instance model on two short held-out drives: the report's keys and ranges, and the
    tracker switches ids no more often than the per-frame ids do."""
    out = tmp_path / "tracking.json"
    argv = ["eval", "--task", "tracking", "--model", "shapes_maskrcnn", "--device", "cpu"]
    argv += ["--data", "synthetic:96x72", "--num", "2", "--frames", "5", "--quiet", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "IDF1" in printed and "tracked (detected)" in printed
    report = json.loads(out.read_text())
    config = report["config"]
    assert config["task"] == "tracking" and config["models"] == {"instance": "shapes_maskrcnn"}
    assert (config["seeds"], config["frames_per_sequence"], config["resolution"]) == ([0, 1], 5, "96x72")
    assert config["split"] == "test"  # the default: in-distribution drives
    assert report["data"]["frames"] == 10 and report["data"]["label_set"] == "shapes"
    tracking = report["tracking"]
    assert set(tracking) >= {"tracked", "untracked", "over_detected", "sequences", "definitions"}
    assert [s["name"] for s in tracking["sequences"]] == ["seed 0", "seed 1"]
    rows = [tracking["tracked"], tracking["untracked"], *tracking["over_detected"].values()]
    for m in rows:
        assert m["frames"] == 10 and m["gt_instances"] > 0
        assert m["switches"] >= 0
        assert m["mota"] is None or m["mota"] <= 1.0
        for key in ("idf1", "idp", "idr", "precision", "recall"):
            assert m[key] is None or 0.0 <= m[key] <= 1.0, (key, m[key])
    tracked, untracked = tracking["tracked"], tracking["untracked"]
    assert tracked["predictions"] == untracked["predictions"] > 0  # the same detections, other ids
    assert tracked["matches"] > 0
    assert tracked["switches"] <= untracked["switches"]
    for v in ("tracked", "untracked"):
        detected = tracking["over_detected"][v]
        assert detected["misses"] == 0 and detected["false_positives"] == 0
        assert detected["switches"] == tracking[v]["switches"]
        assert detected["matches"] + detected["switches"] == tracking[v]["matches"] + tracking[v]["switches"]
    assert report["timing"]["tracker_ms_per_frame"] >= 0
    assert format_tracking_report(report).splitlines()[0].split()[:2] == ["ids", "IDF1"]


def test_cli_eval_tracking_ood_split(tmp_path, requested_splits):
    """``--split ood``: the drives come from the out-of-distribution split and the report says so."""
    splits = requested_splits("generate_sequence")
    out = tmp_path / "tracking.json"
    argv = ["eval", "--task", "tracking", "--model", "shapes_maskrcnn", "--device", "cpu", "--split", "ood"]
    argv += ["--data", "synthetic:64x48", "--num", "1", "--frames", "2", "--quiet", "--json", str(out)]
    assert main(argv) == 0
    assert splits == ["ood"]
    report = json.loads(out.read_text())
    assert report["config"]["split"] == "ood" and report["data"]["frames"] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "tracking", "--data", "some/dir"], "synthetic"),
        (["--task", "tracking", "--data", "synthetic:32x32", "--frames", "0"], "--frames"),
        (["--data", "synthetic:32x32", "--frames", "3"], "--task tracking"),
    ],
)
def test_cli_eval_tracking_bad_options(capsys, argv, message):
    rc = main(["eval", "--model", "shapes_maskrcnn", "--device", "cpu", *argv])
    assert rc == 2
    assert message in capsys.readouterr().err
