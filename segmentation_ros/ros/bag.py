"""Offline rosbag2 processing: segment every camera frame of a bag into a new bag, without ROS.

``segmentation-ros bag IN OUT`` reads IN (mcap or sqlite3) with rosbags, runs the same
:class:`~segmentation_ros.ros.node_core.SegmentationCore` as the live node on every camera frame, and
writes OUT: every input message copied byte for byte (same types, definitions and QoS metadata),
plus the node's output topics under each camera's namespace, stamped with the receive time of the
frame they came from.

Cameras: every ``sensor_msgs/msg/Image`` and ``sensor_msgs/msg/CompressedImage`` topic (or the
``--image-topic`` ones) is one camera. Its namespace is the topic's parent once a trailing
``/compressed`` is dropped (``/front/image_raw`` -> ``/front``, ``/cam/image/compressed`` -> ``/cam``);
``<namespace>/camera_info``, when recorded, goes with each frame (the latest one before it) and is
passed on with the frame's header. Image topics with ``depth`` in a name part
(``/front/depth/image``, ``/front/aligned_depth_to_color/image_raw``) are depth, never a camera;
``depth_topics`` pairs each with the camera whose namespace shares most of its name (the node's ``depth``: its
frames are matched to the colour frames by stamp within ``depth_slop`` and give ``points``,
``detections_3d`` and ``markers``). A depth frame recorded later than the camera's next colour frame
is too late for its frame (counted as unmatched in the summary).
Outputs go to ``<namespace>/<output>`` (``/front/semantic/labels``, ``/front/detections``, ...); the
label infos once per camera, at its first frame's time, as the live node latches them.

Frames of different cameras that arrive together (the next frame of each camera, until one repeats)
are segmented in one batch (``max_batch`` caps it); each camera's outputs are those it would get
alone, up to the float rounding of batched CPU/GPU kernels (byte-identical with PyTorch's native CPU
kernels, see test_bag.py).

OUT appears only complete (:func:`~segmentation_ros.ros.bag_output.atomic_bag`: written in a
partial directory next to it and renamed at the end; an error or Ctrl-C leaves no OUT, and what a run
killed outright leaves is removed by the next write of the same OUT). IN is only ever opened for
reading.

A frame that cannot be read, converted, segmented or written is rejected: reported on stderr,
counted in the summary, skipped; the run goes on. Input that cannot be read at all (no
metadata.yaml, a corrupt mcap chunk, a truncated .db3) and an OUT that cannot be created end the run
with a :class:`BagError` and leave no OUT.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from segmentation_ros.ros.bag_output import BagError, atomic_bag, prepare_output
from segmentation_ros.ros.node_core import CAMERA_INFO, IMAGE, LATCHED_DEPTH, OUTPUT_DEPTH, OUTPUTS

if TYPE_CHECKING:
    from rosbags.highlevel import AnyReader
    from rosbags.interfaces import Connection
    from rosbags.rosbag2 import Writer
    from rosbags.typesys.store import Typestore

    from segmentation_ros.engine.pipeline import SegmentationEngine
    from segmentation_ros.ros.messages import RosbagsFactory
    from segmentation_ros.ros.node_core import Frame, Output, SegmentationCore

__all__ = [
    "BagError",
    "BagSummary",
    "Camera",
    "IMAGE_TYPES",
    "REPORTED_REJECTIONS",
    "STORAGES",
    "atomic_bag",
    "bag_qos",
    "bag_version",
    "camera_namespace",
    "find_cameras",
    "load_engine",
    "process_bag",
]

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
STORAGES = ("mcap", "sqlite3")
#: Rejected frames listed in the summary (all are reported on stderr as they happen).
REPORTED_REJECTIONS = 20
# The rosbag2 metadata version written for each distro (see bag_version).
_BAG_VERSIONS = {"humble": 8, "jazzy": 9, "kilted": 9}
_IDL_PREFIX = "=" * 80 + "\nIDL: "


# ---- cameras --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Camera:
    """One camera of the bag: its image topic, its namespace and its camera_info topic, if recorded."""

    image_topic: str
    namespace: str  # "/front"; "/" for an image topic at the root
    camera_info_topic: str | None = None
    depth_topic: str | None = None  # an aligned depth image (16UC1 mm / 32FC1 m), paired by stamp

    @property
    def name(self) -> str:
        """The camera as the node core names it: the namespace without slashes at the ends ("" for "/")."""
        return self.namespace.strip("/")

    def topic(self, relative: str) -> str:
        """``/front`` + ``semantic/labels`` -> ``/front/semantic/labels``."""
        return f"{self.namespace.rstrip('/')}/{relative}"


def camera_namespace(image_topic: str) -> str:
    """The camera namespace of an image topic: ``/front/image_raw`` -> ``/front``,
    ``/cam/image/compressed`` -> ``/cam``, ``/image`` -> ``/``."""
    return _without_compressed("/" + image_topic.strip("/")).rsplit("/", 1)[0] or "/"


def _without_compressed(topic: str) -> str:
    """``/cam/image/compressed`` -> ``/cam/image``; other topics unchanged."""
    return topic[: -len("/compressed")] if topic.endswith("/compressed") else topic


def _derived_image_topic(topic: str) -> bool:
    """Image topics that are no camera: depth images and payloads, the node's own outputs (an earlier run's)."""
    if topic.endswith("/compressedDepth") or any("depth" in part for part in topic.split("/")):
        return True
    topic = _without_compressed(topic)
    return any(topic.endswith("/" + o.topic) for o in OUTPUTS if o.type == IMAGE)


def find_cameras(
    topics: Mapping[str, str], image_topics: Sequence[str] | None = None, depth_topics: Sequence[str] | None = None
) -> list[Camera]:
    """The cameras of a bag.

    Args:
        topics: topic name -> message type of every topic in the bag.
        image_topics: the camera image topics; None or empty for every Image and CompressedImage
            topic (except depth images, compressedDepth and earlier segmentation outputs; where a
            namespace has a raw and a compressed topic, the raw one).
        depth_topics: aligned depth image topics, each paired with the camera whose namespace shares
            the most leading name parts with it (``/cam/aligned_depth_to_color/image_raw`` goes with
            ``/cam/color/image_raw``), or with the only camera.

    Raises:
        ValueError: a named topic is missing or not an image, two topics share a namespace, the
            bag has no image topic, or a depth topic belongs to no camera or to one that has one.
    """
    images = sorted(t for t, kind in topics.items() if kind in IMAGE_TYPES)
    if image_topics:
        chosen = []
        for topic in image_topics:
            name = "/" + topic.strip("/")
            if name not in topics:
                raise ValueError(f"image topic {topic!r} is not in the bag; its image topics are {images}")
            if topics[name] not in IMAGE_TYPES:
                raise ValueError(
                    f"image topic {topic!r} has type {topics[name]}; expected one of {IMAGE_TYPES}"
                )
            chosen.append(name)
        chosen = list(dict.fromkeys(chosen))
    else:
        chosen = [t for t in images if not _derived_image_topic(t)]
    if not chosen:
        raise ValueError(
            f"no camera image topics in the bag (topics: {sorted(topics)}); expected {IMAGE_TYPES}"
        )

    by_namespace: dict[str, list[str]] = {}
    for topic in chosen:
        by_namespace.setdefault(camera_namespace(topic), []).append(topic)
    cameras = []
    for namespace, group in by_namespace.items():
        raw = [t for t in group if topics[t] == "sensor_msgs/msg/Image"]
        if len(group) > 1 and not image_topics and len(raw) == 1:
            group = raw  # image_raw and image_raw/compressed of one camera: the raw one
        if len(group) > 1:
            raise ValueError(
                f"image topics {group} would all be camera {namespace} (whose outputs would collide); "
                "choose one with --image-topic"
            )
        info = namespace.rstrip("/") + "/camera_info"
        cameras.append(Camera(group[0], namespace, info if topics.get(info) == CAMERA_INFO else None))
    return _with_depth(cameras, topics, depth_topics or [])


def _common_parts(topic: str, namespace: str) -> int:
    """Leading name parts ``topic`` and ``namespace`` share (``/cam/aligned_depth_to_color/image_raw``
    and ``/cam/color``: 1)."""
    count = 0
    for a, b in zip(topic.strip("/").split("/"), namespace.strip("/").split("/"), strict=False):
        if a != b or not a:
            break
        count += 1
    return count


def _with_depth(cameras: list[Camera], topics: Mapping[str, str], depth_topics: Sequence[str]) -> list[Camera]:
    """The cameras with their depth topics (see :func:`find_cameras`)."""
    paired: dict[str, str] = {}
    for topic in dict.fromkeys("/" + t.strip("/") for t in depth_topics):
        if topics.get(topic) != "sensor_msgs/msg/Image":
            raise ValueError(f"depth topic {topic!r}: expected a sensor_msgs/msg/Image topic of the bag, got {topics.get(topic)}")
        shared = {c.image_topic: _common_parts(topic, c.namespace) for c in cameras}
        best = max(shared.values())
        holders = [c for c in cameras if shared[c.image_topic] == best and (best > 0 or len(cameras) == 1)]
        if len(holders) != 1:
            raise ValueError(
                f"depth topic {topic!r} is in no camera's namespace ({[c.namespace for c in cameras]})"
                if not holders
                else f"depth topic {topic!r} could be camera {holders[0].namespace}'s or {holders[1].namespace}'s"
            )
        camera = holders[0]
        if camera.image_topic in paired:
            raise ValueError(f"camera {camera.image_topic} has two depth topics: {paired[camera.image_topic]}, {topic}")
        paired[camera.image_topic] = topic
    return [dataclasses.replace(c, depth_topic=paired.get(c.image_topic)) for c in cameras]


# ---- parameters and the model ----------------------------------------------------------------------
def load_engine(core_parameters: Mapping[str, Any], *, offline: bool | None = None) -> SegmentationEngine:
    """Load the engine that :func:`process_bag` would load for ``core_parameters``.

    Pass it to several :func:`process_bag` calls (``engine=``) to load the model(s) once.
    """
    from segmentation_ros.engine.pipeline import SegmentationEngine
    from segmentation_ros.ros.messages import RosbagsFactory
    from segmentation_ros.ros.node_core import SegmentationCore

    config = SegmentationCore(core_parameters, RosbagsFactory()).engine_config()
    if offline is not None:
        config = dataclasses.replace(config, offline=offline)
    return SegmentationEngine(config)


def _attach_engine(core: SegmentationCore, engine: SegmentationEngine) -> None:
    """Give ``core`` a loaded engine, after checking it runs the models the parameters ask for.

    The engine's runtime parameters (thresholds, class filter) are set to this run's and stay so.
    """
    from segmentation_ros.engine.config import RUNTIME_PARAMETERS, EngineConfig

    want, have = core.engine_config(), engine.config
    fixed = [
        f.name for f in dataclasses.fields(EngineConfig) if f.name not in RUNTIME_PARAMETERS + ("offline",)
    ]
    differ = {n: (getattr(have, n), getattr(want, n)) for n in fixed if getattr(have, n) != getattr(want, n)}
    if differ:
        raise ValueError(f"the engine given does not match the parameters; (engine, parameters): {differ}")
    engine.update(**{n: getattr(want, n) for n in RUNTIME_PARAMETERS})
    core.engine = engine


# ---- summary -------------------------------------------------------------------------------------
@dataclass
class BagSummary:
    """What :func:`process_bag` did.

    Attributes:
        frames: camera frames read; ``processed + rejected``.
        rejected: frames skipped because they could not be read, converted, segmented or written.
        rejections: the first :data:`REPORTED_REJECTIONS` of them, "<image topic> at <ns> ns: <reason>".
        copied: input messages copied.
        outputs: output messages written; per topic in ``topics``.
        wall_s: wall time of the whole run, model loading included.
    """

    input: Path
    output: Path
    storage: str
    cameras: list[Camera]
    frames: int = 0
    processed: int = 0
    rejected: int = 0
    copied: int = 0
    outputs: int = 0
    topics: dict[str, int] = field(default_factory=dict)
    rejections: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    depth: Any = None  # the node core's DepthStats when cameras have depth topics

    @property
    def fps(self) -> float:
        """Frames segmented per second of wall time."""
        return self.processed / self.wall_s if self.wall_s > 0 else 0.0

    def report(self) -> str:
        """A few lines for the terminal."""
        names = ", ".join(c.image_topic for c in self.cameras)
        return (
            f"{self.frames} frames from {len(self.cameras)} camera(s) ({names}): "
            f"{self.processed} segmented, {self.rejected} rejected\n"
            f"wrote {self.output} ({self.storage}): {self.copied} input messages copied, "
            f"{self.outputs} output messages on {len(self.topics)} topics\n"
            f"{self.wall_s:.1f} s, {self.fps:.2f} frames/s"
            + (
                f"\ndepth: {self.depth.received} frames, {self.depth.matched} paired, {self.depth.unmatched} "
                f"colour frames without depth, {self.depth.rejected} unusable"
                + (f" ({self.depth.last_error})" if self.depth.last_error else "")
                if self.depth is not None
                else ""
            )
            + "".join(f"\nrejected {line}" for line in self.rejections)
            + (f"\n... and {self.rejected - len(self.rejections)} more" if self.rejected > len(self.rejections) else "")
        )


# ---- the processor -------------------------------------------------------------------------------
def bag_version(distro: str) -> int:
    """The rosbag2 metadata version to write a bag for ``distro`` with: the rule of every bag this
    package writes (:func:`process_bag`, ``write_sequence_bag``).

    It is the newest version that the distro's rosbag2 reads and rosbags writes (8 or 9); the
    version also sets how each topic's QoS is recorded: 8 as a YAML string with numeric policies,
    9 as a YAML list with named ones. Humble's rosbag2 (0.15) writes version 5 and reads the fields
    of any version up to 8, but parses ``offered_qos_profiles`` as a string, so it cannot read a
    version 9 bag ("bad conversion"); Jazzy's (0.26) and Kilted's (0.32) write and read 9.

    Raises:
        ValueError: ``distro`` is not one of ``SUPPORTED_DISTROS``.
    """
    if distro not in _BAG_VERSIONS:
        raise ValueError(f"unsupported ROS 2 distro {distro!r}; expected one of {', '.join(_BAG_VERSIONS)}")
    return _BAG_VERSIONS[distro]


def bag_qos(depth: int, latched: bool) -> Any:
    """QoS metadata recorded for a topic this package writes (reliable; transient local if latched)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)  # 0 = the default (infinite) deadline, lifespan and lease
    durability = QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE
    return Qos(
        QosHistory.KEEP_LAST,
        depth,
        QosReliability.RELIABLE,
        durability,
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )


