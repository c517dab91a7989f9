"""Seeded synthetic camera frames of a Gazebo-style world, with exact ground truth.

The world is Gazebo's primitive shapes (box, sphere, cylinder) standing on an infinite ground
plane under a sky. Frames are rendered by per-pixel ray casting through a pinhole camera (numpy,
vectorised per object inside its projected bounding rectangle) with a z-buffer, so perspective,
the horizon line and occlusion are geometrically exact, and the label maps are exact at pixel
centres. Object colours are drawn independently of the class; objects are Lambert/Blinn shaded
by a sun that also casts shadows on the ground; the ground is textured in world coordinates and
the sky has a gradient and clouds; the sensor adds vignetting, blur and noise. A large share of
the objects stand in tight clusters of one class (often with one size and colour), so same-class
objects touching and hiding each other are common.

Label ids are those of ``config/labels/shapes.yaml`` (0 unlabeled/void, 1 ground, 2 sky, 3 box,
4 sphere, 5 cylinder). Pixels of objects that are visible on fewer than ``min_instance_area``
pixels are void (0) in every map, so they are neither an instance nor mislabeled as stuff.

Frames:

- :func:`generate_scene` / :func:`generate_scenes`: independent frames (random camera, world,
  light and sensor per frame) for training and evaluation; ``split`` keeps sets disjoint.
- :func:`generate_sequence`: a camera driving smoothly through one static world, with per-frame
  timestamps and poses, for bag recordings.
- :func:`to_coco` / :func:`write_dataset`: COCO instance and COCO panoptic export.

Frames: world frame z up, ground at z = 0. Camera optical frame as in ROS (x right, y down,
z forward). Pixel (u, v) has its centre at integer coordinates (column u, row v).
"""

from __future__ import annotations

import colorsys
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from segmentation_ros.engine.imageio import atomic_write_bytes, write_png
from segmentation_ros.engine.labels import get_label_set
from segmentation_ros.engine.panoptic import id_to_rgb

__all__ = [
    "CameraIntrinsics",
    "CameraPose",
    "CocoDataset",
    "Primitive",
    "SPLITS",
    "Scene",
    "World",
    "generate_scene",
    "generate_scenes",
    "generate_sequence",
    "parse_synthetic_spec",
    "render",
    "render_preview",
    "shapes_categories",
    "to_coco",
    "write_dataset",
    "write_sequence_bag",
]

SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
"""Named splits and the seed offset each one mixes into every frame's random stream."""

