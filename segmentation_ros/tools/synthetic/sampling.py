"""Random synthetic worlds and frames: object placement (with tight same-class clusters),
appearance, sensor and intrinsics sampling, the seeded per-split random streams, independent
frames (:func:`generate_scene`, :func:`generate_scenes`), driving sequences
(:func:`generate_sequence`) and the ``synthetic[:WxH]`` data spec.
"""

from __future__ import annotations

import colorsys
import dataclasses
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from segmentation_ros.engine.config import MAX_ASPECT_RATIO, MIN_FRAME_SIDE
from segmentation_ros.tools.synthetic.raycast import render
from segmentation_ros.tools.synthetic.world import (
    CameraIntrinsics,
    CameraPose,
    Primitive,
    Scene,
    World,
    _Sensor,
)

SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2, "ood": 3}
"""Named splits and the seed offset each one mixes into every frame's random stream. ``train``,
``val`` and ``test`` draw appearance from the same ranges; ``ood`` (out of distribution) draws it
from ranges the others never use (see :data:`HELD_OUT_SPLITS`)."""

HELD_OUT_SPLITS = frozenset({"ood"})
"""Splits whose appearance (sky hues, ground texture families) the training split never shows."""

_KIND_SCENE = 0
_KIND_SEQUENCE = 1

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


def _make(kind, x, y, half_extents, yaw, color, specular, texture=None) -> Primitive:
    return Primitive(
        kind, (float(x), float(y), float(half_extents[2])), half_extents, float(yaw), color, specular, texture
    )


def _random_texture(rng: np.random.Generator) -> tuple[str, tuple[float, float, float], float] | None:
    """A surface pattern for an object, independent of its class (or none)."""
    if rng.random() >= 0.35:
        return None
    pattern = OBJECT_TEXTURES[int(rng.integers(len(OBJECT_TEXTURES)))]
    return pattern, _random_color(rng), float(rng.uniform(0.06, 0.4))


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
        return _make(
            kind, x, y, half_extents, yaw, color or _random_color(rng), specular, _random_texture(rng)
        )

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
                    candidate.texture,
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
                        candidate.texture,
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


SKY_FAMILIES = ("clear", "overcast", "dusk")
"""Skies of the training split (and ``val``, ``test``)."""
HELD_OUT_SKY_FAMILIES = ("tinted",)
"""Skies only the held-out appearance split shows: hues no other split uses (green to teal, purple
to pink)."""
GROUND_FAMILIES = ("grass", "asphalt", "concrete", "sand", "tiles")
"""Ground textures of the training split (and ``val``, ``test``)."""
HELD_OUT_GROUND_FAMILIES = ("checker", "patches")
"""Ground textures only the held-out split shows: a checker of two random colours, and large
blotches of two random colours (for example a green textured ground)."""
OBJECT_TEXTURES = ("stripes", "checker", "noise")


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _kelvin_rgb(kelvin: float) -> tuple[float, float, float]:
    """Approximate RGB of a black body at ``kelvin`` (1500-15000 K), scaled to a mean of 1."""
    t = kelvin / 100.0
    r = 1.0 if t <= 66 else 1.29294 * (t - 60) ** -0.1332
    g = 0.39008 * math.log(t) - 0.63184 if t <= 66 else 1.12989 * (t - 60) ** -0.0755
    b = 1.0 if t >= 66 else (0.0 if t <= 19 else 0.54321 * math.log(t - 10) - 1.19625)
    rgb = np.clip([r, g, b], 0.05, 1.0)
    return tuple(float(c) for c in rgb / rgb.mean())


