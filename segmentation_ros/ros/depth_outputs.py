"""The node's depth step: each camera's depth frames paired with its colour frames by stamp
(ros/sync.py), fused with the segmentation (engine/depth.py), and the 3D outputs as ROS messages
(sensor_msgs, vision_msgs, visualization_msgs), built through a message factory like every other
output. :class:`DepthStage` is what ros/node_core.py calls; the live node and the bag processor
share it through the core.

Inputs (per camera, with the node parameter ``depth``): ``depth/image``, sensor_msgs/Image in
``16UC1`` (millimetres) or ``32FC1`` (metres), aligned to the colour image; the intrinsics are the
colour ``camera_info``'s K (an aligned depth image has the colour camera's intrinsics).

- ``points``: sensor_msgs/PointCloud2, unorganised (height 1), little-endian, dense (no-reading
  pixels are dropped), fields ``x y z`` (float32, metres), ``rgb`` (float32 holding the packed
  ``0x00RRGGBB`` uint32, the PCL / rviz convention), ``label`` (uint32 class id) and ``instance``
  (uint32, = the Detection2D id, 0 = none).
- ``detections_3d``: vision_msgs/Detection3DArray, one Detection3D per 3D object: ``id`` the 2D
  detection's id, ``results[0]`` its class and score with ``pose.pose.position`` the centroid of
  the object's inlier points, ``bbox`` their axis-aligned box in the optical frame (identity
  orientation).
- ``markers``: visualization_msgs/MarkerArray: DELETEALL first (rviz drops what the previous frame
  showed), then per object a translucent CUBE (namespace ``boxes``) and a TEXT_VIEW_FACING label
  (namespace ``labels``) above it, id = the object's id, coloured as the object in the 2D overlay,
  with a lifetime (markers vanish if the node stops publishing).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from segmentation_ros.engine.depth import (
    DepthConfig,
    Object3D,
    PinholeIntrinsics,
    PointCloud,
    align_depth,
    depth_in_meters,
    fuse_depth,
)
from segmentation_ros.engine.labels import LabelSet
from segmentation_ros.engine.results import Segmentation
from segmentation_ros.engine.visualize import instance_color
from segmentation_ros.ros.conversions import image_to_numpy
from segmentation_ros.ros.messages import MessageFactory, time_to_ns
from segmentation_ros.ros.sync import StampMatcher

__all__ = [
    "POINT_FIELDS",
    "DepthStage",
    "DepthStats",
    "point_cloud_message",
    "point_cloud_from_message",
    "detections_3d",
    "markers",
]

DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
MARKER_LIFETIME_FRAMES = 3  # markers outlive this many frame periods (then vanish if the node stops)
MARKER_LIFETIME_RANGE_NS = (100_000_000, 2_000_000_000)

FLOAT32, UINT32 = 7, 6  # sensor_msgs/PointField datatypes
#: (name, offset, PointField datatype) of every point, 24 bytes.
POINT_FIELDS = (
    ("x", 0, FLOAT32),
    ("y", 4, FLOAT32),
    ("z", 8, FLOAT32),
    ("rgb", 12, FLOAT32),
    ("label", 16, UINT32),
    ("instance", 20, UINT32),
)
_POINT_DTYPE = np.dtype(
    {
        "names": [n for n, _, _ in POINT_FIELDS],
        "formats": ["<f4", "<f4", "<f4", "<u4", "<u4", "<u4"],
        "offsets": [o for _, o, _ in POINT_FIELDS],
        "itemsize": 24,
    }
)


def point_cloud_message(factory: MessageFactory, header: Any, cloud: PointCloud) -> Any:
    """sensor_msgs/PointCloud2 of the labelled points (see the module docstring)."""
    points = np.empty(len(cloud), _POINT_DTYPE)
    points["x"], points["y"], points["z"] = cloud.xyz[:, 0], cloud.xyz[:, 1], cloud.xyz[:, 2]
    rgb = cloud.rgb.astype(np.uint32)
    points["rgb"] = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]  # read back as float32 bits
    points["label"], points["instance"] = cloud.label, cloud.instance
    fields = [
        factory.new("sensor_msgs/msg/PointField", name=n, offset=o, datatype=t, count=1)
        for n, o, t in POINT_FIELDS
    ]
    return factory.new(
        "sensor_msgs/msg/PointCloud2",
        header=header,
        height=1,
        width=len(cloud),
        fields=fields,
        is_bigendian=False,
        point_step=_POINT_DTYPE.itemsize,
        row_step=_POINT_DTYPE.itemsize * len(cloud),
        data=factory.uint8_array(points.view(np.uint8)),
        is_dense=True,
    )


def point_cloud_from_message(msg: Any) -> np.ndarray:
    """A PointCloud2 written by :func:`point_cloud_message` -> structured array with fields
    x, y, z, rgb (uint32 ``0x00RRGGBB``), label, instance (for tests and offline tools)."""
    layout = [(f.name, int(f.offset), int(f.datatype)) for f in msg.fields]
    if layout != list(POINT_FIELDS) or int(msg.point_step) != _POINT_DTYPE.itemsize or msg.is_bigendian:
        raise ValueError(f"not a segmentation_ros point cloud: fields {layout}, point_step {msg.point_step}")
    data = np.frombuffer(bytes(np.asarray(msg.data, dtype=np.uint8)), dtype=_POINT_DTYPE)
    if len(data) != int(msg.width) * int(msg.height):
        raise ValueError(f"point cloud data holds {len(data)} points, header says {msg.width}x{msg.height}")
    return data


def _point(factory: MessageFactory, xyz: np.ndarray) -> Any:
    return factory.new("geometry_msgs/msg/Point", x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def _pose(factory: MessageFactory, xyz: np.ndarray) -> Any:
    return factory.new("geometry_msgs/msg/Pose", position=_point(factory, xyz))  # identity orientation


def detections_3d(factory: MessageFactory, header: Any, objects: list[Object3D]) -> Any:
    """vision_msgs/Detection3DArray of the frame's 3D objects."""
    f = factory
    detections = []
    for obj in objects:
        pose = f.new("geometry_msgs/msg/PoseWithCovariance", pose=_pose(f, obj.centroid))
        hypothesis = f.new(
            "vision_msgs/msg/ObjectHypothesisWithPose",
            hypothesis=f.new(
                "vision_msgs/msg/ObjectHypothesis", class_id=str(obj.class_id), score=float(obj.score)
            ),
            pose=pose,
        )
        size = f.new(
            "geometry_msgs/msg/Vector3", x=float(obj.size[0]), y=float(obj.size[1]), z=float(obj.size[2])
        )
        bbox = f.new("vision_msgs/msg/BoundingBox3D", center=_pose(f, obj.center), size=size)
        detections.append(
            f.new(
                "vision_msgs/msg/Detection3D", header=header, results=[hypothesis], bbox=bbox, id=str(obj.id)
            )
        )
    return f.new("vision_msgs/msg/Detection3DArray", header=header, detections=detections)


