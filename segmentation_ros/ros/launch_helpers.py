"""What the launch files share: argument checks and remappings, importable without ROS.

The launch files in ``launch/`` stay thin (nav2_bringup style): they declare their arguments and
start nodes, and everything that can be decided without ROS lives here, unit-tested with plain
pytest (``test/test_launch_helpers.py``). Nothing at module level imports launch, launch_ros or
ament_index_python; :func:`rviz_node` imports them when called, i.e. inside ``ros2 launch``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from segmentation_ros.engine.paths import PACKAGE

TASKS = ("semantic", "instance", "panoptic")  # engine.TASKS, restated: launch files must not import torch
# Topics shown by config/segmentation.rviz (absolute there, remapped into the namespace): the image
# displays, then the depth outputs (a PointCloud2 and a MarkerArray display, with depth: true).
RVIZ_TOPICS = ("overlay", "semantic/color", "panoptic/color", "instances/ids", "points", "markers")
# The node's depth input, next to ``image`` and ``camera_info`` (with its parameter depth: true).
DEPTH_INPUT = "depth/image"
# Sections of a parameters file that reach segmentation_node (rclpy matches '/**' and exact names).
_NODE_KEYS = ("/**", "segmentation_node", "/segmentation_node")
# A relative ROS name: tokens of letters, digits and underscores, not starting with a digit.
_RELATIVE_NAME = r"[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*"
CAMERA_NAME = re.compile(f"^{_RELATIVE_NAME}$")
# A topic a launch argument remaps an input to: relative, absolute ('/' first) or private ('~/').
_TOPIC_NAME = re.compile(f"^(/|~/)?{_RELATIVE_NAME}$")

Remapping = tuple[str, str]


def as_bool(value: str, name: str) -> bool:
    """A launch argument's text as a bool; ``name`` is the argument, for the error message.

    Raises:
        ValueError: ``value`` is none of true/false, 1/0, yes/no, on/off (any case).
    """
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"launch argument {name}:={value!r}: expected true or false")


def task_in_params_file(path: Path) -> str | None:
    """The ``task`` a parameters file sets for segmentation_node, or None where it sets none."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        return None
    for key in _NODE_KEYS:
        section = data.get(key)
        params = section.get("ros__parameters") if isinstance(section, dict) else None
        if isinstance(params, dict) and "task" in params:
            return str(params["task"])
    return None


def check_task_and_params_file(task: str, params_file: str | Path) -> Path:
    """Check the ``task`` and ``params_file`` launch arguments; returns the params file's path.

    Raises:
        ValueError: ``task`` is not one of :data:`TASKS`, or the file sets another task.
        FileNotFoundError: ``params_file`` is not a file.
    """
    if task not in TASKS:
        raise ValueError(f"launch argument task:={task!r}: expected one of {TASKS}")
    path = Path(params_file).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"launch argument params_file:={str(path)!r}: no such file")
    file_task = task_in_params_file(path)
    if file_task is not None and file_task != task:
        # task is read-only in the node, and a silent override would hide a wrong preset.
        raise ValueError(
            f"params_file {str(path)!r} sets task {file_task!r} but task:={task!r}; "
            f"pass task:={file_task} or a params file for {task}"
        )
    return path


def model_overrides(task: str, model: str = "", weights: str = "") -> dict[str, str]:
    """``model:=`` / ``weights:=`` as the task's parameters (``semantic_model``, ...); '' is left out.

    Raises:
        ValueError: either is given for task panoptic, which has two models.
    """
    overrides: dict[str, str] = {}
    for name, value in (("model", model), ("weights", weights)):
        if not value:
            continue
        if task == "panoptic":
            raise ValueError(
                f"launch argument {name}:={value!r} is ambiguous for task panoptic (two models); "
                f"set semantic_{name} and instance_{name} in a params_file instead"
            )
        overrides[f"{task}_{name}"] = value
    return overrides


def parse_cameras(text: str) -> list[str]:
    """``'[front, left]'`` or ``'front,left'`` or ``'front left'`` -> ``['front', 'left']``.

    Raises:
        ValueError: not a list, empty, a name that is not a relative ROS name, or a repeated name.
    """
    try:
        value = yaml.safe_load(text) if text.strip().startswith("[") else re.split(r"[,\s]+", text.strip())
    except yaml.YAMLError:
        value = None
    if not isinstance(value, list):
        raise ValueError(f"launch argument cameras:={text!r}: expected a list such as [front, left]")
    cameras = [str(name).strip().strip("/") for name in value if str(name).strip()]
    if not cameras:
        raise ValueError("launch argument cameras is empty: list at least one camera, e.g. [front, left]")
    for name in cameras:
        if not CAMERA_NAME.fullmatch(name):
            raise ValueError(f"camera name {name!r}: expected a relative ROS name such as front or rig/left")
    if len(set(cameras)) != len(cameras):
        raise ValueError(f"launch argument cameras lists a camera twice: {cameras}")
    return cameras