def _definition(conn: Connection, typestores: Sequence[Typestore], distro: str) -> tuple[str, str]:
    """(message definition, RIHS01 hash) to write an input connection with, the bag's own where it has one."""
    from rosbags.interfaces import MessageDefinitionFormat

    fmt, text = conn.msgdef.format, conn.msgdef.data
    if fmt == MessageDefinitionFormat.MSG or (
        fmt == MessageDefinitionFormat.IDL and text.startswith(_IDL_PREFIX)
    ):
        digest = conn.digest or next((h for store in typestores if (h := _rihs01(store, conn.msgtype))), "")
        if digest:
            return text, digest
    for store in typestores:
        if conn.msgtype in store.fielddefs:
            return store.generate_msgdef(conn.msgtype, ros_version=2)[0], store.hash_rihs01(conn.msgtype)
    raise BagError(
        f"topic {conn.topic}: type {conn.msgtype} has no definition in the bag and is no {distro} type; "
        "cannot copy it (try another --distro)"
    )


def _rihs01(store: Typestore, msgtype: str) -> str | None:
    if msgtype not in store.fielddefs:
        return None
    try:
        return store.hash_rihs01(msgtype)
    except Exception:  # an incomplete definition has no hash
        return None


@dataclass
class _Pending:
    """A frame waiting for its batch, and where its outputs go in the held-back writes."""

    frame: Frame
    slot: list


