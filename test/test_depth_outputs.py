"""The 3D outputs as messages (ros/depth_outputs.py): PointCloud2 layout and CDR round trip through
every supported distro's typestore, Detection3DArray and MarkerArray contents."""

from __future__ import annotations

import numpy as np
import pytest

from segmentation_ros.engine.depth import Object3D, PointCloud
from segmentation_ros.engine.labels import get_label_set
from segmentation_ros.engine.visualize import instance_color
from segmentation_ros.ros.depth_outputs import (
    detections_3d,
    markers,
    point_cloud_from_message,
    point_cloud_message,
)
from segmentation_ros.ros.messages import SUPPORTED_DISTROS, RosbagsFactory, make_header, time_from_ns


@pytest.fixture(params=SUPPORTED_DISTROS)
def factory(request):
    return RosbagsFactory(request.param)


def cloud(n: int = 50, seed: int = 0) -> PointCloud:
    rng = np.random.default_rng(seed)
    return PointCloud(
        xyz=rng.normal(size=(n, 3)).astype(np.float32),
        rgb=rng.integers(0, 256, (n, 3), dtype=np.uint8),
        label=rng.integers(0, 2**32, n, dtype=np.uint32),
        instance=rng.integers(0, 2**16, n, dtype=np.uint32),
    )


def objects() -> list[Object3D]:
    return [
        Object3D(
            7,
            2,
            0.875,
            np.array([0.5, -0.25, 3.0], np.float32),
            np.array([0.4, 0.3, 0.2], np.float32),
            np.array([0.45, -0.2, 2.95], np.float32),
            120,
        ),
        Object3D(
            300,
            4,
            0.5,
            np.array([-1.0, 0.0, 6.0], np.float32),
            np.array([0.0, 1.0, 2.0], np.float32),
            np.array([-1.0, 0.1, 5.5], np.float32),
            40,
        ),
    ]


def roundtrip(factory: RosbagsFactory, msg, type_name: str):
    return factory.deserialize(bytes(factory.serialize(msg, type_name)), type_name)


def test_point_cloud_roundtrip(factory):
    pts = cloud()
    header = make_header(factory, time_from_ns(factory, 1_500_000_123), "camera_optical")
    msg = roundtrip(factory, point_cloud_message(factory, header, pts), "sensor_msgs/msg/PointCloud2")
    assert (msg.height, msg.width, msg.point_step, msg.row_step, msg.is_dense, msg.is_bigendian) == (
        1,
        50,
        24,
        1200,
        True,
        False,
    )
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, 7, 1),
        ("y", 4, 7, 1),
        ("z", 8, 7, 1),
        ("rgb", 12, 7, 1),
        ("label", 16, 6, 1),
        ("instance", 20, 6, 1),
    ]
    assert msg.header.frame_id == "camera_optical" and msg.header.stamp.nanosec == 500_000_123
    back = point_cloud_from_message(msg)
    np.testing.assert_array_equal(np.stack([back["x"], back["y"], back["z"]], 1), pts.xyz)
    np.testing.assert_array_equal(back["label"], pts.label)
    np.testing.assert_array_equal(back["instance"], pts.instance)
    # rgb as PCL packs it: the float32 field's bits are 0x00RRGGBB
    bits = back["rgb"].view(np.uint32)
    np.testing.assert_array_equal(np.stack([bits >> 16 & 255, bits >> 8 & 255, bits & 255], 1), pts.rgb)


def test_empty_point_cloud(factory):
    empty = PointCloud(
        np.zeros((0, 3), np.float32),
        np.zeros((0, 3), np.uint8),
        np.zeros(0, np.uint32),
        np.zeros(0, np.uint32),
    )
    msg = roundtrip(
        factory, point_cloud_message(factory, make_header(factory), empty), "sensor_msgs/msg/PointCloud2"
    )
    assert msg.width == 0 and len(point_cloud_from_message(msg)) == 0


def test_detections_3d(factory):
    header = make_header(factory, time_from_ns(factory, 42), "cam")
    msg = roundtrip(factory, detections_3d(factory, header, objects()), "vision_msgs/msg/Detection3DArray")
    assert [d.id for d in msg.detections] == ["7", "300"]
    first = msg.detections[0]
    assert first.header.stamp.nanosec == 42
    assert first.results[0].hypothesis.class_id == "2" and first.results[0].hypothesis.score == 0.875
    p = first.results[0].pose.pose.position
    assert (p.x, p.y, p.z) == pytest.approx((0.45, -0.2, 2.95))
    c, s = first.bbox.center, first.bbox.size
    assert (c.position.x, c.position.y, c.position.z) == pytest.approx((0.5, -0.25, 3.0))
    assert (c.orientation.w, s.x, s.y, s.z) == pytest.approx((1.0, 0.4, 0.3, 0.2))


def test_markers(factory):
    labels = get_label_set("shapes")
    msg = roundtrip(
        factory,
        markers(factory, make_header(factory), objects(), labels, 250_000_000),
        "visualization_msgs/msg/MarkerArray",
    )
    assert msg.markers[0].action == 3  # DELETEALL first
    boxes = [m for m in msg.markers if m.ns == "boxes"]
    texts = [m for m in msg.markers if m.ns == "labels"]
    assert [m.id for m in boxes] == [7, 300] and [m.id for m in texts] == [7, 300]
    assert all(m.type == 1 and m.action == 0 for m in boxes) and all(m.type == 9 for m in texts)
    assert boxes[0].lifetime.nanosec == 250_000_000
    assert (boxes[0].color.r, boxes[0].color.g, boxes[0].color.b) == pytest.approx(
        tuple(c / 255 for c in instance_color(7))
    )
    assert boxes[1].scale.x > 0  # a flat box still has a visible extent
    assert texts[0].text == f"7 {labels.name_of(2)} 0.88"
    nothing = roundtrip(
        factory,
        markers(factory, make_header(factory), [], labels, 10**9),
        "visualization_msgs/msg/MarkerArray",
    )
    assert [m.action for m in nothing.markers] == [3]
