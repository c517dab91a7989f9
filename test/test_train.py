"""``segmentation-ros train`` and the shipped demo models: loss falls, resume is exact, weights load;
empty weights and malformed checkpoints to resume from are clear errors naming the file."""

from __future__ import annotations

import io
import itertools
import json
import re
from copy import deepcopy
from pathlib import Path

import numpy as np
import pytest
import torch

from segmentation_ros.engine.imageio import read_image, write_png
from segmentation_ros.engine.labels import LabelSet, get_label_set
from segmentation_ros.engine.models.shapes import TRAIN_SIZE
from segmentation_ros.engine.panoptic import id_to_rgb, rgb_to_id
from segmentation_ros.engine.paths import models_dir
from segmentation_ros.engine.pipeline import SegmentationEngine
from segmentation_ros.engine.registry import build_model, get_model_entry
from segmentation_ros.engine.weights import WeightsError
from segmentation_ros.tools import train as train_module
from segmentation_ros.tools.cli import build_parser, main
from segmentation_ros.tools.evaluate import coco_samples
from segmentation_ros.tools.synthetic import generate_scene, generate_scenes, write_dataset
from segmentation_ros.tools.train import (
    CHECKPOINT_NAME,
    LOG_NAME,
    TrainConfig,
    instance_targets,
    parse_data_spec,
    train,
)

DEMO_WEIGHTS = ("shapes_lraspp.pt", "shapes_maskrcnn.pt")
MAX_WEIGHTS_BYTES = 25 * 1024 * 1024


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / LOG_NAME).read_text().splitlines()]


