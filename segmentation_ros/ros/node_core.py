"""The ROS-free node core shared by the live lifecycle node and the offline bag processor.

It owns the parameters (with their descriptors), the message contract (which topics, types and
encodings a task publishes), the newest-frame mailbox, and the step "input messages in, output
messages out". Messages are built through a :class:`~segmentation_ros.ros.messages.MessageFactory`, so
the same code runs with rclpy's classes (live) and rosbags' (offline and tests).
"""

from __future__ import annotations

import copy
import gc
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segmentation_ros.engine.labels import LabelSet
from segmentation_ros.engine.paths import config_dir
from segmentation_ros.engine.pipeline import PRECISIONS, TASKS, EngineConfig, SegmentationEngine
from segmentation_ros.engine.results import Segmentation
from segmentation_ros.engine.tracking import Tracker, TrackerConfig, apply_track_ids
from segmentation_ros.engine.visualize import colorize_labels, colorize_panoptic, overlay
from segmentation_ros.ros.conversions import (
    ConversionError,
    compressed_to_color,
    image_to_color,
    numpy_to_image,
)
from segmentation_ros.ros.messages import MessageFactory, make_header, time_to_ns

__all__ = [
    "ParameterSpec",
    "PARAMETERS",
    "OutputSpec",
    "OUTPUTS",
    "Frame",
    "Output",
    "LatestFrames",
    "FrameStats",
    "SegmentationCore",
    "validate_parameters",
    "topic_name",
    "large_images_profile",
    "FASTDDS_PROFILE_VARIABLES",
]