_KIND_SCENE = 0
_KIND_SEQUENCE = 1
_EPS = 1e-4  # [m] minimum ray distance, so shadow rays do not hit the surface they start on
_NEAR = 1e-3  # [m] near plane used when projecting bounding boxes

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
    the highlight."""

    kind: str
    center: tuple[float, float, float]
    half_extents: tuple[float, float, float]
    yaw: float
    color: tuple[float, float, float]
    specular: float = 0.0

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


# --------------------------------------------------------------------------------------------
# Ray casting


def _hit_distance(obj: Primitive, ox, oy, oz, dx, dy, dz) -> np.ndarray:
    """Ray parameter ``t`` of the first hit of rays ``o + t d`` with ``obj`` (``inf``: no hit).

    Origins and directions are given per component, each a float scalar or an array; they
    broadcast. ``t`` is in units of ``|d|``.
    """
    cx, cy, cz = obj.center
    hx, hy, hz = obj.half_extents
    inf = np.float32(np.inf)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        px, py, pz = ox - cx, oy - cy, oz - cz
        if obj.kind == "sphere":
            a = dx * dx + dy * dy + dz * dz
            b = px * dx + py * dy + pz * dz
            disc = b * b - a * (px * px + py * py + pz * pz - hx * hx)
            t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
            return np.where((disc >= 0.0) & (t > _EPS), t, inf)
        if obj.kind == "cylinder":
            a = np.maximum(dx * dx + dy * dy, 1e-12)
            b = px * dx + py * dy
            disc = b * b - a * (px * px + py * py - hx * hx)
            t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
            z = pz + t_side * dz  # relative to the centre
            side = (disc >= 0.0) & (t_side > _EPS) & (np.abs(z) <= hz)
            t_cap = (hz - pz) / dz
            qx, qy = px + t_cap * dx, py + t_cap * dy
            cap = (t_cap > _EPS) & (qx * qx + qy * qy <= hx * hx)
            t = np.where(side, t_side, inf)
            return np.where(cap & (t_cap < t), t_cap, t)
        # box: slab test in the box frame
        c, s = math.cos(obj.yaw), math.sin(obj.yaw)
        t_near = t_far = None
        for lo, ld, h in (
            (c * px + s * py, c * dx + s * dy, hx),
            (-s * px + c * py, -s * dx + c * dy, hy),
            (pz, dz, hz),
        ):
            ld = np.where(np.abs(ld) < 1e-12, 1e-12, ld)
            t1 = (-h - lo) / ld
            t2 = (h - lo) / ld
            near, far = np.minimum(t1, t2), np.maximum(t1, t2)
            t_near = near if t_near is None else np.maximum(t_near, near)
            t_far = far if t_far is None else np.minimum(t_far, far)
        return np.where((t_near <= t_far) & (t_near > _EPS), t_near, inf)


def _surface_normal(obj: Primitive, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, ...]:
    """Unit outward normals (nx, ny, nz), each (N,) float32, at surface points (x, y, z) (N,)."""
    cx, cy, cz = obj.center
    hx, hy, hz = obj.half_extents
    px, py, pz = x - cx, y - cy, z - cz
    if obj.kind == "sphere":
        return px / hx, py / hx, pz / hx
    if obj.kind == "cylinder":
        top = pz > hz - 1e-3
        r = np.maximum(np.hypot(px, py), 1e-9)
        return (
            np.where(top, 0.0, px / r).astype(np.float32),
            np.where(top, 0.0, py / r).astype(np.float32),
            top.astype(np.float32),
        )
    c, s = math.cos(obj.yaw), math.sin(obj.yaw)
    lx, ly = c * px + s * py, -s * px + c * py
    ratios = np.stack([np.abs(lx) / hx, np.abs(ly) / hy, np.abs(pz) / hz])
    axis = np.argmax(ratios, axis=0)
    nlx = np.where(axis == 0, np.sign(lx), 0.0)
    nly = np.where(axis == 1, np.sign(ly), 0.0)
    nz = np.where(axis == 2, np.sign(pz), 0.0)
    return (
        (c * nlx - s * nly).astype(np.float32),
        (s * nlx + c * nly).astype(np.float32),
        nz.astype(np.float32),
    )


_PAIRS = np.array([(i, j) for i in range(8) for j in range(i + 1, 8)])


def _rect_from_optical(cam: np.ndarray, intrinsics: CameraIntrinsics) -> tuple[int, int, int, int] | None:
    """Pixel rectangle (v0, v1, u0, u1), end-exclusive, that holds the projection of the convex
    hull of ``cam`` (8, 3) optical-frame points, clipped at the near plane; ``None`` when empty."""
    front = cam[:, 2] > _NEAR
    if not front.any():
        return None
    kept = [cam[front]]
    if not front.all():
        # where segments between points cross the near plane: the hull's clipped vertices
        a, b = cam[_PAIRS[:, 0]], cam[_PAIRS[:, 1]]
        crossing = (a[:, 2] > _NEAR) != (b[:, 2] > _NEAR)
        a, b = a[crossing], b[crossing]
        w = (_NEAR - a[:, 2]) / (b[:, 2] - a[:, 2])
        kept.append(a + w[:, None] * (b - a))
    cam = np.concatenate(kept)
    u = intrinsics.fx * cam[:, 0] / cam[:, 2] + intrinsics.cx
    v = intrinsics.fy * cam[:, 1] / cam[:, 2] + intrinsics.cy
    return _clip_rect(u.min(), u.max(), v.min(), v.max(), intrinsics)


def _clip_rect(
    u_min: float, u_max: float, v_min: float, v_max: float, intrinsics: CameraIntrinsics
) -> tuple[int, int, int, int] | None:
    u0 = max(int(math.floor(u_min)), 0)
    u1 = min(int(math.ceil(u_max)) + 1, intrinsics.width)
    v0 = max(int(math.floor(v_min)), 0)
    v1 = min(int(math.ceil(v_max)) + 1, intrinsics.height)
    if u0 >= u1 or v0 >= v1:
        return None
    return v0, v1, u0, u1


def _project_rects(
    points: np.ndarray, intrinsics: CameraIntrinsics, pose: CameraPose
) -> list[tuple[int, int, int, int] | None]:
    """Pixel rectangles (v0, v1, u0, u1), end-exclusive, holding the projections of the convex
    hulls of ``points`` (K, 8, 3) world coordinates; ``None`` where nothing is in view."""
    if len(points) == 0:
        return []
    cam = (points - np.array([pose.x, pose.y, pose.z])) @ pose.rotation()  # (K, 8, 3) optical
    front = cam[..., 2] > _NEAR
    z = np.where(front, cam[..., 2], 1.0)
    u = intrinsics.fx * cam[..., 0] / z + intrinsics.cx
    v = intrinsics.fy * cam[..., 1] / z + intrinsics.cy
    bounds = np.stack([u.min(1), u.max(1), v.min(1), v.max(1)], axis=1).tolist()
    rects: list[tuple[int, int, int, int] | None] = []
    for k, (all_front, any_front) in enumerate(
        zip(front.all(1).tolist(), front.any(1).tolist(), strict=True)
    ):
        if all_front:
            rects.append(_clip_rect(*bounds[k], intrinsics))
        elif any_front:  # straddles the near plane: clip
            rects.append(_rect_from_optical(cam[k], intrinsics))
        else:
            rects.append(None)
    return rects


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


def _value_noise(grid: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Smooth periodic value noise in [0, 1] at lattice coordinates (x, y) (N,) float32; ``grid``
    is a (S, S) lattice, S a power of two."""
    size = grid.shape[0]
    x = np.clip(x, -1e6, 1e6)
    y = np.clip(y, -1e6, 1e6)
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    fx = fx * fx * (3.0 - 2.0 * fx)
    fy = fy * fy * (3.0 - 2.0 * fy)
    mask = size - 1  # the lattice size is a power of two
    ix = x0.astype(np.int32) & mask
    iy = y0.astype(np.int32) & mask
    ix1, iy1 = (ix + 1) & mask, (iy + 1) & mask
    top = grid[iy, ix] + fx * (grid[iy, ix1] - grid[iy, ix])
    bottom = grid[iy1, ix] + fx * (grid[iy1, ix1] - grid[iy1, ix])
    return (top + fy * (bottom - top)).astype(np.float32)


def _ground_albedo(world: World, x, y, footprint) -> np.ndarray:
    """(N, 3) float32 ground colour at ground points (x, y) (N,); ``footprint`` (N,) is the
    pixel's size on the ground [m], used to fade detail finer than a pixel (no aliasing)."""
    shade = np.ones_like(x)
    ox, oy = world.noise_offset
    for k, (wavelength, amplitude) in enumerate(world.ground_octaves):
        fade = np.exp(-2.0 * footprint / wavelength)
        n = _value_noise(world.noise_grid, x / wavelength + ox + 17.3 * k, y / wavelength + oy - 5.1 * k)
        shade += amplitude * fade * (2.0 * n - 1.0)
    tile, contrast = world.ground_tiles
    if contrast > 0.0:
        checker = (np.floor(x / tile) + np.floor(y / tile)) % 2.0
        shade += contrast * np.exp(-2.0 * footprint / tile) * (checker - 0.5)
    return np.clip(shade, 0.2, 2.0)[:, None] * np.asarray(world.ground_color, np.float32)[None, :]


def _sky_color(world: World, dx, dy, dz) -> np.ndarray:
    """(N, 3) float32 sky radiance along unit view directions (N,) each."""
    elevation = np.clip(dz, 0.0, 1.0)
    horizon = np.asarray(world.sky_horizon, np.float32)
    zenith = np.asarray(world.sky_zenith, np.float32)
    color = horizon + np.sqrt(elevation)[:, None] * (zenith - horizon)
    sun = np.asarray(world.sun_direction, np.float32)
    cos_sun = np.clip(dx * sun[0] + dy * sun[1] + dz * sun[2], 0.0, 1.0)
    color += (0.5 * cos_sun**256 + 0.12 * cos_sun**8)[:, None]
    if world.cloud_cover > 0.0:
        # clouds on a plane above the world: a function of the view direction only, so they stay
        # put while the camera moves
        scale = 1.0 / (elevation + 0.08)
        ox, oy = world.noise_offset
        n = 0.65 * _value_noise(world.noise_grid, dx * scale * 2.0 + oy, dy * scale * 2.0 + ox)
        n += 0.35 * _value_noise(world.noise_grid, dx * scale * 7.0 - ox, dy * scale * 7.0 + oy)
        threshold = 1.0 - world.cloud_cover
        amount = np.clip((n - threshold) / 0.2, 0.0, 1.0) * np.clip(elevation * 6.0, 0.0, 1.0)
        cloud = 0.75 + 0.25 * elevation
        color += amount[:, None] * (cloud[:, None] - color)
    return color