@pytest.fixture(scope="module")
def two_frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A COCO dataset of two frames: with batch size 2 every step sees the same batch."""
    root = tmp_path_factory.mktemp("coco")
    write_dataset(root, 2, seed=3, width=64, height=48, split="train", num_objects=(3, 5))
    return root


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools on numpy 2
@pytest.mark.parametrize(
    ("model", "lr", "steps"),
    [("shapes_lraspp", 3e-3, 8), ("shapes_maskrcnn", 1e-3, 8)],
)
def test_loss_falls_on_a_repeated_batch(
    two_frames: Path, tmp_path: Path, model: str, lr: float, steps: int
) -> None:
    cfg = TrainConfig(
        model=model,
        data=str(two_frames),
        out=str(tmp_path),
        steps=steps,
        batch_size=2,
        lr=lr,
        warmup_steps=0,
        seed=0,
        progress=False,
    )
    summary = train(cfg)
    losses = _losses(tmp_path)
    assert summary["steps"] == steps and len(losses) == steps
    assert all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < 0.6 * np.mean(losses[:2]), losses  # about 0.3 when written
    loaded = build_model(model, str(tmp_path / f"{model}.pt"))  # the exported weights load back
    assert loaded.labels.name == "shapes"


@pytest.fixture
def one_thread():
    """Bit-exact comparisons of two training runs: with several intra-op threads, CPU kernels may sum
    in a different order from run to run (seen: about one run in three differed by 1e-8 in a Mask
    R-CNN weight), which says nothing about what a resume restores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("model", "data", "steps", "batch_size"),
    [
        ("shapes_lraspp", "synthetic:48x32", 4, 2),
        # Mask R-CNN samples proposals from torch's global RNG: the restored state must be the one
        # the uninterrupted run had at that step (the data loader must not draw from it).
        ("shapes_maskrcnn", "synthetic:64x48", 3, 1),
    ],
)
@pytest.mark.usefixtures("one_thread")
def test_resume_continues_where_the_run_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str, data: str, steps: int, batch_size: int
) -> None:
    common = dict(
        model=model,
        data=data,
        steps=steps,
        batch_size=batch_size,
        warmup_steps=1,
        checkpoint_every=2,
        seed=1,
        progress=False,
    )
    straight = tmp_path / "straight"
    train(TrainConfig(out=str(straight), **common))

    interrupted = tmp_path / "interrupted"
    real_loss = train_module._loss
    calls = {"n": 0}

    def failing_loss(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the run dies during step 3: the last checkpoint is step 2
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(train_module, "_loss", failing_loss)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(out=str(interrupted), **common))
    monkeypatch.setattr(train_module, "_loss", real_loss)

    saved = torch.load(interrupted / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
    assert saved["meta"]["step"] == 2 and saved["arch"] == model
    assert {"optimizer", "scheduler", "rng"} <= set(saved["meta"])

    summary = train(TrainConfig(out=str(interrupted), resume=True, **common))
    assert summary["steps"] == steps
    logged = [json.loads(line)["step"] for line in (interrupted / LOG_NAME).read_text().splitlines()]
    assert logged == list(range(1, steps + 1))
    a = torch.load(straight / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
    b = torch.load(interrupted / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
    assert a["meta"]["step"] == b["meta"]["step"] == steps
    for key, value in a["model"].items():
        assert torch.equal(b["model"][key], value), key  # bit-identical to the uninterrupted run
    assert _losses(interrupted) == _losses(straight)

    # Resuming a finished run changes nothing.
    again = train(TrainConfig(out=str(interrupted), resume=True, **common))
    assert again["steps"] == steps
    c = torch.load(interrupted / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
    for key, value in b["model"].items():
        assert torch.equal(c["model"][key], value), key


def test_log_records_the_learning_rate_each_step_used(tmp_path: Path) -> None:
    cfg = TrainConfig(
        model="shapes_lraspp",
        data="synthetic:32x24",
        out=str(tmp_path),
        steps=3,
        batch_size=1,
        lr=1e-3,
        warmup_steps=2,
        progress=False,
    )
    train(cfg)
    logged = [json.loads(line)["lr"] for line in (tmp_path / LOG_NAME).read_text().splitlines()]
    # linear warm-up over 2 steps (1/2, 2/2), then cosine from the peak: step 3 is its start
    assert logged == pytest.approx([5e-4, 1e-3, 1e-3])


def test_rng_state_round_trip_cpu_and_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    state = train_module._rng_state(cpu)
    assert set(state) == {"torch"}  # no CUDA stream saved (nor CUDA initialised) on CPU runs
    first = torch.rand(4)
    train_module._set_rng_state(state, cpu)
    assert torch.equal(torch.rand(4), first)

    # On CUDA each GPU's stream is saved and restored too (faked here: this needs no GPU).
    gpu_states = [torch.arange(8, dtype=torch.uint8), torch.arange(8, 16, dtype=torch.uint8)]
    restored: list[tuple[int, torch.Tensor]] = []
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in gpu_states])
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device: restored.append((device, s)))
    cuda = torch.device("cuda")
    buffer = io.BytesIO()
    torch.save({"rng": train_module._rng_state(cuda)}, buffer)  # as the checkpoint stores it
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)["rng"]
    assert [t.tolist() for t in state["cuda"]] == [t.tolist() for t in gpu_states]
    train_module._set_rng_state(state, cuda)
    assert [(i, t.tolist()) for i, t in restored] == [(i, t.tolist()) for i, t in enumerate(gpu_states)]
    restored.clear()
    train_module._set_rng_state(state, cpu)  # a CPU resume of a CUDA run leaves the GPUs alone
    assert restored == []