def _sample_sky(rng: np.random.Generator, held_out: bool) -> dict[str, Any]:
    families, odds = (HELD_OUT_SKY_FAMILIES, None) if held_out else (SKY_FAMILIES, (0.5, 0.2, 0.3))
    family = families[int(rng.choice(len(families), p=odds))]
    side = None
    if family == "overcast":
        grey = rng.uniform(0.55, 0.9)
        zenith, horizon = (grey * 0.92, grey * 0.95, grey), (grey, grey, grey)
    elif family == "clear":
        zenith = _hsv(rng.uniform(0.55, 0.66), rng.uniform(0.35, 0.8), rng.uniform(0.6, 1.0))
        horizon = _hsv(rng.uniform(0.53, 0.62), rng.uniform(0.05, 0.3), rng.uniform(0.8, 1.0))
        if rng.random() < 0.3:
            side = _hsv(rng.uniform(0.05, 0.15), rng.uniform(0.1, 0.35), rng.uniform(0.85, 1.0))
    elif family == "dusk":  # an orange-red horizon under a darker blue-violet sky
        zenith = _hsv(rng.uniform(0.58, 0.72), rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7))
        horizon = _hsv(rng.uniform(0.0, 0.12), rng.uniform(0.3, 0.75), rng.uniform(0.7, 1.0))
        side = _hsv(rng.uniform(0.0, 0.1), rng.uniform(0.5, 0.9), rng.uniform(0.8, 1.0))
    else:  # tinted, held out
        # hues 0.20-0.47 and 0.74-0.98: the other skies' colours have hues 0-0.15 and 0.53-0.72
        hue = rng.uniform(0.23, 0.44) if rng.random() < 0.5 else rng.uniform(0.77, 0.95)
        zenith = _hsv(hue, rng.uniform(0.25, 0.7), rng.uniform(0.5, 0.95))
        horizon = _hsv(hue + rng.uniform(-0.03, 0.03), rng.uniform(0.08, 0.35), rng.uniform(0.75, 1.0))
        if rng.random() < 0.5:
            side = _hsv(hue + rng.uniform(-0.03, 0.03), rng.uniform(0.3, 0.7), rng.uniform(0.7, 1.0))
    return {
        "sky_family": family,
        "sky_zenith": zenith,
        "sky_horizon": horizon,
        "sky_side": side,
        "sky_side_azimuth": float(rng.uniform(0.0, 2.0 * math.pi)),
        "cloud_cover": 0.0 if family == "overcast" else float(rng.uniform(0.0, 0.6)),
    }


def _sample_ground(rng: np.random.Generator, held_out: bool) -> dict[str, Any]:
    families = HELD_OUT_GROUND_FAMILIES if held_out else GROUND_FAMILIES
    family = families[int(rng.integers(len(families)))]
    second = (0.0, 0.0, 0.0)
    pattern, scale, tiles = "noise", 1.0, (float(rng.uniform(0.5, 2.0)), 0.0)
    if family == "grass":
        color = _hsv(rng.uniform(0.17, 0.36), rng.uniform(0.3, 0.75), rng.uniform(0.25, 0.65))
    elif family == "asphalt":
        grey = rng.uniform(0.12, 0.35)
        color = (grey, grey, grey * rng.uniform(0.95, 1.08))
    elif family == "concrete":  # Gazebo's grey plane too
        grey = rng.uniform(0.35, 0.85)
        color = (grey, grey, grey * rng.uniform(0.95, 1.05))
    elif family == "sand":
        color = _hsv(rng.uniform(0.04, 0.15), rng.uniform(0.15, 0.6), rng.uniform(0.35, 0.85))
    elif family == "tiles":
        color = _random_color(rng) if rng.random() < 0.3 else _hsv(0.0, 0.0, rng.uniform(0.3, 0.8))
        tiles = (float(rng.uniform(0.3, 1.5)), float(rng.uniform(0.1, 0.3)))
    elif family == "checker":  # held out: two random colours
        color, second = _random_color(rng), _random_color(rng)
        pattern, scale = "checker", float(rng.uniform(0.4, 2.5))
    else:  # patches, held out: large blotches of two colours (one often green)
        color = _hsv(rng.uniform(0.2, 0.4), rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.7))
        second = _random_color(rng) if rng.random() < 0.5 else _hsv(rng.uniform(0.05, 0.45), 0.5, 0.5)
        pattern, scale = "patches", float(rng.uniform(2.0, 8.0))
    return {
        "ground_family": family,
        "ground_color": color,
        "ground_color2": second,
        "ground_pattern": pattern,
        "ground_pattern_scale": scale,
        "ground_tiles": tiles,
        "ground_octaves": (
            (float(rng.uniform(0.15, 0.4)), float(rng.uniform(0.05, 0.3))),
            (float(rng.uniform(0.8, 2.0)), float(rng.uniform(0.05, 0.25))),
            (float(rng.uniform(4.0, 12.0)), float(rng.uniform(0.0, 0.3))),
        ),
    }


