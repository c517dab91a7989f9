"""Launch one segmentation_node serving several cameras, batched in one forward pass per cycle.

    ros2 launch segmentation_ros multi_camera.launch.py cameras:='[front, left, right]' \\
        image_name:=image_raw task:=semantic device:=cuda:0

Each camera gets a namespace under the node's: with ``cameras: [front, left]`` the node reads
``front/image`` and ``left/image`` and writes ``front/semantic/labels``, ``left/overlay``, and so on
(``front/image/compressed`` with ``use_compressed``). ``image_name`` remaps the per-camera input to
what the camera driver publishes, e.g. ``front/image_raw``; camera_info is read next to the image
(``image_name:=color/image_raw`` -> ``front/color/camera_info``), as image_transport expects. QoS is set per topic with the standard overrides in the params file
(``qos_overrides./front/image.subscription.reliability: best_effort``).

The params file (default ``config/<task>.yaml``) carries everything else. The node moves itself to
``active`` through its ``autostart`` parameter (see segmentation.launch.py for why that, rather
than LifecycleNode's ``autostart=``).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.launch_context import LaunchContext
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

PACKAGE = "segmentation_ros"
TASKS = ("semantic", "instance", "panoptic")
RVIZ_TOPICS = ("overlay", "semantic/color", "panoptic/color", "instances/ids")
# A relative ROS name: tokens of letters, digits and underscores, not starting with a digit.
_CAMERA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


def _as_bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"launch argument {name}:={value!r}: expected true or false")


def parse_cameras(text: str) -> list[str]:
    """``'[front, left]'`` or ``'front,left'`` or ``'front left'`` -> ``['front', 'left']``."""
    value = yaml.safe_load(text) if text.strip().startswith("[") else re.split(r"[,\s]+", text.strip())
    if not isinstance(value, list):
        raise ValueError(f"launch argument cameras:={text!r}: expected a list such as [front, left]")
    cameras = [str(name).strip().strip("/") for name in value if str(name).strip()]
    if not cameras:
        raise ValueError("launch argument cameras is empty: list at least one camera, e.g. [front, left]")
    for name in cameras:
        if not _CAMERA_NAME.match(name):
            raise ValueError(f"camera name {name!r}: expected a relative ROS name such as front or rig/left")
    if len(set(cameras)) != len(cameras):
        raise ValueError(f"launch argument cameras lists a camera twice: {cameras}")
    return cameras


def _task_in_params_file(path: Path) -> str | None:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        return None
    for key in ("/**", "segmentation_node", "/segmentation_node"):
        section = data.get(key)
        params = section.get("ros__parameters") if isinstance(section, dict) else None
        if isinstance(params, dict) and "task" in params:
            return str(params["task"])
    return None


def _launch_setup(context: LaunchContext) -> list:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    task = arg("task")
    if task not in TASKS:
        raise ValueError(f"launch argument task:={task!r}: expected one of {TASKS}")
    params_file = Path(arg("params_file")).expanduser()
    if not params_file.is_file():
        raise FileNotFoundError(f"launch argument params_file:={str(params_file)!r}: no such file")
    file_task = _task_in_params_file(params_file)
    if file_task is not None and file_task != task:
        raise ValueError(
            f"params_file {str(params_file)!r} sets task {file_task!r} but task:={task!r}; "
            f"pass task:={file_task} or a params file for {task}"
        )

    cameras = parse_cameras(arg("cameras"))
    use_sim_time = _as_bool(arg("use_sim_time"), "use_sim_time")
    overrides: dict[str, object] = {"task": task, "cameras": cameras, "use_sim_time": use_sim_time}
    if arg("device"):
        overrides["device"] = arg("device")

    image_name = arg("image_name").strip("/")
    remappings = []
    if image_name and image_name != "image":
        for camera in cameras:
            remappings.append((f"{camera}/image", f"{camera}/{image_name}"))
            remappings.append((f"{camera}/image/compressed", f"{camera}/{image_name}/compressed"))
            if "/" in image_name:  # e.g. color/image_raw: camera_info is color/camera_info
                info = image_name.rsplit("/", 1)[0] + "/camera_info"
                remappings.append((f"{camera}/camera_info", f"{camera}/{info}"))

    namespace = arg("namespace").strip("/")
    actions = [
        LifecycleNode(
            package=PACKAGE,
            executable="segmentation_node",
            name="segmentation_node",
            namespace=namespace,
            output="screen",
            parameters=[str(params_file), overrides],
            remappings=remappings,
        )
    ]
    if _as_bool(arg("rviz"), "rviz"):
        # config/segmentation.rviz shows one camera: the first one.
        prefix = "/" + "/".join(part for part in (namespace, cameras[0]) if part)
        actions.append(
            Node(
                package="rviz2",
                executable="rviz2",
                name="segmentation_rviz",
                arguments=[
                    "-d",
                    str(Path(get_package_share_directory(PACKAGE), "config", "segmentation.rviz")),
                ],
                parameters=[{"use_sim_time": use_sim_time}],
                remappings=[(f"/{topic}", f"{prefix}/{topic}") for topic in RVIZ_TOPICS],
                output="screen",
            )
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "cameras",
                default_value="[front, left]",
                description="camera namespaces served by the one node, e.g. [front, left] or front,left",
            ),
            DeclareLaunchArgument(
                "image_name",
                default_value="image",
                description="image topic inside each camera namespace, e.g. image_raw or color/image_raw",
            ),
            DeclareLaunchArgument(
                "task",
                default_value="semantic",
                choices=list(TASKS),
                description="semantic | instance | panoptic; picks the default params_file and must agree with it",
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=[share, "/config/", LaunchConfiguration("task"), ".yaml"],
                description="ROS parameters file for the node (default: config/<task>.yaml)",
            ),
            DeclareLaunchArgument(
                "device", default_value="", description="auto | cpu | cuda:N; '' keeps the params file's"
            ),
            DeclareLaunchArgument(
                "namespace",
                default_value="",
                description="namespace of the node; camera namespaces are below it",
            ),
            DeclareLaunchArgument(
                "use_sim_time", default_value="false", description="use /clock (simulation or bag playback)"
            ),
            DeclareLaunchArgument(
                "rviz", default_value="false", description="open rviz2 on the first camera's outputs"
            ),
            OpaqueFunction(function=_launch_setup),
        ]
    )
