"""Unit tests of segmentation_ros.ros.launch_helpers, the ROS-free part of the launch files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from segmentation_ros.ros.launch_helpers import (
    DEPTH_INPUT,
    RVIZ_TOPICS,
    TASKS,
    as_bool,
    check_task_and_params_file,
    depth_remappings,
    image_remappings,
    model_overrides,
    parse_cameras,
    rviz_remappings,
    task_in_params_file,
)

ROOT = Path(__file__).resolve().parents[1]


def test_module_imports_no_ros() -> None:
    code = (
        "import sys, segmentation_ros.ros.launch_helpers\n"
        "ros = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'launch', 'launch_ros', 'ament_index_python', 'rclpy', 'torch'})\n"
        "assert not ros, ros\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ---- as_bool -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["true", "True", " TRUE ", "1", "yes", "on"])
def test_as_bool_true(text: str) -> None:
    assert as_bool(text, "rviz") is True


@pytest.mark.parametrize("text", ["false", "False", "0", "no", "OFF "])
def test_as_bool_false(text: str) -> None:
    assert as_bool(text, "rviz") is False


@pytest.mark.parametrize("text", ["", "maybe", "2", "truee"])
def test_as_bool_rejects_other_text_naming_the_argument(text: str) -> None:
    with pytest.raises(ValueError, match=r"use_sim_time:=.*expected true or false"):
        as_bool(text, "use_sim_time")


# ---- params files --------------------------------------------------------------------------------
def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("key", ["/**", "segmentation_node", "/segmentation_node"])
def test_task_in_params_file_reads_the_node_sections(tmp_path: Path, key: str) -> None:
    path = _write(tmp_path, f'"{key}":\n  ros__parameters:\n    task: instance\n    device: cpu\n')
    assert task_in_params_file(path) == "instance"


@pytest.mark.parametrize(
    "text",
    [
        "",  # empty file: yaml gives None
        "- a list\n",
        '"/**":\n  ros__parameters:\n    device: cpu\n',  # no task
        "other_node:\n  ros__parameters:\n    task: instance\n",  # another node's section
        '"/**":\n  device: cpu\n',  # no ros__parameters
    ],
)
def test_task_in_params_file_none(tmp_path: Path, text: str) -> None:
    assert task_in_params_file(_write(tmp_path, text)) is None


@pytest.mark.parametrize("task", TASKS)
def test_shipped_presets_pass_for_their_task(task: str) -> None:
    path = ROOT / "config" / f"{task}.yaml"
    assert task_in_params_file(path) == task
    assert check_task_and_params_file(task, str(path)) == path


def test_check_returns_the_expanded_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = _write(tmp_path, "segmentation_node:\n  ros__parameters:\n    task: semantic\n")
    assert check_task_and_params_file("semantic", "~/params.yaml") == path


def test_check_accepts_a_file_without_task(tmp_path: Path) -> None:
    path = _write(tmp_path, '"/**":\n  ros__parameters:\n    device: cpu\n')
    assert check_task_and_params_file("panoptic", path) == path


def test_check_rejects_a_task_mismatch(tmp_path: Path) -> None:
    path = _write(tmp_path, '"/**":\n  ros__parameters:\n    task: semantic\n')
    with pytest.raises(ValueError, match=r"sets task 'semantic' but task:='instance'; pass task:=semantic"):
        check_task_and_params_file("instance", path)


def test_check_rejects_an_unknown_task(tmp_path: Path) -> None:
    path = _write(tmp_path, '"/**":\n  ros__parameters:\n    task: semantic\n')
    with pytest.raises(ValueError, match=r"task:='depth': expected one of"):
        check_task_and_params_file("depth", path)


def test_check_rejects_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"params_file:=.*missing\.yaml.*no such file"):
        check_task_and_params_file("semantic", tmp_path / "missing.yaml")


def test_check_rejects_a_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        check_task_and_params_file("semantic", tmp_path)


# ---- model / weights overrides -------------------------------------------------------------------
def test_model_overrides_name_the_task_parameters() -> None:
    assert model_overrides("semantic", "lraspp_mobilenet_v3_large", "none") == {
        "semantic_model": "lraspp_mobilenet_v3_large",
        "semantic_weights": "none",
    }
    assert model_overrides("instance", weights="DEFAULT") == {"instance_weights": "DEFAULT"}
    assert model_overrides("panoptic") == {}


@pytest.mark.parametrize(("model", "weights", "name"), [("x", "", "model"), ("", "DEFAULT", "weights")])
def test_model_overrides_refuse_panoptic(model: str, weights: str, name: str) -> None:
    with pytest.raises(ValueError, match=rf"{name}:=.* ambiguous for task panoptic"):
        model_overrides("panoptic", model, weights)


# ---- cameras -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text", ["[front, left]", "front,left", "front left", " front , /left/ ", "['front','left']"]
)
def test_parse_cameras(text: str) -> None:
    assert parse_cameras(text) == ["front", "left"]


def test_parse_cameras_keeps_nested_names() -> None:
    assert parse_cameras("[rig/left, rig/right]") == ["rig/left", "rig/right"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("[]", "is empty"),
        ("[front, front]", "twice"),
        ("[1cam]", "relative ROS name"),
        ("front-left", "relative ROS name"),
        ("[front", "expected a list"),
    ],
)
def test_parse_cameras_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_cameras(text)


# ---- remappings ----------------------------------------------------------------------------------
def test_image_remappings_absolute_topic() -> None:
    assert image_remappings("/front/image_raw") == [
        ("image", "/front/image_raw"),
        ("image/compressed", "/front/image_raw/compressed"),
        ("camera_info", "/front/camera_info"),
    ]
    assert image_remappings("/front/image_raw/") == image_remappings("/front/image_raw")


def test_image_remappings_relative_name_without_parent_keeps_camera_info() -> None:
    assert image_remappings("image_raw") == [
        ("image", "image_raw"),
        ("image/compressed", "image_raw/compressed"),
    ]


@pytest.mark.parametrize("image", ["image", "", "image/"])
def test_image_remappings_default_needs_none(image: str) -> None:
    assert image_remappings(image) == []


def test_image_remappings_per_camera() -> None:
    assert image_remappings("color/image_raw", camera="front") == [
        ("front/image", "front/color/image_raw"),
        ("front/image/compressed", "front/color/image_raw/compressed"),
        ("front/camera_info", "front/color/camera_info"),
    ]
    assert image_remappings("/image_raw", camera="left") == [
        ("left/image", "left/image_raw"),
        ("left/image/compressed", "left/image_raw/compressed"),
    ]
    assert image_remappings("image", camera="left") == []


@pytest.mark.parametrize(
    ("image", "camera", "argument"),
    [
        ("front image", "", "image"),  # a space: rcl would refuse the rule only when the node starts
        ("/front/1image", "", "image"),  # a token starting with a digit
        ("/front//image_raw", "", "image"),
        ("image-raw", "front", "image_name"),
        ("~/image", "front", "image_name"),  # private names only for the node itself
    ],
)
def test_image_remappings_reject_a_name_that_is_no_topic_naming_the_argument(
    image: str, camera: str, argument: str
) -> None:
    with pytest.raises(ValueError, match=rf"launch argument {argument}:=.*expected a ROS topic name"):
        image_remappings(image, camera, argument)


# ---- depth remappings ----------------------------------------------------------------------------
def test_depth_input_and_rviz_topics_are_the_nodes() -> None:
    node_core = pytest.importorskip("segmentation_ros.ros.node_core")  # imports torch
    from segmentation_ros.ros.messages import RosbagsFactory

    params = {"task": "panoptic", "device": "cpu", "depth": True}
    core = node_core.SegmentationCore(params, RosbagsFactory("jazzy"))
    assert core.input_topics("front")["depth"] == f"front/{DEPTH_INPUT}"
    assert core.input_topics()["depth"] == DEPTH_INPUT
    # config/segmentation.rviz shows only what the node publishes (with depth, for panoptic).
    assert set(RVIZ_TOPICS) <= {output.topic for output in core.outputs()}


def test_depth_remappings_absolute_topic() -> None:
    # Only the depth image: the node takes the intrinsics from the colour camera_info.
    assert depth_remappings("/front/aligned_depth_to_color/image_raw") == [
        ("depth/image", "/front/aligned_depth_to_color/image_raw")
    ]
    assert depth_remappings("/front/depth/") == [("depth/image", "/front/depth")]
    assert depth_remappings("aligned_depth_to_color/image_raw") == [
        ("depth/image", "aligned_depth_to_color/image_raw")
    ]
    assert depth_remappings("~/depth") == [("depth/image", "~/depth")]  # private: the node's own


@pytest.mark.parametrize("depth", ["depth/image", "", "depth/image/", " depth/image "])
def test_depth_remappings_default_needs_none(depth: str) -> None:
    assert depth_remappings(depth) == []
    assert depth_remappings(depth, camera="front") == []


def test_depth_remappings_per_camera() -> None:
    assert depth_remappings("aligned_depth_to_color/image_raw", camera="front") == [
        ("front/depth/image", "front/aligned_depth_to_color/image_raw")
    ]
    # Inside the camera namespace: a leading '/' is dropped, as image_remappings does.
    assert depth_remappings("/depth_image", camera="rig/left/") == [
        ("rig/left/depth/image", "rig/left/depth_image")
    ]
    assert depth_remappings("/depth/image", camera="left") == []


def test_depth_and_image_remappings_of_several_cameras_do_not_collide() -> None:
    pairs = [
        pair
        for camera in ("front", "left")
        for pair in image_remappings("color/image_raw", camera)
        + depth_remappings("aligned_depth/image_raw", camera)
    ]
    sources = [source for source, _ in pairs]
    assert len(sources) == len(set(sources)) == 8
    assert ("left/depth/image", "left/aligned_depth/image_raw") in pairs


@pytest.mark.parametrize(
    ("depth", "camera"), [("depth image", ""), ("/front/2depth", ""), ("depth.image", "front")]
)
def test_depth_remappings_reject_a_name_that_is_no_topic_naming_the_argument(depth: str, camera: str) -> None:
    with pytest.raises(ValueError, match=r"launch argument depth_name:=.*expected a ROS topic name"):
        depth_remappings(depth, camera)


# ---- rviz ----------------------------------------------------------------------------------------
def test_rviz_remappings_into_a_namespace() -> None:
    expected = [
        ("/overlay", "/front/overlay"),
        ("/semantic/color", "/front/semantic/color"),
        ("/panoptic/color", "/front/panoptic/color"),
        ("/instances/ids", "/front/instances/ids"),
        ("/points", "/front/points"),
        ("/markers", "/front/markers"),
    ]
    assert rviz_remappings("front") == expected
    assert rviz_remappings("/front/") == expected
    assert [target for _, target in rviz_remappings("/robot/front")] == [
        f"/robot/front/{topic}" for topic in RVIZ_TOPICS
    ]


@pytest.mark.parametrize("namespace", ["", "/"])
def test_rviz_remappings_without_namespace(namespace: str) -> None:
    assert rviz_remappings(namespace) == []


def test_tasks_are_the_engines() -> None:
    from segmentation_ros.engine.pipeline import TASKS as ENGINE_TASKS
    from segmentation_ros.ros import launch_helpers

    assert launch_helpers.TASKS == ENGINE_TASKS