class _Processor:
    """Copies the input to the writer and adds the outputs, in receive-time order.

    While a batch is pending, writes are held back so that each frame's outputs land right after the
    frame itself: the output bag stays in time order without a sort.
    """

    def __init__(
        self,
        reader: AnyReader,
        writer: Writer,
        core: SegmentationCore,
        cameras: list[Camera],
        factory: RosbagsFactory,
        summary: BagSummary,
        max_batch: int,
        progress: bool,
    ):
        from segmentation_ros.ros.node_core import topic_name

        self.reader, self.writer, self.core, self.factory = reader, writer, core, factory
        self.summary, self.max_batch, self.progress = summary, max_batch, progress
        self.cameras = {c.image_topic: c for c in cameras}
        self.by_name = {c.name: c for c in cameras}
        self.info_topics = {c.camera_info_topic: c for c in cameras if c.camera_info_topic}
        self.depth_topics = {c.depth_topic: c for c in cameras if c.depth_topic}
        self.camera_of_output = {topic_name(c.name, o.topic): c.name for c in cameras for o in OUTPUTS}
        self.latched = {o.topic for o in OUTPUTS if o.latched}
        self.bag_types = reader.typestore  # the bag's own definitions
        typestores = [reader.typestore, factory.typestore]
        self.inputs: dict[tuple, Connection] = {}
        for conn in reader.connections:
            msgdef, digest = _definition(conn, typestores, factory.distro)
            ext = conn.ext
            self.inputs[self._key(conn)] = writer.add_connection(
                conn.topic,
                conn.msgtype,
                msgdef=msgdef,
                rihs01=digest,
                serialization_format=ext.serialization_format,
                offered_qos_profiles=ext.offered_qos_profiles,
            )
        self.outputs: dict[str, Connection] = {}
        self.pending: list[_Pending] = []
        self.held: list[list[tuple]] = []
        self.latest_info: dict[str, Any] = {}
        self.started: set[str] = set()

    @staticmethod
    def _key(conn: Connection) -> tuple:
        return conn.topic, conn.msgtype, conn.id, id(conn.owner)

    def _deserialize(self, data: bytes | memoryview, msgtype: str) -> Any:
        # The bag's own definitions first; the distro's for types the bag does not define.
        store = self.bag_types if msgtype in self.bag_types.fielddefs else self.factory.typestore
        return store.deserialize_cdr(data, msgtype)

    def _emit(self, writes: list[tuple]) -> None:
        if self.pending:
            self.held.append(writes)
        else:
            for write in writes:
                self.writer.write(*write)

    def _output(self, topic: str, msgtype: str) -> Connection:
        """The output connection of ``topic``, added at its first message."""
        conn = self.outputs.get(topic)
        if conn is None:
            latched = any(topic.endswith("/" + t) for t in self.latched)
            qos = [bag_qos(LATCHED_DEPTH if latched else OUTPUT_DEPTH, latched)]
            conn = self.writer.add_connection(
                topic, msgtype, typestore=self.factory.typestore, offered_qos_profiles=qos
            )
            self.outputs[topic] = conn
        return conn

    def _output_writes(self, outputs: list[Output], timestamp: int) -> list[tuple]:
        """The writes of one frame's outputs: all of them, or an error and none (nothing counted)."""
        serialized = [("/" + out.topic, out.type, self.factory.serialize(out.msg, out.type)) for out in outputs]
        writes = []
        for topic, msgtype, data in serialized:
            writes.append((self._output(topic, msgtype), timestamp, data))
            self.summary.topics[topic] = self.summary.topics.get(topic, 0) + 1
            self.summary.outputs += 1
        return writes

    def _reject(self, camera: Camera, timestamp: int, reason: str) -> None:
        line = f"{camera.image_topic} at {timestamp} ns: {reason}"
        self.summary.rejected += 1
        if len(self.summary.rejections) < REPORTED_REJECTIONS:
            self.summary.rejections.append(line)
        tqdm.write(f"rejected frame of {line}", file=sys.stderr)

    def run(self) -> None:
        from segmentation_ros.ros.node_core import Frame

        total = sum(
            c.msgcount
            for c in self.reader.connections
            if c.topic in self.cameras and c.msgtype in IMAGE_TYPES
        )
        with tqdm(
            total=total, unit="frame", desc="segment", disable=not self.progress, file=sys.stderr
        ) as bar:
            for conn, timestamp, data in _read_messages(self.reader, self.summary.input):
                camera = self.cameras.get(conn.topic) if conn.msgtype in IMAGE_TYPES else None
                if camera is not None and (
                    any(p.frame.camera == camera.name for p in self.pending)
                    or (self.max_batch and len(self.pending) >= self.max_batch)
                ):
                    self._flush()
                self._emit([(self.inputs[self._key(conn)], timestamp, data)])
                self.summary.copied += 1
                info_camera = self.info_topics.get(conn.topic)
                if info_camera is not None and conn.msgtype == CAMERA_INFO:
                    try:
                        self.latest_info[info_camera.name] = self._deserialize(data, conn.msgtype)
                    except Exception as exc:  # a bad camera_info must not stop the run
                        tqdm.write(
                            f"unreadable {conn.topic} at {timestamp} ns, keeping the previous one: {exc}",
                            file=sys.stderr,
                        )
                depth_camera = self.depth_topics.get(conn.topic)
                if depth_camera is not None:
                    try:  # kept by the core until its colour frame is processed
                        self.core.receive_depth(depth_camera.name, self._deserialize(data, conn.msgtype))
                    except Exception as exc:  # a bad depth frame costs no colour frame
                        self.core.depth.reject(depth_camera.name, f"cannot deserialize {conn.topic} at {timestamp} ns: {exc}")
                        tqdm.write(f"unreadable {conn.topic} at {timestamp} ns: {exc}", file=sys.stderr)
                if camera is None:
                    continue
                bar.update(1)
                self.summary.frames += 1
                slot = []
                if camera.name not in self.started:  # latched label infos, once, at the first frame's time
                    self.started.add(camera.name)
                    slot = self._output_writes(self.core.latched_outputs(camera.name), timestamp)
                try:
                    image = self._deserialize(data, conn.msgtype)
                except Exception as exc:  # any corrupt message is one rejected frame
                    self._reject(camera, timestamp, f"cannot deserialize {conn.msgtype}: {exc}")
                    self._emit(slot)
                    continue
                frame = Frame(camera.name, image, self.latest_info.get(camera.name), timestamp)
                self.pending.append(_Pending(frame, slot))
                self.held.append(slot)
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        # The core rejects (counts, and says why in Frame.error) every frame it cannot convert or
        # segment, and goes on with the others.
        outputs = self.core.process([p.frame for p in self.pending])
        by_camera: dict[str, list[Output]] = {}
        for out in outputs:
            by_camera.setdefault(self.camera_of_output[out.topic], []).append(out)
        for pending in self.pending:
            frame = pending.frame
            camera = self.by_name[frame.camera]
            mine = by_camera.get(frame.camera)
            if not mine:
                reason = frame.error or "the node core gave it no outputs"
                self._reject(camera, frame.received_ns, reason)
                continue
            try:
                writes = self._output_writes(mine, frame.received_ns)
            except Exception as exc:  # e.g. a camera_info the bag defines unlike the distro: this frame only
                self._reject(camera, frame.received_ns, f"cannot write its outputs: {_reason(exc)}")
                continue
            self.summary.processed += 1
            pending.slot.extend(writes)
        self.pending.clear()
        for writes in self.held:
            for write in writes:
                self.writer.write(*write)
        self.held.clear()


