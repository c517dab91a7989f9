"""Message factories: defaults, vision_msgs registration and CDR round trips with real rosbags types."""

from __future__ import annotations

import array
import subprocess
import sys
import types

import numpy as np
import pytest

from segmentation_ros.ros.messages import (
    SUPPORTED_DISTROS,
    VISION_MSGS_DEFINITIONS,
    MessageFactory,
    RosbagsFactory,
    deserialize,
    make_header,
    make_time,
    make_typestore,
    message_to_dict,
    messages_equal,
    normalize_type_name,
    serialize,
    time_from_ns,
    time_to_ns,
)
from segmentation_ros.ros.rclpy_messages import RclpyFactory

ROUND_TRIP_DISTROS = ("humble", "jazzy")


@pytest.fixture(scope="module", params=SUPPORTED_DISTROS)
def factory(request: pytest.FixtureRequest) -> RosbagsFactory:
    return RosbagsFactory(request.param)


@pytest.fixture(scope="module", params=ROUND_TRIP_DISTROS)
def cdr_factory(request: pytest.FixtureRequest) -> RosbagsFactory:
    return RosbagsFactory(request.param)


def round_trip(msg: object, type_name: str, factory: RosbagsFactory) -> object:
    """Serialize to CDR and back, checking the result equals the input."""
    data = serialize(msg, type_name, factory)
    assert isinstance(data, memoryview) and bytes(data[:2]) in (b"\x00\x00", b"\x00\x01")
    back = deserialize(data, type_name, factory)
    assert type(back) is type(msg)
    assert messages_equal(back, msg), f"{type_name} changed in a CDR round trip"
    return back


def detection(f: RosbagsFactory, class_id: str, score: float, cx: float, cy: float) -> object:
    pose = f.new(
        "geometry_msgs/msg/PoseWithCovariance",
        pose=f.new("geometry_msgs/msg/Pose", position=f.new("geometry_msgs/msg/Point", x=cx, y=cy, z=0.0)),
        covariance=np.arange(36, dtype=np.float64),
    )
    hypothesis = f.new(
        "vision_msgs/msg/ObjectHypothesisWithPose",
        hypothesis=f.new("vision_msgs/msg/ObjectHypothesis", class_id=class_id, score=score),
        pose=pose,
    )
    center = f.new(
        "vision_msgs/msg/Pose2D", position=f.new("vision_msgs/msg/Point2D", x=cx, y=cy), theta=0.25
    )
    return f.new(
        "vision_msgs/msg/Detection2D",
        header=make_header(f, 1_700_000_000_123_456_789, "camera"),
        results=[hypothesis],
        bbox=f.new("vision_msgs/msg/BoundingBox2D", center=center, size_x=10.5, size_y=4.0),
        id=f"track-{class_id}",
    )


def test_factories_satisfy_the_protocol() -> None:
    assert isinstance(RosbagsFactory("humble"), MessageFactory)
    assert isinstance(RclpyFactory("humble"), MessageFactory)