def render(
    world: World,
    intrinsics: CameraIntrinsics,
    pose: CameraPose,
    sensor: _Sensor | None = None,
    *,
    rng: np.random.Generator | None = None,
    stamp_ns: int = 0,
    label_divisor: int = 1000,
    min_instance_area: int = 8,
) -> Scene:
    """Render one frame of ``world`` and its ground truth.

    Args:
        world: the objects, light, ground and sky.
        intrinsics, pose: the camera.
        sensor: exposure, vignetting, blur and noise; ``None``: a clean image.
        rng: random source of the sensor noise (required when ``sensor`` adds noise).
        stamp_ns: stored in the scene.
        label_divisor: panoptic encoding divisor; must exceed the number of instances.
        min_instance_area: objects visible on fewer pixels are void instead of instances.

    Returns:
        the :class:`Scene`.
    """
    if min_instance_area < 1:
        raise ValueError(f"min_instance_area must be >= 1, got {min_instance_area}")
    width, height = intrinsics.width, intrinsics.height
    labels = _labels()
    rot = pose.rotation().astype(np.float32)
    u = ((np.arange(width, dtype=np.float32) - intrinsics.cx) / intrinsics.fx)[None, :]
    v = ((np.arange(height, dtype=np.float32) - intrinsics.cy) / intrinsics.fy)[:, None]
    # ray directions, (H, W) per component; the optical-axis component is 1, so t is depth
    dx = u * rot[0, 0] + v * rot[0, 1] + rot[0, 2]
    dy = u * rot[1, 0] + v * rot[1, 1] + rot[1, 2]
    dz = np.broadcast_to(v * rot[2, 1] + rot[2, 2], (height, width))
    ox, oy, oz = np.float32(pose.x), np.float32(pose.y), np.float32(pose.z)

    num_objects = len(world.objects)
    ground_code, sky_code = num_objects, num_objects + 1
    depth = np.full((height, width), np.inf, dtype=np.float32)
    owner = np.full((height, width), sky_code, dtype=np.int32)
    nx = np.zeros((height, width), dtype=np.float32)
    ny = np.zeros((height, width), dtype=np.float32)
    nz = np.ones((height, width), dtype=np.float32)
    if oz > 0.0:
        ground = dz < 0.0
        with np.errstate(divide="ignore"):
            depth[ground] = (-oz / dz)[ground]
        owner[ground] = ground_code

    for index, (obj, rect) in enumerate(
        zip(world.objects, _project_rects(world._corners, intrinsics, pose), strict=True)
    ):
        if rect is None:
            continue
        v0, v1, u0, u1 = rect
        rdx, rdy, rdz = dx[v0:v1, u0:u1], dy[v0:v1, u0:u1], dz[v0:v1, u0:u1]
        t = _hit_distance(obj, ox, oy, oz, rdx, rdy, rdz)
        depth_view = depth[v0:v1, u0:u1]
        closer = t < depth_view
        if not closer.any():
            continue
        tc = t[closer]
        depth_view[closer] = tc
        owner[v0:v1, u0:u1][closer] = index
        normal = _surface_normal(obj, ox + tc * rdx[closer], oy + tc * rdy[closer], oz + tc * rdz[closer])
        nx[v0:v1, u0:u1][closer], ny[v0:v1, u0:u1][closer], nz[v0:v1, u0:u1][closer] = normal

    # sun shadows on the ground
    sun = np.asarray(world.sun_direction, np.float32)
    lit = np.ones((height, width), dtype=np.float32)
    for obj, rect in zip(world.objects, _project_rects(world._shadow_hulls, intrinsics, pose), strict=True):
        if rect is None:
            continue
        v0, v1, u0, u1 = rect
        on_ground = (owner[v0:v1, u0:u1] == ground_code) & (lit[v0:v1, u0:u1] > 0.5)
        if not on_ground.any():
            continue
        t = depth[v0:v1, u0:u1][on_ground]
        gx = ox + t * dx[v0:v1, u0:u1][on_ground]
        gy = oy + t * dy[v0:v1, u0:u1][on_ground]
        blocked = np.isfinite(_hit_distance(obj, gx, gy, np.float32(0.0), sun[0], sun[1], sun[2]))
        lit_view = lit[v0:v1, u0:u1]
        values = lit_view[on_ground]
        values[blocked] = 0.0
        lit_view[on_ground] = values

    # ground truth
    visible_area = np.bincount(owner.ravel(), minlength=num_objects + 2)[:num_objects]
    keep = visible_area >= min_instance_area
    num_instances = int(keep.sum())
    if num_instances >= label_divisor or num_instances > np.iinfo(np.uint16).max:
        raise ValueError(f"{num_instances} instances do not fit label_divisor={label_divisor}")
    object_classes = np.array([obj.class_id for obj in world.objects], dtype=np.int64)
    semantic_lut = np.full(num_objects + 2, labels.void_id, dtype=np.uint8)
    semantic_lut[:num_objects][keep] = object_classes[keep]
    semantic_lut[ground_code] = labels.ids["ground"]
    semantic_lut[sky_code] = labels.ids["sky"]
    instance_lut = np.zeros(num_objects + 2, dtype=np.uint16)
    instance_lut[:num_objects][keep] = np.arange(1, num_instances + 1)
    semantic = semantic_lut[owner]
    instances = instance_lut[owner]
    panoptic = semantic.astype(np.int32) * np.int32(label_divisor) + instances.astype(np.int32)

    # shading
    norm = np.sqrt(dx * dx + dy * dy + dz * dz)
    vx, vy, vz = dx / norm, dy / norm, dz / norm
    albedo_lut = np.zeros((num_objects + 2, 3), dtype=np.float32)
    specular_lut = np.zeros(num_objects + 2, dtype=np.float32)
    for index, obj in enumerate(world.objects):
        albedo_lut[index] = obj.color
        specular_lut[index] = obj.specular
    albedo = albedo_lut[owner]
    ground = owner == ground_code
    if ground.any():
        t = depth[ground]
        footprint = t * norm[ground] ** 2 / (intrinsics.fx * np.maximum(-dz[ground], 1e-6))
        albedo[ground] = _ground_albedo(world, ox + t * dx[ground], oy + t * dy[ground], footprint)
    cos_sun = np.maximum(nx * sun[0] + ny * sun[1] + nz * sun[2], 0.0) * lit
    light = world.ambient * (0.6 + 0.4 * nz) + world.sun_intensity * cos_sun
    color = albedo * light[..., None]
    # Blinn highlight: half vector between the sun and the direction back to the camera
    hx, hy, hz = sun[0] - vx, sun[1] - vy, sun[2] - vz
    hnorm = np.sqrt(hx * hx + hy * hy + hz * hz) + 1e-6
    cos_half = np.maximum((nx * hx + ny * hy + nz * hz) / hnorm, 0.0)
    color += (specular_lut[owner] * cos_half**40 * (cos_sun > 0))[..., None]
    # haze towards the horizon colour with distance
    finite = owner != sky_code
    haze = 1.0 - np.exp(-(depth[finite] * norm[finite]) / world.visibility)
    horizon = np.asarray(world.sky_horizon, np.float32)
    color[finite] += haze[:, None] * (horizon[None, :] - color[finite])
    sky = ~finite
    if sky.any():
        color[sky] = _sky_color(world, vx[sky], vy[sky], vz[sky])

    if sensor is not None:
        color *= sensor.exposure
        if sensor.vignetting > 0.0:
            r2 = ((np.arange(width) - intrinsics.cx) / width)[None, :] ** 2
            r2 = r2 + ((np.arange(height) - intrinsics.cy) / width)[:, None] ** 2
            color *= (1.0 - sensor.vignetting * r2).astype(np.float32)[..., None]
        if sensor.blur_sigma > 0.0:
            color = cv2.GaussianBlur(color, (0, 0), sensor.blur_sigma, borderType=cv2.BORDER_REFLECT)
        if sensor.noise_sigma > 0.0:
            if rng is None:
                raise ValueError("render() needs rng when the sensor adds noise")
            color += sensor.noise_sigma * rng.standard_normal(color.shape, dtype=np.float32)
    image = np.clip(color * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)

    return Scene(
        image=image,
        semantic=semantic,
        instances=instances,
        instance_class_ids=object_classes[keep].astype(np.uint8),
        instance_object_ids=np.flatnonzero(keep).astype(np.int32),
        panoptic=panoptic,
        depth=depth,
        intrinsics=intrinsics,
        pose=pose,
        stamp_ns=int(stamp_ns),
        label_divisor=int(label_divisor),
        world=world,
    )


