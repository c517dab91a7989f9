"""segmentation-ros bag: rosbag2 in, input copied plus the node's outputs out, atomically, without ROS.

Input bags are written here with rosbags (mcap and sqlite3): two cameras (raw rgb8/bgr8 Images with
camera_info, JPEG/PNG CompressedImages without), a std_msgs/String topic, and one corrupt frame.
Models run with random weights on 48x64 frames on the CPU; built engines and processed bags are
shared per module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from segmentation_ros.ros.bag import (
    BagError,
    Camera,
    camera_namespace,
    find_cameras,
    load_engine,
    process_bag,
)
from segmentation_ros.ros.conversions import numpy_to_compressed, numpy_to_image
from segmentation_ros.ros.messages import RosbagsFactory, make_header, messages_equal, time_to_ns
from segmentation_ros.ros.node_core import OUTPUTS, SegmentationCore
from segmentation_ros.tools import cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

H, W = 48, 64
T0 = 1_700_000_000 * 10**9
PERIOD = 100_000_000  # 10 Hz
FRAMES = 4
CORRUPT = ("/front", 2)  # (camera, frame index): its data is one row short
FRONT, REAR = "/front/image_raw", "/rear/image_raw/compressed"

SEMANTIC = {
    "task": "semantic",
    "semantic_model": "lraspp_mobilenet_v3_large",
    "semantic_weights": "none",
    "device": "cpu",
}
PANOPTIC = {
    **SEMANTIC,
    "task": "panoptic",
    "instance_weights": "none",
    "instance_min_size": 0,  # native 48x64
    "score_threshold": 0.05,  # random Mask R-CNN scores are low
    "max_detections": 5,  # the mask head's cost grows with the detections
}
SEMANTIC_ARGS = [
    "--task",
    "semantic",
    "--model",
    "lraspp_mobilenet_v3_large",
    "--weights",
    "none",
    "--device",
    "cpu",
]
PANOPTIC_ARGS = [
    *["--task", "panoptic", "--model", "lraspp_mobilenet_v3_large", "--model", "maskrcnn_resnet50_fpn"],
    *["--weights", "none", "--device", "cpu", "--instance-min-size", "0", "--score-threshold", "0.05"],
    *["--max-detections", "5"],
]
BEST_EFFORT = Qos(
    QosHistory.KEEP_LAST,
    5,
    QosReliability.BEST_EFFORT,
    QosDurability.VOLATILE,
    QosTime(0, 0),
    QosTime(0, 0),
    QosLiveliness.AUTOMATIC,
    QosTime(0, 0),
    False,
)


# ---- input bags ---------------------------------------------------------------------------------
@dataclass
class InputFrame:
    camera: str  # namespace
    received_ns: int
    good: bool


def write_input_bag(
    path: Path, storage: str, distro: str = "humble", count: int = FRAMES
) -> list[InputFrame]:
    """Two cameras at 10 Hz, camera_info for /front only, a chatter topic, one truncated frame (the third)."""
    f = RosbagsFactory(distro)
    ts = f.typestore
    rng = np.random.default_rng(7)
    frames = []
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=8, storage_plugin=plugin) as w:
        front = w.add_connection(
            FRONT, "sensor_msgs/msg/Image", typestore=ts, offered_qos_profiles=[BEST_EFFORT]
        )
        info = w.add_connection("/front/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts)
        rear = w.add_connection(REAR, "sensor_msgs/msg/CompressedImage", typestore=ts)
        chatter = w.add_connection("/chatter", "std_msgs/msg/String", typestore=ts)
        for k in range(count):
            t = T0 + k * PERIOD
            camera_info = f.new(
                "sensor_msgs/msg/CameraInfo",
                header=make_header(f, t - 25_000_000, "front_optical"),
                height=H,
                width=W,
                k=np.array([50.0 + k, 0, W / 2, 0, 50.0, H / 2, 0, 0, 1]),
            )
            w.write(info, t - 5_000_000, f.serialize(camera_info))
            pixels = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            image = numpy_to_image(
                pixels, "rgb8" if k % 2 == 0 else "bgr8", make_header(f, t - 20_000_000, "front_optical"), f
            )
            good = ("/front", k) != CORRUPT
            if not good:
                image.data = image.data[: -W * 3]
            w.write(front, t, f.serialize(image))
            frames.append(InputFrame("/front", t, good))

            t_rear = t + 30_000_000
            pixels = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            header = make_header(f, t_rear - 10_000_000, "rear_optical")
            compressed = numpy_to_compressed(
                pixels, "jpeg" if k % 2 == 0 else "png", header, f, encoding="bgr8"
            )
            w.write(rear, t_rear, f.serialize(compressed))
            frames.append(InputFrame("/rear", t_rear, True))

            w.write(chatter, t + 60_000_000, f.serialize(f.new("std_msgs/msg/String", data=f"hello {k}")))
    return frames


@pytest.fixture(scope="module")
def input_bags(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[tuple[str, str], tuple[Path, list[InputFrame]]]:
    """(storage, distro) -> (bag directory, its frames)."""
    root = tmp_path_factory.mktemp("inputs")
    bags = {}
    for storage, distro in (
        ("mcap", "humble"),
        ("sqlite3", "humble"),
        ("mcap", "jazzy"),
        ("sqlite3", "jazzy"),
        ("sqlite3", "kilted"),
    ):
        path = root / f"{storage}_{distro}"
        bags[storage, distro] = path, write_input_bag(path, storage, distro)
    return bags


# ---- reading bags back --------------------------------------------------------------------------
#: The metadata.yaml versions each distro's rosbag2 reads, from ros2/rosbag2's sources: Humble (0.15.x,
#: rosbag2_storage/src/rosbag2_storage/metadata_io.cpp on the humble branch) writes 5 and decodes the
#: fields of any version up to 8, but reads a topic's offered_qos_profiles as a YAML *string* of
#: numeric policies whatever the version, so version 9's list fails ("bad conversion"); Jazzy (0.26.x,
#: rosbag2_storage/include/rosbag2_storage/yaml.hpp on the jazzy branch) writes 9 and reads 4 to 9:
#: the string of numeric policies before 9, a list of named ones from 9; Kilted (0.32.x) as Jazzy.
ROSBAG2_READS = {"humble": range(1, 9), "jazzy": range(1, 10), "kilted": range(1, 10)}
_POLICIES = ("history", "reliability", "durability", "liveliness")


def assert_rosbag2_reads(bag: Path, distro: str) -> None:
    """The bag's metadata.yaml is one ``distro``'s rosbag2 reads: its version, and its QoS in that version's form."""
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    version = info["version"]
    assert version in ROSBAG2_READS[distro], f"{distro}'s rosbag2 cannot read metadata version {version}"
    for topic in info["topics_with_message_count"]:
        qos = topic["topic_metadata"]["offered_qos_profiles"]
        if version >= 9:
            assert isinstance(qos, list)
            profiles, policy = qos, str
        else:
            assert isinstance(qos, str)
            profiles, policy = yaml.safe_load(qos) or [], int
        for profile in profiles:
            assert all(isinstance(profile[name], policy) for name in _POLICIES), (version, profile)
            assert all(set(profile[t]) == {"sec", "nsec"} for t in ("deadline", "lifespan"))