def test_coco_semantic_without_void_id_ignores_unlabelled_pixels(tmp_path: Path) -> None:
    write_dataset(tmp_path, 1, seed=3, width=32, height=24, split="train")
    pan_json = tmp_path / "annotations" / "panoptic.json"
    data = json.loads(pan_json.read_text())
    dropped = data["annotations"][0]["segments_info"].pop(0)  # its pixels are now unlabelled
    pan_json.write_text(json.dumps(data))
    png = tmp_path / "annotations" / "panoptic" / data["annotations"][0]["file_name"]
    segment_ids = rgb_to_id(read_image(png))
    assert (segment_ids == dropped["id"]).any()
    segment_ids[segment_ids == dropped["id"]] = 0  # void in the PNG too (the reader refuses unlisted ids)
    write_png(png, id_to_rgb(segment_ids))
    shapes = get_label_set("shapes")
    expected = np.full(segment_ids.shape, -100)  # the ignore index of the loss, not class 0
    for seg in data["annotations"][0]["segments_info"]:
        expected[segment_ids == seg["id"]] = shapes.by_name(
            next(c["name"] for c in data["categories"] if c["id"] == seg["category_id"])
        ).id

    no_void = LabelSet("shapes without void", shapes.classes, void_id=None)  # class 0 is a real class
    semantic = train_module._CocoSource(tmp_path, "semantic", no_void)[0].semantic
    np.testing.assert_array_equal(semantic, expected)
    with_void = train_module._CocoSource(tmp_path, "semantic", shapes)[0].semantic
    np.testing.assert_array_equal(with_void, np.where(expected == -100, shapes.void_id, expected))


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools on numpy 2
def test_coco_instances_read_every_segmentation_form(tmp_path: Path) -> None:
    """Compressed RLE (as written), uncompressed RLE and polygons all become the same masks."""
    write_dataset(tmp_path, 1, seed=8, width=32, height=24, split="train", num_objects=(2, 3))  # 2 objects in view
    labels = get_label_set("shapes")
    original = train_module._CocoSource(tmp_path, "instance", labels)[0]
    assert original.masks is not None and len(original.masks) >= 2
    path = tmp_path / "annotations" / "instances.json"
    data = json.loads(path.read_text())
    anns = [a for a in data["annotations"] if not a.get("iscrowd", 0)]
    column_major = original.masks[0].flatten(order="F").tolist()
    runs = [len(list(group)) for _, group in itertools.groupby(column_major)]
    anns[0]["segmentation"] = {"size": [24, 32], "counts": ([0] if column_major[0] else []) + runs}
    anns[1]["segmentation"] = [[2, 2, 10, 2, 10, 8, 2, 8]]  # the rectangle x 2..10, y 2..8
    path.write_text(json.dumps(data))

    read = train_module._CocoSource(tmp_path, "instance", labels)[0]
    assert read.masks is not None and read.classes is not None
    rectangle = np.zeros((24, 32), bool)
    rectangle[2:8, 2:10] = True
    np.testing.assert_array_equal(read.masks[0], original.masks[0])
    np.testing.assert_array_equal(read.masks[1], rectangle)
    np.testing.assert_array_equal(read.masks[2:], original.masks[2:])
    np.testing.assert_array_equal(read.classes, original.classes)


def _renumber_categories(root: Path, shift: int) -> None:
    """Add ``shift`` to every category id of both JSONs and to the annotations' references to them."""
    for name in ("instances.json", "panoptic.json"):
        path = root / "annotations" / name
        data = json.loads(path.read_text())
        for category in data["categories"]:
            category["id"] += shift
        for annotation in data["annotations"]:
            for item in (annotation, *annotation.get("segments_info", [])):
                if "category_id" in item:
                    item["category_id"] += shift
        path.write_text(json.dumps(data))


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools on numpy 2
def test_coco_training_reads_what_evaluation_reads(tmp_path: Path) -> None:
    """One COCO reader: training's frames are the evaluation's samples, in the model's class ids."""
    from pycocotools import mask as mask_utils

    scenes = list(generate_scenes(2, 8, 32, 24, split="train", num_objects=(2, 3)))  # 2 + 2 objects in view
    write_dataset(tmp_path, 2, seed=8, width=32, height=24, split="train", num_objects=(2, 3))
    _renumber_categories(tmp_path, 10)  # dataset ids are no label ids: matched by name
    shapes = get_label_set("shapes")
    data_labels, samples = coco_samples(tmp_path)
    to_model = {c.id: shapes.by_name(c.name).id for c in data_labels.classes}  # void "unlabeled" too
    semantic = train_module._CocoSource(tmp_path, "semantic", shapes)
    instance = train_module._CocoSource(tmp_path, "instance", shapes)
    assert len(semantic) == len(instance) == len(samples) == 2
    for i, (scene, sample) in enumerate(zip(scenes, samples, strict=True)):
        assert sample.semantic is not None and sample.instances is not None
        np.testing.assert_array_equal(semantic[i].image, sample.image)
        np.testing.assert_array_equal(semantic[i].semantic, np.vectorize(to_model.get)(sample.semantic))
        np.testing.assert_array_equal(semantic[i].semantic, scene.semantic)
        read = instance[i]
        assert read.masks is not None and read.classes is not None and len(read.masks) == 2
        expected = [a for a in sample.instances if mask_utils.area(a["segmentation"])]
        np.testing.assert_array_equal(read.masks, [mask_utils.decode(a["segmentation"]) for a in expected])
        np.testing.assert_array_equal(read.classes, [to_model[a["category_id"]] for a in expected])

    (tmp_path / "annotations" / "instances.json").unlink()  # instances from the panoptic things
    things = train_module._CocoSource(tmp_path, "instance", shapes)[0]
    assert things.masks is not None and things.classes is not None
    first = instance[0]
    assert first.masks is not None and first.classes is not None

    def key(masks: np.ndarray, classes: np.ndarray) -> list[tuple[int, bytes]]:
        return sorted(zip(classes.tolist(), (m.tobytes() for m in masks), strict=True))

    assert key(things.masks, things.classes) == key(first.masks, first.classes)
    # instances only (the panoptic JSON's images and categories): no semantic ground truth
    (tmp_path / "annotations" / "panoptic.json").rename(tmp_path / "annotations" / "instances.json")
    with pytest.raises(ValueError, match=r"semantic training needs .*panoptic\.json \(COCO panoptic\)"):
        train_module._CocoSource(tmp_path, "semantic", shapes)