# --------------------------------------------------------------------------------------------
# Random worlds

_KINDS = ("box", "sphere", "cylinder")


def _random_color(rng: np.random.Generator) -> tuple[float, float, float]:
    """An RGB albedo drawn independently of any class: any hue, some nearly grey."""
    hue = rng.random()
    saturation = rng.uniform(0.0, 0.15) if rng.random() < 0.15 else rng.uniform(0.3, 1.0)
    value = rng.uniform(0.25, 1.0)
    return tuple(float(c) for c in colorsys.hsv_to_rgb(hue, saturation, value))


def _random_size(rng: np.random.Generator, kind: str) -> tuple[float, float, float]:
    """Half extents [m] of a random object of ``kind``."""
    if kind == "box":
        return tuple(float(h) for h in rng.uniform(0.12, 0.75, size=3))
    if kind == "sphere":
        r = float(rng.uniform(0.15, 0.75))
        return (r, r, r)
    r = float(rng.uniform(0.12, 0.6))
    return (r, r, float(rng.uniform(0.15, 1.0)))


def _footprints_overlap(a: Primitive, b: Primitive, tolerance: float = 1e-6) -> bool:
    """Whether the ground footprints (circles, or rotated rectangles for boxes) intersect by more
    than ``tolerance`` [m]; touching objects do not overlap."""
    if a.kind != "box" and b.kind == "box":
        a, b = b, a
    ax, ay = a.center[:2]
    bx, by = b.center[:2]
    if a.kind != "box":  # two circles
        return math.hypot(ax - bx, ay - by) < a.half_extents[0] + b.half_extents[0] - tolerance
    ca, sa = math.cos(a.yaw), math.sin(a.yaw)
    if b.kind != "box":  # rectangle a, circle b: closest point of the rectangle to the centre
        lx = ca * (bx - ax) + sa * (by - ay)
        ly = -sa * (bx - ax) + ca * (by - ay)
        qx = min(max(lx, -a.half_extents[0]), a.half_extents[0])
        qy = min(max(ly, -a.half_extents[1]), a.half_extents[1])
        return math.hypot(lx - qx, ly - qy) < b.half_extents[0] - tolerance
    cb, sb = math.cos(b.yaw), math.sin(b.yaw)
    axes_a = ((ca, sa), (-sa, ca))
    axes_b = ((cb, sb), (-sb, cb))
    for ux, uy in axes_a + axes_b:  # separating axis test
        ra = sum(h * abs(ux * ex + uy * ey) for h, (ex, ey) in zip(a.half_extents[:2], axes_a, strict=True))
        rb = sum(h * abs(ux * ex + uy * ey) for h, (ex, ey) in zip(b.half_extents[:2], axes_b, strict=True))
        if abs(ux * (bx - ax) + uy * (by - ay)) >= ra + rb - tolerance:
            return False
    return True


def _make(kind, x, y, half_extents, yaw, color, specular) -> Primitive:
    return Primitive(
        kind, (float(x), float(y), float(half_extents[2])), half_extents, float(yaw), color, specular
    )


