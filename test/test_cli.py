"""`segmentation-ros segment` and `models` end to end, on images the test writes itself.

The written files must open and agree with each other: the instance PNG's ids are the JSON's
detection ids, the COCO panoptic PNG decodes to the JSON's segments, thing segments are the
instance pixels, stuff segments carry their semantic class.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from bombs import bomb_png

from segmentation_ros.engine.panoptic import rgb_to_id
from segmentation_ros.engine.pipeline import SegmentationEngine
from segmentation_ros.engine.registry import get_model_entry, list_models
from segmentation_ros.tools.cli import main
from segmentation_ros.tools.synthetic import generate_scene


def _read(path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


@pytest.fixture(scope="module")
def panoptic_run(tmp_path_factory):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("cli")
        scene = generate_scene(3, 160, 120, split="test")
        color = root / "scene.png"
        cv2.imwrite(str(color), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
        gray = root / "gray.jpg"
        cv2.imwrite(str(gray), cv2.cvtColor(scene.image, cv2.COLOR_RGB2GRAY))
        broken = root / "broken.png"
        broken.write_bytes(b"not an image")
        out = root / "out"
        argv = ["segment", "--task", "panoptic", "--model", "shapes_lraspp", "--model", "shapes_maskrcnn"]
        argv += ["--device", "cpu", "--score-threshold", "0.3", "--stuff-area-threshold", "16", "--quiet"]
        rc = main([*argv, "--out", str(out), str(color), str(broken), str(gray)])
        yield rc, out, scene
    finally:
        torch.set_num_threads(previous)


def test_unreadable_input_is_skipped_and_reported_in_the_exit_status(panoptic_run) -> None:
    rc, out, _ = panoptic_run
    assert rc == 1
    assert not list(out.glob("broken*"))
    for stem in ("scene", "gray"):  # the inputs after the broken one were still processed
        for suffix in ("semantic.png", "instances.png", "panoptic.png", "overlay.png", "json"):
            assert (out / f"{stem}.{suffix}").is_file(), f"{stem}.{suffix}"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize("stem", ["scene", "gray"])
def test_files_open_and_agree(panoptic_run, stem: str) -> None:
    _, out, scene = panoptic_run
    record = json.loads((out / f"{stem}.json").read_text())
    semantic = _read(out / f"{stem}.semantic.png")
    instances = _read(out / f"{stem}.instances.png")
    segments = rgb_to_id(cv2.cvtColor(_read(out / f"{stem}.panoptic.png"), cv2.COLOR_BGR2RGB))
    overlay = _read(out / f"{stem}.overlay.png")

    assert (record["height"], record["width"]) == scene.image.shape[:2] == (120, 160)
    assert semantic.dtype == np.uint8 and semantic.shape == (120, 160)
    assert instances.dtype == np.uint16 and instances.shape == (120, 160)
    assert overlay.shape == (120, 160, 3)

    detection_ids = {d["id"] for d in record["detections"]}
    if stem == "scene":  # the checks below must not pass vacuously
        assert detection_ids and any(not s["isthing"] for s in record["segments_info"])
    assert set(np.unique(instances[instances > 0]).tolist()) == detection_ids
    categories = {c["id"]: c for c in record["categories"]}
    for d in record["detections"]:
        assert categories[d["class_id"]]["name"] == d["class_name"] and categories[d["class_id"]]["isthing"]
        x, y, w, h = d["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 160 + 1e-3 and y + h <= 120 + 1e-3

    info = {s["id"]: s for s in record["segments_info"]}
    assert set(np.unique(segments[segments > 0]).tolist()) == set(info)
    for sid, s in info.items():
        pixels = segments == sid
        assert int(pixels.sum()) == s["area"]
        ys, xs = np.nonzero(pixels)
        assert s["bbox"] == [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
        if s["isthing"]:  # a thing segment is exactly its instance's pixels in the instance PNG
            assert np.array_equal(pixels, instances == sid)
            assert s["category_id"] in {d["class_id"] for d in record["detections"] if d["id"] == sid}
        else:  # a stuff segment lies on its class in the semantic PNG (shared label set)
            assert np.all(semantic[pixels] == s["category_id"])
    assert np.array_equal(instances > 0, np.isin(segments, [i for i, s in info.items() if s["isthing"]]))


def test_segment_finds_the_scene(panoptic_run) -> None:
    _, out, scene = panoptic_run
    semantic = _read(out / "scene.semantic.png")
    # The file holds what the engine gives for the frame in its own colour order, at camera
    # resolution. (The demo models are trained on random white balance, so accuracy alone would
    # hardly notice a swapped channel order; the labels of the swapped frame differ.)
    engine = SegmentationEngine(task="semantic", semantic_model="shapes_lraspp", device="cpu")
    try:
        expected = engine.segment(scene.image, "rgb").semantic.labels
        swapped = engine.segment(scene.image, "bgr").semantic.labels
    finally:
        engine.close()
    assert semantic.shape == scene.semantic.shape
    assert (semantic == expected).mean() > 0.999 and (semantic != swapped).any()
    for class_id in (1, 2):  # and they know ground and sky
        truth = scene.semantic == class_id
        assert (semantic[truth] == class_id).mean() > 0.7


def test_semantic_task_writes_only_its_files(tmp_path) -> None:
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.full((37, 53, 3), 90, np.uint8))
    argv = ["segment", "--task", "semantic", "--model", "lraspp_mobilenet_v3_large", "--weights", "none"]
    assert main([*argv, "--device", "cpu", "--quiet", "--out", str(tmp_path / "out"), str(image)]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["frame.json", "frame.overlay.png", "frame.semantic.png"]
    assert _read(tmp_path / "out" / "frame.semantic.png").shape == (37, 53)


def test_bad_model_option_is_an_error_not_a_traceback(tmp_path, capsys) -> None:
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    argv = ["segment", "--task", "semantic", "--model", "maskrcnn_resnet50_fpn", "--weights", "none"]
    assert main([*argv, "--out", str(tmp_path / "out"), str(image)]) == 2
    assert "takes no instance model" in capsys.readouterr().err


def test_models_lists_the_registry(capsys) -> None:
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list_models()
    for r in rows:
        assert r["task"] == get_model_entry(r["name"]).task
    published = {r["name"]: r for r in rows}["deeplabv3_resnet50"]
    assert published["metrics"]["miou"] > 0 and published["gflops"] > 0


# --- hardening: no input aborts the run, no result overwrites another, one error for a bad --out ---
SEMANTIC = ["segment", "--task", "semantic", "--model", "lraspp_mobilenet_v3_large", "--weights", "none"]
SEMANTIC += ["--device", "cpu", "--quiet"]




def test_an_image_declaring_absurd_dimensions_is_skipped_and_the_rest_processed(tmp_path, capsys) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png(50000, 50000))  # OpenCV itself raised cv2.error and the run aborted
    huge = tmp_path / "huge.png"
    huge.write_bytes(bomb_png(20000, 20000))
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((24, 32, 3), 90, np.uint8))
    out = tmp_path / "out"
    assert main([*SEMANTIC, "--out", str(out), str(bomb), str(huge), str(good)]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["good.json", "good.overlay.png", "good.semantic.png"]
    err = capsys.readouterr().err
    assert "50000x50000 = 2500000000 pixels, over the limit of 40000000" in err
    assert "20000x20000 = 400000000 pixels, over the limit of 40000000" in err
    assert "2 of 3 inputs were skipped" in err


def test_max_image_pixels_is_the_limit(tmp_path, capsys) -> None:
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.full((24, 32, 3), 90, np.uint8))  # 768 pixels
    assert main([*SEMANTIC, "--max-image-pixels", "767", "--out", str(tmp_path / "a"), str(image)]) == 1
    assert "32x24 = 768 pixels, over the limit of 767" in capsys.readouterr().err
    assert main([*SEMANTIC, "--max-image-pixels", "768", "--out", str(tmp_path / "b"), str(image)]) == 0
    assert (tmp_path / "b" / "frame.json").is_file()
    with pytest.raises(SystemExit):
        main([*SEMANTIC, "--max-image-pixels", "0", "--out", str(tmp_path / "c"), str(image)])


def test_inputs_of_the_same_name_in_different_folders_keep_both_results(tmp_path) -> None:
    inputs = []
    for camera, (height, width) in (("cam1", (24, 32)), ("cam2", (20, 28))):
        (tmp_path / "data" / camera).mkdir(parents=True)
        inputs.append(tmp_path / "data" / camera / "0001.png")
        cv2.imwrite(str(inputs[-1]), np.full((height, width, 3), 90, np.uint8))
    out = tmp_path / "out"
    assert main([*SEMANTIC, "--out", str(out), *map(str, inputs)]) == 0
    for camera, path, height in (("cam1", inputs[0], 24), ("cam2", inputs[1], 20)):
        record = json.loads((out / camera / "0001.json").read_text())
        assert record["image"] == str(path) and record["height"] == height
        assert _read(out / camera / "0001.semantic.png").shape == (height, record["width"])
    assert sorted(p.name for p in out.iterdir()) == ["cam1", "cam2"]


def test_inputs_that_would_share_a_name_are_refused_before_any_work(tmp_path, capsys) -> None:
    png, jpg = tmp_path / "frame.png", tmp_path / "frame.jpg"
    cv2.imwrite(str(png), np.full((24, 32, 3), 90, np.uint8))
    cv2.imwrite(str(jpg), np.full((24, 32, 3), 90, np.uint8))
    out = tmp_path / "out"
    assert main([*SEMANTIC, "--out", str(out), str(png), str(jpg)]) == 2
    err = capsys.readouterr().err
    assert f"inputs {png} and {jpg} would both write their results to frame.* under --out" in err
    assert not out.exists()  # refused before anything was written
    # the same file twice is one input, not a collision
    assert main([*SEMANTIC, "--out", str(out), str(png), str(png)]) == 0


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_unwritable_out_is_one_clear_error(tmp_path, capsys, monkeypatch, where: str) -> None:
    import segmentation_ros.engine.pipeline as pipeline

    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.full((24, 32, 3), 90, np.uint8))
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    out = blocker if where == "a file" else blocker / "out"

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(pipeline, "SegmentationEngine", no_model)
    assert main([*SEMANTIC, "--out", str(out), str(image), str(image)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    reason = "File exists" if where == "a file" else "Not a directory"
    assert err == [f"segmentation-ros: error: --out {out} is not a writable directory: {reason}"]


def test_a_write_failure_mid_run_stops_with_one_error(tmp_path, capsys, monkeypatch) -> None:
    import errno

    import segmentation_ros.engine.imageio as imageio

    images = []
    for name in ("a", "b", "c"):
        images.append(tmp_path / f"{name}.png")
        cv2.imwrite(str(images[-1]), np.full((24, 32, 3), 90, np.uint8))

    def disk_full(path: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(imageio, "write_png", disk_full)
    assert main([*SEMANTIC, "--out", str(tmp_path / "out"), *map(str, images)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"segmentation-ros: error: cannot write the results of {images[0]}")
    assert err[0].endswith("No space left on device")



def test_a_frame_the_engine_refuses_is_skipped_with_its_name(tmp_path, capsys, monkeypatch) -> None:
    """An image that reads but fails the engine's per-frame check (validate_frame) is skipped like an
    unreadable one; it used to end the whole run with status 2."""
    import segmentation_ros.engine.pipeline as pipeline

    check = pipeline.validate_frame

    def refuse_width_30(frame, index=0):
        if frame.shape[1] == 30:
            raise ValueError(f"frame {index}: refused by the test")
        return check(frame, index)

    monkeypatch.setattr(pipeline, "validate_frame", refuse_width_30)
    odd, good = tmp_path / "odd.png", tmp_path / "good.png"
    cv2.imwrite(str(odd), np.full((24, 30, 3), 90, np.uint8))
    cv2.imwrite(str(good), np.full((24, 32, 3), 90, np.uint8))
    out = tmp_path / "out"
    assert main([*SEMANTIC, "--out", str(out), str(odd), str(good)]) == 1
    assert f"skipped: image {odd}: frame 0: refused by the test" in capsys.readouterr().err
    assert (out / "good.json").is_file() and not list(out.glob("odd*"))


def test_weights_that_cannot_be_loaded_leave_no_out_directory(tmp_path, capsys) -> None:
    """--out is created (and proved writable) before the model loads; a refused model removes it
    again, with the parents the run created, but never a directory that was there before."""
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.full((24, 32, 3), 90, np.uint8))
    missing = tmp_path / "missing.pt"
    argv = ["segment", "--model", "shapes_lraspp", "--weights", str(missing), "--device", "cpu"]
    out = tmp_path / "new" / "out"
    assert main([*argv, "--out", str(out), str(image)]) == 2
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    (kept := tmp_path / "kept").mkdir()
    assert main([*argv, "--out", str(kept), str(image)]) == 2
    assert kept.is_dir()