def test_coco_categories_outside_the_label_set_are_refused(tmp_path: Path) -> None:
    write_dataset(tmp_path, 1, seed=3, width=32, height=24, split="train")
    path = tmp_path / "annotations" / "panoptic.json"
    data = json.loads(path.read_text())
    data["categories"].append({"id": 200, "name": "giraffe", "supercategory": "animal", "isthing": 1})
    data["categories"][1]["name"] = "renamed"  # no such name in shapes: matched by its id instead
    path.write_text(json.dumps(data))
    shapes = get_label_set("shapes")
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}: category 200 'giraffe' is not in label set 'shapes'"):
        train_module._CocoSource(tmp_path, "semantic", shapes)
    data["categories"].pop()
    path.write_text(json.dumps(data))
    np.testing.assert_array_equal(
        train_module._CocoSource(tmp_path, "semantic", shapes)[0].semantic,
        generate_scene(3, 32, 24, split="train", index=0).semantic,
    )


def test_initial_weights_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    entry = get_model_entry("shapes_lraspp")
    labels = get_label_set("shapes")
    other = tmp_path / "other.pt"
    torch.save({"fc.weight": torch.zeros(4, 3), "fc.bias": torch.zeros(4)}, other)  # plain, no arch
    with pytest.raises(ValueError, match=f"{re.escape(str(other))}.*none of its 2 tensors fit"):
        train(
            TrainConfig(
                model="shapes_lraspp",
                data="synthetic:48x32",
                out=str(tmp_path / "run"),
                weights=str(other),
                steps=1,
                batch_size=1,
                progress=False,
            )
        )

    for none in (None, "none", "random"):  # random init, as load_weights names it
        assert train_module._build(entry, none, labels)[1] == "none (random init)"

    # Weights that fit in part (another class count) are used where they fit, as before.
    three = tmp_path / "three_classes.pt"
    source_module = entry.builder(3)
    torch.save(source_module.state_dict(), three)
    module, source = train_module._build(entry, str(three), labels)
    assert source == str(three)
    own = module.state_dict()
    loaded = [k for k, v in source_module.state_dict().items() if own[k].shape == v.shape]
    assert loaded and len(loaded) < len(own)
    for key in loaded:
        assert torch.equal(own[key], source_module.state_dict()[key]), key


def test_instance_targets_boxes_cover_the_masks() -> None:
    scene = generate_scene(5, 64, 48, num_objects=(3, 5))
    sample = train_module._synthetic_sample(0, 5, (64, 48))
    images, targets = instance_targets([sample])
    assert images[0].shape == (3, 48, 64) and images[0].dtype == torch.float32
    t = targets[0]
    n = t["masks"].shape[0]
    assert t["boxes"].shape == (n, 4) and t["labels"].shape == (n,)
    for mask, box in zip(t["masks"], t["boxes"], strict=True):
        rows, cols = np.nonzero(mask.numpy())
        assert box.tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    assert set(t["labels"].tolist()) <= {3, 4, 5}
    assert scene.image.dtype == np.uint8