def _place_objects(
    rng: np.random.Generator,
    count: int,
    sample_anchor: Callable[[], tuple[float, float]],
    allowed: Callable[[Primitive], bool],
    cluster_probability: float = 0.65,
) -> list[Primitive]:
    """Place ``count`` objects (some in tight same-class clusters) without footprint overlaps.

    ``sample_anchor`` draws a free position for a single object or a cluster's first member;
    ``allowed`` rejects objects that the caller does not want (too close to the camera path, out
    of view). Cluster members are pushed out from a random member along a random direction until
    they just touch, so their footprints touch or nearly touch.
    """
    placed: list[Primitive] = []

    def free(obj: Primitive) -> bool:
        return allowed(obj) and not any(_footprints_overlap(obj, other) for other in placed)

    def new_object(kind, x, y, half_extents=None, yaw=None, color=None) -> Primitive:
        half_extents = half_extents or _random_size(rng, kind)
        yaw = rng.uniform(0.0, 2.0 * math.pi) if yaw is None else yaw
        specular = float(rng.uniform(0.0, 0.5)) if rng.random() < 0.5 else 0.0
        return _make(kind, x, y, half_extents, yaw, color or _random_color(rng), specular)

    remaining = count
    attempts = 0
    while remaining > 0 and attempts < 20 * count:
        attempts += 1
        kind = _KINDS[int(rng.integers(len(_KINDS)))]
        size = (
            int(rng.integers(2, min(remaining, 5) + 1))
            if remaining >= 2 and rng.random() < cluster_probability
            else 1
        )
        x, y = sample_anchor()
        first = new_object(kind, x, y)
        if not free(first):
            continue
        placed.append(first)
        remaining -= 1
        if size == 1:
            continue
        # a cluster: often identical objects (a row of crates), sometimes one colour too
        same_shape = rng.random() < 0.5
        same_color = rng.random() < 0.35
        members = [first]
        for _ in range(size - 1):
            half_extents = first.half_extents if same_shape else None
            yaw = first.yaw if same_shape and kind == "box" else None
            candidate = new_object(kind, 0.0, 0.0, half_extents, yaw, first.color if same_color else None)
            anchor = members[int(rng.integers(len(members)))]
            if same_shape and kind == "box" and rng.random() < 0.7:
                # along one of the box's own axes, so faces meet flush
                angle = anchor.yaw + 0.5 * math.pi * int(rng.integers(4))
            else:
                angle = rng.uniform(0.0, 2.0 * math.pi)
            gap = 0.0 if rng.random() < 0.5 else float(rng.uniform(0.0, 0.15))
            step = 0.02
            distance = 0.0
            limit = anchor.footprint_radius + candidate.footprint_radius + step
            while distance <= limit:
                moved = _make(
                    kind,
                    anchor.center[0] + (distance + gap) * math.cos(angle),
                    anchor.center[1] + (distance + gap) * math.sin(angle),
                    candidate.half_extents,
                    candidate.yaw,
                    candidate.color,
                    candidate.specular,
                )
                if not _footprints_overlap(moved, anchor):
                    break
                distance += step
            else:
                continue
            if gap == 0.0:
                # refine to touching: bisect the last step
                lo, hi = max(distance - step, 0.0), distance
                for _ in range(8):
                    mid = 0.5 * (lo + hi)
                    probe = _make(
                        kind,
                        anchor.center[0] + mid * math.cos(angle),
                        anchor.center[1] + mid * math.sin(angle),
                        candidate.half_extents,
                        candidate.yaw,
                        candidate.color,
                        candidate.specular,
                    )
                    if _footprints_overlap(probe, anchor):
                        lo = mid
                    else:
                        hi, moved = mid, probe
            if free(moved):
                placed.append(moved)
                members.append(moved)
                remaining -= 1
    return placed


def _sample_appearance(rng: np.random.Generator) -> dict[str, Any]:
    """Light, ground and sky parameters of a :class:`World`."""
    elevation = rng.uniform(math.radians(20.0), math.radians(70.0))
    azimuth = rng.uniform(0.0, 2.0 * math.pi)
    sun = (
        math.cos(elevation) * math.cos(azimuth),
        math.cos(elevation) * math.sin(azimuth),
        math.sin(elevation),
    )
    ground_kind = rng.random()
    if ground_kind < 0.35:  # grass
        ground = colorsys.hsv_to_rgb(rng.uniform(0.2, 0.33), rng.uniform(0.35, 0.7), rng.uniform(0.35, 0.65))
    elif ground_kind < 0.65:  # Gazebo's grey plane, concrete, asphalt
        grey = rng.uniform(0.3, 0.8)
        ground = (grey, grey, grey * rng.uniform(0.95, 1.05))
    else:  # dirt, sand
        ground = colorsys.hsv_to_rgb(rng.uniform(0.05, 0.14), rng.uniform(0.2, 0.55), rng.uniform(0.35, 0.75))
    overcast = rng.random() < 0.2
    if overcast:
        grey = rng.uniform(0.65, 0.9)
        zenith = (grey * 0.92, grey * 0.95, grey)
        horizon = (grey, grey, grey)
    else:
        zenith = colorsys.hsv_to_rgb(rng.uniform(0.55, 0.64), rng.uniform(0.35, 0.75), rng.uniform(0.7, 1.0))
        horizon = colorsys.hsv_to_rgb(
            rng.uniform(0.55, 0.62), rng.uniform(0.05, 0.25), rng.uniform(0.85, 1.0)
        )
    return {
        "sun_direction": sun,
        "sun_intensity": float(rng.uniform(0.3, 0.6) if overcast else rng.uniform(0.55, 0.9)),
        "ambient": float(rng.uniform(0.5, 0.75) if overcast else rng.uniform(0.35, 0.6)),
        "ground_color": tuple(float(c) for c in ground),
        "ground_octaves": (
            (float(rng.uniform(0.15, 0.4)), float(rng.uniform(0.05, 0.25))),
            (float(rng.uniform(0.8, 2.0)), float(rng.uniform(0.05, 0.2))),
            (float(rng.uniform(4.0, 12.0)), float(rng.uniform(0.0, 0.2))),
        ),
        "ground_tiles": (
            float(rng.uniform(0.5, 2.0)),
            float(rng.uniform(0.05, 0.2)) if rng.random() < 0.3 else 0.0,
        ),
        "sky_horizon": tuple(float(c) for c in horizon),
        "sky_zenith": tuple(float(c) for c in zenith),
        "cloud_cover": 0.0 if overcast else float(rng.uniform(0.0, 0.6)),
        "visibility": float(rng.uniform(60.0, 400.0)),
        "noise_grid": rng.random((64, 64), dtype=np.float32),
        "noise_offset": (float(rng.uniform(0, 64)), float(rng.uniform(0, 64))),
    }


def _sample_sensor(rng: np.random.Generator) -> _Sensor:
    return _Sensor(
        exposure=float(rng.uniform(0.85, 1.15)),
        vignetting=float(rng.uniform(0.0, 0.5)),
        blur_sigma=float(rng.uniform(0.3, 0.9)),
        noise_sigma=float(rng.uniform(0.003, 0.015)),
    )


