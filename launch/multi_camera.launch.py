"""Launch one segmentation_node serving several cameras, batched in one forward pass per cycle.

    ros2 launch segmentation_ros multi_camera.launch.py cameras:='[front, left, right]' \\
        image_name:=image_raw task:=semantic device:=cuda:0
    ros2 launch segmentation_ros multi_camera.launch.py cameras:='[front, left]' task:=instance \\
        image_name:=color/image_raw depth:=true depth_name:=aligned_depth_to_color/image_raw

Each camera gets a namespace under the node's: with ``cameras: [front, left]`` the node reads
``front/image`` and ``left/image`` and writes ``front/semantic/labels``, ``left/overlay``, and so on
(``front/image/compressed`` with ``use_compressed``). ``image_name`` remaps the per-camera input to
what the camera driver publishes, e.g. ``front/image_raw``; camera_info is read next to the image
(``image_name:=color/image_raw`` -> ``front/color/camera_info``), as image_transport expects.
With ``depth:=true`` the node also reads each camera's ``depth/image`` (aligned to its colour
image) and publishes ``front/points``, ``front/detections_3d``, ``front/markers``, ...;
``depth_name`` remaps that input inside each camera namespace as ``image_name`` does
(``depth_name:=aligned_depth_to_color/image_raw`` -> ``front/aligned_depth_to_color/image_raw``).
QoS is set per topic with the standard overrides in the params file
(``qos_overrides./front/image.subscription.reliability: best_effort``).

The params file (default ``config/<task>.yaml``) carries everything else. The node moves itself to
``active`` through its ``autostart`` parameter (see segmentation.launch.py for why that, rather
than LifecycleNode's ``autostart=``).
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
    parse_cameras,
    rviz_node,
)


def _launch_setup(context: LaunchContext) -> list:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    task = arg("task")
    params_file = check_task_and_params_file(task, arg("params_file"))
    cameras = parse_cameras(arg("cameras"))
    use_sim_time = as_bool(arg("use_sim_time"), "use_sim_time")
    overrides: dict[str, object] = {
        "task": task,
        "cameras": cameras,
        "use_sim_time": use_sim_time,
        "depth": as_bool(arg("depth"), "depth"),
    }
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
            remappings=[
                pair
                for camera in cameras
                for pair in image_remappings(arg("image_name"), camera, "image_name")
                + depth_remappings(arg("depth_name"), camera)
            ],
        )
    ]
    if as_bool(arg("rviz"), "rviz"):
        # config/segmentation.rviz shows one camera: the first one.
        actions.append(rviz_node(f"{namespace}/{cameras[0]}", use_sim_time))
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
                "depth",
                default_value="false",
                description="also read each camera's depth/image (aligned to its image) and publish "
                "points, detections_3d, markers",
            ),
            DeclareLaunchArgument(
                "depth_name",
                default_value="depth/image",
                description="depth image topic inside each camera namespace, "
                "e.g. aligned_depth_to_color/image_raw",
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
