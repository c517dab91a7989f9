"""The ROS-free node core shared by the live lifecycle node and the offline bag processor.

It owns the parameters (their table and validation are in :mod:`.parameters`), the message contract (which topics, types and
encodings a task publishes), the newest-frame mailbox, and the step "input messages in, output
messages out". Messages are built through a :class:`~segmentation_ros.ros.messages.MessageFactory`, so
the same code runs with rclpy's classes (live) and rosbags' (offline and tests).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segmentation_ros.engine.labels import LabelSet
from segmentation_ros.engine.paths import config_dir
from segmentation_ros.engine.pipeline import (
    EngineConfig,
    SegmentationEngine,
    validate_frame,
)
from segmentation_ros.engine.results import Segmentation
from segmentation_ros.engine.tracking import Tracker, TrackerConfig, TrackSnapshot, apply_track_ids
from segmentation_ros.engine.visualize import colorize_labels, colorize_panoptic, overlay
from segmentation_ros.ros.conversions import (
    compressed_to_color,
    image_to_color,
    numpy_to_image,
)
from segmentation_ros.ros.depth_outputs import DepthStage
from segmentation_ros.ros.launch_helpers import DEPTH_INPUT
from segmentation_ros.ros.messages import MessageFactory, make_header, time_to_ns
from segmentation_ros.ros.parameters import (
    ENGINE_FIELDS,
    PARAMETERS,
    SPECS,
    ParameterSpec,
    engine_config,
    validate_parameters,
)

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
    depth: bool = False  # only with the depth parameter


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
    OutputSpec(
        "points", "sensor_msgs/msg/PointCloud2", "-", SEM + INST + PAN, "labelled 3D points", lazy=True, depth=True
    ),
    OutputSpec(
        "detections_3d", "vision_msgs/msg/Detection3DArray", "-", INST + PAN, "3D boxes, centroids, ids", depth=True
    ),
    OutputSpec(
        "markers", "visualization_msgs/msg/MarkerArray", "-", INST + PAN, "3D boxes and labels", lazy=True, depth=True
    ),
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
    error: str = ""  # why SegmentationCore.process rejected it ("" when it did not)


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
    rejected: int = 0  # frames that could not be converted, segmented or published (process)
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
        self.depth = DepthStage(self.params, factory)  # depth frames per camera, 3D outputs
        self._camera_info: dict[str, Any] = {}  # the latest camera_info per camera (receive_camera_info)
        # Parameter changes and track resets vs. processing. The inference thread holds the lock for a
        # whole batch and takes it again at once: it lets ``_waiting`` callers go first (threading.Lock
        # is not fair). Diagnostics never wait for it: they read ``_track_snapshots``, taken after each batch.
        self._lock = threading.Lock()
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._track_snapshots: tuple[tuple[str, TrackSnapshot], ...] = ()  # (camera, its tracks)

    # -- lifecycle --
    def engine_config(self) -> EngineConfig:
        return engine_config(self.params).validate()

    def configure(self) -> None:
        """Validate the parameters and load the model(s). Raises ValueError / WeightsError.

        Then every object alive (libraries, typestore, models: some 350 thousand) is frozen out of
        Python's cyclic garbage collector: they live as long as the node, and a full collection
        scanning them took about 150 ms, a latency spike every few thousand frames.
        """
        self.engine = SegmentationEngine(self.engine_config())
        self.depth.device = self.engine.device
        gc.freeze()

    def cleanup(self) -> None:
        """Drop pending frames and tracks and release the models (and their GPU memory)."""
        self.frames.clear()
        self.reset_tracks()
        self.depth.clear()
        if self.engine is not None:
            self.engine.close()
        self.engine = None
        gc.unfreeze()  # what was frozen at configure can be collected again (process-wide)

    def set_parameters(self, changes: Mapping[str, Any]) -> None:
        """Apply runtime parameter changes, all or nothing. Raises ValueError with the reason."""
        unknown = sorted(str(name) for name in changes if name not in SPECS)
        if unknown:
            raise ValueError(f"unknown parameter {', '.join(unknown)}")
        params = validate_parameters({**self.params, **changes})
        for name in changes:  # compared as validated: ["/front/"] is the camera "front", [1.0] is [1]
            if SPECS[name].read_only and self.engine is not None and params[name] != self.params[name]:
                raise ValueError(f"parameter {name} is read-only while the node is configured")
        with self._between_batches():
            if self.engine is not None:
                runtime = [k for k in changes if k in ENGINE_FIELDS and not SPECS[k].read_only]
                self.engine.update(**{k: tuple(params[k]) if k == "classes" else params[k] for k in runtime})
            self.params = self.depth.params = params
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
        self.depth.clear()
        self._camera_info.clear()

    def reset_tracks(self) -> None:
        """Forget every camera's tracks (deactivate, cleanup)."""
        with self._between_batches():
            self.trackers.clear()
            self._track_snapshots = ()

    @contextlib.contextmanager
    def _between_batches(self) -> Iterator[None]:
        """Hold the processing lock from a thread other than the inference thread: waits for the
        batch in progress, never for the ones after it."""
        with self._waiting_lock:
            self._waiting += 1
        try:
            with self._lock:
                yield
        finally:
            with self._waiting_lock:
                self._waiting -= 1

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
        topics = {"image": topic_name(camera, image), "camera_info": topic_name(camera, "camera_info")}
        if self.params["depth"]:
            topics["depth"] = topic_name(camera, DEPTH_INPUT)
        return topics

    def outputs(self) -> list[OutputSpec]:
        """The output topics of the configured task (relative to each camera namespace)."""
        return [o for o in OUTPUTS if self.params["task"] in o.tasks and (self.params["depth"] or not o.depth)]

    # -- input --
    def receive(self, frame: Frame) -> None:
        """Count an arriving frame and hand it to the newest-frame mailbox (the live node's callback).

        Every frame that arrives counts in ``frames_received`` and ``input_rate_hz``, including
        those a newer frame replaces before inference (``frames_dropped_stale``).
        """
        self._count_received(frame)
        if frame.camera_info is None:
            frame.camera_info = self._camera_info.get(frame.camera)
        self.frames.put(frame)

    def receive_camera_info(self, camera: str, msg: Any) -> None:
        """A camera's camera_info arrived: it goes with the camera's next frames given to :meth:`receive`."""
        self._camera_info[camera] = msg

    def receive_depth(self, camera: str, msg: Any) -> None:
        """A camera's depth image arrived (``depth/image``): kept until its colour frame is processed."""
        self.depth.receive(camera, msg)

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
        """Image message -> (pixels, colour order) for the engine. Raises ConversionError (also for an
        image of more than ``max_image_pixels`` pixels, refused before it is decoded)."""
        msg, limit = frame.image, self.params["max_image_pixels"]
        compressed = hasattr(msg, "format") and not hasattr(msg, "encoding")
        color = compressed_to_color(msg, max_pixels=limit) if compressed else image_to_color(msg, max_pixels=limit)
        return color.pixels, "rgb" if color.order == "gray" else color.order

    def process(self, frames: Sequence[Frame], subscribed: Callable[[str], bool] | None = None) -> list[Output]:
        """Segment a set of frames (one per camera) in one batch and build every output message.

        Every frame ends processed or rejected, never lost. A frame that cannot be converted (or has
        more than ``max_image_pixels`` pixels), that the engine refuses
        (:func:`~segmentation_ros.engine.pipeline.validate_frame`: zero-sized, extreme geometry), that
        fails in the engine, or whose messages cannot be built is counted in ``frames_rejected``, with
        its reason in ``last_error`` and ``Frame.error``; the other frames of the batch go on.

        Args:
            frames: the newest frame of each camera.
            subscribed: whether a (full) topic has subscribers; lazy outputs are built only then.
                None builds everything (the bag processor).
        """
        assert self.engine is not None, "configure() first"
        ready: list[tuple[Frame, np.ndarray, str]] = []
        for index, frame in enumerate(frames):
            self._count_received(frame)  # frames given directly (the bag processor) count here
            try:
                pixels, order = self.decode(frame)
                ready.append((frame, validate_frame(pixels, index), order))
            except Exception as exc:  # noqa: BLE001 - whatever is wrong with one frame rejects only it
                self._reject(frame, exc)
        if not ready:
            return []
        wanted = (lambda t: True) if subscribed is None else subscribed
        outputs: list[Output] = []
        done: list[int] = []  # header stamps of the processed frames
        while self._waiting:  # a parameter change or a track reset goes first
            time.sleep(0.001)
        with self._lock:
            for frame, pixels, order, result in self._segment(ready):
                try:
                    stamp_ns = time_to_ns(frame.image.header.stamp)
                    result = self._track(frame, result)
                    outputs.extend(self._frame_outputs(frame, pixels, order, result, wanted))
                except Exception as exc:  # noqa: BLE001 - this frame's outputs are lost, not the others'
                    self._reject(frame, exc)
                    continue
                done.append(stamp_ns)
            if self.params["tracking"]:
                self._track_snapshots = tuple((cam, tracker.snapshot()) for cam, tracker in sorted(self.trackers.items()))
        now = self.clock_ns()
        for stamp_ns in done:
            self.stats.processed += 1
            self.stats._outputs.append(now / 1e9)
            self.stats._latency_ms.append((now - stamp_ns) / 1e6)
        return outputs

    def _segment(
        self, ready: list[tuple[Frame, np.ndarray, str]]
    ) -> list[tuple[Frame, np.ndarray, str, Segmentation]]:
        """The engine's result for each ready (frame, pixels, colour order), in one batch.

        A batch the engine fails is run again frame by frame, so that a failure one frame causes
        rejects that frame only.
        """
        assert self.engine is not None
        try:
            results = self.engine([r[1] for r in ready], [r[2] for r in ready])
        except Exception as exc:  # noqa: BLE001 - counted and reported; the thread keeps serving
            if len(ready) == 1:
                self._reject(ready[0][0], exc)
                return []
            return [item for one in ready for item in self._segment([one])]
        return [(*r, result) for r, result in zip(ready, results, strict=True)]

    def _reject(self, frame: Frame, exc: Exception) -> None:
        """Count ``frame`` as rejected, with the reason (the error's type too, for an unexpected one)."""
        reason = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        frame.error = reason
        self.stats.rejected += 1
        self.stats.last_error = f"{frame.camera or 'camera'}: {reason}"

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
        rgb = pixels if pixels.ndim == 2 or order == "rgb" else pixels[:, :, ::-1]
        if wanted(topic_name(cam, "overlay")):
            image("overlay", overlay(rgb, result, colors=colors), "rgb8")
        if self.params["depth"]:
            out.extend(self._depth_outputs(frame, camera_info, rgb, result, wanted))
        return out

    def _depth_outputs(
        self, frame: Frame, camera_info: Any, rgb: np.ndarray, result: Segmentation, wanted: Callable[[str], bool]
    ) -> list[Output]:
        """The frame's 3D outputs; a failure here is counted as a depth failure and costs no 2D output."""
        assert self.engine is not None
        try:
            built = self.depth.outputs(
                frame.camera,
                frame.image.header,
                camera_info,
                np.dstack([rgb] * 3) if rgb.ndim == 2 else rgb,
                result,
                self.engine.labels,
                wanted,
                lambda relative: topic_name(frame.camera, relative),
            )
        except Exception as exc:  # noqa: BLE001 - the 2D outputs of this frame still go out
            self.depth.reject(frame.camera, f"{type(exc).__name__}: {exc}")
            return []
        return [Output(topic, type_name, msg) for topic, type_name, msg in built]

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
            "runtime": engine.runtime_info if engine else "",
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
            # as of the last batch: never waits for the one in progress
            tracks = [(cam, t) for cam, snapshot in self._track_snapshots for t in snapshot.tracks()]
            values["tracks_active"] = str(len(tracks))
            # each track's age: camera/id=seconds since it started
            values["track_ages_s"] = " ".join(f"{topic_name(cam, str(t.track_id))}={t.age_s:.1f}" for cam, t in tracks)
        if self.params["depth"]:
            d = self.depth.stats
            values.update(
                depth_frames_received=str(d.received),
                depth_frames_matched=str(d.matched),
                depth_frames_unmatched=str(d.unmatched),
                depth_frames_rejected=str(d.rejected),
                depth_last_error=d.last_error,
            )
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

