"""Tests of segmentation_ros.tools.evaluate: metric values on cases with known answers, and the CLI.

Predictions are built straight from ground truth (a fake engine), so every expected number is
either 1 or worked out by hand in the test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from segmentation_ros.engine.labels import get_label_set
from segmentation_ros.engine.results import InstanceResult, PanopticResult, Segmentation, SemanticResult
from segmentation_ros.tools.cli import main
from segmentation_ros.tools.evaluate import EvalSample, evaluate, format_report
from segmentation_ros.tools.synthetic import generate_scenes, to_coco

SHAPES = get_label_set("shapes")
VOID, GROUND, SKY, BOX = 0, 1, 2, 3
DIV = 1000
W, H = 64, 48


# ---- fake engines ---------------------------------------------------------------------------------
def prediction(
    panoptic: np.ndarray,
    *,
    semantic: np.ndarray | None = None,
    scores: list[float] | None = None,
    label_set=SHAPES,
) -> Segmentation:
    """A Segmentation whose every part is read off an encoded panoptic map ``class * DIV + instance``.

    Thing segments become instances 1..N (in order of their panoptic value) with full masks equal
    to their pixels and boxes that enclose them; semantic labels default to the panoptic classes.
    """
    panoptic = np.asarray(panoptic, dtype=np.int64)
    height, width = panoptic.shape
    values = [v for v in np.unique(panoptic).tolist() if v % DIV and v // DIV in label_set.thing_ids]
    masks = np.stack([panoptic == v for v in values]) if values else np.zeros((0, height, width), bool)
    instance_ids = np.zeros((height, width), np.uint16)
    boxes = []
    for k, mask in enumerate(masks, start=1):
        instance_ids[mask] = k
        ys, xs = np.nonzero(mask)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    n = len(values)
    instances = InstanceResult(
        ids=np.arange(1, n + 1, dtype=np.int32),
        class_ids=np.array([v // DIV for v in values], np.int64),
        scores=np.array(scores if scores is not None else [1.0] * n, np.float32),
        boxes=np.array(boxes, np.float32).reshape(n, 4),
        masks=torch.from_numpy(masks),
        instance_ids=instance_ids,
        label_set=label_set,
    )
    labels = (panoptic // DIV if semantic is None else semantic).astype(np.uint8)
    _, segment_ids = np.unique(panoptic, return_inverse=True)
    return Segmentation(
        height,
        width,
        semantic=SemanticResult(labels, np.full_like(labels, 255), label_set),
        instances=instances,
        panoptic=PanopticResult(
            segment_ids.reshape(panoptic.shape).astype(np.int32),
            panoptic.astype(np.int32),
            [],
            label_set,
            DIV,
        ),
    )


class ReplayEngine:
    """Returns prepared results in call order."""

    def __init__(self, results: list[Segmentation]):
        self.results = list(results)

    def __call__(self, frames):
        return [self.results.pop(0) for _ in frames]


class PerfectEngine:
    """Looks each frame up among the scenes and answers with that scene's ground truth."""

    def __init__(self, scenes):
        self.truth = {s.image.tobytes(): s for s in scenes}

    def __call__(self, frames):
        out = []
        for frame in frames:
            scene = self.truth[np.ascontiguousarray(frame).tobytes()]
            assert scene.label_divisor == DIV
            out.append(prediction(scene.panoptic, semantic=scene.semantic))
        return out


def sample(panoptic: np.ndarray, semantic: np.ndarray | None = None) -> EvalSample:
    image = np.zeros((*panoptic.shape, 3), np.uint8)
    return EvalSample(
        image=image, panoptic=np.asarray(panoptic, np.int64), label_divisor=DIV, semantic=semantic
    )


def run(truth: EvalSample, predicted: Segmentation, **kwargs) -> dict:
    return evaluate(ReplayEngine([predicted]), [truth], label_set=SHAPES, **kwargs)


@pytest.fixture(scope="module")
def scenes():
    frames = list(generate_scenes(2, 0, W, H, split="test"))
    assert sum(s.num_instances for s in frames) > 0, "the fixture needs instances to score"
    return frames