def test_module_does_not_import_rclpy() -> None:
    code = (
        "import sys, segmentation_ros.ros.messages, segmentation_ros.ros.conversions; print('rclpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_make_typestore_rejects_unknown_distro() -> None:
    with pytest.raises(ValueError, match="'rolling'.*humble, jazzy, kilted"):
        make_typestore("rolling")


def test_vision_msgs_registered(factory: RosbagsFactory) -> None:
    for name in VISION_MSGS_DEFINITIONS:
        assert name in factory.typestore.types, name
    fields = [name for name, _ in factory.typestore.fielddefs["vision_msgs/msg/Detection2D"][1]]
    assert fields == ["header", "results", "bbox", "id"]
    fields = [name for name, _ in factory.typestore.fielddefs["vision_msgs/msg/LabelInfo"][1]]
    assert fields == ["header", "class_map", "threshold"]


def test_vision_msgs_hashes_agree_between_jazzy_and_kilted() -> None:
    # Same .msg definitions in vision_msgs 4.1.1 (Jazzy) and 4.2.0 (Kilted): the type hashes must agree.
    jazzy, kilted = make_typestore("jazzy"), make_typestore("kilted")
    for name in VISION_MSGS_DEFINITIONS:
        assert jazzy.hash_rihs01(name) == kilted.hash_rihs01(name), name


def test_new_fills_defaults(factory: RosbagsFactory) -> None:
    image = factory.new("sensor_msgs/msg/Image")
    assert (image.height, image.width, image.encoding, image.step, image.is_bigendian) == (0, 0, "", 0, 0)
    assert isinstance(image.data, np.ndarray) and image.data.dtype == np.uint8 and image.data.size == 0
    assert image.header.frame_id == "" and image.header.stamp.sec == 0
    pose = factory.new("geometry_msgs/msg/PoseWithCovariance")
    assert pose.covariance.shape == (36,) and pose.covariance.dtype == np.float64
    assert factory.new("vision_msgs/msg/Detection2DArray").detections == []


def test_new_defaults_are_fresh_objects(factory: RosbagsFactory) -> None:
    """Defaults come from per-type makers worked out once: each message still gets its own nested
    messages, arrays and lists, never ones shared with another message."""
    a, b = factory.new("vision_msgs/msg/Detection2D"), factory.new("vision_msgs/msg/Detection2D")
    a.bbox.center.position.x = 5.0
    a.results.append(factory.new("vision_msgs/msg/ObjectHypothesisWithPose"))
    assert b.bbox.center.position.x == 0.0 and b.results == []
    first, second = factory.new("geometry_msgs/msg/PoseWithCovariance"), factory.new("geometry_msgs/msg/PoseWithCovariance")
    first.covariance[0] = 1.0
    assert second.covariance[0] == 0.0 and first.pose is not second.pose


def test_new_accepts_short_type_names() -> None:
    f = RosbagsFactory("humble")
    assert type(f.new("std_msgs/Header")).__name__ == type(f.new("std_msgs/msg/Header")).__name__
    assert normalize_type_name("vision_msgs/Detection2D") == "vision_msgs/msg/Detection2D"
    with pytest.raises(ValueError, match="'Header'"):
        normalize_type_name("Header")


def test_new_rejects_bad_input() -> None:
    f = RosbagsFactory("humble")
    with pytest.raises(TypeError, match=r"no field\(s\) \['colour'\]"):
        f.new("std_msgs/msg/Header", colour="red")
    with pytest.raises(KeyError, match="vision_msgs/msg/Nope"):
        f.new("vision_msgs/msg/Nope")
    with pytest.raises(ValueError, match="covariance is a fixed array of 36 elements; got 3"):
        f.new("geometry_msgs/msg/PoseWithCovariance", covariance=[1.0, 2.0, 3.0])


def test_new_coerces_numeric_sequences() -> None:
    f = RosbagsFactory("humble")
    image = f.new("sensor_msgs/msg/Image", data=b"\x01\x02\x03")
    assert image.data.dtype == np.uint8 and image.data.tolist() == [1, 2, 3]
    image = f.new("sensor_msgs/msg/Image", data=[4, 5])
    assert image.data.dtype == np.uint8 and image.data.tolist() == [4, 5]
    pose = f.new("geometry_msgs/msg/PoseWithCovariance", covariance=list(range(36)))
    assert pose.covariance.dtype == np.float64 and pose.covariance[35] == 35.0


def test_uint8_array_reinterprets_bytes() -> None:
    f = RosbagsFactory("humble")
    values = np.array([[1, 256]], dtype="<u2")
    out = f.uint8_array(values)
    assert out.dtype == np.uint8 and out.ndim == 1
    assert out.tolist() == [1, 0, 0, 1]
    assert np.shares_memory(out, values)
    assert f.uint8_array(b"\x07\x08").tolist() == [7, 8]
    assert f.uint8_array(array.array("B", [9])).tolist() == [9]


def test_time_and_header_helpers(factory: RosbagsFactory) -> None:
    stamp = time_from_ns(factory, 1_700_000_000_123_456_789)
    assert (stamp.sec, stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert time_to_ns(stamp) == 1_700_000_000_123_456_789
    assert time_to_ns(time_from_ns(factory, -1)) == -1  # sec=-1, nanosec=999999999
    header = make_header(factory, stamp, "camera_optical")
    assert header.frame_id == "camera_optical" and header.stamp is stamp
    assert time_to_ns(make_header(factory, 5).stamp) == 5
    assert time_to_ns(make_header(factory).stamp) == 0
    assert make_time(factory, 3, 4).nanosec == 4
    with pytest.raises(ValueError, match="nanosec must lie in"):
        make_time(factory, 0, 1_000_000_000)


def test_image_and_compressed_image_round_trip(cdr_factory: RosbagsFactory) -> None:
    f = cdr_factory
    data = np.random.default_rng(0).integers(0, 256, size=2 * 3 * 3, dtype=np.uint8)
    image = f.new(
        "sensor_msgs/msg/Image",
        header=make_header(f, 42, "cam"),
        height=2,
        width=3,
        encoding="rgb8",
        is_bigendian=0,
        step=9,
        data=f.uint8_array(data),
    )
    back = round_trip(image, "sensor_msgs/msg/Image", f)
    assert back.data.tobytes() == data.tobytes()
    compressed = f.new(
        "sensor_msgs/msg/CompressedImage",
        header=make_header(f, 43, "cam"),
        format="rgb8; jpeg compressed bgr8",
        data=f.uint8_array(b"\xff\xd8\xff\xe0fake"),
    )
    round_trip(compressed, "sensor_msgs/msg/CompressedImage", f)


def test_every_vision_msgs_type_round_trips_with_defaults(cdr_factory: RosbagsFactory) -> None:
    for name in VISION_MSGS_DEFINITIONS:
        round_trip(cdr_factory.new(name), name, cdr_factory)


def test_detection2d_array_round_trip(cdr_factory: RosbagsFactory) -> None:
    f = cdr_factory
    msg = f.new(
        "vision_msgs/msg/Detection2DArray",
        header=make_header(f, 99, "camera"),
        detections=[detection(f, "circle", 0.9, 10.0, 20.0), detection(f, "square", 0.5, 1.5, 2.5)],
    )
    back = round_trip(msg, "vision_msgs/msg/Detection2DArray", f)
    assert back.detections[1].results[0].hypothesis.class_id == "square"
    assert back.detections[0].bbox.center.theta == 0.25
    assert back.detections[0].results[0].pose.covariance[35] == 35.0


def test_label_info_round_trip(cdr_factory: RosbagsFactory) -> None:
    f = cdr_factory
    classes = [
        f.new("vision_msgs/msg/VisionClass", class_id=i, class_name=n) for i, n in enumerate(["bg", "cube"])
    ]
    classes.append(f.new("vision_msgs/msg/VisionClass", class_id=65535, class_name="UNLABELED"))
    msg = f.new(
        "vision_msgs/msg/LabelInfo", header=make_header(f, 1, "camera"), class_map=classes, threshold=0.5
    )
    back = round_trip(msg, "vision_msgs/msg/LabelInfo", f)
    assert [c.class_name for c in back.class_map] == ["bg", "cube", "UNLABELED"]
    assert back.class_map[2].class_id == 65535 and back.threshold == pytest.approx(0.5)


def test_other_vision_msgs_round_trip(cdr_factory: RosbagsFactory) -> None:
    f = cdr_factory
    hypothesis = f.new("vision_msgs/msg/ObjectHypothesis", class_id="7", score=0.25)
    round_trip(hypothesis, "vision_msgs/msg/ObjectHypothesis", f)
    classification = f.new(
        "vision_msgs/msg/Classification", header=make_header(f, 3, "c"), results=[hypothesis]
    )
    round_trip(classification, "vision_msgs/msg/Classification", f)
    box3d = f.new(
        "vision_msgs/msg/BoundingBox3D", size=f.new("geometry_msgs/msg/Vector3", x=1.0, y=2.0, z=3.0)
    )
    detection3d = f.new("vision_msgs/msg/Detection3D", bbox=box3d, id="a")
    round_trip(
        f.new("vision_msgs/msg/Detection3DArray", detections=[detection3d]),
        "vision_msgs/msg/Detection3DArray",
        f,
    )
    round_trip(
        f.new("vision_msgs/msg/BoundingBox3DArray", boxes=[box3d]), "vision_msgs/msg/BoundingBox3DArray", f
    )
    box2d = f.new("vision_msgs/msg/BoundingBox2D", size_x=3.0, size_y=4.0)
    round_trip(
        f.new("vision_msgs/msg/BoundingBox2DArray", boxes=[box2d]), "vision_msgs/msg/BoundingBox2DArray", f
    )
    info = f.new("vision_msgs/msg/VisionInfo", method="seg", database_location="/labels", database_version=3)
    round_trip(info, "vision_msgs/msg/VisionInfo", f)


def test_diagnostic_array_round_trip(cdr_factory: RosbagsFactory) -> None:
    f = cdr_factory
    status = f.new(
        "diagnostic_msgs/msg/DiagnosticStatus",
        level=b"\x01"[0],
        name="segmentation: inference",
        message="slow",
        hardware_id="gpu0",
        values=[f.new("diagnostic_msgs/msg/KeyValue", key="fps", value="9.5")],
    )
    msg = f.new("diagnostic_msgs/msg/DiagnosticArray", header=make_header(f, 7, ""), status=[status])
    back = round_trip(msg, "diagnostic_msgs/msg/DiagnosticArray", f)
    assert back.status[0].values[0].value == "9.5" and back.status[0].level == 1


def test_message_to_dict_turns_arrays_into_lists() -> None:
    f = RosbagsFactory("humble")
    image = f.new("sensor_msgs/msg/Image", data=b"\x01\x02")
    assert message_to_dict(image)["data"] == [1, 2]
    assert message_to_dict(image)["header"]["stamp"] == {"sec": 0, "nanosec": 0}
    assert not messages_equal(image, f.new("sensor_msgs/msg/Image", data=b"\x01\x03"))


def test_serialize_needs_a_serializing_factory() -> None:
    class Plain:
        distro = "humble"

    with pytest.raises(TypeError, match="cannot serialize"):
        serialize(object(), "std_msgs/msg/Header", Plain())  # type: ignore[arg-type]


class _FakeRclpyMessage:
    """Stands in for an rclpy-generated class: slots, ``get_fields_and_field_types``."""

    __slots__ = ("encoding", "data")

    def __init__(self) -> None:
        self.encoding = ""
        self.data = array.array("B")

    @classmethod
    def get_fields_and_field_types(cls) -> dict[str, str]:
        return {"encoding": "string", "data": "sequence<uint8>"}


def test_rclpy_factory_wiring(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in interface package: RclpyFactory finds classes with importlib, as rclpy's own
    # generated packages are laid out (``<package>.msg.<Name>``). The live tests use the real ones.
    module = types.ModuleType("fake_wiring_msgs.msg")
    module.Image = _FakeRclpyMessage  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_wiring_msgs", types.ModuleType("fake_wiring_msgs"))
    monkeypatch.setitem(sys.modules, "fake_wiring_msgs.msg", module)
    f = RclpyFactory("jazzy")
    data = f.uint8_array(np.array([1, 2, 300], dtype="<u2"))
    assert isinstance(data, array.array) and data.typecode == "B" and list(data) == [1, 0, 2, 0, 44, 1]
    msg = f.new("fake_wiring_msgs/Image", encoding="mono8", data=data)
    assert isinstance(msg, _FakeRclpyMessage)
    assert msg.encoding == "mono8" and msg.data is data
    assert message_to_dict(msg) == {"encoding": "mono8", "data": [1, 0, 2, 0, 44, 1]}
    with pytest.raises(TypeError, match=r"no field\(s\) \['width'\]"):
        f.new("fake_wiring_msgs/msg/Image", width=3)
    with pytest.raises(ImportError, match="fake_wiring_msgs/msg/Missing"):
        f.new("fake_wiring_msgs/msg/Missing")


def test_rclpy_factory_distro_defaults_to_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROS_DISTRO", "kilted")
    assert RclpyFactory().distro == "kilted"