def test_data_spec_and_cli() -> None:
    assert parse_data_spec("synthetic") == ("synthetic", TRAIN_SIZE) == ("synthetic", (224, 168))
    assert parse_data_spec("synthetic:160x120") == ("synthetic", (160, 120))
    with pytest.raises(ValueError, match="at least 16x16"):
        parse_data_spec("synthetic:8x8")
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_data_spec("synthetic:big")
    with pytest.raises(ValueError, match="COCO dataset directory"):
        parse_data_spec("/no/such/dir")
    args = build_parser().parse_args(
        ["train", "--model", "shapes_lraspp", "--out", "x", "--steps", "5", "--resume"]
    )
    assert args.steps == 5 and args.resume and args.data == "synthetic"


def test_cli_defaults_are_the_config_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[TrainConfig] = []
    monkeypatch.setattr(train_module, "train", lambda cfg: seen.append(cfg) or {"steps": 0})
    assert main(["train", "--model", "shapes_lraspp", "--out", str(tmp_path)]) == 0
    assert seen == [TrainConfig(model="shapes_lraspp", data="synthetic", out=str(tmp_path))]


# ---- the shipped demo weights ------------------------------------------------------------------
def test_demo_weights_are_small() -> None:
    sizes = {name: (models_dir() / name).stat().st_size for name in DEMO_WEIGHTS}
    assert sum(sizes.values()) <= MAX_WEIGHTS_BYTES, sizes


@pytest.mark.parametrize("name", ["shapes_lraspp", "shapes_maskrcnn"])
def test_demo_weights_load_by_default(name: str) -> None:
    entry = get_model_entry(name)
    assert entry.default_weights == f"{name}.pt"
    loaded = build_model(name)
    assert loaded.labels.name == "shapes" and loaded.labels.num_classes == 6
    assert str(models_dir()) in loaded.weights
    assert all(p.dtype == torch.float32 for p in loaded.module.parameters())  # fp16 on disk, fp32 loaded


def test_demo_models_panoptic_through_the_engine() -> None:
    engine = SegmentationEngine(
        task="panoptic",
        semantic_model="shapes_lraspp",
        instance_model="shapes_maskrcnn",
        device="cpu",
        stuff_area_threshold=64,  # the default 4096 px is meant for ~1 Mpx frames
    )
    scene = generate_scene(0, 224, 168, split="test", index=0)
    result = engine.segment(scene.image)
    assert result.semantic.labels.shape == (168, 224)
    assert result.panoptic.panoptic.shape == (168, 224)
    assert result.instances.instance_ids.shape == (168, 224)
    assert engine.labels.name == "shapes"
    assert set(np.unique(result.semantic.labels).tolist()) <= {0, 1, 2, 3, 4, 5}
    # a trained model: most pixels get the right class (the model card has the real metrics)
    valid = scene.semantic > 0
    assert (result.semantic.labels[valid] == scene.semantic[valid]).mean() > 0.8
    assert len(result.instances) >= 1
    assert set(result.instances.class_ids.tolist()) <= {3, 4, 5}


# ---- bad weights and malformed checkpoints: clear errors naming the file ------------------------
def test_empty_weights_are_refused_before_the_run_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--weights "$UNSET"`` must not train from random weights."""
    for empty in ("", "  "):
        with pytest.raises(WeightsError, match="--weights: empty weights .*use 'none' for random init"):
            TrainConfig(model="shapes_lraspp", data="synthetic:32x24", out=str(tmp_path), weights=empty).validate()
    out = tmp_path / "run"
    argv = ["train", "--model", "shapes_lraspp", "--data", "synthetic:32x24", "--out", str(out)]
    assert main([*argv, "--steps", "1", "--batch-size", "1", "--quiet", "--weights", ""]) == 2
    assert "empty weights" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture(scope="module")
def one_step_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The training checkpoint of a one-step shapes_lraspp run, as torch.load gives it."""
    out = tmp_path_factory.mktemp("one_step")
    train(
        TrainConfig(model="shapes_lraspp", data="synthetic:32x24", out=str(out), steps=1, batch_size=1, progress=False)
    )
    return torch.load(out / CHECKPOINT_NAME, map_location="cpu", weights_only=True)