# ---- ground truth fed back ------------------------------------------------------------------------
def check_perfect(report: dict) -> None:
    sem, inst, pan = report["semantic"], report["instance"], report["panoptic"]
    assert sem["miou"] == pytest.approx(1.0)
    assert sem["pixel_accuracy"] == pytest.approx(1.0)
    assert all(r["iou"] in (None, pytest.approx(1.0)) for r in sem["per_class"].values())
    for iou_type in ("segm", "bbox"):
        assert inst[iou_type]["ap"] == pytest.approx(1.0)
        assert inst[iou_type]["ap50"] == pytest.approx(1.0)
    for group in ("all", "things", "stuff"):
        assert pan[group]["pq"] == pytest.approx(1.0)
        assert pan[group]["sq"] == pytest.approx(1.0)
        assert pan[group]["rq"] == pytest.approx(1.0)


@pytest.mark.parametrize("mask_source", ["masks", "instance_ids"])
def test_ground_truth_as_prediction_scores_one(scenes, mask_source):
    report = evaluate(PerfectEngine(scenes), scenes, mask_source=mask_source, batch_size=2)
    check_perfect(report)
    assert report["data"]["images"] == 2
    assert report["data"]["resolutions"] == {f"{W}x{H}": 2}
    assert report["instance"]["gt_instances"] == sum(s.num_instances for s in scenes)
    assert report["instance"]["mask_source"] == mask_source
    json.dumps(report, allow_nan=False)  # JSON-ready: no NaN, no numpy types
    assert "PQ" in format_report(report)


def test_coco_directory_with_perfect_predictions(scenes, tmp_path):
    dataset = to_coco(scenes, tmp_path / "coco")
    report = evaluate(PerfectEngine(scenes), dataset.root)
    check_perfect(report)
    assert report["data"]["images"] == 2
    assert report["instance"]["gt_instances"] == sum(s.num_instances for s in scenes)
    only_one = evaluate(PerfectEngine(scenes), str(dataset.root), num=1)
    assert only_one["data"]["images"] == 1


@pytest.mark.parametrize("num", [None, 1, 5])
def test_progress_bar_counts_the_images_of_a_coco_directory(scenes, tmp_path, capsys, num):
    dataset = to_coco(scenes, tmp_path / "coco")
    report = evaluate(PerfectEngine(scenes), str(dataset.root), num=num, progress=True)
    images = report["data"]["images"]
    assert images == min(num or 2, 2)
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert f" {images}/{images} " in bar, bar  # not the length of the path string, nor --num


# ---- hand-made cases ------------------------------------------------------------------------------
def test_semantic_iou_by_hand():
    truth = np.full((4, 4), GROUND * DIV)
    truth[2:] = SKY * DIV  # 8 ground pixels over 8 sky pixels
    predicted = truth.copy()
    predicted[0, :] = SKY * DIV  # half the ground pixels called sky
    sem = run(sample(truth), prediction(predicted))["semantic"]
    # ground: 4 right / (8 ground + 4 predicted ground - 4); sky: 8 / (8 + 12 - 8)
    assert sem["per_class"]["ground"]["iou"] == pytest.approx(4 / 8)
    assert sem["per_class"]["sky"]["iou"] == pytest.approx(8 / 12)
    assert sem["miou"] == pytest.approx((4 / 8 + 8 / 12) / 2)
    assert sem["pixel_accuracy"] == pytest.approx(12 / 16)
    assert sem["per_class"]["ground"]["accuracy"] == pytest.approx(0.5)
    assert sem["per_class"]["box"]["iou"] is None  # nowhere: left out of the mean


def test_predicted_void_is_a_wrong_semantic_label():
    truth = np.full((4, 4), GROUND * DIV)
    predicted = truth.copy()
    predicted[0, :2] = VOID
    sem = run(sample(truth), prediction(predicted))["semantic"]
    assert sem["per_class"]["ground"]["iou"] == pytest.approx(14 / 16)
    assert sem["pixel_accuracy"] == pytest.approx(14 / 16)