def _sample_intrinsics(rng: np.random.Generator, width: int, height: int) -> CameraIntrinsics:
    hfov = rng.uniform(math.radians(50.0), math.radians(90.0))
    fx = (width / 2.0) / math.tan(hfov / 2.0)
    return CameraIntrinsics(width, height, fx, fx, (width - 1) / 2.0, (height - 1) / 2.0)


MIN_SPEC_SIZE = 16
"""Smallest width and height a ``synthetic:WxH`` data spec may ask for."""


def parse_synthetic_spec(spec: str, default: tuple[int, int]) -> tuple[int, int] | None:
    """The frame size a ``--data`` value asks for, if it names synthetic frames.

    ``"synthetic"`` -> ``default``; ``"synthetic:WxH"`` (``x`` or ``X``) -> ``(W, H)``; anything
    else (a dataset directory) -> None. One set of rules for every command that takes ``--data``.

    Raises:
        ValueError: ``synthetic:`` followed by anything but ``WIDTHxHEIGHT``, or a size below
            :data:`MIN_SPEC_SIZE` pixels either way.
    """
    if spec == "synthetic":
        return default
    if not spec.startswith("synthetic:"):
        return None
    match = re.fullmatch(r"(\d+)[xX](\d+)", spec.removeprefix("synthetic:"))
    if match is None:
        raise ValueError(
            f"--data {spec!r}: expected synthetic:WIDTHxHEIGHT, e.g. synthetic:{default[0]}x{default[1]}"
        )
    width, height = int(match[1]), int(match[2])
    if width < MIN_SPEC_SIZE or height < MIN_SPEC_SIZE:
        raise ValueError(f"--data {spec!r}: frames must be at least {MIN_SPEC_SIZE}x{MIN_SPEC_SIZE}")
    return width, height


def _check_size(width: int, height: int) -> None:
    if width < 4 or height < 4:
        raise ValueError(f"image size must be at least 4x4, got width={width} height={height}")


def _frame_rng(seed: int, split: str, kind: int, index: int) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    return np.random.default_rng([int(seed), SPLITS[split], kind, int(index)])


# --------------------------------------------------------------------------------------------
# Public generators


def generate_scene(
    seed: int | np.random.Generator,
    width: int = 320,
    height: int = 240,
    *,
    split: str = "train",
    index: int = 0,
    num_objects: tuple[int, int] = (5, 12),
    label_divisor: int = 1000,
    min_instance_area: int = 8,
) -> Scene:
    """One independent random frame: camera, world, light and sensor all drawn at random.

    Args:
        seed: non-negative int, or a ``numpy.random.Generator`` to draw from (then ``split`` and
            ``index`` are not used).
        width, height: image size [px].
        split: ``"train"``, ``"val"`` or ``"test"``; mixed into the random stream, so the same
            ``(seed, index)`` gives unrelated frames in different splits.
        index: frame number within the (seed, split) set.
        num_objects: inclusive range of the number of objects placed in view (some may end up
            hidden).
        label_divisor, min_instance_area: see :func:`render`.

    Returns:
        the :class:`Scene`; identical for identical arguments.
    """
    _check_size(width, height)
    lo, hi = num_objects
    if not 0 <= lo <= hi:
        raise ValueError(f"num_objects must be a range (lo, hi) with 0 <= lo <= hi, got {num_objects}")
    rng = seed if isinstance(seed, np.random.Generator) else _frame_rng(seed, split, _KIND_SCENE, index)
    intrinsics = _sample_intrinsics(rng, width, height)
    half_vfov = math.atan((height / 2.0) / intrinsics.fy)
    pose = CameraPose(
        x=0.0,
        y=0.0,
        z=float(rng.uniform(0.3, 1.8)),
        yaw=float(rng.uniform(-math.pi, math.pi)),
        pitch=float(rng.uniform(-0.3, 0.8) * half_vfov),  # the horizon always in the image
    )
    hfov = intrinsics.hfov

    def sample_anchor() -> tuple[float, float]:
        distance = 1.5 + 16.0 * rng.random() ** 1.6  # more objects near the camera
        bearing = pose.yaw + rng.uniform(-0.5, 0.5) * hfov
        return distance * math.cos(bearing), distance * math.sin(bearing)

    def allowed(obj: Primitive) -> bool:
        x, y = obj.center[:2]
        distance = math.hypot(x, y)
        if distance < obj.footprint_radius + 0.8:
            return False
        off_axis = abs((math.atan2(y, x) - pose.yaw + math.pi) % (2.0 * math.pi) - math.pi)
        return off_axis < 0.5 * hfov + math.asin(min(obj.footprint_radius / distance, 1.0))

    count = int(rng.integers(lo, hi + 1))
    objects = _place_objects(rng, count, sample_anchor, allowed)
    world = World(objects=tuple(objects), **_sample_appearance(rng))
    return render(
        world,
        intrinsics,
        pose,
        _sample_sensor(rng),
        rng=rng,
        label_divisor=label_divisor,
        min_instance_area=min_instance_area,
    )


