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

from segmentation_ros.engine.panoptic import rgb_to_id
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
    # The demo models are weak on shapes but know ground and sky; a wrong channel order or a
    # result at the network's size would break this.
    for class_id in (1, 2):
        truth = scene.semantic == class_id
        assert (semantic[truth] == class_id).mean() > 0.8


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