def _input_topic(topic: str, camera: str, argument: str) -> tuple[str, str]:
    """``(prefix, topic)`` for a remapping of the node's input ``prefix + <input>`` to ``prefix + topic``.

    With ``camera`` '' the prefix is '' and ``topic`` stays absolute, relative or private as given
    (a trailing '/' dropped); with a camera the prefix is ``'<camera>/'`` and ``topic`` is relative
    to it (a leading '/' dropped too). '' stays '' (no remapping).

    Raises:
        ValueError: ``topic`` is not a ROS topic name (tokens of letters, digits and underscores,
            none starting with a digit; '/' or '~/' first only without a camera); ``argument``
            names the launch argument.
    """
    topic = topic.strip().strip("/") if camera else topic.strip().rstrip("/")
    if topic and not (CAMERA_NAME if camera else _TOPIC_NAME).fullmatch(topic):
        # ROS would refuse the remapping rule only when the node starts, with an rcl parse error.
        raise ValueError(
            f"launch argument {argument}:={topic!r}: expected a ROS topic name such as "
            f"{'color/image_raw' if camera else '/front/image_raw or color/image_raw'} "
            "(letters, digits, underscores; no token starting with a digit)"
        )
    return (f"{camera.strip('/')}/" if camera else ""), topic


def image_remappings(image: str, camera: str = "", argument: str = "image") -> list[Remapping]:
    """Remappings that point the node's image input (and what goes with it) at ``image``.

    With ``camera`` '' (one camera per node) ``image`` is the topic as given, absolute or relative
    to the node's namespace: ``/front/image_raw`` remaps ``image``, ``image/compressed`` and
    ``camera_info`` to ``/front/image_raw``, ``/front/image_raw/compressed`` and
    ``/front/camera_info``. With ``camera`` 'front' (several cameras per node) ``image`` is a name
    inside the camera's namespace (a leading '/' is dropped) and the node's ``front/image``,
    ``front/image/compressed`` and ``front/camera_info`` are remapped. camera_info is remapped only
    when ``image`` has a parent (``color/image_raw`` -> ``color/camera_info``): it is read next to
    the image, as image_transport's CameraSubscriber expects. ``image`` '' or ``image`` gives ``[]``.

    Raises:
        ValueError: ``image`` is not a ROS topic name (the message names launch argument ``argument``).
    """
    prefix, image = _input_topic(image, camera, argument)
    if not image or image == "image":
        return []
    remappings = [
        (f"{prefix}image", prefix + image),
        (f"{prefix}image/compressed", f"{prefix}{image}/compressed"),
    ]
    if "/" in image:
        remappings.append((f"{prefix}camera_info", prefix + image.rsplit("/", 1)[0] + "/camera_info"))
    return remappings


def depth_remappings(depth: str, camera: str = "", argument: str = "depth_name") -> list[Remapping]:
    """The remapping that points the node's depth input (:data:`DEPTH_INPUT`) at ``depth``.

    ``depth`` is read as :func:`image_remappings` reads ``image``: with ``camera`` '' the topic as
    given, absolute or relative to the node's namespace (``/front/aligned_depth_to_color/image_raw``
    remaps ``depth/image`` to it); with ``camera`` 'front' a name inside the camera's namespace
    (``aligned_depth_to_color/image_raw`` remaps ``front/depth/image`` to
    ``front/aligned_depth_to_color/image_raw``). Nothing else follows the depth image: the node
    takes the intrinsics from the colour ``camera_info``. ``depth`` '' or ``depth/image`` gives ``[]``.

    Raises:
        ValueError: ``depth`` is not a ROS topic name (the message names launch argument ``argument``).
    """
    prefix, depth = _input_topic(depth, camera, argument)
    if not depth or depth == DEPTH_INPUT:
        return []
    return [(prefix + DEPTH_INPUT, prefix + depth)]


def rviz_remappings(namespace: str) -> list[Remapping]:
    """Remap config/segmentation.rviz's absolute topics (``/overlay``, ``/points``, ...) into ``namespace``.

    ``namespace`` '' (or '/') needs none: the node's topics are then the absolute ones.
    """
    namespace = namespace.strip("/")
    if not namespace:
        return []
    return [(f"/{topic}", f"/{namespace}/{topic}") for topic in RVIZ_TOPICS]


def rviz_node(namespace: str, use_sim_time: bool) -> Any:
    """An rviz2 ``launch_ros.actions.Node`` with config/segmentation.rviz showing ``namespace``'s outputs.

    Needs ROS (launch_ros, ament_index_python): call it from a launch file only.
    """
    from ament_index_python.packages import get_package_share_directory
    from launch_ros.actions import Node

    return Node(
        package="rviz2",
        executable="rviz2",
        name="segmentation_rviz",
        arguments=["-d", str(Path(get_package_share_directory(PACKAGE), "config", "segmentation.rviz"))],
        parameters=[{"use_sim_time": use_sim_time}],
        remappings=rviz_remappings(namespace),
        output="screen",
    )