def markers(
    factory: MessageFactory, header: Any, objects: list[Object3D], label_set: LabelSet, lifetime_ns: int
) -> Any:
    """visualization_msgs/MarkerArray: DELETEALL, then a box and a text label per object."""
    f = factory
    lifetime = f.new(
        "builtin_interfaces/msg/Duration", sec=int(lifetime_ns // 10**9), nanosec=int(lifetime_ns % 10**9)
    )
    out = [f.new("visualization_msgs/msg/Marker", header=header, action=3)]  # DELETEALL
    for obj in objects:
        r, g, b = (c / 255.0 for c in instance_color(obj.id))
        common = {"header": header, "id": int(obj.id), "action": 0, "lifetime": lifetime}
        scale = f.new(
            "geometry_msgs/msg/Vector3",
            x=max(float(obj.size[0]), 1e-3),
            y=max(float(obj.size[1]), 1e-3),
            z=max(float(obj.size[2]), 1e-3),
        )
        out.append(
            f.new(
                "visualization_msgs/msg/Marker",
                ns="boxes",
                type=1,  # CUBE
                pose=_pose(f, obj.center),
                scale=scale,
                color=f.new("std_msgs/msg/ColorRGBA", r=r, g=g, b=b, a=0.35),
                **common,
            )
        )
        top = obj.center - np.array(
            [0.0, obj.size[1] / 2 + 0.1, 0.0], np.float32
        )  # above it: optical y is down
        out.append(
            f.new(
                "visualization_msgs/msg/Marker",
                ns="labels",
                type=9,  # TEXT_VIEW_FACING
                pose=_pose(f, top),
                scale=f.new("geometry_msgs/msg/Vector3", z=0.15),  # text height [m]
                color=f.new("std_msgs/msg/ColorRGBA", r=1.0, g=1.0, b=1.0, a=1.0),
                text=f"{obj.id} {label_set.name_of(obj.class_id)} {obj.score:.2f}",
                **common,
            )
        )
    return f.new("visualization_msgs/msg/MarkerArray", markers=out)


@dataclass
class DepthStats:
    """Depth counters for /diagnostics."""

    received: int = 0  # depth frames that arrived
    matched: int = 0  # colour frames fused with a depth frame
    unmatched: int = 0  # colour frames with no depth frame within the slop (2D outputs only)
    rejected: int = 0  # depth frames that could not be used (encoding, size, no camera_info)
    last_error: str = ""


class DepthStage:
    """Per camera: the depth frames waiting for their colour frame, and the 3D outputs of a frame.

    Args:
        params: the node parameters (``depth_slop``, ``depth_rescale``, ``point_stride``,
            ``max_range``, ``depth_min_points`` are read at each frame, so dynamic changes apply).
        factory: builds the messages.
        device: where fusion runs (the engine's device).
    """

    def __init__(self, params: dict[str, Any], factory: MessageFactory, device: torch.device | str = "cpu"):
        self.params = params
        self.factory = factory
        self.device = torch.device(device)
        self.stats = DepthStats()
        self._matchers: dict[str, StampMatcher[Any]] = {}
        self._last_stamp: dict[str, int] = {}
        self._lock = threading.Lock()  # depth arrives on the executor's thread, frames are fused on another

    def _slop_ns(self) -> int:
        return round(self.params["depth_slop"] * 1e9)

    def receive(self, camera: str, msg: Any) -> None:
        """A depth image of ``camera`` arrived (the subscription callback; returns at once)."""
        with self._lock:
            self.stats.received += 1
            matcher = self._matchers.get(camera)
            if matcher is None:
                matcher = self._matchers[camera] = StampMatcher(self._slop_ns())
            matcher.add(time_to_ns(msg.header.stamp), msg)

    def reject(self, camera: str, reason: str) -> None:
        """Count a depth frame (or a frame's depth step) that could not be used, with the reason."""
        self.stats.rejected += 1
        self.stats.last_error = f"{camera or 'camera'} depth: {reason}"

    def may_still_match(self, camera: str, stamp_ns: int) -> bool:
        """Whether a depth frame still to come could pair with this colour stamp (the bag processor waits)."""
        with self._lock:
            matcher = self._matchers.get(camera)
            return matcher is None or matcher.may_still_match(stamp_ns)

    def clear(self) -> None:
        with self._lock:
            self._matchers.clear()
            self._last_stamp.clear()

    def config(self) -> DepthConfig:
        p = self.params
        return DepthConfig(
            point_stride=p["point_stride"], max_range_m=p["max_range"], min_points=p["depth_min_points"]
        )

    def outputs(
        self,
        camera: str,
        header: Any,
        camera_info: Any,
        rgb: np.ndarray,
        result: Segmentation,
        labels: LabelSet,
        wanted: Callable[[str], bool],
        topic: Callable[[str], str],
    ) -> list[tuple[str, str, Any]]:
        """(topic, type, message) of the frame's 3D outputs; none when no depth frame pairs with it.

        A depth frame that cannot be used is counted in ``rejected`` with its reason; the frame's 2D
        outputs are not affected (this raises nothing for bad depth).
        """
        stamp = time_to_ns(header.stamp)
        with self._lock:
            matcher = self._matchers.get(camera)
            if matcher is None:
                matcher = self._matchers[camera] = StampMatcher(self._slop_ns())
            matcher.slop_ns = self._slop_ns()
            depth_msg = matcher.match(stamp)
            previous = self._last_stamp.get(camera)
            self._last_stamp[camera] = stamp
        if depth_msg is None:
            self.stats.unmatched += 1
            return []
        try:
            depth = self._depth_of(depth_msg, camera_info, result)
            intrinsics = PinholeIntrinsics.from_k(camera_info.k)
        except ValueError as exc:
            self.reject(camera, str(exc))
            return []
        self.stats.matched += 1
        want_points, want_markers = wanted(topic("points")), wanted(topic("markers"))
        fused = fuse_depth(
            result, depth, intrinsics, self.config(), image=rgb, points=want_points, device=self.device
        )
        f = self.factory
        out = []
        if result.instances is not None:
            out.append(
                (
                    topic("detections_3d"),
                    "vision_msgs/msg/Detection3DArray",
                    detections_3d(f, header, fused.objects),
                )
            )
            if want_markers:
                period = stamp - previous if previous is not None and stamp > previous else 0
                low, high = MARKER_LIFETIME_RANGE_NS
                lifetime = min(max(MARKER_LIFETIME_FRAMES * period, low), high) if period else high
                out.append(
                    (
                        topic("markers"),
                        "visualization_msgs/msg/MarkerArray",
                        markers(f, header, fused.objects, labels, lifetime),
                    )
                )
        if fused.points is not None:
            out.append(
                (topic("points"), "sensor_msgs/msg/PointCloud2", point_cloud_message(f, header, fused.points))
            )
        return out

    def _depth_of(self, msg: Any, camera_info: Any, result: Segmentation) -> np.ndarray:
        """The depth image in metres at the segmentation's size. Raises ValueError with the reason."""
        if camera_info is None:
            raise ValueError("no camera_info received yet: the intrinsics for 3D come from it")
        if msg.encoding not in DEPTH_ENCODINGS:
            raise ValueError(f"depth encoding {msg.encoding!r}: expected 16UC1 (mm) or 32FC1 (m)")
        depth = depth_in_meters(image_to_numpy(msg))
        return align_depth(depth, result.height, result.width, rescale=self.params["depth_rescale"])