def _sample_appearance(rng: np.random.Generator, held_out: bool = False) -> dict[str, Any]:
    """Light, ground and sky parameters of a :class:`World`; ``held_out``: the sky and ground
    families of the held-out appearance split (:data:`HELD_OUT_SPLITS`) instead of the others."""
    sky = _sample_sky(rng, held_out)
    ground = _sample_ground(rng, held_out)
    overcast = sky["sky_family"] == "overcast"
    elevation = rng.uniform(math.radians(10.0), math.radians(75.0))
    azimuth = rng.uniform(0.0, 2.0 * math.pi)
    sun = (
        math.cos(elevation) * math.cos(azimuth),
        math.cos(elevation) * math.sin(azimuth),
        math.sin(elevation),
    )
    sky_tint = np.asarray(sky["sky_zenith"]) + 0.3
    return {
        **sky,
        **ground,
        "sun_direction": sun,
        "sun_intensity": float(rng.uniform(0.25, 0.6) if overcast else rng.uniform(0.45, 1.0)),
        "ambient": float(rng.uniform(0.45, 0.8) if overcast else rng.uniform(0.25, 0.6)),
        "sun_color": _kelvin_rgb(float(rng.uniform(3000.0, 8000.0))),
        "ambient_color": tuple(float(c) for c in sky_tint / sky_tint.mean()),
        "visibility": float(rng.uniform(40.0, 400.0)),
        "noise_grid": rng.random((64, 64), dtype=np.float32),
        "noise_offset": (float(rng.uniform(0, 64)), float(rng.uniform(0, 64))),
    }


def _like_ground(
    rng: np.random.Generator, objects: list[Primitive], ground: tuple[float, ...]
) -> list[Primitive]:
    """Some objects recoloured close to the ground's colour (hard cases: objects that barely stand
    out)."""
    out = []
    for obj in objects:
        if rng.random() < 0.15:
            color = np.clip(np.asarray(ground) * rng.uniform(0.8, 1.25) + rng.normal(0.0, 0.04, 3), 0.0, 1.0)
            obj = dataclasses.replace(obj, color=tuple(float(c) for c in color), texture=None)
        out.append(obj)
    return out


def _sample_world(rng: np.random.Generator, objects: list[Primitive], split: str) -> World:
    """A :class:`World` of ``objects`` with the split's appearance; some objects coloured like its
    ground."""
    appearance = _sample_appearance(rng, held_out=split in HELD_OUT_SPLITS)
    objects = _like_ground(rng, objects, appearance["ground_color"])
    return World(objects=tuple(objects), **appearance)


def _sample_sensor(rng: np.random.Generator) -> _Sensor:
    return _Sensor(
        exposure=float(rng.uniform(0.7, 1.35)),
        vignetting=float(rng.uniform(0.0, 0.5)),
        blur_sigma=float(rng.uniform(0.3, 1.2)),
        noise_sigma=float(rng.uniform(0.003, 0.025)),
        gamma=float(rng.uniform(0.8, 1.25)),
        white_balance=tuple(float(g) for g in rng.uniform(0.87, 1.13, size=3)),
        jpeg_quality=int(rng.integers(30, 91)) if rng.random() < 0.4 else 0,
    )


def _sample_intrinsics(rng: np.random.Generator, width: int, height: int) -> CameraIntrinsics:
    hfov = rng.uniform(math.radians(50.0), math.radians(90.0))
    fx = (width / 2.0) / math.tan(hfov / 2.0)
    return CameraIntrinsics(width, height, fx, fx, (width - 1) / 2.0, (height - 1) / 2.0)


MIN_SPEC_SIZE = MIN_FRAME_SIDE  # what the engine segments (engine/pipeline.py: validate_frame)
"""Smallest width and height a ``synthetic:WxH`` data spec may ask for."""


def parse_synthetic_spec(spec: str, default: tuple[int, int]) -> tuple[int, int] | None:
    """The frame size a ``--data`` value asks for, if it names synthetic frames.

    ``"synthetic"`` -> ``default``; ``"synthetic:WxH"`` (``x`` or ``X``) -> ``(W, H)``; anything
    else (a dataset directory) -> None. One set of rules for every command that takes ``--data``.

    Raises:
        ValueError: ``synthetic:`` followed by anything but ``WIDTHxHEIGHT``, or a size the engine
            refuses to segment (a side under :data:`MIN_SPEC_SIZE` pixels, a long side over
            ``MAX_ASPECT_RATIO`` times the short one).
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
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ValueError(
            f"--data {spec!r}: the long side may be at most {MAX_ASPECT_RATIO} times the short one"
        )
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
    world = _sample_world(rng, objects, split)
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
    world = _sample_world(rng, objects, split)
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
