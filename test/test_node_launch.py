"""Launch test of the live segmentation_node (runs under ``colcon test`` in a ROS workspace).

Starts segmentation_node with a randomly initialised LR-ASPP (weights none: nothing is
downloaded) on the CPU, publishes a small image and checks that ``semantic/labels`` comes back
with the input's header at the input's size. The node reaches ``active`` through its own
``autostart`` parameter, as in the launch files.

Without ROS 2 (no launch_testing) this module is skipped at import; launch_testing's pytest
plugin, which collects ``generate_test_description``, is only present with ROS.
"""

from __future__ import annotations

import time
import unittest

import pytest

launch_testing = pytest.importorskip("launch_testing")
pytest.importorskip("launch_testing.actions")
pytest.importorskip("launch_testing.asserts")
launch = pytest.importorskip("launch")
launch_ros = pytest.importorskip("launch_ros")
pytest.importorskip("launch_ros.actions")
rclpy = pytest.importorskip("rclpy")
rclpy_qos = pytest.importorskip("rclpy.qos")
sensor_msgs_msg = pytest.importorskip("sensor_msgs.msg")

NAMESPACE = "launch_test_camera"
WIDTH, HEIGHT = 64, 48
TIMEOUT_S = 120.0  # importing torch and building the model on a CI runner's CPU


@pytest.mark.launch_test
def generate_test_description():
    node = launch_ros.actions.Node(
        package="segmentation_ros",
        executable="segmentation_node",
        name="segmentation_node",
        namespace=NAMESPACE,
        output="screen",
        parameters=[
            {
                "task": "semantic",
                "semantic_model": "lraspp_mobilenet_v3_large",
                "semantic_weights": "none",
                "device": "cpu",
                "autostart": True,
            }
        ],
        additional_env={"PYTHONUNBUFFERED": "1", "SEGMENTATION_ROS_OFFLINE": "1"},
    )
    return launch.LaunchDescription([node, launch_testing.actions.ReadyToTest()]), {"segmentation_node": node}


def _image() -> sensor_msgs_msg.Image:
    msg = sensor_msgs_msg.Image()
    msg.header.frame_id = "launch_test_optical_frame"
    msg.header.stamp.sec = 1234
    msg.header.stamp.nanosec = 567_000_000
    msg.height, msg.width = HEIGHT, WIDTH
    msg.encoding = "rgb8"
    msg.step = WIDTH * 3
    # A horizontal gradient: any content will do for a randomly initialised network.
    row = bytes(value for x in range(WIDTH) for value in (4 * x % 256, 128, 255 - 4 * x % 256))
    msg.data = row * HEIGHT
    return msg


class TestSegmentationNode(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        rclpy.init()
        cls.node = rclpy.create_node("segmentation_launch_test")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_semantic_labels_keep_header_and_size(self) -> None:
        received = []
        # Best effort on our side matches a reliable or best-effort publisher; reliable on the
        # publishing side matches either kind of subscription.
        subscription = self.node.create_subscription(
            sensor_msgs_msg.Image,
            f"/{NAMESPACE}/semantic/labels",
            received.append,
            rclpy_qos.qos_profile_sensor_data,
        )
        publisher = self.node.create_publisher(
            sensor_msgs_msg.Image, f"/{NAMESPACE}/image", rclpy_qos.QoSProfile(depth=5)
        )
        image = _image()
        try:
            deadline = time.monotonic() + TIMEOUT_S
            next_publish = 0.0
            while not received and time.monotonic() < deadline:
                # Keep publishing: the node subscribes only once it is active.
                if time.monotonic() >= next_publish:
                    publisher.publish(image)
                    next_publish = time.monotonic() + 0.5
                rclpy.spin_once(self.node, timeout_sec=0.1)
            self.assertTrue(received, f"no message on /{NAMESPACE}/semantic/labels within {TIMEOUT_S} s")
            labels = received[0]
            self.assertEqual(labels.header.frame_id, image.header.frame_id)
            self.assertEqual(
                (labels.header.stamp.sec, labels.header.stamp.nanosec),
                (image.header.stamp.sec, image.header.stamp.nanosec),
            )
            self.assertEqual((labels.height, labels.width), (HEIGHT, WIDTH))
            self.assertGreaterEqual(labels.step * labels.height, WIDTH * HEIGHT)
            self.assertEqual(len(labels.data), labels.step * labels.height)
        finally:
            self.node.destroy_publisher(publisher)
            self.node.destroy_subscription(subscription)


@launch_testing.post_shutdown_test()
class TestSegmentationNodeShutdown(unittest.TestCase):
    def test_exit_code(self, proc_info, segmentation_node) -> None:
        # SIGINT from launch must end the node cleanly (KeyboardInterrupt / ExternalShutdownException).
        launch_testing.asserts.assertExitCodes(proc_info, process=segmentation_node)
