"""Launch segmentation_node for one camera: a params file plus a few overrides (nav2_bringup style).

    ros2 launch segmentation_ros segmentation.launch.py task:=instance namespace:=front \\
        image:=/front/image_raw device:=cuda:0 rviz:=true

The params file (default ``config/<task>.yaml`` in the package share) carries the parameters;
``model``, ``weights``, ``device`` and ``use_sim_time`` override it when given. The launch
overrides reach the node keyed by its full name, which rclpy ranks above the file's ``/**`` key.

Lifecycle: the node has an ``autostart`` parameter (true in the presets) and moves itself to
``active``. That works the same on Humble and Jazzy, so no ``autostart=`` is passed to
``LifecycleNode``: that keyword exists only in launch_ros releases from 2025 on (Jazzy 0.26.7),
older Humble releases reject it, and the launch-side transitions would race the node's own.
"""

from __future__ import annotations

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
# Image topics shown by config/segmentation.rviz (absolute there, remapped into the namespace).
RVIZ_TOPICS = ("overlay", "semantic/color", "panoptic/color", "instances/ids")


def _as_bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"launch argument {name}:={value!r}: expected true or false")


def _task_in_params_file(path: Path) -> str | None:
    """The ``task`` a parameters file sets for this node, if any."""
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
        # task is read-only in the node, and a silent override would hide a wrong preset.
        raise ValueError(
            f"params_file {str(params_file)!r} sets task {file_task!r} but task:={task!r}; "
            f"pass task:={file_task} or a params file for {task}"
        )

    use_sim_time = _as_bool(arg("use_sim_time"), "use_sim_time")
    overrides: dict[str, object] = {"task": task, "use_sim_time": use_sim_time}
    for name in ("model", "weights"):
        value = arg(name)
        if not value:
            continue
        if task == "panoptic":
            raise ValueError(
                f"launch argument {name}:={value!r} is ambiguous for task panoptic (two models); "
                f"set semantic_{name} and instance_{name} in a params_file instead"
            )
        overrides[f"{task}_{name}"] = value
    if arg("device"):
        overrides["device"] = arg("device")

    namespace = arg("namespace").strip("/")
    image = arg("image")
    remappings = []
    if image and image != "image":
        image = image.rstrip("/")
        remappings = [("image", image), ("image/compressed", image + "/compressed")]
        if "/" in image:  # camera_info next to the image, as image_transport's CameraSubscriber expects
            remappings.append(("camera_info", image.rsplit("/", 1)[0] + "/camera_info"))

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
        prefix = f"/{namespace}" if namespace else ""
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
                remappings=[(f"/{topic}", f"{prefix}/{topic}") for topic in RVIZ_TOPICS] if prefix else [],
                output="screen",
            )
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "task",
                default_value="semantic",
                choices=list(TASKS),
                description="semantic | instance | panoptic; picks the default params_file and must agree with it",
            ),
            DeclareLaunchArgument(
                "model",
                default_value="",
                description="model for the task (semantic: semantic_model, instance: instance_model); "
                "'' keeps the params file's; not accepted for panoptic",
            ),
            DeclareLaunchArgument(
                "weights",
                default_value="",
                description="weights for the task's model: DEFAULT, a torchvision weights name, a file, or none; "
                "'' keeps the params file's",
            ),
            DeclareLaunchArgument(
                "device", default_value="", description="auto | cpu | cuda:N; '' keeps the params file's"
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=[share, "/config/", LaunchConfiguration("task"), ".yaml"],
                description="ROS parameters file for the node (default: config/<task>.yaml)",
            ),
            DeclareLaunchArgument(
                "namespace",
                default_value="",
                description="namespace of the node; its topics are relative to it",
            ),
            DeclareLaunchArgument(
                "image",
                default_value="image",
                description="topic the image input is remapped to; image/compressed follows it, and "
                "camera_info is taken from the same namespace (/front/image_raw -> /front/camera_info)",
            ),
            DeclareLaunchArgument(
                "use_sim_time", default_value="false", description="use /clock (simulation or bag playback)"
            ),
            DeclareLaunchArgument(
                "rviz", default_value="false", description="open rviz2 with config/segmentation.rviz"
            ),
            OpaqueFunction(function=_launch_setup),
        ]
    )
