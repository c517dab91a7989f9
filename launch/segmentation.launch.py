"""Launch segmentation_node for one camera: a params file plus a few overrides (nav2_bringup style).

    ros2 launch segmentation_ros segmentation.launch.py task:=instance namespace:=front \\
        image:=/front/image_raw device:=cuda:0 rviz:=true
    ros2 launch segmentation_ros segmentation.launch.py task:=instance namespace:=front \\
        image:=/front/color/image_raw depth:=true depth_name:=/front/aligned_depth_to_color/image_raw

The params file (default ``config/<task>.yaml`` in the package share) carries the parameters;
``model``, ``weights`` and ``device`` override it when given, ``use_sim_time`` and ``depth``
always. The launch overrides reach the node keyed by its full name, which rclpy ranks above the
file's ``/**`` key.

Depth (``depth:=true``): the node also reads ``depth/image`` (16UC1 millimetres or 32FC1 metres,
aligned to the colour image, which is what a driver's ``aligned_depth_to_color`` topic is) and
publishes ``points``, ``detections_3d`` and ``markers``. ``depth_name`` remaps that input to the
driver's topic, absolute or relative to ``namespace`` like ``image``; the intrinsics come from the
colour ``camera_info``, so nothing else is remapped for depth.

Lifecycle: the node has an ``autostart`` parameter (true in the presets) and moves itself to
``active``. That works the same on Humble and Jazzy, so no ``autostart=`` is passed to
``LifecycleNode``: that keyword exists only in launch_ros releases from 2025 on (Jazzy 0.26.7),
older Humble releases reject it, and the launch-side transitions would race the node's own.
"""

from __future__ import annotations

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.launch_context import LaunchContext
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from segmentation_ros.ros.launch_helpers import (
    PACKAGE,
    TASKS,
    as_bool,
    check_task_and_params_file,
    depth_remappings,
    image_remappings,
    model_overrides,
    rviz_node,
)


def _launch_setup(context: LaunchContext) -> list:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    task = arg("task")
    params_file = check_task_and_params_file(task, arg("params_file"))
    use_sim_time = as_bool(arg("use_sim_time"), "use_sim_time")
    overrides: dict[str, object] = {
        "task": task,
        "use_sim_time": use_sim_time,
        "depth": as_bool(arg("depth"), "depth"),
    }
    overrides.update(model_overrides(task, arg("model"), arg("weights")))
    if arg("device"):
        overrides["device"] = arg("device")

    namespace = arg("namespace").strip("/")
    actions = [
        LifecycleNode(
            package=PACKAGE,
            executable="segmentation_node",
            name="segmentation_node",
            namespace=namespace,
            output="screen",
            parameters=[str(params_file), overrides],
            remappings=image_remappings(arg("image")) + depth_remappings(arg("depth_name")),
        )
    ]
    if as_bool(arg("rviz"), "rviz"):
        actions.append(rviz_node(namespace, use_sim_time))
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
                "depth",
                default_value="false",
                description="also read depth/image (aligned to image) and publish points, "
                "detections_3d, markers",
            ),
            DeclareLaunchArgument(
                "depth_name",
                default_value="depth/image",
                description="topic the depth input is remapped to, absolute or relative to the namespace, "
                "e.g. /front/aligned_depth_to_color/image_raw; intrinsics come from the colour camera_info",
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
