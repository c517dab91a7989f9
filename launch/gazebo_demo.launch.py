"""Gazebo demo: panoptic segmentation of a simulated RGB-D camera looking at primitive shapes.

    ros2 launch segmentation_ros gazebo_demo.launch.py            # Jazzy + Gazebo Harmonic
    ros2 launch segmentation_ros gazebo_demo.launch.py gui:=false rviz:=false device:=cpu depth:=false

Starts gz sim on worlds/shapes.sdf (running, not paused), a ros_gz_bridge parameter_bridge for the
camera and the clock, segmentation_node in namespace ``camera`` with task panoptic, the demo
models ``shapes_lraspp`` / ``shapes_maskrcnn`` (weights resolved by name), use_sim_time and (with
``depth``, the default) depth, and rviz2.

Topics (gz -> ROS). The world's camera is a gz-sensors ``rgbd_camera`` with <topic> /camera; it
publishes <topic>/image, <topic>/depth_image, <topic>/camera_info and <topic>/points:
    /camera/image        sensor_msgs/msg/Image       <- gz.msgs.Image       (<topic>/image, rgb8)
    /camera/depth/image  sensor_msgs/msg/Image       <- gz.msgs.Image       (<topic>/depth_image, 32FC1
                                                                             metres, renamed by the bridge)
    /camera/camera_info  sensor_msgs/msg/CameraInfo  <- gz.msgs.CameraInfo  (<topic>/camera_info)
    /clock               rosgraph_msgs/msg/Clock     <- gz.msgs.Clock
The colour and depth images come from one sensor: same pose, size, intrinsics and stamp (aligned,
as the node's depth input must be), all with frame_id ``camera_optical_frame`` (the world's
<optical_frame_id>, rviz's fixed frame). gz's own <topic>/points is not bridged: the node
publishes /camera/points (labelled), /camera/detections_3d and /camera/markers, besides
/camera/panoptic/color, /camera/overlay, ... (see README).

Needs ros-$ROS_DISTRO-ros-gz (ros_gz_sim, ros_gz_bridge) and rviz2, which package.xml does not
pull in. Humble and Gazebo Fortress (the pairing Humble's binaries from packages.ros.org use):
  * Humble's ros_gz_sim gz_sim.launch.py runs ``ign gazebo`` itself when the Gazebo major version
    it was built for is below 7, and Humble's parameter_bridge accepts the gz.msgs.* type names
    used below (its own camera demo uses them), so this file is meant to run unchanged there.
  * Humble also ships ros_ign_gazebo / ros_ign_bridge: shims that redirect to ros_gz_*. Older
    guides use them (ign_gazebo.launch.py with ``ign_args``, ``ignition.msgs.*`` type names);
    Foxy and Galactic have only the ros_ign_* packages.
  * By hand: ``ign gazebo -r shapes.sdf`` / ``ign topic -l`` on Fortress instead of
    ``gz sim -r shapes.sdf`` / ``gz topic -l``.
  * Fortress (sdformat 12) reads SDF up to 1.9, hence the world's version; recent Fortress
    releases map the world's gz-sim-* plugin files and gz::sim::systems::* names to their
    ignition-gazebo-* ones.
  * Fortress's ign-sensors 6 names the rgbd_camera topics as above; <optical_frame_id> needs
    sdformat >= 12.6 and ign-sensors >= 6.7 (2022; older ones name the frame after the sensor).
  * Humble with Harmonic: ros_gz binaries from packages.osrfoundation.org ("use with caution" in
    the ros_gz README) or from source.
"""

from __future__ import annotations

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_context import LaunchContext
from launch.launch_description import LaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from segmentation_ros.ros.launch_helpers import PACKAGE, as_bool, rviz_node

NAMESPACE = "camera"
# parameter_bridge "<topic>@<ROS type>[<gz type>": "[" bridges gz -> ROS only, same name on both
# sides. The node in namespace "camera" reads camera/image, camera/camera_info and
# camera/depth/image (test_package.py checks these against the world).
BRIDGED_TOPICS = [
    "/camera/image@sensor_msgs/msg/Image[gz.msgs.Image",
    "/camera/depth_image@sensor_msgs/msg/Image[gz.msgs.Image",
    "/camera/camera_info@sensor_msgs/msg/CameraInfo[gz.msgs.CameraInfo",
    "/clock@rosgraph_msgs/msg/Clock[gz.msgs.Clock",
]
# ROS-side renames of bridged topics (the bridge's ROS remapping rules): gz-sensors names the depth
# image <topic>/depth_image; the node reads depth/image next to image.
BRIDGE_REMAPPINGS = [("/camera/depth_image", "/camera/depth/image")]


def _launch_setup(context: LaunchContext) -> list:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    share = Path(get_package_share_directory(PACKAGE))
    world = Path(arg("world")).expanduser()
    if not world.is_file():
        raise FileNotFoundError(f"launch argument world:={str(world)!r}: no such file")
    # -r: start running (a paused world renders no camera frames); -s: server only, no GUI.
    gz_args = f"-r {'' if as_bool(arg('gui'), 'gui') else '-s '}{world}"

    overrides: dict[str, object] = {
        "task": "panoptic",
        "semantic_model": "shapes_lraspp",
        "instance_model": "shapes_maskrcnn",
        "use_sim_time": True,
        "depth": as_bool(arg("depth"), "depth"),
    }
    if arg("device"):
        overrides["device"] = arg("device")

    actions = [
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(
                str(Path(get_package_share_directory("ros_gz_sim"), "launch", "gz_sim.launch.py"))
            ),
            launch_arguments={"gz_args": gz_args, "on_exit_shutdown": "true"}.items(),
        ),
        Node(
            package="ros_gz_bridge",
            executable="parameter_bridge",
            name="shapes_bridge",
            arguments=BRIDGED_TOPICS,
            remappings=BRIDGE_REMAPPINGS,
            output="screen",
        ),
        LifecycleNode(
            package=PACKAGE,
            executable="segmentation_node",
            name="segmentation_node",
            namespace=NAMESPACE,
            output="screen",
            parameters=[str(share / "config" / "panoptic.yaml"), overrides],
        ),
    ]
    if as_bool(arg("rviz"), "rviz"):
        actions.append(rviz_node(NAMESPACE, use_sim_time=True))
    return actions


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "world",
                default_value=str(Path(share, "worlds", "shapes.sdf")),
                description="SDF world with an rgbd_camera on gz topic /camera (/camera/image, "
                "/camera/depth_image, /camera/camera_info)",
            ),
            DeclareLaunchArgument("gui", default_value="true", description="open the Gazebo GUI"),
            DeclareLaunchArgument(
                "rviz", default_value="true", description="open rviz2 on the node's outputs"
            ),
            DeclareLaunchArgument(
                "device", default_value="", description="auto | cpu | cuda:N; '' keeps config/panoptic.yaml's"
            ),
            DeclareLaunchArgument(
                "depth",
                default_value="true",
                description="fuse the camera's depth image: publish points, detections_3d and markers",
            ),
            OpaqueFunction(function=_launch_setup),
        ]
    )