def generate_scenes(
    n: int,
    seed: int,
    width: int = 320,
    height: int = 240,
    *,
    split: str = "train",
    start: int = 0,
    **kwargs: Any,
) -> Iterator[Scene]:
    """Frames ``start .. start + n - 1`` of the (seed, split) set; ``kwargs`` go to
    :func:`generate_scene`. Lazy: frames are rendered as they are consumed."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    for index in range(start, start + n):
        yield generate_scene(seed, width, height, split=split, index=index, **kwargs)


def generate_sequence(
    n: int,
    seed: int,
    width: int = 320,
    height: int = 240,
    *,
    split: str = "train",
    fps: float = 10.0,
    speed: float = 1.0,
    start_ns: int = 1_700_000_000_000_000_000,
    objects_per_meter: float = 0.8,
    label_divisor: int = 1000,
    min_instance_area: int = 8,
) -> Iterator[Scene]:
    """A camera on a robot driving smoothly through one static world, ``n`` frames.

    The robot drives at ``speed`` [m/s] along a gently winding path (heading a sum of slow
    sinusoids) with the camera at a fixed height and pitch plus a little bobbing; the objects stand
    beside the path (never on it), many in same-class clusters. Intrinsics, light and sensor
    settings are fixed for the sequence; only the sensor noise changes per frame. The world depends
    on ``n`` (it covers the path plus what is in view at its end).

    Args:
        n: number of frames.
        seed, split: as in :func:`generate_scene` (sequences and single frames never share a
            random stream).
        width, height: image size [px].
        fps: frame rate; frame ``i`` has ``stamp_ns = start_ns + round(i * 1e9 / fps)``.
        speed: [m/s].
        start_ns: timestamp of the first frame [ns].
        objects_per_meter: object density along the path.
        label_divisor, min_instance_area: see :func:`render`.

    Yields:
        :class:`Scene` per frame; ``instance_object_ids`` are stable track ids and ``pose`` gives
        the camera's pose in the world (``world`` frame, z up).
    """
    _check_size(width, height)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if fps <= 0.0 or speed < 0.0:
        raise ValueError(f"fps must be > 0 and speed >= 0, got fps={fps} speed={speed}")
    rng = _frame_rng(seed, split, _KIND_SEQUENCE, 0)
    intrinsics = _sample_intrinsics(rng, width, height)
    half_vfov = math.atan((height / 2.0) / intrinsics.fy)
    height_m = float(rng.uniform(0.3, 1.5))
    pitch = float(rng.uniform(0.05, 0.6) * half_vfov)
    heading0 = float(rng.uniform(-math.pi, math.pi))
    waves = [
        (
            float(rng.uniform(0.2, 0.8)),
            2.0 * math.pi / float(rng.uniform(15.0, 40.0)),
            float(rng.uniform(0, 6.3)),
        ),
        (
            float(rng.uniform(0.05, 0.25)),
            2.0 * math.pi / float(rng.uniform(4.0, 10.0)),
            float(rng.uniform(0, 6.3)),
        ),
    ]
    bob_phase = float(rng.uniform(0.0, 6.3))

    def heading(t: np.ndarray) -> np.ndarray:
        return heading0 + sum(a * (np.sin(w * t + p) - math.sin(p)) for a, w, p in waves)

    # path: integrate the heading finely; extend it past the last frame for the objects in view
    lookahead_s = 25.0 / max(speed, 0.1)
    substeps = 8
    dt = 1.0 / (fps * substeps)
    fine_t = np.arange(int(math.ceil((n / fps + lookahead_s) / dt)) + 1) * dt
    mid_heading = heading(fine_t[:-1] + 0.5 * dt)
    path_x = np.concatenate([[0.0], np.cumsum(speed * dt * np.cos(mid_heading))])
    path_y = np.concatenate([[0.0], np.cumsum(speed * dt * np.sin(mid_heading))])
    path_heading = heading(fine_t)
    path_length = speed * fine_t[-1] + 10.0
    sparse = slice(None, None, max(1, int(round(0.25 / max(speed * dt, 1e-6)))))  # every ~25 cm
    sx, sy = path_x[sparse], path_y[sparse]

    def sample_anchor() -> tuple[float, float]:
        k = int(rng.integers(len(path_x)))
        side = 1.0 if rng.random() < 0.5 else -1.0
        lateral = side * rng.uniform(1.0, 9.0)
        along = rng.uniform(-1.0, 1.0)
        c, s = math.cos(path_heading[k]), math.sin(path_heading[k])
        return path_x[k] + along * c - lateral * s, path_y[k] + along * s + lateral * c

    def allowed(obj: Primitive) -> bool:
        x, y = obj.center[:2]
        clearance = float(np.min((sx - x) ** 2 + (sy - y) ** 2))
        return clearance > (obj.footprint_radius + 0.6) ** 2

    count = max(1, int(round(objects_per_meter * path_length)))
    objects = _place_objects(rng, count, sample_anchor, allowed)
    world = World(objects=tuple(objects), **_sample_appearance(rng))
    sensor = _sample_sensor(rng)

    frame_step = substeps
    for i in range(n):
        k = i * frame_step
        t = float(fine_t[k])
        pose = CameraPose(
            x=float(path_x[k]),
            y=float(path_y[k]),
            z=height_m + 0.004 * math.sin(2.0 * math.pi * 1.7 * t + bob_phase),
            yaw=float(path_heading[k]),
            pitch=pitch + 0.004 * math.sin(2.0 * math.pi * 1.3 * t + 2.0 * bob_phase),
        )
        yield render(
            world,
            intrinsics,
            pose,
            sensor,
            rng=_frame_rng(seed, split, _KIND_SEQUENCE, i + 1),
            stamp_ns=start_ns + round(i * 1e9 / fps),
            label_divisor=label_divisor,
            min_instance_area=min_instance_area,
        )


# --------------------------------------------------------------------------------------------
# COCO export


def _rle_stats(mask: np.ndarray) -> tuple[dict[str, Any], int, list[float]]:
    """COCO RLE (counts as str), area and [x, y, w, h] bbox of a (H, W) bool mask."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    area = int(mask_utils.area(rle))
    bbox = [float(b) for b in mask_utils.toBbox(rle)]
    rle["counts"] = rle["counts"].decode("ascii")
    return rle, area, bbox


@dataclass(frozen=True)
class CocoDataset:
    """Paths of a dataset written by :func:`to_coco`."""

    root: Path
    images_dir: Path
    instances_json: Path
    panoptic_json: Path
    panoptic_dir: Path
    num_images: int