def _with_meta(checkpoint: dict, **changes: object) -> dict:
    meta = {**checkpoint["meta"], **changes}
    return {**checkpoint, "meta": {k: v for k, v in meta.items() if v is not ...}}


def _first_state(checkpoint: dict, key: str, value: object) -> dict:
    """The optimizer state of the first parameter with ``key`` replaced."""
    optimizer = deepcopy(checkpoint["meta"]["optimizer"])
    optimizer["state"][0][key] = value
    return _with_meta(checkpoint, optimizer=optimizer)


RESUME_MALFORMED = {
    "no labels": (lambda c: {k: v for k, v in c.items() if k != "labels"}, "has no 'labels'"),
    "labels with id 3e8": (
        lambda c: {**c, "labels": {"classes": [{"id": 300_000_000, "name": "a"}]}},
        r"'labels' are not a label set: .*got 300000000",
    ),
    "another model's run": (lambda c: {**c, "arch": "shapes_maskrcnn"}, "is a 'shapes_maskrcnn' run, not 'shapes_lraspp'"),
    "no arch": (lambda c: {k: v for k, v in c.items() if k != "arch"}, "is a None run"),
    "meta is a string": (lambda c: {**c, "meta": "abc"}, "'meta' must be a dict"),
    "no step": (lambda c: _with_meta(c, step=...), "meta 'step' is None, expected a int"),
    "step is a string": (lambda c: _with_meta(c, step="0"), "meta 'step' is '0', expected a int"),
    "negative step": (lambda c: _with_meta(c, step=-1), "meta 'step' is -1, expected >= 0"),
    "no rng": (lambda c: _with_meta(c, rng=...), "meta 'rng' is None"),
    "rng of the wrong kind": (lambda c: _with_meta(c, rng={"torch": [1, 2]}), "no 'torch' state"),
    "elapsed is a string": (lambda c: _with_meta(c, elapsed_s="1 s"), "meta 'elapsed_s' is '1 s'"),
    "scheduler of wrong types": (lambda c: _with_meta(c, scheduler={"base_lrs": "x"}), "scheduler state does not fit"),
    "optimizer groups of wrong types": (
        lambda c: _with_meta(c, optimizer={**c["meta"]["optimizer"], "param_groups": [{"lr": "fast"}]}),
        "parameter groups do not fit",
    ),
    "optimizer state of the wrong shape": (
        lambda c: _first_state(c, "exp_avg", torch.zeros(1)),
        r"optimizer state 'exp_avg' is .* for a parameter of shape",
    ),
    "model tensor of the wrong shape": (
        lambda c: {**c, "model": {**c["model"], next(iter(c["model"])): torch.zeros(1)}},
        r"do not fit model 'shapes_lraspp': its tensor shapes do not match the architecture.*\(1,\) in the file",
    ),
}


@pytest.mark.parametrize("case", list(RESUME_MALFORMED))
def test_resume_refuses_malformed_checkpoints(one_step_run: dict, tmp_path: Path, case: str) -> None:
    mutate, match = RESUME_MALFORMED[case]
    checkpoint = tmp_path / CHECKPOINT_NAME
    torch.save(mutate(one_step_run), checkpoint)
    cfg = TrainConfig(
        model="shapes_lraspp", data="synthetic:32x24", out=str(tmp_path), steps=2, batch_size=1, resume=True, progress=False
    )
    with pytest.raises((WeightsError, ValueError), match=f"(?s){re.escape(str(checkpoint))}.*{match}"):
        train(cfg)
    assert not (tmp_path / LOG_NAME).exists() or not (tmp_path / LOG_NAME).read_text()  # no step was run


def test_resume_of_an_intact_checkpoint_still_works(one_step_run: dict, tmp_path: Path) -> None:
    """The checks above refuse nothing that save_checkpoint wrote (from a torch.load round trip)."""
    torch.save(one_step_run, tmp_path / CHECKPOINT_NAME)
    cfg = TrainConfig(
        model="shapes_lraspp", data="synthetic:32x24", out=str(tmp_path), steps=2, batch_size=1, resume=True, progress=False
    )
    assert train(cfg)["steps"] == 2
    assert [json.loads(line)["step"] for line in (tmp_path / LOG_NAME).read_text().splitlines()] == [2]
