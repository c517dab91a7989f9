"""The real ROS 2 message types: the generated vision_msgs and rclpy's classes against rosbags'.

``make test`` generates vision_msgs with the rosidl generator wheels from the definitions in
:mod:`segmentation_ros.ros.messages` (``scripts/ros_env.py``). Here that package must be the released
one on the wire: the type hash DDS announces for each type is upstream's, and rclpy's CDR bytes of
every message the node publishes equal the bytes the offline processor writes with rosbags.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from segmentation_ros.ros.conversions import numpy_to_image
from segmentation_ros.ros.messages import (
    VISION_MSGS_DEFINITIONS,
    RosbagsFactory,
    make_header,
    make_typestore,
    message_to_dict,
    messages_equal,
)
from segmentation_ros.ros.node_core import Frame, Output, SegmentationCore
from segmentation_ros.ros.rclpy_messages import RclpyFactory

#: RIHS01 type hashes of upstream vision_msgs: computed with rosbags' ``Typestore.hash_rihs01`` from
#: the ``.msg`` files (comments included) of ros-perception/vision_msgs at tag 4.1.1, whose message
#: files 4.2.0 (Kilted) keeps unchanged. A hash covers field names, types and nesting, so equal
#: hashes mean the same type on the wire.
UPSTREAM_RIHS01 = {
    "BoundingBox2D": "008eacbb0cf8f26e83795547bed013eec3675485ef386ec056d80eaaf1c1ce2f",
    "BoundingBox2DArray": "2464e82838009386d371b523211c21c91d74d313fcdd6788223c531d621cf691",
    "BoundingBox3D": "bbb73a65c163d7f9bb29009c7bde9f7faa576bd2d23299c4511d19230dab4698",
    "BoundingBox3DArray": "a81938db9576b10c2eecd7c5a5da3eac496efd00221b25ed051dfbc81fb56da6",
    "Classification": "f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143",
    "Detection2D": "0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea",
    "Detection2DArray": "214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
    "Detection3D": "ddd703be132ab0b69d33121f1bb034132bfbb3b0ac5f9fb1516005ba1c8a265b",
    "Detection3DArray": "793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018",
    "LabelInfo": "3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    "ObjectHypothesis": "51da43cec11c01957a64d1e05a24acd18aae7745ec30b74348ad5f6d634f7f90",
    "ObjectHypothesisWithPose": "41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc",
    "Point2D": "eab0e83f44ab4de92ceaf76dd7d0e7638f2bdd1d16ffbe16c7a136c48e407247",
    "Pose2D": "b0b5d1d7b4c20dd4fcde3ed1d4b289a919290572007d67a97043814db25d3648",
    "VisionClass": "1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a",
    "VisionInfo": "95d3116a17484ad91c9a2686e1d54890bbfc3ff6c6a2de137738c4950d45d284",
}


def test_the_carried_definitions_hash_as_upstream() -> None:
    assert {name.rsplit("/", 1)[1] for name in VISION_MSGS_DEFINITIONS} == set(UPSTREAM_RIHS01)
    for distro in ("jazzy", "kilted"):
        store = make_typestore(distro)
        for name, digest in UPSTREAM_RIHS01.items():
            assert store.hash_rihs01(f"vision_msgs/msg/{name}") == f"RIHS01_{digest}", (distro, name)


def test_generated_vision_msgs_announce_upstreams_type_hashes(ros_context: Any) -> None:
    import rclpy
    from live_ros import ros_type

    node = rclpy.create_node("type_hash_probe", context=ros_context)
    try:
        for name, digest in UPSTREAM_RIHS01.items():
            topic = f"/type_hash_probe/{name.lower()}"
            node.create_publisher(ros_type(f"vision_msgs/msg/{name}"), topic, 1)
            (info,) = node.get_publishers_info_by_topic(topic)
            assert info.topic_type == f"vision_msgs/msg/{name}"
            if not hasattr(info, "topic_type_hash"):
                pytest.skip("type hashes exist since ROS 2 Iron (this is Humble)")
            assert str(info.topic_type_hash) == f"RIHS01_{digest}", name
    finally:
        node.destroy_node()


@pytest.mark.parametrize("task", ["semantic", "panoptic"])
def test_rclpy_and_rosbags_messages_are_the_same_bytes(ros_context: Any, task: str) -> None:
    """Every output of a frame, built through RclpyFactory, is the message rosbags builds, on the wire."""
    params = {
        "task": task,
        "semantic_model": "lraspp_mobilenet_v3_large",
        "semantic_weights": "none",
        "instance_weights": "none",
        "device": "cpu",
        "instance_min_size": 0,
        "score_threshold": 0.0,
        "max_detections": 3,
    }
    live, offline = RclpyFactory(), RosbagsFactory("kilted")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    outputs = {}
    for factory in (live, offline):
        torch.manual_seed(0)  # the same random weights for both
        core = SegmentationCore(params, factory, clock_ns=lambda: 1_700_000_000_500_000_000)
        core.configure()
        try:
            header = make_header(factory, 1_700_000_000_000_000_000, "cam")
            frame = Frame(
                "", numpy_to_image(pixels, "rgb8", header, factory), None, 1_700_000_000_100_000_000
            )
            outputs[factory] = [
                *core.process([frame]),
                *core.latched_outputs(),
                Output("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", core.diagnostics()),
            ]
        finally:
            core.cleanup()
    assert [o.topic for o in outputs[live]] == [o.topic for o in outputs[offline]]
    if task == "panoptic":
        assert any(o.type == "vision_msgs/msg/Detection2DArray" for o in outputs[live])
    for a, b in zip(outputs[live], outputs[offline], strict=True):
        # Each side reads the other's bytes back to its own message (CDR alignment padding is not
        # zeroed by rclpy, so the bytes themselves may differ there).
        live_bytes, offline_bytes = bytes(live.serialize(a.msg)), bytes(offline.serialize(b.msg, b.type))
        assert len(live_bytes) == len(offline_bytes), a.topic
        assert messages_equal(offline.deserialize(live_bytes, b.type), b.msg), a.topic
        assert live.deserialize(offline_bytes, a.type) == a.msg, a.topic


def test_rosbags_messages_default_to_rclpys_values(ros_context: Any) -> None:
    """A field left out gets the same value offline (rosbags) as live (rclpy), declared defaults included."""
    from live_ros import ros_type

    offline = RosbagsFactory("kilted")
    names = [f"vision_msgs/msg/{name}" for name in UPSTREAM_RIHS01] + [
        "sensor_msgs/msg/Image",
        "sensor_msgs/msg/CompressedImage",
        "sensor_msgs/msg/CameraInfo",
        "diagnostic_msgs/msg/DiagnosticArray",
        "geometry_msgs/msg/Pose",
        "geometry_msgs/msg/PoseWithCovariance",
        "geometry_msgs/msg/Quaternion",
    ]
    for name in names:
        live = message_to_dict(ros_type(name)())
        assert message_to_dict(offline.new(name)) == live, name
    hypothesis = offline.new("vision_msgs/msg/ObjectHypothesisWithPose")
    assert hypothesis.pose.pose.orientation.w == 1.0
    assert offline.new("geometry_msgs/msg/Quaternion", w=0.5).w == 0.5