# ---- parameters -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParameterSpec:
    """One node parameter: default, description, range and whether it can change while running."""

    name: str
    default: Any
    description: str
    read_only: bool = True
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None

    def check(self, value: Any) -> Any:
        """Return ``value`` converted to the parameter's type, or raise ValueError naming it."""
        kind = type(self.default)
        try:
            if kind is bool:
                if not isinstance(value, (bool, np.bool_)):
                    raise TypeError
                value = bool(value)
            elif kind is int:
                if isinstance(value, bool) or int(value) != value:
                    raise TypeError
                value = int(value)
            elif kind is float:
                if isinstance(value, bool):
                    raise TypeError
                value = float(value)
            elif kind is str:
                value = str(value) if value is not None else ""
            elif kind is list:
                value = list(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {self.name}: expected {kind.__name__}, got {value!r}") from None
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"parameter {self.name}: expected one of {self.choices}, got {value!r}")
        if self.range is not None and not self.range[0] <= value <= self.range[1]:
            raise ValueError(f"parameter {self.name}: expected a value in [{self.range[0]}, {self.range[1]}], got {value}")
        return value


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("task", "semantic", "semantic, instance or panoptic", choices=TASKS),
    ParameterSpec("semantic_model", "deeplabv3_resnet50", "semantic model (segmentation-ros models)"),
    ParameterSpec("instance_model", "maskrcnn_resnet50_fpn", "instance model (segmentation-ros models)"),
    ParameterSpec("semantic_weights", "DEFAULT", "DEFAULT, a torchvision weights name, a file path, or none"),
    ParameterSpec("instance_weights", "DEFAULT", "DEFAULT, a torchvision weights name, a file path, or none"),
    ParameterSpec("semantic_labels", "", "label set for weights without class names ('' = from the weights)"),
    ParameterSpec("instance_labels", "", "label set for weights without class names ('' = from the weights)"),
    ParameterSpec("device", "auto", "auto (CUDA when available), cpu, cuda or cuda:N"),
    ParameterSpec("precision", "fp32", "fp32, or fp16/bf16 autocast on CUDA", choices=tuple(PRECISIONS)),
    ParameterSpec("score_threshold", 0.5, "minimum instance score", read_only=False, range=(0.0, 1.0)),
    ParameterSpec("mask_threshold", 0.5, "mask probability counted as inside", read_only=False, range=(0.0, 1.0)),
    ParameterSpec(
        "overlap_threshold", 0.5, "panoptic: max claimed fraction of an instance", read_only=False, range=(0.0, 1.0)
    ),
    ParameterSpec(
        "stuff_area_threshold", 4096, "panoptic: min stuff segment area (pixels)", read_only=False, range=(0, 10**8)
    ),
    ParameterSpec("max_detections", 100, "instances per frame at most", range=(1, 1000)),
    ParameterSpec("label_divisor", 1000, "panoptic/ids = class_id * label_divisor + instance_id", range=(2, 10**6)),
    ParameterSpec("classes", [0], "keep only these instance class ids ([] or [0]: all)", read_only=False),
    ParameterSpec(
        "instance_min_size",
        -1,
        "Mask R-CNN input short side; -1 = the model's own (torchvision: 800), 0 = native camera resolution",
        range=(-1, 4096),
    ),
    ParameterSpec(
        "semantic_input_size",
        -1,
        "semantic network input short side; -1 = the model's own, 0 = native camera resolution",
        range=(-1, 4096),
    ),
    ParameterSpec(
        "tracking",
        False,
        "instance ids persist across frames: ids are track ids (ByteTrack-style, tracks per camera)",
    ),
    ParameterSpec(
        "track_buffer_s",
        1.0,
        "tracking: a track unseen for this long (seconds of header time) is forgotten",
        read_only=False,
        range=(0.0, 3600.0),
    ),
    ParameterSpec(
        "track_match_iou", 0.3, "tracking: minimum box IoU to continue a track", read_only=False, range=(0.01, 1.0)
    ),
    ParameterSpec(
        "track_high_score",
        0.5,
        "tracking: detections scoring at least this are matched first (ByteTrack's two stages)",
        read_only=False,
        range=(0.0, 1.0),
    ),
    ParameterSpec("use_compressed", False, "subscribe to image/compressed (sensor_msgs/CompressedImage)"),
    ParameterSpec("cameras", [""], "camera namespaces served by one model ([''] = the node's namespace)"),
    ParameterSpec("autostart", True, "configure and activate on start"),
    ParameterSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", range=(0.05, 3600.0)),
)
_SPECS = {p.name: p for p in PARAMETERS}
_ENGINE_FIELDS = set(EngineConfig.__dataclass_fields__)


