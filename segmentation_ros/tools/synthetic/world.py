"""The scene description of the synthetic generator: the shapes label set, the pinhole camera and
its pose, Gazebo primitives, the static world and one rendered frame with its ground truth.

Frames: world frame z up, ground at z = 0. Camera optical frame as in ROS (x right, y down,
z forward). Pixel (u, v) has its centre at integer coordinates (column u, row v).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

import numpy as np

from segmentation_ros.engine.labels import get_label_set

# --------------------------------------------------------------------------------------------
# Label set


@dataclass(frozen=True)
class _ShapesLabels:
    void_id: int
    ids: Mapping[str, int]  # class name -> id
    classes: tuple[tuple[int, str, tuple[int, int, int], bool], ...]  # (id, name, color, isthing)


@cache
def _labels() -> _ShapesLabels:
    label_set = get_label_set("shapes")
    ids = {c.name: c.id for c in label_set.classes}
    missing = {"ground", "sky", "box", "sphere", "cylinder"} - set(ids)
    if missing:
        raise ValueError(f"label set 'shapes': classes {sorted(missing)} missing, got {sorted(ids)}")
    classes = tuple((c.id, c.name, c.color, c.isthing) for c in label_set.classes)
    return _ShapesLabels(void_id=label_set.void_id or 0, ids=ids, classes=classes)


def shapes_categories(things_only: bool = False) -> list[dict[str, Any]]:
    """COCO ``categories`` entries of the shapes label set (without the void class).

    Returns:
        dicts with ``id``, ``name``, ``supercategory``, ``isthing`` (0/1) and ``color`` (RGB).
    """
    labels = _labels()
    return [
        {
            "id": class_id,
            "name": name,
            "supercategory": "shape" if isthing else "scene",
            "isthing": int(isthing),
            "color": list(color),
        }
        for class_id, name, color, isthing in labels.classes
        if class_id != labels.void_id and (isthing or not things_only)
    ]


# --------------------------------------------------------------------------------------------
# Camera and world


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole camera without distortion (``plumb_bob`` with zero coefficients in CameraInfo)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @property
    def k(self) -> tuple[float, ...]:
        """Row-major 3x3 camera matrix, as ``sensor_msgs/CameraInfo.k``."""
        return (self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0)

    @property
    def p(self) -> tuple[float, ...]:
        """Row-major 3x4 projection matrix, as ``sensor_msgs/CameraInfo.p`` (monocular)."""
        return (self.fx, 0.0, self.cx, 0.0, 0.0, self.fy, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0)

    @property
    def hfov(self) -> float:
        """Horizontal field of view [rad]."""
        return 2.0 * math.atan(self.width / (2.0 * self.fx))


@dataclass(frozen=True)
class CameraPose:
    """Camera position in the world (z up) and its heading: ``yaw`` about z (0 = looking along +x,
    counter-clockwise positive) and ``pitch`` below the horizontal (positive = looking down); no
    roll, so the horizon is a horizontal image row."""

    x: float
    y: float
    z: float
    yaw: float
    pitch: float

    def rotation(self) -> np.ndarray:
        """(3, 3) float64 world-from-optical rotation: columns are the optical x (right), y (down)
        and z (forward) axes in world coordinates."""
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        forward = (cp * cy, cp * sy, -sp)
        right = (sy, -cy, 0.0)
        down = (-sp * cy, -sp * sy, -cp)
        return np.array([right, down, forward], dtype=np.float64).T

    def quaternion_xyzw(self) -> tuple[float, float, float, float]:
        """Orientation of the optical frame in the world as a unit quaternion (x, y, z, w), for a
        ``geometry_msgs/Transform``."""
        m = self.rotation()
        trace = m[0, 0] + m[1, 1] + m[2, 2]
        if trace > 0.0:
            s = 2.0 * math.sqrt(trace + 1.0)
            q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s)
        elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
            s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
            q = (0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s)
        elif m[1, 1] > m[2, 2]:
            s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
            q = ((m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s)
        else:
            s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
            q = ((m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s)
        return q

    def horizon_row(self, intrinsics: CameraIntrinsics) -> float:
        """Image row of the horizon (rays parallel to the ground); may lie outside the image."""
        return intrinsics.cy - intrinsics.fy * math.tan(self.pitch)


@dataclass(frozen=True)
class Primitive:
    """A Gazebo primitive standing on the ground plane.

    ``kind`` is ``"box"``, ``"sphere"`` or ``"cylinder"``; ``center`` is the 3-D centre [m] (its z
    is half the height); ``half_extents`` are the half sizes along the object's x, y, z axes (box:
    half length, width, height; sphere: (r, r, r); cylinder: (r, r, h / 2)); ``yaw`` rotates the
    object about the vertical; ``color`` is the RGB albedo in [0, 1]; ``specular`` the strength of
    the highlight; ``texture`` an optional surface pattern ``(pattern, second colour, scale [m])``,
    pattern ``"stripes"`` (horizontal bands), ``"checker"`` (a 3-D checker in the object's frame) or
    ``"noise"`` (smooth blotches), drawn independently of the class."""

    kind: str
    center: tuple[float, float, float]
    half_extents: tuple[float, float, float]
    yaw: float
    color: tuple[float, float, float]
    specular: float = 0.0
    texture: tuple[str, tuple[float, float, float], float] | None = None

    @property
    def class_id(self) -> int:
        """Class id in the shapes label set."""
        return _labels().ids[self.kind]

    @property
    def footprint_radius(self) -> float:
        """Radius [m] of the smallest vertical cylinder about the centre that holds the object."""
        hx, hy, _ = self.half_extents
        return math.hypot(hx, hy) if self.kind == "box" else hx

    def corners(self) -> np.ndarray:
        """(8, 3) float64 corners of the object's oriented bounding box (world frame)."""
        hx, hy, hz = self.half_extents
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        signs = np.array([[(i >> 0) & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], float) * 2 - 1
        local = signs * np.array([hx, hy, hz])
        world = np.empty_like(local)
        world[:, 0] = self.center[0] + c * local[:, 0] - s * local[:, 1]
        world[:, 1] = self.center[1] + s * local[:, 0] + c * local[:, 1]
        world[:, 2] = self.center[2] + local[:, 2]
        return world


def _shadow_hulls(corners: np.ndarray, sun: np.ndarray) -> np.ndarray:
    """(K, 8, 3) ground points whose convex hulls hold the objects' shadows on the ground.

    Args:
        corners: (K, 8, 3) bounding-box corners (:meth:`Primitive.corners` order: bit 2 of the
            corner index set = top face).
        sun: (3,) unit vector towards the sun (z > 0).
    """
    bottom = corners[:, :4].copy()
    bottom[..., 2] = 0.0
    top = corners[:, 4:]
    cast = top - (top[..., 2:3] / sun[2]) * sun
    return np.concatenate([bottom, cast], axis=1)


@dataclass(frozen=True, eq=False)
class World:
    """A static world: objects plus how ground, sky and light look.

    ``sun_direction`` is the unit vector towards the sun; the remaining fields parametrise the
    procedural ground texture and sky (see :func:`_sample_appearance`)."""

    objects: tuple[Primitive, ...]
    sun_direction: tuple[float, float, float]
    sun_intensity: float
    ambient: float
    ground_color: tuple[float, float, float]
    ground_octaves: tuple[tuple[float, float], ...]  # (wavelength [m], amplitude)
    ground_tiles: tuple[float, float]  # (tile size [m], contrast); contrast 0: no tiles
    sky_horizon: tuple[float, float, float]
    sky_zenith: tuple[float, float, float]
    cloud_cover: float
    visibility: float  # [m] haze: distance at which 63 % of the colour is the horizon colour
    noise_grid: np.ndarray  # (64, 64) float32 in [0, 1], periodic value-noise lattice
    noise_offset: tuple[float, float]
    # ground texture family: "noise" (octaves and optional tiles of ground_color), "checker" (tiles of
    # ground_color and ground_color2), "patches" (large blotches blending the two colours)
    ground_pattern: str = "noise"
    ground_color2: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ground_pattern_scale: float = 1.0  # [m]: checker tile size or blotch wavelength
    sun_color: tuple[float, float, float] = (1.0, 1.0, 1.0)  # colour temperature of the sun
    ambient_color: tuple[float, float, float] = (1.0, 1.0, 1.0)  # tint of the sky's light
    sky_side: tuple[float, float, float] | None = None  # the sky low down towards sky_side_azimuth
    sky_side_azimuth: float = 0.0  # [rad], about z from +x
    sky_family: str = "clear"  # what the sampler drew (sampling.SKY_FAMILIES and the held-out ones)
    ground_family: str = "concrete"  # (sampling.GROUND_FAMILIES and the held-out ones)

    # computed once per world, so the frames of a sequence share them
    @cached_property
    def _corners(self) -> np.ndarray:
        """(K, 8, 3) float64 bounding-box corners of the objects."""
        return np.array([obj.corners() for obj in self.objects], dtype=np.float64).reshape(-1, 8, 3)

    @cached_property
    def _shadow_hulls(self) -> np.ndarray:
        """(K, 8, 3) float64 ground points around each object's shadow."""
        return _shadow_hulls(self._corners, np.asarray(self.sun_direction, dtype=np.float64))


@dataclass(frozen=True)
class _Sensor:
    exposure: float
    vignetting: float
    blur_sigma: float  # [px]
    noise_sigma: float  # in [0, 1] intensity units
    gamma: float = 1.0  # output = linear ** (1 / gamma)
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel gains
    jpeg_quality: int = 0  # 1-100: the frame goes through JPEG at this quality; 0: it does not


@dataclass(frozen=True, eq=False)
class Scene:
    """One rendered frame and its exact ground truth.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        semantic: (H, W) uint8 class ids (shapes label set; 0 = void).
        instances: (H, W) uint16 instance ids, 0 = none, 1..N for the visible things.
        instance_class_ids: (N,) uint8 class id of instance ``i + 1``.
        instance_object_ids: (N,) int32 index into ``world.objects`` of instance ``i + 1``; stable
            across the frames of a sequence (a track id).
        panoptic: (H, W) int32 ``class_id * label_divisor + instance_id`` (stuff and void: 0).
        depth: (H, W) float32 distance along the optical axis [m]; ``inf`` for sky.
        intrinsics: the pinhole camera (for ``sensor_msgs/CameraInfo``).
        pose: the camera pose in the world frame.
        stamp_ns: capture time [ns] (sequence frames: evenly spaced at the frame rate).
        label_divisor: the panoptic encoding divisor.
        world: the world the frame shows.
    """

    image: np.ndarray
    semantic: np.ndarray
    instances: np.ndarray
    instance_class_ids: np.ndarray
    instance_object_ids: np.ndarray
    panoptic: np.ndarray
    depth: np.ndarray
    intrinsics: CameraIntrinsics
    pose: CameraPose
    stamp_ns: int
    label_divisor: int
    world: World

    @property
    def num_instances(self) -> int:
        return int(self.instance_class_ids.shape[0])

    @property
    def horizon_row(self) -> float:
        """Image row of the horizon; sky is only above it and ground only below it."""
        return self.pose.horizon_row(self.intrinsics)
