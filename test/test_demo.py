"""`segmentation-ros demo` end to end on a tiny recording: the bag, the pictures and the metrics."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from rosbags.highlevel import AnyReader

from segmentation_ros.engine.imageio import read_image
from segmentation_ros.tools.cli import main


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """(output directory, what the command printed) of one tiny demo run."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny frames: threads only add spin-waiting on a shared 2-core box
    try:
        out = tmp_path_factory.mktemp("demo")
        args = [
            "demo",
            "--out",
            str(out),
            "--frames",
            "3",
            "--eval-scenes",
            "2",
            "--width",
            "160",
            "--height",
            "120",
        ]
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main([*args, "--device", "cpu", "--quiet"]) == 0
        yield out, printed.getvalue()
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def demo_dir(demo_run):
    return demo_run[0]


def test_demo_writes_a_segmented_bag_with_every_panoptic_output(demo_dir):
    with AnyReader([demo_dir / "segmented"]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts["/camera/image_raw"] == 3 and counts["/camera/camera_info"] == 3
    for topic in (
        "semantic/labels",
        "instances/ids",
        "detections",
        "panoptic/ids",
        "panoptic/color",
        "overlay",
    ):
        assert counts[f"/camera/{topic}"] == 3, topic
    assert counts["/camera/label_info"] == 1
    # the RGB-D camera's depth, paired with every frame: segmented 3D
    assert counts["/camera/depth/image"] == 3
    for topic in ("points", "detections_3d", "markers"):
        assert counts[f"/camera/{topic}"] == 3, topic


def test_demo_picture_and_overlays(demo_dir):
    picture = read_image(demo_dir / "demo.png")
    assert picture.ndim == 3 and picture.shape[0] >= 120 and picture.shape[1] >= 5 * 160  # 5 panels per row
    top = picture[:120, 4 * (160 + 4) :]  # the top view of the labelled points and 3D boxes
    assert top.shape[1] == 160 and (top != 255).any(axis=2).mean() > 0.01
    overlays = sorted((demo_dir / "overlay").glob("*.png"))
    assert len(overlays) == 3
    first = read_image(overlays[0])
    assert first.shape == (120, 160, 3) and np.ptp(first) > 0


def test_demo_metrics_in_and_out_of_distribution(demo_dir):
    metrics = json.loads((demo_dir / "metrics.json").read_text())
    assert set(metrics) == {"in_distribution", "out_of_distribution", "config"}
    assert metrics["config"]["parameters"]["semantic_model"] == "shapes_lraspp"
    assert metrics["config"]["splits"] == {"in_distribution": "test", "out_of_distribution": "ood"}
    for key, split in (("in_distribution", "test"), ("out_of_distribution", "ood")):
        report = metrics[key]
        assert report["config"]["split"] == split and report["config"]["num"] == 2
        assert report["data"]["images"] == 2
        assert 0.0 <= report["semantic"]["miou"] <= 1.0
        assert 0.0 <= report["panoptic"]["all"]["pq"] <= 1.0
        # the files the weights were read from (DEFAULT resolves to the shipped demo weights)
        assert report["engine"]["semantic_weights_source"].endswith("shapes_lraspp.pt")
        assert report["engine"]["instance_weights_source"].endswith("shapes_maskrcnn.pt")
    text = (demo_dir / "metrics.txt").read_text()
    header, in_row, out_row = text.splitlines()[:3]
    assert header.split() == ["split", "mIoU", "AP50", "PQ"]
    assert in_row.split()[:2] == ["in_distribution", "test"]
    assert out_row.split()[:2] == ["out_of_distribution", "ood"]
    assert f"{100 * metrics['out_of_distribution']['semantic']['miou']:.1f}" in out_row
    titles = [line for line in text.splitlines() if line.startswith("== ")]
    assert [t.split()[1] for t in titles] == ["in-distribution", "out-of-distribution"]
    assert sum(line.startswith("class ") for line in text.splitlines()) == 2  # a full report under each title


def test_demo_prints_both_evaluations(demo_run):
    """`segmentation-ros demo` prints metrics.txt: both evaluations, each under its title."""
    out, printed = demo_run
    assert (out / "metrics.txt").read_text() in printed


@pytest.mark.parametrize("option", ["--frames", "--eval-scenes"])
def test_demo_refuses_nothing_to_show_before_writing_anything(tmp_path, capsys, option):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), option, "0", "--device", "cpu", "--quiet"]) == 2
    assert f"{option[2:].replace('-', '_')} must be >= 1, got 0" in capsys.readouterr().err
    assert not out.exists()


def test_demo_closes_the_engine_when_a_step_fails(tmp_path, monkeypatch):
    from segmentation_ros.ros import bag
    from segmentation_ros.tools.demo import run_demo

    class Engine:
        closed = False

        def close(self):
            self.closed = True

    engine = Engine()

    def failing_process_bag(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(bag, "load_engine", lambda params: engine)
    monkeypatch.setattr(bag, "process_bag", failing_process_bag)
    with pytest.raises(RuntimeError, match="disk full"):
        run_demo(tmp_path, frames=1, width=32, height=24, progress=False)
    assert engine.closed