def test_void_ground_truth_is_ignored():
    truth = np.full((8, 8), GROUND * DIV)
    truth[:3, :3] = VOID  # 9 unlabeled pixels
    predicted = np.full((8, 8), GROUND * DIV)
    predicted[:3, :3] = BOX * DIV + 1  # an object on the void: no false positive, no wrong pixel
    report = run(sample(truth), prediction(predicted))
    sem, pan = report["semantic"], report["panoptic"]
    assert sem["miou"] == pytest.approx(1.0)
    assert sem["pixel_accuracy"] == pytest.approx(1.0)
    assert sem["pixels"] == 64 - 9
    assert sem["per_class"]["box"]["iou"] is None
    assert pan["all"]["pq"] == pytest.approx(1.0)
    assert pan["per_class"]["box"]["fp"] == 0
    assert pan["per_class"]["box"]["pq"] is None  # occurs nowhere: not averaged
    assert report["instance"]["segm"]["ap"] is None  # no ground-truth instance: AP undefined


def test_missed_instance_lowers_recall_and_ap():
    truth = np.full((10, 10), GROUND * DIV)
    truth[1:4, 1:4] = BOX * DIV + 1
    truth[6:9, 6:9] = BOX * DIV + 2
    predicted = truth.copy()
    predicted[6:9, 6:9] = GROUND * DIV  # the second box is missed
    inst = run(sample(truth), prediction(predicted, scores=[0.9]))["instance"]
    # precision 1 up to recall 0.5 and nothing beyond: 51 of COCO's 101 recall points
    for iou_type in ("segm", "bbox"):
        assert inst[iou_type]["ap"] == pytest.approx(51 / 101)
        assert inst[iou_type]["ap50"] == pytest.approx(51 / 101)
        assert inst[iou_type]["ar100"] == pytest.approx(0.5)
        assert inst[iou_type]["per_class"]["box"]["ap"] == pytest.approx(51 / 101)
    assert inst["gt_instances"] == 2
    assert inst["predictions"] == 1


def test_split_instance_pq_by_hand():
    truth = np.full((8, 8), GROUND * DIV)
    truth[2:6, 2:6] = BOX * DIV + 1  # one box of 16 pixels
    predicted = truth.copy()
    predicted[5, 2:6] = BOX * DIV + 2  # split 12 + 4: IoU 12/16 matches, the 4-pixel piece is a FP
    pan = run(sample(truth), prediction(predicted))["panoptic"]
    box = pan["per_class"]["box"]
    assert (box["tp"], box["fp"], box["fn"]) == (1, 1, 0)
    assert box["sq"] == pytest.approx(0.75)
    assert box["rq"] == pytest.approx(1 / (1 + 0.5))
    assert box["pq"] == pytest.approx(0.5)
    assert pan["per_class"]["ground"]["pq"] == pytest.approx(1.0)
    assert pan["things"]["pq"] == pytest.approx(0.5)
    assert pan["stuff"]["pq"] == pytest.approx(1.0)
    assert pan["all"]["pq"] == pytest.approx(0.75)
    assert pan["all"]["n"] == 2  # box and ground; sky, sphere, cylinder occur nowhere


def test_predicted_void_counts_against_the_segment_as_in_coco():
    truth = np.full((8, 8), GROUND * DIV)
    truth[2:6, 2:6] = BOX * DIV + 1
    predicted = truth.copy()
    predicted[5, 2:6] = VOID  # 4 of the box's 16 pixels left unlabeled
    pan = run(sample(truth), prediction(predicted))["panoptic"]
    # COCO: union = 12 + 16 - 12 = 16 -> IoU 0.75 (torchmetrics alone would excuse the 4 pixels: 1.0)
    assert pan["per_class"]["box"]["sq"] == pytest.approx(0.75)
    assert pan["per_class"]["box"]["pq"] == pytest.approx(0.75)


def test_unmatched_segment_mostly_predicted_void_is_still_a_false_negative():
    truth = np.full((8, 8), GROUND * DIV)
    truth[2:6, 2:6] = BOX * DIV + 1
    predicted = truth.copy()
    predicted[2:6, 2:6] = VOID  # the box not predicted at all
    box = run(sample(truth), prediction(predicted))["panoptic"]["per_class"]["box"]
    assert (box["tp"], box["fp"], box["fn"]) == (0, 0, 1)
    assert box["pq"] == pytest.approx(0.0)