# ---- paths ---------------------------------------------------------------------------------------
def _storage_of(path: Path) -> str:
    """The storage of a bag, "mcap" or "sqlite3": from a directory's metadata, or a file's suffix."""
    if path.is_dir():
        import yaml

        with contextlib.suppress(OSError, yaml.YAMLError, KeyError, TypeError):
            meta = yaml.safe_load((path / "metadata.yaml").read_text())
            storage = meta["rosbag2_bagfile_information"]["storage_identifier"]
            if storage in STORAGES:
                return storage
        files = [p.name for p in path.iterdir()]
        return "sqlite3" if any(".db3" in n for n in files) else "mcap"
    return "sqlite3" if ".db3" in path.suffixes else "mcap"


def _check_paths(src: Path, dst: Path, overwrite: bool) -> None:
    if not src.exists():
        raise BagError(f"input bag {src} does not exist")
    if src.suffix == ".bag" and src.is_file():
        raise BagError(f"{src} is a ROS 1 bag; convert it to rosbag2 first (rosbags-convert)")
    a, b = src.resolve(), dst.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise BagError(f"output {dst} must lie outside the input {src} (and not contain it)")
    prepare_output(dst, overwrite)


# ---- reading -------------------------------------------------------------------------------------
def _reason(exc: BaseException) -> str:
    """An error as one line for the user: rosbags' own messages as they are, others with their type."""
    text = " ".join(str(exc).split())
    if type(exc).__module__.startswith("rosbags") or isinstance(exc, BagError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _open_reader(src: Path, typestore: Typestore) -> AnyReader:
    """IN, opened for reading.

    Raises:
        BagError: IN cannot be read (a bag directory without metadata.yaml, corrupt or truncated files).
    """
    from rosbags.highlevel import AnyReader

    if src.is_dir() and not (src / "metadata.yaml").is_file():
        files = sorted(p.name for p in src.iterdir() if p.suffix in (".mcap", ".db3"))
        hint = f"; IN may be one of its data files instead: {', '.join(files)}" if files else ""
        raise BagError(f"cannot read bag {src}: the directory has no metadata.yaml{hint}")
    try:
        reader = AnyReader([src], default_typestore=typestore)
        reader.open()
    except Exception as exc:  # rosbags', sqlite3's, struct's or the OS's: the input cannot be read
        raise BagError(f"cannot read bag {src}: {_reason(exc)}") from exc
    return reader


def _read_messages(reader: AnyReader, src: Path) -> Iterator[tuple[Connection, int, bytes]]:
    """``reader.messages()``; a read error (a corrupt chunk, a truncated page) as a BagError saying where."""
    messages = reader.messages()
    count, last = 0, 0
    while True:
        try:
            message = next(messages)
        except StopIteration:
            return
        except Exception as exc:  # whatever the storage raises on damaged data
            where = f"after message {count} (at {last} ns)" if count else "at its first message"
            raise BagError(f"cannot read bag {src}: damaged data {where} ({_reason(exc)})") from exc
        count, last = count + 1, message[1]
        yield message


# ---- entry point ---------------------------------------------------------------------------------
def process_bag(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    core_parameters: Mapping[str, Any],
    *,
    image_topics: Sequence[str] | None = None,
    depth_topics: Sequence[str] | None = None,
    storage: str | None = None,
    distro: str = "humble",
    overwrite: bool = False,
    progress: bool = True,
    max_batch: int = 0,
    engine: SegmentationEngine | None = None,
    offline: bool | None = None,
) -> BagSummary:
    """Segment every camera frame of a rosbag2 and write the input plus the outputs to a new bag.

    Args:
        input_path: a rosbag2 directory (mcap or sqlite3), or a single .mcap / .db3 file.
        output_path: the bag directory to create.
        core_parameters: :class:`~segmentation_ros.ros.node_core.SegmentationCore` parameters (task,
            models, thresholds, ...); ``cameras`` is set from the bag.
        image_topics: the camera image topics; None for every Image / CompressedImage topic.
        depth_topics: aligned depth image topics (16UC1 mm or 32FC1 m), one per camera at most,
            each paired with the camera whose namespace holds it; with any, the core runs with
            ``depth`` (``depth_slop`` and the other depth parameters from ``core_parameters``).
        storage: "mcap" or "sqlite3"; None for the input's.
        distro: ROS 2 distro whose message definitions the outputs (and types the bag does not
            define) use: "humble", "jazzy" or "kilted".
        overwrite: replace ``output_path`` if it exists (only once the new bag is complete).
        progress: show a progress bar on stderr.
        max_batch: most frames per forward pass; 0 for one per camera.
        engine: a loaded engine to reuse (see :func:`load_engine`); it must run the models the
            parameters name. None loads one (and frees it at the end).
        offline: never download weights (None: ``SEGMENTATION_ROS_OFFLINE``).

    Returns:
        counts and timing; frames that cannot be read, converted, segmented or written are counted
        as rejected, reported on stderr and in the summary, and skipped.

    Raises:
        ValueError: bad parameters or options, no camera topics, an output topic already recorded.
        BagError: input that cannot be read (no metadata.yaml, corrupt or truncated files), an output
            path that cannot be created (a file in the way, a read-only directory) or exists without
            ``overwrite``, a topic that cannot be copied, a write that fails (a full disk).
        KeyboardInterrupt: passed on, after removing the partial output; ``output_path`` is then as
            it was, or complete if the interrupt came after it was written.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

    from segmentation_ros.ros.messages import RosbagsFactory, make_typestore
    from segmentation_ros.ros.node_core import SegmentationCore, validate_parameters

    started = time.perf_counter()
    src, dst = Path(input_path), Path(output_path)
    if storage is not None and storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
    if max_batch < 0:
        raise ValueError(f"max_batch must be >= 0 (0: one frame per camera), got {max_batch}")
    validate_parameters({**core_parameters, "cameras": [""]})  # bad options fail before the bag is read
    typestore = make_typestore(distro)
    _check_paths(src, dst, overwrite)
    factory = RosbagsFactory(distro, typestore)

    reader = _open_reader(src, typestore)
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        cameras = find_cameras(topics, image_topics, depth_topics)
        with_depth = any(c.depth_topic for c in cameras)
        params = {**core_parameters, "cameras": [c.name for c in cameras]}
        if with_depth:
            params["depth"] = True
        core = SegmentationCore(params, factory)
        taken = sorted(
            c.topic(o.topic) for c in cameras for o in core.outputs() if c.topic(o.topic) in topics
        )
        if taken:
            raise ValueError(
                f"output topics {taken} are already in the input bag; process the original recording"
            )
        for msgtype in sorted({o.type for o in core.outputs()}):
            # The writer keeps one definition per type: the bag's, if it has the type, must be ours.
            theirs, ours = _rihs01(reader.typestore, msgtype), _rihs01(typestore, msgtype)
            if theirs and ours and theirs != ours:
                raise BagError(
                    f"the bag defines {msgtype} differently from ROS 2 {distro} ({theirs} != {ours}); "
                    "outputs of that type could not be decoded (try another --distro)"
                )
        summary = BagSummary(src, dst, storage or _storage_of(src), cameras)
        if with_depth:
            summary.depth = core.depth.stats
        if engine is None:
            core.engine = load_engine(core.params, offline=offline)
        else:
            _attach_engine(core, engine)
        try:
            plugin = StoragePlugin.MCAP if summary.storage == "mcap" else StoragePlugin.SQLITE3
            with atomic_bag(dst, overwrite) as path:
                with Writer(path, version=bag_version(distro), storage_plugin=plugin) as writer:
                    writer.set_custom_data("segmentation_ros.parameters", json.dumps(core.params))
                    writer.set_custom_data("segmentation_ros.input", str(src))
                    _Processor(reader, writer, core, cameras, factory, summary, max_batch, progress).run()
        except (WriterError, OSError) as exc:  # a full disk, a directory removed under us, ...
            raise BagError(f"cannot write output {dst}: {_reason(exc)}") from exc
        finally:
            if engine is None:
                core.cleanup()
            else:
                core.engine = None  # borrowed: the caller frees it
    finally:
        reader.close()
    summary.wall_s = time.perf_counter() - started
    return summary
