"""Rendering of the synthetic world: per-pixel ray casting through a pinhole camera (numpy,
vectorised per object inside its projected bounding rectangle) with a z-buffer, sun shadows on the
ground, Lambert/Blinn shading, the procedural ground texture and sky, haze, and the sensor
(vignetting, blur, noise).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from segmentation_ros.tools.synthetic.world import (
    CameraIntrinsics,
    CameraPose,
    Primitive,
    Scene,
    World,
    _labels,
    _Sensor,
)

_EPS = 1e-4  # [m] minimum ray distance, so shadow rays do not hit the surface they start on
_NEAR = 1e-3  # [m] near plane used when projecting bounding boxes

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
    shade = np.clip(shade, 0.2, 2.0)[:, None]
    first = np.asarray(world.ground_color, np.float32)[None, :]
    if world.ground_pattern == "noise":
        return shade * first
    second = np.asarray(world.ground_color2, np.float32)[None, :]
    scale = world.ground_pattern_scale
    if world.ground_pattern == "checker":
        mix = (np.floor(x / scale) + np.floor(y / scale)) % 2.0
        # finer than a pixel: the tiles average out to the mean colour
        mix = 0.5 + np.exp(-2.0 * footprint / scale) * (mix - 0.5)
    elif world.ground_pattern == "patches":
        n = _value_noise(world.noise_grid, x / scale + 31.7, y / scale - 12.9)
        mix = np.clip((n - 0.5) * 4.0 + 0.5, 0.0, 1.0)
    else:
        raise ValueError(f"unknown ground pattern {world.ground_pattern!r}")
    return shade * (first + mix[:, None] * (second - first))


def _object_albedo(obj: Primitive, color: np.ndarray, x, y, z, noise_grid: np.ndarray) -> np.ndarray:
    """(N, 3) float32 albedo of textured ``obj`` at its surface points (x, y, z) (N,): its texture's
    blend of its colour and the texture's second colour."""
    pattern, second, scale = obj.texture  # type: ignore[misc]  # called for textured objects only
    c, s = math.cos(obj.yaw), math.sin(obj.yaw)
    lx = c * (x - obj.center[0]) + s * (y - obj.center[1])
    ly = -s * (x - obj.center[0]) + c * (y - obj.center[1])
    if pattern == "stripes":
        mix = np.floor(z / scale) % 2.0
    elif pattern == "checker":
        mix = (np.floor(lx / scale) + np.floor(ly / scale) + np.floor(z / scale)) % 2.0
    elif pattern == "noise":
        n = _value_noise(noise_grid, (lx + z) / scale + 7.1, (ly - z) / scale + 3.3)
        mix = np.clip((n - 0.5) * 3.0 + 0.5, 0.0, 1.0)
    else:
        raise ValueError(f"unknown object texture {pattern!r}")
    return color + mix.astype(np.float32)[:, None] * (np.asarray(second, np.float32) - color)


def _sky_color(world: World, dx, dy, dz) -> np.ndarray:
    """(N, 3) float32 sky radiance along unit view directions (N,) each."""
    elevation = np.clip(dz, 0.0, 1.0)
    horizon = np.asarray(world.sky_horizon, np.float32)
    zenith = np.asarray(world.sky_zenith, np.float32)
    if world.sky_side is not None:  # low sky tinted towards one side (dusk glow, a coloured haze)
        toward = np.cos(np.arctan2(dy, dx) - world.sky_side_azimuth) * 0.5 + 0.5
        weight = (toward**2 * (1.0 - np.sqrt(elevation))).astype(np.float32)[:, None]
        horizon = horizon + weight * (np.asarray(world.sky_side, np.float32) - horizon)
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
    for index, obj in enumerate(world.objects):
        if obj.texture is None:
            continue
        where = np.nonzero(owner == index)
        if where[0].size:
            t = depth[where]
            albedo[where] = _object_albedo(
                obj,
                albedo_lut[index],
                ox + t * dx[where],
                oy + t * dy[where],
                oz + t * dz[where],
                world.noise_grid,
            )
    ground = owner == ground_code
    if ground.any():
        t = depth[ground]
        footprint = t * norm[ground] ** 2 / (intrinsics.fx * np.maximum(-dz[ground], 1e-6))
        albedo[ground] = _ground_albedo(world, ox + t * dx[ground], oy + t * dy[ground], footprint)
    cos_sun = np.maximum(nx * sun[0] + ny * sun[1] + nz * sun[2], 0.0) * lit
    ambient = world.ambient * np.asarray(world.ambient_color, np.float32)
    sun_light = world.sun_intensity * np.asarray(world.sun_color, np.float32)
    light = (0.6 + 0.4 * nz)[..., None] * ambient + cos_sun[..., None] * sun_light
    color = albedo * light
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
        color *= sensor.exposure * np.asarray(sensor.white_balance, np.float32)
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
    if sensor is not None and sensor.gamma != 1.0:
        color = np.clip(color, 0.0, None) ** np.float32(1.0 / sensor.gamma)
    image = np.clip(color * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    if sensor is not None and sensor.jpeg_quality:
        ok, data = cv2.imencode(
            ".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(sensor.jpeg_quality)]
        )
        image = np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]) if ok else image

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