def test_images_stay_apart_whatever_their_ids():
    """Image ids 0 and 1 (COCO ids may start at 0), or no ids: the metrics keep the images apart."""
    with_box = np.full((8, 8), GROUND * DIV)
    with_box[2:5, 2:5] = BOX * DIV + 1
    ground = np.full((8, 8), GROUND * DIV)
    for ids in [(0, 1), (1, 1), (None, 1), (None, None)]:
        truth = [sample(with_box), sample(ground)]
        for s, image_id in zip(truth, ids, strict=True):
            s.image_id = image_id
        # The box is missed in the first image; the detection in the second is a false positive.
        report = evaluate(ReplayEngine([prediction(ground), prediction(with_box)]), truth, label_set=SHAPES)
        assert report["instance"]["gt_instances"] == 1 and report["instance"]["predictions"] == 1
        assert report["instance"]["segm"]["ap"] == 0.0, ids
        assert report["instance"]["bbox"]["ap"] == 0.0, ids


def test_model_with_other_classes_is_refused():
    truth = np.full((4, 4), GROUND * DIV)
    voc = get_label_set("voc")
    with pytest.raises(ValueError, match="--labels shapes"):
        run(sample(truth), prediction(truth, label_set=voc))


def test_result_of_wrong_size_is_refused():
    truth = np.full((4, 4), GROUND * DIV)
    with pytest.raises(ValueError, match="5x4"):
        run(sample(truth), prediction(np.full((4, 5), GROUND * DIV)))


def test_empty_data_is_refused():
    with pytest.raises(ValueError, match="empty"):
        evaluate(ReplayEngine([]), [], label_set=SHAPES)