def to_coco(
    scenes: Iterable[Scene],
    out_dir: str | os.PathLike[str],
    *,
    info: Mapping[str, Any] | None = None,
) -> CocoDataset:
    """Write scenes as a COCO instance + COCO panoptic dataset.

    Layout: ``images/NNNNNN.png`` (RGB), ``annotations/instances.json`` (RLE masks, category ids
    are the shapes thing ids), ``annotations/panoptic.json`` and ``annotations/panoptic/NNNNNN.png``
    (segment id = the scene's panoptic label ``class_id * label_divisor + instance_id``, so stuff
    segments are ``class_id * label_divisor``; 0 is void). Image ids count from 1 in order.
    Every file is written under a temporary name and renamed into place.

    Args:
        scenes: frames to write (consumed once, streamed).
        out_dir: dataset root; created if missing.
        info: extra fields for the JSON ``info`` block.

    Returns:
        the written paths.
    """
    root = Path(out_dir)
    images_dir = root / "images"
    annotations_dir = root / "annotations"
    panoptic_dir = annotations_dir / "panoptic"
    for directory in (images_dir, panoptic_dir):
        directory.mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    instance_annotations: list[dict[str, Any]] = []
    panoptic_annotations: list[dict[str, Any]] = []
    categories = shapes_categories()
    isthing = {c["id"]: bool(c["isthing"]) for c in categories}
    void_id = _labels().void_id

    for image_id, scene in enumerate(scenes, start=1):
        height, width = scene.semantic.shape
        stem = f"{image_id:06d}"
        write_png(images_dir / f"{stem}.png", scene.image)
        images.append({"id": image_id, "file_name": f"{stem}.png", "width": width, "height": height})
        for instance_id, class_id in enumerate(scene.instance_class_ids.tolist(), start=1):
            rle, area, bbox = _rle_stats(scene.instances == instance_id)
            instance_annotations.append(
                {
                    "id": len(instance_annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(class_id),
                    "segmentation": rle,
                    "area": area,
                    "bbox": bbox,
                    "iscrowd": 0,
                }
            )
        segments = []
        for segment_id in np.unique(scene.panoptic).tolist():
            class_id = segment_id // scene.label_divisor
            if class_id == void_id:
                continue
            if class_id not in isthing:
                raise ValueError(f"panoptic label {segment_id}: class {class_id} not in the shapes label set")
            _, area, bbox = _rle_stats(scene.panoptic == segment_id)
            segments.append(
                {"id": segment_id, "category_id": class_id, "iscrowd": 0, "bbox": bbox, "area": area}
            )
        write_png(panoptic_dir / f"{stem}.png", id_to_rgb(scene.panoptic))
        panoptic_annotations.append(
            {"image_id": image_id, "file_name": f"{stem}.png", "segments_info": segments}
        )

    info_block = {"description": "segmentation_ros synthetic Gazebo shapes", "version": "1.0", **(info or {})}
    things = [{k: c[k] for k in ("id", "name", "supercategory")} for c in categories if c["isthing"]]
    instances_json = annotations_dir / "instances.json"
    panoptic_json = annotations_dir / "panoptic.json"
    common = {"info": info_block, "licenses": [], "images": images}
    atomic_write_bytes(
        instances_json,
        json.dumps({**common, "annotations": instance_annotations, "categories": things}).encode(),
    )
    atomic_write_bytes(
        panoptic_json,
        json.dumps({**common, "annotations": panoptic_annotations, "categories": categories}).encode(),
    )
    return CocoDataset(root, images_dir, instances_json, panoptic_json, panoptic_dir, len(images))


def write_dataset(
    out_dir: str | os.PathLike[str],
    n: int,
    seed: int,
    width: int = 320,
    height: int = 240,
    *,
    split: str = "train",
    **kwargs: Any,
) -> CocoDataset:
    """Generate ``n`` frames (:func:`generate_scenes`; ``kwargs`` go to :func:`generate_scene`)
    and write them with :func:`to_coco`. The generator settings are recorded in ``info``."""
    scenes = generate_scenes(n, seed, width, height, split=split, **kwargs)
    info = {
        "generator": "segmentation_ros.tools.synthetic",
        "seed": int(seed),
        "split": split,
        "width": width,
        "height": height,
    }
    return to_coco(scenes, out_dir, info=info)


# --------------------------------------------------------------------------------------------
# Preview


def render_preview(scene: Scene) -> np.ndarray:
    """Side-by-side picture of a scene for eyeballing: image | semantic | instances.

    Returns:
        (H, 3 W, 3) uint8 RGB; semantic in the label set's colours, instances in distinct colours.
    """
    from segmentation_ros.engine.visualize import colorize_instances, colorize_labels

    semantic = colorize_labels(scene.semantic, get_label_set("shapes"))
    return np.concatenate([scene.image, semantic, colorize_instances(scene.instances)], axis=1)


def write_sequence_bag(
    path: str | os.PathLike[str],
    scenes: Iterable[Scene],
    *,
    namespace: str = "/camera",
    frame_id: str = "camera_optical_frame",
    distro: str = "humble",
    storage: str = "mcap",
    overwrite: bool = False,
) -> Path:
    """Record scenes as a rosbag2 camera: ``<namespace>/image_raw`` (rgb8) + ``<namespace>/camera_info``.

    Receive times equal the frames' stamps, so the bag plays as a live camera (``ros2 bag play``).
    Written atomically like every bag of this package.

    Args:
        path: the bag directory to create.
        scenes: frames with ``stamp_ns`` and ``intrinsics`` (e.g. :func:`generate_sequence`).
        namespace: camera namespace of the two topics.
        frame_id: header frame id.
        distro: message definitions to record ("humble", "jazzy", "kilted").
        storage: "mcap" or "sqlite3".
        overwrite: replace an existing bag (only once the new one is complete).

    Returns:
        the bag directory.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    from segmentation_ros.ros.bag import atomic_bag, bag_qos
    from segmentation_ros.ros.conversions import numpy_to_image
    from segmentation_ros.ros.messages import RosbagsFactory, make_header

    factory = RosbagsFactory(distro)
    store = factory.typestore
    dst = Path(path)
    if dst.exists() and not overwrite:
        raise FileExistsError(f"bag {dst} exists; remove it or pass overwrite=True")
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    image_topic, info_topic = f"{namespace}/image_raw", f"{namespace}/camera_info"
    with atomic_bag(dst, overwrite) as tmp:
        writer = Writer(tmp, version=Writer.VERSION_LATEST, storage_plugin=plugin)
        with writer:
            qos = [bag_qos(10, latched=False)]
            image_conn = writer.add_connection(image_topic, "sensor_msgs/msg/Image", typestore=store, offered_qos_profiles=qos)
            info_conn = writer.add_connection(
                info_topic, "sensor_msgs/msg/CameraInfo", typestore=store, offered_qos_profiles=qos
            )
            for scene in scenes:
                header = make_header(factory, scene.stamp_ns, frame_id)
                k = scene.intrinsics
                info = factory.new(
                    "sensor_msgs/msg/CameraInfo",
                    header=header,
                    height=k.height,
                    width=k.width,
                    distortion_model="plumb_bob",
                    d=[0.0] * 5,
                    k=list(k.k),
                    r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                    p=list(k.p),
                )
                image = numpy_to_image(scene.image, "rgb8", header, factory)
                writer.write(info_conn, scene.stamp_ns, factory.serialize(info, "sensor_msgs/msg/CameraInfo"))
                writer.write(image_conn, scene.stamp_ns, factory.serialize(image, "sensor_msgs/msg/Image"))
    return dst