@dataclass
class BagContents:
    connections: dict[str, Any] = field(default_factory=dict)  # topic -> Connection
    raw: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    msgs: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)


def read_bag(path: Path) -> BagContents:
    """Every message, raw and deserialized with the bag's own definitions."""
    contents = BagContents()
    with AnyReader([path]) as reader:
        contents.connections = {c.topic: c for c in reader.connections}
        for conn, t, data in reader.messages():
            contents.raw.setdefault(conn.topic, []).append((t, bytes(data)))
            with contextlib.suppress(AnyReaderError):  # a corrupt input message, copied as it was
                contents.msgs.setdefault(conn.topic, []).append((t, reader.deserialize(data, conn.msgtype)))
    return contents


def tree_hash(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.partial-"))


@dataclass
class Run:
    rc: int
    out: Path
    frames: list[InputFrame]
    stdout: str
    stderr: str
    task: str
    contents: BagContents | None = None
    inputs: BagContents | None = None


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = cli.main(argv)
    return rc, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module", params=["semantic", "panoptic"])
def run(request: pytest.FixtureRequest, input_bags: dict, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The bag command end to end: semantic from mcap, panoptic from sqlite3."""
    task = request.param
    storage = "mcap" if task == "semantic" else "sqlite3"
    path, frames = input_bags[storage, "humble"]
    out = tmp_path_factory.mktemp(f"cli_{task}") / "segmented"
    args = SEMANTIC_ARGS if task == "semantic" else PANOPTIC_ARGS
    torch.manual_seed(0)  # the random weights
    rc, stdout, stderr = run_cli(["bag", str(path), str(out), *args])
    result = Run(rc, out, frames, stdout, stderr, task)
    if rc == 0:
        result.contents, result.inputs = read_bag(out), read_bag(path)
    return result


# ---- the end-to-end run -------------------------------------------------------------------------
def good_frames(run: Run, camera: str) -> list[InputFrame]:
    return [f for f in run.frames if f.camera == camera and f.good]


def test_bag_command_succeeds_and_reports(run: Run) -> None:
    assert run.rc == 0, run.stderr
    assert run.out.is_dir() and not leftovers(run.out)
    assert "8 frames from 2 camera(s)" in run.stdout and "7 segmented, 1 rejected" in run.stdout
    assert "frames/s" in run.stdout
    corrupt = next(f for f in run.frames if not f.good)
    assert f"rejected frame of {FRONT} at {corrupt.received_ns} ns" in run.stderr
    assert "expected height * step" in run.stderr  # the conversion error names the problem


def test_storage_follows_input(run: Run) -> None:
    suffix = ".mcap" if run.task == "semantic" else ".db3"
    assert (run.out / f"{run.out.name}{suffix}").is_file()


def test_input_messages_copied_unchanged(run: Run) -> None:
    assert run.contents is not None and run.inputs is not None
    for topic, messages in run.inputs.raw.items():
        assert run.contents.raw[topic] == messages, topic
        have, want = run.contents.connections[topic], run.inputs.connections[topic]
        assert (have.msgtype, have.msgdef, have.digest) == (want.msgtype, want.msgdef, want.digest)
        assert have.ext.offered_qos_profiles == want.ext.offered_qos_profiles
    assert run.contents.connections[FRONT].ext.offered_qos_profiles == [BEST_EFFORT]


def test_every_output_topic_per_camera(run: Run) -> None:
    assert run.contents is not None
    expected = set()
    for camera in ("/front", "/rear"):
        good = good_frames(run, camera)
        for spec in OUTPUTS:
            if run.task not in spec.tasks or spec.depth:  # depth outputs: only with a depth topic
                continue
            topic = f"{camera}/{spec.topic}"
            if spec.topic.endswith("camera_info") and camera == "/rear":
                continue  # the rear camera recorded no camera_info
            expected.add(topic)
            assert run.contents.connections[topic].msgtype == spec.type, topic
            times = [t for t, _ in run.contents.msgs[topic]]
            if spec.latched:
                assert times == [min(f.received_ns for f in run.frames if f.camera == camera)], topic
                qos = run.contents.connections[topic].ext.offered_qos_profiles
                assert qos[0].durability == QosDurability.TRANSIENT_LOCAL
            else:
                assert times == [f.received_ns for f in good], topic
    new = set(run.contents.connections) - set(run.inputs.connections)  # type: ignore[union-attr]
    assert new == expected


def test_outputs_carry_input_headers_times_and_sizes(run: Run) -> None:
    assert run.contents is not None
    for camera in ("/front", "/rear"):
        headers = {
            t: m.header
            for t, m in run.inputs.msgs[FRONT if camera == "/front" else REAR]  # type: ignore[union-attr]
        }
        for spec in OUTPUTS:
            topic = f"{camera}/{spec.topic}"
            if spec.latched or topic not in run.contents.msgs:
                continue
            for t, msg in run.contents.msgs[topic]:
                assert time_to_ns(msg.header.stamp) == time_to_ns(headers[t].stamp), topic
                assert msg.header.frame_id == headers[t].frame_id
                if spec.type == "sensor_msgs/msg/Image":
                    assert (msg.height, msg.width) == (H, W), topic
    # camera_info: the latest one recorded before the frame, with the frame's header
    infos = run.inputs.msgs["/front/camera_info"]  # type: ignore[union-attr]
    for group in ("semantic", "panoptic", "instances"):
        for t, msg in run.contents.msgs.get(f"/front/{group}/camera_info", []):
            recorded = max((i for i in infos if i[0] < t), key=lambda i: i[0])[1]
            assert messages_equal(dataclasses.replace(recorded, header=msg.header), msg)
            assert time_to_ns(msg.header.stamp) != time_to_ns(recorded.header.stamp)


def test_label_info_covers_every_class(run: Run) -> None:
    contents = run.contents
    assert contents is not None
    for camera in ("/front", "/rear"):
        label_info = contents.msgs[f"{camera}/label_info"][0][1]
        ids = {c.class_id for c in label_info.class_map}
        names = {c.class_name for c in label_info.class_map}
        assert len(names) == len(ids) > 1
        semantic_info = contents.msgs[
            f"{camera}/semantic/label_info" if run.task == "panoptic" else f"{camera}/label_info"
        ]
        semantic_ids = {c.class_id for c in semantic_info[0][1].class_map}
        for _, msg in contents.msgs[f"{camera}/semantic/labels"]:
            dtype = np.uint8 if msg.encoding == "mono8" else np.uint16
            labels = np.frombuffer(msg.data.tobytes(), dtype=dtype)
            assert set(np.unique(labels).tolist()) <= semantic_ids
        if run.task == "panoptic":
            for _, msg in contents.msgs[f"{camera}/panoptic/ids"]:
                assert msg.encoding == "32SC1"
                panoptic = np.frombuffer(msg.data.tobytes(), dtype=np.int32)
                assert set(np.unique(panoptic // 1000).tolist()) <= ids
            for _, msg in contents.msgs[f"{camera}/detections"]:
                assert {int(d.results[0].hypothesis.class_id) for d in msg.detections} <= ids


@pytest.mark.parametrize("run", ["panoptic"], indirect=True)
@pytest.mark.parametrize("camera", ["/front", "/rear"])
def test_instance_ids_match_detections(run: Run, camera: str) -> None:
    contents = run.contents
    assert contents is not None
    detections = dict(contents.msgs[f"{camera}/detections"])
    total = 0
    for t, msg in contents.msgs[f"{camera}/instances/ids"]:
        assert msg.encoding == "mono16"
        ids = set(np.unique(np.frombuffer(msg.data.tobytes(), dtype=np.uint16)).tolist()) - {0}
        detection_ids = {int(d.id) for d in detections[t].detections}
        # the engine drops detections that no pixel shows, so the map's ids are exactly the detections'
        assert ids == detection_ids
        total += len(detection_ids)
    assert total > 0, "random Mask R-CNN found nothing; the id check is empty"


# ---- batching, engines shared ------------------------------------------------------------------
@pytest.fixture(scope="module")
def panoptic_engine() -> Any:
    torch.manual_seed(0)  # the random weights, so that every run sees the same detections
    return load_engine(PANOPTIC)


@pytest.fixture(scope="module")
def semantic_engine() -> Any:
    torch.manual_seed(0)
    return load_engine(SEMANTIC)


def test_batched_outputs_equal_frame_by_frame(
    panoptic_engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each camera's outputs are byte for byte the same whether its frames share a batch or not.

    With PyTorch's own CPU kernels: oneDNN picks other kernels for a batch of two, and the ~1e-6
    differences flip near-ties of random Mask R-CNN weights (mask pixels at 0.5, NMS order).
    """
    path = tmp_path / "input"
    write_input_bag(path, "mcap", count=2)
    sizes: list[int] = []
    process = SegmentationCore.process

    def spy(self: SegmentationCore, frames: list, subscribed: Any = None) -> list:
        sizes.append(len(frames))
        return process(self, frames, subscribed)

    monkeypatch.setattr(SegmentationCore, "process", spy)
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    batched = process_bag(path, tmp_path / "batched", PANOPTIC, engine=panoptic_engine, progress=False)
    assert sizes == [2, 2]
    sizes.clear()
    single = process_bag(
        path, tmp_path / "single", PANOPTIC, engine=panoptic_engine, progress=False, max_batch=1
    )
    assert sizes == [1, 1, 1, 1]
    assert (batched.processed, batched.topics) == (single.processed, single.topics)
    a, b = read_bag(tmp_path / "batched"), read_bag(tmp_path / "single")
    assert a.raw == b.raw


# ---- atomicity and errors -----------------------------------------------------------------------
def test_interrupted_run_leaves_nothing(
    input_bags: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = input_bags["mcap", "humble"]
    before = tree_hash(path)
    calls = 0
    process = SegmentationCore.process

    def interrupt_on_third(self: SegmentationCore, frames: list, subscribed: Any = None) -> list:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return process(self, frames, subscribed)

    monkeypatch.setattr(SegmentationCore, "process", interrupt_on_third)
    out = tmp_path / "out"
    rc, _, stderr = run_cli(["bag", str(path), str(out), *SEMANTIC_ARGS, "--quiet"])
    assert rc == 130 and "interrupted" in stderr
    assert calls == 3
    assert not out.exists() and not leftovers(out)
    assert list(tmp_path.iterdir()) == []
    assert tree_hash(path) == before


def test_interrupted_overwrite_keeps_previous_output(
    input_bags: dict, semantic_engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = input_bags["sqlite3", "humble"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous")

    def interrupt(self: SegmentationCore, frames: list, subscribed: Any = None) -> list:
        raise KeyboardInterrupt

    monkeypatch.setattr(SegmentationCore, "process", interrupt)
    with pytest.raises(KeyboardInterrupt):
        process_bag(path, out, SEMANTIC, overwrite=True, engine=semantic_engine, progress=False)
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and not leftovers(out)


def test_existing_output_is_an_error_unless_overwrite(
    input_bags: dict, semantic_engine: Any, tmp_path: Path
) -> None:
    path, _ = input_bags["mcap", "humble"]
    before = tree_hash(path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous")
    rc, _, stderr = run_cli(["bag", str(path), str(out), *SEMANTIC_ARGS, "--quiet"])
    assert rc == 2 and "exists" in stderr and "--overwrite" in stderr
    assert (out / "keep.txt").read_text() == "previous"
    assert tree_hash(path) == before

    summary = process_bag(path, out, SEMANTIC, overwrite=True, engine=semantic_engine, progress=False)
    assert summary.processed == 7
    assert not (out / "keep.txt").exists() and (out / "out.mcap").is_file() and not leftovers(out)
    assert tree_hash(path) == before
    with pytest.raises(BagError, match="outside the input"):
        process_bag(path, path / "inner", SEMANTIC, engine=semantic_engine, progress=False)


def test_errors_that_prevent_processing_exit_2(input_bags: dict, tmp_path: Path) -> None:
    path, _ = input_bags["mcap", "humble"]
    chatter_only = tmp_path / "chatter"
    with Writer(chatter_only, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        f = RosbagsFactory("humble")
        conn = w.add_connection("/chatter", "std_msgs/msg/String", typestore=f.typestore)
        w.write(conn, T0, f.serialize(f.new("std_msgs/msg/String", data="hi")))
    processed = tmp_path / "processed"  # holds an output topic already
    with Writer(processed, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        image = numpy_to_image(np.zeros((H, W), np.uint8), "mono8", make_header(f, T0, "cam"), f)
        for topic in ("/cam/image_raw", "/cam/semantic/labels"):
            conn = w.add_connection(topic, "sensor_msgs/msg/Image", typestore=f.typestore)
            w.write(conn, T0, f.serialize(image))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 8}\n")
    cases = {
        "no camera image topics": [str(chatter_only)],
        "is not in the bag": [str(path), "--image-topic", "/nope"],
        "has type std_msgs/msg/String": [str(path), "--image-topic", "/chatter"],
        "['/cam/semantic/labels'] are already in the input bag": [str(processed)],
        "cannot read bag": [str(broken)],
        "does not exist": [str(tmp_path / "missing")],
        "label_divisor": [str(path), "--label-divisor", "5", "--max-detections", "10"],
    }
    for message, args in cases.items():
        out = tmp_path / "out"
        rc, _, stderr = run_cli(["bag", args[0], str(out), *SEMANTIC_ARGS, "--quiet", *args[1:]])
        assert rc == 2 and message in stderr, (message, stderr)
        assert not out.exists() and not leftovers(out)


def test_unreadable_frames_are_skipped(
    semantic_engine: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A message that does not deserialize and a frame the engine refuses are rejected; the rest go on."""
    f = RosbagsFactory("humble")
    path = tmp_path / "input"
    good = numpy_to_image(np.zeros((H, W, 3), np.uint8), "rgb8", make_header(f, T0, "cam"), f)
    empty = numpy_to_image(np.zeros((0, 0, 3), np.uint8), "rgb8", make_header(f, T0, "cam"), f)
    with Writer(path, version=8, storage_plugin=StoragePlugin.SQLITE3) as w:
        conn = w.add_connection("/cam/image", "sensor_msgs/msg/Image", typestore=f.typestore)
        w.write(conn, T0 + 1, f.serialize(good))
        w.write(conn, T0 + 2, f.serialize(good)[:40])  # truncated CDR
        w.write(conn, T0 + 3, f.serialize(empty))  # converts, but the engine refuses a 0x0 frame
        w.write(conn, T0 + 4, f.serialize(good))
    summary = process_bag(path, tmp_path / "out", SEMANTIC, engine=semantic_engine, progress=False)
    assert (summary.frames, summary.processed, summary.rejected, summary.copied) == (4, 2, 2, 4)
    stderr = capsys.readouterr().err
    assert f"at {T0 + 2} ns: cannot deserialize sensor_msgs/msg/Image" in stderr
    assert f"at {T0 + 3} ns: frame 0: zero-sized image" in stderr
    contents, inputs = read_bag(tmp_path / "out"), read_bag(path)
    assert contents.raw["/cam/image"] == inputs.raw["/cam/image"]
    assert [t for t, _ in contents.raw["/cam/semantic/labels"]] == [T0 + 1, T0 + 4]
    assert [t for t, _ in contents.raw["/cam/label_info"]] == [T0 + 1]


# ---- distros and storages -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("distro", "storage"), [("humble", "sqlite3"), ("jazzy", "mcap"), ("kilted", "mcap")]
)
def test_distros(input_bags: dict, tmp_path: Path, distro: str, storage: str) -> None:
    """Input written with the distro's typestore, processed with --distro, written to the other storage."""
    path, frames = input_bags["mcap" if storage == "sqlite3" else "sqlite3", distro]
    out = tmp_path / "out"
    argv = ["bag", str(path), str(out), *SEMANTIC_ARGS, "--distro", distro, "--storage", storage, "--quiet"]
    argv += ["--image-topic", FRONT]
    rc, stdout, stderr = run_cli(argv)
    assert rc == 0, stderr
    assert "4 frames from 1 camera(s)" in stdout and "3 segmented, 1 rejected" in stdout
    suffix = ".mcap" if storage == "mcap" else ".db3"
    assert (out / f"out{suffix}").is_file()
    assert_rosbag2_reads(out, distro)
    contents, inputs = read_bag(out), read_bag(path)
    for topic, messages in inputs.raw.items():
        assert contents.raw[topic] == messages
    assert "/rear/semantic/labels" not in contents.connections  # only the camera asked for
    label_info = contents.connections["/front/label_info"]
    assert label_info.msgtype == "vision_msgs/msg/LabelInfo" and "VisionClass" in label_info.msgdef.data
    assert [t for t, _ in contents.msgs["/front/semantic/labels"]] == [
        f.received_ns for f in frames if f.camera == "/front" and f.good
    ]


# ---- cameras --------------------------------------------------------------------------------------
def test_camera_namespace() -> None:
    assert camera_namespace("/front/image_raw") == "/front"
    assert camera_namespace("/cam/image/compressed") == "/cam"
    assert camera_namespace("/robot/left/color/image_raw") == "/robot/left/color"
    assert camera_namespace("/image_raw") == "/"
    assert Camera("/image_raw", "/").topic("overlay") == "/overlay"
    assert Camera("/image_raw", "/").name == ""


def test_find_cameras() -> None:
    image, compressed, info = (
        "sensor_msgs/msg/Image",
        "sensor_msgs/msg/CompressedImage",
        "sensor_msgs/msg/CameraInfo",
    )
    topics = {
        "/front/image_raw": image,
        "/front/image_raw/compressed": compressed,
        "/front/camera_info": info,
        "/rear/image/compressed": compressed,
        "/rear/image/compressedDepth": compressed,
        "/old/semantic/color": image,  # an earlier run's output, no camera
        "/chatter": "std_msgs/msg/String",
    }
    assert find_cameras(topics) == [
        Camera("/front/image_raw", "/front", "/front/camera_info"),
        Camera("/rear/image/compressed", "/rear", None),
    ]
    assert find_cameras(topics, ["front/image_raw/compressed"]) == [
        Camera("/front/image_raw/compressed", "/front", "/front/camera_info")
    ]
    with pytest.raises(ValueError, match="would all be camera /front"):
        find_cameras(topics, ["/front/image_raw", "/front/image_raw/compressed"])
    with pytest.raises(ValueError, match="would all be camera /cam"):
        find_cameras({"/cam/image_raw": image, "/cam/image_rect": image})


def test_find_cameras_with_depth() -> None:
    image, info = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"
    topics = {
        "/front/color/image_raw": image,
        "/front/color/camera_info": info,
        "/front/aligned_depth_to_color/image_raw": image,  # a depth image: never a camera
        "/rig/left/image": image,
        "/rig/left/depth/image": image,
        "/rig/image": image,
    }
    assert [c.image_topic for c in find_cameras(topics)] == ["/front/color/image_raw", "/rig/image", "/rig/left/image"]
    cameras = find_cameras(topics, depth_topics=["/rig/left/depth/image", "front/aligned_depth_to_color/image_raw"])
    # each depth topic goes to the camera whose namespace shares the most leading name parts
    assert {c.image_topic: c.depth_topic for c in cameras} == {
        "/front/color/image_raw": "/front/aligned_depth_to_color/image_raw",  # a RealSense's layout
        "/rig/image": None,
        "/rig/left/image": "/rig/left/depth/image",
    }
    with pytest.raises(ValueError, match="could be camera"):
        find_cameras({"/r/a/image": image, "/r/b/image": image, "/r/depth": image}, depth_topics=["/r/depth"])
    with pytest.raises(ValueError, match="in no camera's namespace"):
        find_cameras({"/a/image": image, "/b/image": image, "/c/depth": image}, depth_topics=["/c/depth"])
    only = find_cameras({"/a/image": image, "/c/depth": image}, depth_topics=["/c/depth"])
    assert only == [Camera("/a/image", "/a", None, "/c/depth")]  # one camera: its depth wherever recorded
    with pytest.raises(ValueError, match="expected a sensor_msgs/msg/Image topic"):
        find_cameras(topics, depth_topics=["/front/color/camera_info"])
    with pytest.raises(ValueError, match="two depth topics"):
        find_cameras({"/a/image": image, "/a/depth/x": image, "/a/depth/y": image}, depth_topics=["/a/depth/x", "/a/depth/y"])


def test_depth_topic_gives_the_3d_outputs(tmp_path: Path) -> None:
    """The synthetic RGB-D recording through the processor with --depth-topic: every frame paired,
    3D detections whose ids are the 2D ones, points whose instance-k points lie in box k."""
    from segmentation_ros.ros.depth_outputs import point_cloud_from_message
    from segmentation_ros.tools.synthetic import generate_sequence, write_sequence_bag

    bag = write_sequence_bag(tmp_path / "rgbd", generate_sequence(3, 3, 160, 120, split="test"))
    argv = ["bag", str(bag), str(tmp_path / "out"), "--task", "panoptic", "--model", "shapes_lraspp"]
    argv += ["--model", "shapes_maskrcnn", "--device", "cpu", "--quiet", "--depth-topic", "/camera/depth/image"]
    code, out, err = run_cli(argv)
    assert code == 0, err
    assert "depth: 3 frames, 3 paired, 0 colour frames without depth, 0 unusable" in out
    msgs = read_bag(tmp_path / "out").msgs
    assert len(msgs["/camera/points"]) == len(msgs["/camera/detections_3d"]) == len(msgs["/camera/markers"]) == 3
    assert "/camera/depth/semantic/labels" not in msgs  # the depth image is no camera
    for (_, det2d), (_, det3d), (_, points) in zip(
        msgs["/camera/detections"], msgs["/camera/detections_3d"], msgs["/camera/points"], strict=True
    ):
        assert det3d.header.stamp == det2d.header.stamp == points.header.stamp
        assert {d.id for d in det3d.detections} <= {d.id for d in det2d.detections}
        cloud = point_cloud_from_message(points)
        xyz = np.stack([cloud["x"], cloud["y"], cloud["z"]], 1)
        for d in det3d.detections:
            c, size = d.bbox.center.position, d.bbox.size
            lo = np.array([c.x - size.x / 2, c.y - size.y / 2, c.z - size.z / 2]) - 1e-4
            hi = np.array([c.x + size.x / 2, c.y + size.y / 2, c.z + size.z / 2]) + 1e-4
            inside = xyz[cloud["instance"] == int(d.id)]
            assert np.all((inside >= lo) & (inside <= hi))


# ---- tracking -------------------------------------------------------------------------------------
def _box(detection: Any) -> np.ndarray:
    c, w, h = detection.bbox.center.position, detection.bbox.size_x, detection.bbox.size_y
    return np.array([c.x - w / 2, c.y - h / 2, c.x + w / 2, c.y + h / 2])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def _same_id_overlap(out: Path) -> tuple[float, int]:
    """Of the ids seen in two consecutive frames, the share whose boxes overlap (IoU > 0.3)."""
    detections = [m for _, m in read_bag(out).msgs["/camera/detections"]]
    kept = overlapping = 0
    for before, after in zip(detections, detections[1:], strict=False):
        boxes = {d.id: _box(d) for d in before.detections}
        for d in after.detections:
            if d.id in boxes:
                kept += 1
                overlapping += _iou(boxes[d.id], _box(d)) > 0.3
    return overlapping / max(kept, 1), kept


def test_tracking_carries_ids_from_frame_to_frame(tmp_path: Path) -> None:
    from segmentation_ros.tools.synthetic import generate_sequence, write_sequence_bag

    bag = write_sequence_bag(tmp_path / "drive", generate_sequence(8, 3, 224, 168, split="test"))
    params = {
        "task": "instance",
        "instance_model": "shapes_maskrcnn",
        "instance_weights": "DEFAULT",
        "device": "cpu",
    }
    process_bag(bag, tmp_path / "ranks", params, progress=False)
    process_bag(bag, tmp_path / "tracked", {**params, "tracking": True}, progress=False)
    tracked, kept = _same_id_overlap(tmp_path / "tracked")
    ranks, _ = _same_id_overlap(tmp_path / "ranks")
    # A tracked id stays on its object; a per-frame rank jumps between objects. (Not all of them:
    # the detector's box of one object can change from frame to frame, half an object found once.)
    assert kept > 20 and tracked >= 0.9 and ranks < tracked - 0.3, (tracked, ranks, kept)