# ---- command line ---------------------------------------------------------------------------------
def test_cli_eval_writes_json(tmp_path, capsys):
    out = tmp_path / "eval.json"
    rc = main(
        [
            "eval",
            "--model",
            "lraspp_mobilenet_v3_large",
            "--weights",
            "none",
            "--labels",
            "shapes",
            "--device",
            "cpu",
            "--data",
            "synthetic:48x32",
            "--num",
            "2",
            "--json",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    report = json.loads(out.read_text())
    config = report["config"]
    assert config["task"] == "semantic"
    assert config["models"] == {"semantic": "lraspp_mobilenet_v3_large"}
    assert config["weights"] == {"semantic": "none"}
    assert (config["data"], config["split"], config["num"], config["resolution"]) == (
        "synthetic:48x32",
        "test",
        2,
        "48x32",
    )
    assert set(report["semantic"]) >= {"miou", "pixel_accuracy", "mean_accuracy", "per_class"}
    assert set(report["semantic"]["per_class"]) == {"ground", "sky", "box", "sphere", "cylinder"}
    assert 0.0 <= report["semantic"]["pixel_accuracy"] <= 1.0
    assert report["timing"]["wall_time_s"] > 0
    assert report["engine"]["semantic_model"] == "lraspp_mobilenet_v3_large"
    assert report["engine"]["semantic_weights_source"] == "none (random init)"  # what load_weights said
    assert "instance" not in report and "panoptic" not in report
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "ground" in printed


def test_cli_eval_ood_split_scores_the_ood_frames(tmp_path, requested_splits):
    """``--split ood``: the generator is asked for the out-of-distribution split and the report says so."""
    splits = requested_splits("generate_scenes")
    out = tmp_path / "eval.json"
    argv = ["eval", "--model", "shapes_lraspp", "--device", "cpu", "--data", "synthetic:48x32", "--num", "2"]
    assert main([*argv, "--split", "ood", "--json", str(out), "--quiet"]) == 0
    assert splits == ["ood"]
    config = json.loads(out.read_text())["config"]
    assert (config["split"], config["num"], config["resolution"]) == ("ood", 2, "48x32")


def test_cli_eval_split_is_for_synthetic_data(tmp_path, capsys):
    """A dataset directory has no splits: ``--split ood`` with one is an error before any model loads."""
    rc = main(["eval", "--weights", "none", "--device", "cpu", "--data", str(tmp_path), "--split", "ood"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--split ood is for synthetic data" in err and str(tmp_path) in err
    with pytest.raises(SystemExit) as exc:  # not an evaluation split: argparse says which are
        main(["eval", "--weights", "none", "--device", "cpu", "--data", "synthetic", "--split", "train"])
    assert exc.value.code == 2
    assert "invalid choice: 'train'" in capsys.readouterr().err


def test_cli_eval_bad_data_is_an_error(capsys):
    rc = main(["eval", "--weights", "none", "--device", "cpu", "--data", "no/such/dir"])
    assert rc == 2
    assert "--data" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("data", "message"),
    [("synthetic:8x8", "at least 16x16"), ("synthetic:big", "WIDTHxHEIGHT"), ("synthetic:", "WIDTHxHEIGHT")],
)
def test_cli_eval_synthetic_size_rules_are_trains(capsys, data, message):
    """eval and train read --data with one parser (segmentation_ros.tools.synthetic.parse_synthetic_spec)."""
    rc = main(["eval", "--weights", "none", "--device", "cpu", "--data", data])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_segment_in_batches_checks_what_the_engine_returns() -> None:
    from types import SimpleNamespace

    from segmentation_ros.tools.evaluate.evaluation import segment_in_batches

    items = [SimpleNamespace(image=np.zeros((4, 6, 3), np.uint8), name=f"f{i}") for i in range(5)]

    def engine(images: list) -> list:
        return [Segmentation(height=im.shape[0], width=im.shape[1]) for im in images]

    batches = list(segment_in_batches(engine, items, 2))
    assert [len(b) for b, _, _ in batches] == [2, 2, 1] and all(s >= 0 for _, _, s in batches)
    with pytest.raises(ValueError, match="1 results for 2 frames"):
        list(segment_in_batches(lambda images: engine(images)[:1], items, 2))
    with pytest.raises(ValueError, match="f0: result is 3x2, image is 6x4"):
        list(
            segment_in_batches(lambda images: [Segmentation(2, 3)] * len(images), items, 2, lambda i: i.name)
        )


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda data: data.pop("categories"), "no 'categories' field"),
        (lambda data: data["categories"].clear(), "the annotations list no categories"),
        (lambda data: data["categories"][0].pop("id"), "no 'id' field"),
        (lambda data: data.pop("images"), "no 'images' field"),
    ],
)
def test_a_coco_file_that_is_not_coco_is_refused_naming_it(scenes, tmp_path, edit, reason):
    from segmentation_ros.tools.evaluate import CocoReader

    to_coco(scenes[:1], tmp_path)
    path = tmp_path / "annotations" / "panoptic.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"COCO annotations {path}: .*{reason}"):
        CocoReader(tmp_path)


def test_semantic_confusion_is_sized_by_the_classes_not_their_largest_id():
    """Two classes with ids 7 and 65535: a 3x3 matrix (65536^2 int64 would be 34 GB). A predicted id
    the data does not know (300) is a wrong answer; a ground-truth one is void (ignored)."""
    from segmentation_ros.engine.labels import LabelSet
    from segmentation_ros.tools.evaluate.metrics import _SemanticMetric

    labels = LabelSet.from_dict(
        {"name": "sparse", "void_id": 0, "classes": [{"id": 0, "name": "void"}, {"id": 7, "name": "a"}, {"id": 65535, "name": "b"}]}
    )
    metric = _SemanticMetric(labels)
    assert metric.matrix.confmat.shape == (3, 3)
    truth = np.array([[7, 7, 65535, 65535], [0, 300, 7, 65535]])
    predicted = np.array([[7, 300, 65535, 7], [7, 7, 7, 65535]])
    metric.update(predicted, truth)
    sem = metric.compute()
    # counted: (a,a) x2, (a,unknown), (b,b) x2, (b,a); a: 2 right of 3 true and 3 predicted; b: 2 of 3 and 2
    assert sem["pixels"] == 6  # void and the unknown ground-truth id are left out
    assert sem["per_class"]["a"]["iou"] == pytest.approx(2 / 4)  # right at 2; 1 unknown, 1 b called a
    assert sem["per_class"]["b"]["iou"] == pytest.approx(2 / 3)
    assert sem["pixel_accuracy"] == pytest.approx(4 / 6)