def validate_parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults filled in, every value type- and range-checked; unknown names are an error."""
    unknown = set(values) - set(_SPECS)
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)}; known: {sorted(_SPECS)}")
    params = {p.name: p.default for p in PARAMETERS}
    for name, value in values.items():
        params[name] = _SPECS[name].check(value)
    params["classes"] = [int(c) for c in params["classes"] if int(c) != 0]
    params["cameras"] = [str(c).strip("/") for c in params["cameras"]] or [""]
    if len(set(params["cameras"])) != len(params["cameras"]):
        raise ValueError(f"parameter cameras: names must be unique, got {params['cameras']}")
    return params


# ---- the node process -----------------------------------------------------------------------------
FASTDDS_PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def large_images_profile(environ: dict[str, str]) -> str | None:
    """The Fast DDS profile this process should load, or None to leave DDS as the user set it.

    Fast DDS's default 512 KB shared-memory segment loses or delays camera-sized outputs by
    seconds; ``config/fastdds_large_images.xml`` gives the node 16 MB. A profile the user set, or
    another RMW, is left alone. Read before rclpy starts: Fast DDS reads the variable then.
    """
    if any(environ.get(name) for name in FASTDDS_PROFILE_VARIABLES):
        return None
    if environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") not in ("rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp"):
        return None
    profile = config_dir() / "fastdds_large_images.xml"
    return str(profile) if profile.is_file() else None


# ---- the message contract -------------------------------------------------------------------------
@dataclass(frozen=True)
class OutputSpec:
    """One output topic (relative to the camera namespace)."""

    topic: str
    type: str
    encoding: str
    tasks: tuple[str, ...]
    description: str
    lazy: bool = False  # built only while someone subscribes
    latched: bool = False  # transient local: late subscribers get the last message


SEM, INST, PAN = ("semantic",), ("instance",), ("panoptic",)
IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
#: Queue depths the outputs are offered with (the live node) and recorded with (the bag processor).
OUTPUT_DEPTH = 5
LATCHED_DEPTH = 1  # label_info: transient local, the newest one
OUTPUTS: tuple[OutputSpec, ...] = (
    OutputSpec("semantic/labels", IMAGE, "mono8 / mono16", SEM + PAN, "class id per pixel"),
    OutputSpec("semantic/confidence", IMAGE, "mono8", SEM + PAN, "winning class probability x 255"),
    OutputSpec("semantic/color", IMAGE, "rgb8", SEM + PAN, "class colours", lazy=True),
    OutputSpec("instances/ids", IMAGE, "mono16", INST + PAN, "0 = none, k = the detection with id 'k'"),
    OutputSpec("detections", "vision_msgs/msg/Detection2DArray", "-", INST + PAN, "boxes, class ids, scores, ids"),
    OutputSpec("panoptic/ids", IMAGE, "32SC1", PAN, "class_id * label_divisor + instance_id"),
    OutputSpec("panoptic/color", IMAGE, "rgb8", PAN, "stuff by class colour, things by instance", lazy=True),
    OutputSpec("overlay", IMAGE, "rgb8", SEM + INST + PAN, "camera image with colours, boxes, names", lazy=True),
    OutputSpec("label_info", "vision_msgs/msg/LabelInfo", "-", SEM + INST + PAN, "class id -> name", latched=True),
    OutputSpec(
        "semantic/label_info", "vision_msgs/msg/LabelInfo", "-", PAN, "semantic/labels' classes", latched=True
    ),
    OutputSpec("semantic/camera_info", CAMERA_INFO, "-", SEM + PAN, "input camera_info, passed on"),
    OutputSpec("instances/camera_info", CAMERA_INFO, "-", INST + PAN, "input camera_info, passed on"),
    OutputSpec("panoptic/camera_info", CAMERA_INFO, "-", PAN, "input camera_info, passed on"),
)


def topic_name(camera: str, relative: str) -> str:
    """``front`` + ``semantic/labels`` -> ``front/semantic/labels``; no camera -> relative name."""
    return f"{camera}/{relative}" if camera else relative


@dataclass
class Frame:
    """One input: the camera it came from, its image message, optional CameraInfo, arrival time."""

    camera: str
    image: Any  # sensor_msgs/Image or sensor_msgs/CompressedImage
    camera_info: Any = None
    received_ns: int = 0
    counted: bool = False  # already counted as received (it came through SegmentationCore.receive)


@dataclass
class Output:
    topic: str  # full relative name, camera namespace included
    type: str
    msg: Any


# ---- newest-frame mailbox and statistics -----------------------------------------------------------
class LatestFrames:
    """Holds only the newest frame per camera; a frame replaced before processing is stale.

    The subscription callback puts, the inference thread takes: a slow model drops frames instead
    of building a queue.
    """

    def __init__(self) -> None:
        self._frames: dict[str, Frame] = {}
        self._cond = threading.Condition()
        self.stale = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if frame.camera in self._frames:
                self.stale += 1
            self._frames[frame.camera] = frame
            self._cond.notify()

    def take(self, timeout: float | None = None) -> list[Frame]:
        """All pending newest frames (one per camera), waiting up to ``timeout`` for the first."""
        with self._cond:
            if not self._frames:
                self._cond.wait(timeout)
            frames, self._frames = list(self._frames.values()), {}
            return frames

    def clear(self) -> None:
        with self._cond:
            self._frames.clear()
            self._cond.notify_all()


@dataclass
class FrameStats:
    """Counters and recent timings for /diagnostics."""

    received: int = 0
    processed: int = 0
    rejected: int = 0  # frames that could not be converted
    window_s: float = 5.0
    _inputs: deque = field(default_factory=lambda: deque(maxlen=1000))
    _outputs: deque = field(default_factory=lambda: deque(maxlen=1000))
    _latency_ms: deque = field(default_factory=lambda: deque(maxlen=200))
    last_error: str = ""

    def rate(self, times: deque, now_s: float) -> float:
        # list() copies in one C call; iterating the deque itself races the inference thread's
        # appends ("deque mutated during iteration") when /diagnostics runs on another thread.
        recent = [t for t in list(times) if now_s - t <= self.window_s]
        return len(recent) / self.window_s if recent else 0.0


# ---- the core -------------------------------------------------------------------------------------
class SegmentationCore:
    """Parameters, contract and per-frame processing of the segmentation node, without ROS.

    Args:
        parameters: node parameters (see :data:`PARAMETERS`); missing ones take their defaults.
        factory: builds output messages.
        clock_ns: current time in nanoseconds (ROS time in the live node, for latency).
    """

    def __init__(
        self,
        parameters: Mapping[str, Any],
        factory: MessageFactory,
        clock_ns: Callable[[], int] = time.time_ns,
    ):
        self.params = validate_parameters(parameters)
        self.factory = factory
        self.clock_ns = clock_ns
        self.engine: SegmentationEngine | None = None
        self.frames = LatestFrames()
        self.stats = FrameStats()
        self.trackers: dict[str, Tracker] = {}  # per camera, while tracking is on
        self._lock = threading.Lock()  # parameter changes vs. processing

    # -- lifecycle --
    def engine_config(self) -> EngineConfig:
        p = self.params
        fields = {k: v for k, v in p.items() if k in _ENGINE_FIELDS}
        fields["classes"] = tuple(p["classes"])
        for key in ("semantic_labels", "instance_labels"):
            fields[key] = p[key] or None
        return EngineConfig(**fields).validate()

    def configure(self) -> None:
        """Validate the parameters and load the model(s). Raises ValueError / WeightsError.

        Then every object alive (libraries, typestore, models: some 350 thousand) is frozen out of
        Python's cyclic garbage collector: they live as long as the node, and a full collection
        scanning them took about 150 ms, a latency spike every few thousand frames.
        """
        self.engine = SegmentationEngine(self.engine_config())
        gc.freeze()

    def cleanup(self) -> None:
        """Drop pending frames and tracks and release the models (and their GPU memory)."""
        self.frames.clear()
        self.reset_tracks()
        if self.engine is not None:
            self.engine.close()
        self.engine = None
        gc.unfreeze()  # what was frozen at configure can be collected again (process-wide)

    def set_parameters(self, changes: Mapping[str, Any]) -> None:
        """Apply runtime parameter changes, all or nothing. Raises ValueError with the reason."""
        for name in changes:
            spec = _SPECS.get(name)
            if spec is None:
                raise ValueError(f"unknown parameter {name}")
            if spec.read_only and self.engine is not None and changes[name] != self.params[name]:
                raise ValueError(f"parameter {name} is read-only while the node is configured")
        params = validate_parameters({**self.params, **changes})
        with self._lock:
            if self.engine is not None:
                runtime = [k for k in changes if k in _ENGINE_FIELDS and not _SPECS[k].read_only]
                self.engine.update(**{k: tuple(params[k]) if k == "classes" else params[k] for k in runtime})
            self.params = params
            for tracker in self.trackers.values():
                tracker.config = self.tracker_config()

    # -- tracking --
    def tracker_config(self) -> TrackerConfig:
        """The trackers' settings; ids fit ``instances/ids`` (uint16) and, for panoptic, ``label_divisor``."""
        p = self.params
        max_id = min(65535, p["label_divisor"] - 1) if p["task"] == "panoptic" else 65535
        return TrackerConfig(
            high_score=p["track_high_score"],
            match_iou=p["track_match_iou"],
            buffer_s=p["track_buffer_s"],
            max_id=max_id,
        ).validate()

    def pause(self) -> None:
        """Deactivation: drop pending frames (waking a consumer waiting in ``take``) and every track,
        which must not outlive a pause of unknown length."""
        self.frames.clear()
        self.reset_tracks()

    def reset_tracks(self) -> None:
        """Forget every camera's tracks (deactivate, cleanup)."""
        with self._lock:
            self.trackers.clear()

    def _track(self, frame: Frame, result: Segmentation) -> Segmentation:
        """The result with track ids for instance ids (tracking on), or as it is."""
        if not self.params["tracking"] or result.instances is None:
            return result
        tracker = self.trackers.get(frame.camera)
        if tracker is None:
            tracker = self.trackers[frame.camera] = Tracker(self.tracker_config())
        inst = result.instances
        ids = tracker.update(time_to_ns(frame.image.header.stamp), inst.boxes, inst.scores, inst.class_ids)
        return apply_track_ids(result, ids, self.params["label_divisor"])

    # -- topics --
    @property
    def cameras(self) -> list[str]:
        return list(self.params["cameras"])

    def input_topics(self, camera: str = "") -> dict[str, str]:
        image = "image/compressed" if self.params["use_compressed"] else "image"
        return {"image": topic_name(camera, image), "camera_info": topic_name(camera, "camera_info")}

    def outputs(self) -> list[OutputSpec]:
        """The output topics of the configured task (relative to each camera namespace)."""
        return [o for o in OUTPUTS if self.params["task"] in o.tasks]

    # -- input --
    def receive(self, frame: Frame) -> None:
        """Count an arriving frame and hand it to the newest-frame mailbox (the live node's callback).

        Every frame that arrives counts in ``frames_received`` and ``input_rate_hz``, including
        those a newer frame replaces before inference (``frames_dropped_stale``).
        """
        self._count_received(frame)
        self.frames.put(frame)

    def _count_received(self, frame: Frame) -> None:
        if not frame.counted:
            frame.counted = True
            self.stats.received += 1
            self.stats._inputs.append(frame.received_ns / 1e9 if frame.received_ns else self.clock_ns() / 1e9)

    # -- messages --
    def label_info(self, header: Any = None, labels: LabelSet | None = None) -> Any:
        """vision_msgs/LabelInfo for the task's classes (or ``labels``)."""
        if labels is None:
            assert self.engine is not None, "configure() first"
            labels = self.engine.labels
        f = self.factory
        return f.new(
            "vision_msgs/msg/LabelInfo",
            header=header if header is not None else f.new("std_msgs/msg/Header"),
            class_map=[f.new("vision_msgs/msg/VisionClass", class_id=c.id, class_name=c.name) for c in labels.classes],
            # float32 on the wire: hold the rounded value so a CDR round trip gives back an equal message
            threshold=float(np.float32(self.params["score_threshold"])),
        )

    def latched_outputs(self, camera: str = "") -> list[Output]:
        """Messages published once on activation (transient local): the label infos."""
        assert self.engine is not None, "configure() first"
        out = [Output(topic_name(camera, "label_info"), "vision_msgs/msg/LabelInfo", self.label_info())]
        if self.params["task"] == "panoptic":
            sem = self.engine.semantic_model.labels  # type: ignore[union-attr]
            out.append(
                Output(topic_name(camera, "semantic/label_info"), "vision_msgs/msg/LabelInfo", self.label_info(labels=sem))
            )
        return out

    def decode(self, frame: Frame) -> tuple[np.ndarray, str]:
        """Image message -> (pixels, colour order) for the engine. Raises ConversionError."""
        msg = frame.image
        color = compressed_to_color(msg) if hasattr(msg, "format") and not hasattr(msg, "encoding") else image_to_color(msg)
        return color.pixels, "rgb" if color.order == "gray" else color.order

    def process(self, frames: Sequence[Frame], subscribed: Callable[[str], bool] | None = None) -> list[Output]:
        """Segment a set of frames (one per camera) in one batch and build every output message.

        A frame that cannot be converted is counted as rejected and skipped; the others go on.

        Args:
            frames: the newest frame of each camera.
            subscribed: whether a (full) topic has subscribers; lazy outputs are built only then.
                None builds everything (the bag processor).
        """
        assert self.engine is not None, "configure() first"
        decoded, good = [], []
        for frame in frames:
            self._count_received(frame)  # frames given directly (the bag processor) count here
            try:
                decoded.append(self.decode(frame))
                good.append(frame)
            except ConversionError as exc:
                self.stats.rejected += 1
                self.stats.last_error = f"{frame.camera or 'camera'}: {exc}"
        if not good:
            return []
        with self._lock:
            results = self.engine([d[0] for d in decoded], [d[1] for d in decoded])
            outputs: list[Output] = []
            wanted = (lambda t: True) if subscribed is None else subscribed
            for frame, (pixels, order), result in zip(good, decoded, results, strict=True):
                outputs.extend(self._frame_outputs(frame, pixels, order, self._track(frame, result), wanted))
        now = self.clock_ns()
        for frame in good:
            self.stats.processed += 1
            self.stats._outputs.append(now / 1e9)
            self.stats._latency_ms.append((now - time_to_ns(frame.image.header.stamp)) / 1e6)
        return outputs

    def _frame_outputs(
        self, frame: Frame, pixels: np.ndarray, order: str, result: Segmentation, wanted: Callable[[str], bool]
    ) -> list[Output]:
        header = frame.image.header
        cam = frame.camera
        f = self.factory
        out: list[Output] = []

        def image(topic: str, array: np.ndarray, encoding: str) -> None:
            out.append(Output(topic_name(cam, topic), IMAGE, numpy_to_image(array, encoding, header, f)))

        camera_info = None
        if frame.camera_info is not None:
            # The image's header, so that image_transport's CameraSubscriber (exact stamps) pairs them;
            # one copy serves every group's camera_info topic.
            camera_info = copy.copy(frame.camera_info)
            camera_info.header = header

        def info(group: str) -> None:
            if camera_info is not None:
                out.append(Output(topic_name(cam, f"{group}/camera_info"), CAMERA_INFO, camera_info))

        colors = None  # the colour image the overlay blends, where a colour topic already made it
        if result.semantic is not None:
            sem = result.semantic
            image("semantic/labels", sem.labels, "mono8" if sem.labels.dtype == np.uint8 else "mono16")
            image("semantic/confidence", sem.confidence, "mono8")
            if wanted(topic_name(cam, "semantic/color")):
                semantic_colors = colorize_labels(sem.labels, sem.label_set)
                image("semantic/color", semantic_colors, "rgb8")
                colors = semantic_colors if result.instances is None else None
            info("semantic")
        if result.instances is not None:
            image("instances/ids", result.instances.instance_ids, "mono16")
            out.append(Output(topic_name(cam, "detections"), "vision_msgs/msg/Detection2DArray", self._detections(header, result)))
            info("instances")
        if result.panoptic is not None:
            pan = result.panoptic
            image("panoptic/ids", pan.panoptic, "32SC1")
            if wanted(topic_name(cam, "panoptic/color")):
                colors = colorize_panoptic(pan)
                image("panoptic/color", colors, "rgb8")
            info("panoptic")
        if wanted(topic_name(cam, "overlay")):
            rgb = pixels if pixels.ndim == 2 or order == "rgb" else pixels[:, :, ::-1]
            image("overlay", overlay(rgb, result, colors=colors), "rgb8")
        return out

    def _detections(self, header: Any, result: Segmentation) -> Any:
        """vision_msgs/Detection2DArray: id = instance id, class_id = class id as a string."""
        f = self.factory
        inst = result.instances
        assert inst is not None
        detections = []
        for i, c, s, (x1, y1, x2, y2) in zip(inst.ids, inst.class_ids, inst.scores, inst.boxes, strict=True):
            hypothesis = f.new(
                "vision_msgs/msg/ObjectHypothesisWithPose",
                hypothesis=f.new("vision_msgs/msg/ObjectHypothesis", class_id=str(int(c)), score=float(s)),
            )
            center = f.new(
                "vision_msgs/msg/Pose2D",
                position=f.new("vision_msgs/msg/Point2D", x=float(x1 + x2) / 2, y=float(y1 + y2) / 2),
                theta=0.0,
            )
            bbox = f.new("vision_msgs/msg/BoundingBox2D", center=center, size_x=float(x2 - x1), size_y=float(y2 - y1))
            detections.append(
                f.new("vision_msgs/msg/Detection2D", header=header, results=[hypothesis], bbox=bbox, id=str(int(i)))
            )
        return f.new("vision_msgs/msg/Detection2DArray", header=header, detections=detections)

    # -- diagnostics --
    def diagnostics(self, name: str = "segmentation_node") -> Any:
        """diagnostic_msgs/DiagnosticArray: rates, latency, dropped and rejected frames, device, model."""
        f = self.factory
        now_ns = self.clock_ns()
        now = now_ns / 1e9
        s = self.stats
        latency = sorted(s._latency_ms)
        p50 = latency[len(latency) // 2] if latency else 0.0
        p99 = latency[min(len(latency) - 1, int(len(latency) * 0.99))] if latency else 0.0
        engine = self.engine
        values = {
            "task": self.params["task"],
            "device": str(engine.device) if engine else "unconfigured",
            "models": ", ".join(
                m.entry.name + f" ({m.weights})" for m in (engine.semantic_model, engine.instance_model) if m
            )
            if engine
            else "",
            "input_rate_hz": f"{s.rate(s._inputs, now):.2f}",
            "output_rate_hz": f"{s.rate(s._outputs, now):.2f}",
            "latency_p50_ms": f"{p50:.1f}",
            "latency_p99_ms": f"{p99:.1f}",
            "frames_received": str(s.received),
            "frames_processed": str(s.processed),
            "frames_dropped_stale": str(self.frames.stale),
            "frames_rejected": str(s.rejected),
            "last_error": s.last_error,
        }
        if self.params["tracking"]:
            with self._lock:  # the inference thread updates the trackers (and adds cameras') meanwhile
                tracks = [(cam, t) for cam, tracker in sorted(self.trackers.items()) for t in tracker.tracks()]
            values["tracks_active"] = str(len(tracks))
            # each track's age: camera/id=seconds since it started
            values["track_ages_s"] = " ".join(f"{topic_name(cam, str(t.track_id))}={t.age_s:.1f}" for cam, t in tracks)
        level, message = (b"\x00", "ok") if engine else (b"\x01", "not configured")
        if s.rejected and engine:
            level, message = b"\x01", f"{s.rejected} frames rejected: {s.last_error}"
        status = f.new(
            "diagnostic_msgs/msg/DiagnosticStatus",
            level=_level(f, level),
            name=name,
            message=message,
            hardware_id=values["device"],
            values=[f.new("diagnostic_msgs/msg/KeyValue", key=k, value=v) for k, v in values.items()],
        )
        header = make_header(f, now_ns)
        return f.new("diagnostic_msgs/msg/DiagnosticArray", header=header, status=[status])


def _level(factory: MessageFactory, level: bytes) -> Any:
    # DiagnosticStatus.level is a ROS `byte`: rclpy wants bytes, rosbags an int.
    return level if type(factory).__name__ == "RclpyFactory" else level[0]

