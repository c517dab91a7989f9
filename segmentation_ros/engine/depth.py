"""Depth fusion: segmented 3D from a depth image aligned to the colour image (no ROS).

Conventions, as ROS's ``depth_image_proc``:

- **Depth** is the distance along the optical axis (z), ``uint16`` in millimetres or ``float32`` in
  metres; ``0``, NaN and ±inf mean *no reading*. :func:`depth_in_meters` turns either into float32
  metres with NaN for no reading.
- **Aligned** means the depth image's pixel (u, v) sees what the colour image's pixel (u, v) sees
  (an ``aligned_depth_to_color`` topic): same size and the same intrinsics. A registered depth
  image of a smaller size with the same field of view is sampled to the colour size
  (:func:`align_depth`, nearest neighbour, never interpolated across edges).
- **Intrinsics** are the ``K`` of the colour ``camera_info``, valid for the *rectified* image.
  Distortion is not undone here: feed rectified images (``image_rect`` / ``image_rect_color`` with
  an aligned ``depth_registered`` / ``aligned_depth_to_color`` image) or images whose ``D`` is
  zero, as simulated cameras publish.
- **Frame**: points are in the camera's optical frame, x right, y down, z forward, metres.

**Per-object 3D** (:class:`Object3D`). A mask bleeds over the object's edge onto whatever lies
behind it, and those pixels' depths can be metres away (in practice a fifth of a mask's pixels or
more), so a mean or a min/max box over the mask is useless. Each instance's depths are cut to
``median ± max(outlier_mads · 1.4826 · MAD, min_depth_band_m)``: the median and the median
absolute deviation are unaffected by up to half of the pixels being outliers, 1.4826 · MAD
estimates the standard deviation of the object's own depths, and the band's floor keeps flat,
frontal objects (MAD near zero) from losing their own noisy pixels. The object's box is the
axis-aligned box (in the optical frame) of the inlier points, its centroid their mean; an
instance with fewer than ``min_points`` inliers has no 3D object.

**Points** (:class:`PointCloud`): every ``point_stride``-th pixel of every ``point_stride``-th row
with a reading within ``max_range_m``, with its colour, class id and instance id. A point of
instance k that is an outlier of k (or of an instance without a 3D object) gets instance 0 and
keeps its class id, so that *every point with instance k lies in object k's box*.

Everything runs on the engine's device with tensor operations (sorts and scatters, no Python
loop over pixels or instances); one transfer brings the results back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from segmentation_ros.engine.results import Segmentation

__all__ = [
    "DepthConfig",
    "PinholeIntrinsics",
    "Object3D",
    "PointCloud",
    "Depth3D",
    "depth_in_meters",
    "align_depth",
    "label_map",
    "fuse_depth",
]

MAD_TO_SIGMA = 1.4826  # sigma of a normal distribution = 1.4826 * its median absolute deviation
STATS_SAMPLES = 1024  # pixels an instance's median and MAD are estimated from, at most (about)


@dataclass(frozen=True)
class DepthConfig:
    """Depth fusion settings.

    Attributes:
        point_stride: keep every n-th pixel of every n-th row in the point cloud (1 = all: 307200
            points at 640x480; the default 4 gives 19200).
        max_range_m: readings farther than this are no reading (0 = no limit).
        min_points: inlier pixels an instance needs for a 3D object.
        outlier_mads: half-width of the inlier depth band in robust standard deviations.
        min_depth_band_m: the band's half-width at least (metres).
        edge_px: the median and MAD come from the instance's pixels at least this far inside its
            mask (its edge is where a mask bleeds), or from all of them when too few are.
    """

    point_stride: int = 4
    max_range_m: float = 10.0
    min_points: int = 10
    outlier_mads: float = 4.0
    min_depth_band_m: float = 0.05
    edge_px: int = 3

    def validate(self) -> DepthConfig:
        if not 1 <= self.point_stride <= 64:
            raise ValueError(f"point_stride must be in [1, 64], got {self.point_stride}")
        if not (math.isfinite(self.max_range_m) and self.max_range_m >= 0):
            raise ValueError(f"max_range_m must be >= 0 (0: no limit), got {self.max_range_m}")
        if self.min_points < 1:
            raise ValueError(f"min_points must be >= 1, got {self.min_points}")
        if not (math.isfinite(self.outlier_mads) and self.outlier_mads > 0):
            raise ValueError(f"outlier_mads must be > 0, got {self.outlier_mads}")
        if not (math.isfinite(self.min_depth_band_m) and self.min_depth_band_m >= 0):
            raise ValueError(f"min_depth_band_m must be >= 0, got {self.min_depth_band_m}")
        return self


@dataclass(frozen=True)
class PinholeIntrinsics:
    """The rectified pinhole camera of an image: focal lengths and principal point in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_k(cls, k: Sequence[float]) -> PinholeIntrinsics:
        """From a row-major 3x3 ``K`` (``sensor_msgs/CameraInfo.k``); a clear error when unusable."""
        values = [float(v) for v in k]
        if len(values) != 9:
            raise ValueError(f"camera matrix K must have 9 elements, got {len(values)}")
        fx, fy, cx, cy = values[0], values[4], values[2], values[5]
        if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
            raise ValueError(
                f"camera matrix K has no usable focal length: fx={fx}, fy={fy} (uncalibrated camera?)"
            )
        return cls(fx, fy, cx, cy)


@dataclass
class Object3D:
    """One instance in 3D, in the camera's optical frame (metres).

    Attributes:
        id: the instance id (= the 2D detection's id and the value in the id map).
        class_id, score: as the 2D instance.
        center: (3,) centre of the axis-aligned box of the inlier points.
        size: (3,) its extent along x, y, z.
        centroid: (3,) mean of the inlier points.
        num_points: inlier pixels.
    """

    id: int
    class_id: int
    score: float
    center: np.ndarray
    size: np.ndarray
    centroid: np.ndarray
    num_points: int


@dataclass
class PointCloud:
    """Labelled points (unorganised), host arrays of one length P.

    Attributes:
        xyz: (P, 3) float32 metres, optical frame.
        rgb: (P, 3) uint8 colour of the pixel.
        label: (P,) uint32 class id of the pixel (the task's label map: :func:`label_map`).
        instance: (P,) uint32 instance id, 0 = none (see the module docstring for outliers).
    """

    xyz: np.ndarray
    rgb: np.ndarray
    label: np.ndarray
    instance: np.ndarray

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


@dataclass
class Depth3D:
    """A frame's 3D results: objects always, points when asked for."""

    objects: list[Object3D]
    points: PointCloud | None = None


def depth_in_meters(depth: np.ndarray) -> np.ndarray:
    """``uint16`` millimetres or floating-point metres -> (H, W) float32 metres, NaN = no reading."""
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[:, :, 0]
    if depth.ndim != 2:
        raise ValueError(f"depth image must be (H, W), got shape {depth.shape}")
    if depth.dtype == np.uint16:
        meters = depth.astype(np.float32) * np.float32(0.001)
        meters[depth == 0] = np.nan
        return meters
    if depth.dtype in (np.float32, np.float64):
        meters = depth.astype(np.float32, copy=True)
        meters[~np.isfinite(meters) | (meters <= 0)] = np.nan
        return meters
    raise ValueError(f"depth image must be uint16 (mm) or float32 (m), got {depth.dtype}")


def align_depth(depth: np.ndarray, height: int, width: int, *, rescale: bool = False) -> np.ndarray:
    """``depth`` at the colour image's size.

    Same size: returned as is. Otherwise, with ``rescale`` (the depth is registered to the colour
    camera but smaller or larger, same field of view), sampled to (height, width) by nearest
    neighbour; without it, or with another aspect ratio, a ValueError.
    """
    dh, dw = depth.shape[:2]
    if (dh, dw) == (height, width):
        return depth
    if not rescale:
        raise ValueError(
            f"depth image {dw}x{dh} is not aligned to the {width}x{height} colour image "
            "(subscribe to an aligned depth topic, or allow rescaling of a registered depth image)"
        )
    if abs(dw * height - dh * width) > max(dw, dh):  # aspect ratios differ by more than a pixel
        raise ValueError(
            f"depth image {dw}x{dh} has another aspect ratio than the {width}x{height} colour image"
        )
    rows = np.minimum(((np.arange(height) + 0.5) * dh / height).astype(np.int64), dh - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * dw / width).astype(np.int64), dw - 1)
    return depth[rows[:, None], cols[None, :]]


def label_map(result: Segmentation, stride: int = 1) -> np.ndarray:
    """(H, W) class id per pixel in the task's label space: panoptic classes, else semantic
    labels, else the instances' classes (0 where no instance); every ``stride``-th pixel and row."""
    if result.panoptic is not None:
        return result.panoptic.panoptic[::stride, ::stride] // result.panoptic.label_divisor
    if result.semantic is not None:
        return result.semantic.labels[::stride, ::stride]
    inst = result.instances
    if inst is None:
        raise ValueError("a segmentation with neither semantic, instance nor panoptic results")
    lut = np.zeros(int(inst.instance_ids.max(initial=0)) + 1, dtype=np.int64)
    lut[inst.ids] = inst.class_ids
    return lut[inst.instance_ids[::stride, ::stride]]


def _segment_medians(keys: torch.Tensor, values: torch.Tensor, num_keys: int) -> torch.Tensor:
    """Lower median of ``values`` (>= 0, < 2**20) per key in 0..num_keys-1 (0 where a key has
    none): one sort of ``key * 2**20 + value`` in float64, exact for these ranges."""
    if not values.numel():
        return torch.zeros(num_keys, device=values.device)
    ordered = torch.sort(keys.double() * 2.0**20 + values.double()).values
    counts = torch.bincount(keys, minlength=num_keys)
    starts = torch.cumsum(counts, 0) - counts
    index = (starts + (counts - 1).clamp(min=0) // 2).clamp(max=values.numel() - 1)
    medians = (ordered[index] - torch.arange(num_keys, device=values.device).double() * 2.0**20).float()
    return torch.where(counts > 0, medians, torch.zeros_like(medians))


def _interior(id_map: np.ndarray, radius: int) -> np.ndarray:
    """(H, W) bool: pixels whose (2 radius + 1)² neighbourhood holds their own id only (an erosion of
    every id region at once: the window's minimum and maximum both equal the pixel's id). OpenCV on
    the host id map, where the engine's results are: about a millisecond at 640x480."""
    ids = np.ascontiguousarray(id_map, dtype=np.uint16)
    if radius <= 0:
        return np.ones(ids.shape, bool)
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    # pixels beyond the border count as "another id" (0 or 65535), so the image border is an edge
    low = cv2.erode(ids, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    high = cv2.dilate(ids, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=65535)
    return (low == ids) & (high == ids)


def _pixel_rays(
    height: int, width: int, k: PinholeIntrinsics, device: torch.device
) -> tuple[torch.Tensor, ...]:
    u = (torch.arange(width, device=device, dtype=torch.float32) - k.cx) / k.fx
    v = (torch.arange(height, device=device, dtype=torch.float32) - k.cy) / k.fy
    return u, v


def fuse_depth(
    result: Segmentation,
    depth_m: np.ndarray | torch.Tensor,
    intrinsics: PinholeIntrinsics,
    config: DepthConfig | None = None,
    *,
    image: np.ndarray | None = None,
    points: bool = False,
    device: torch.device | str = "cpu",
) -> Depth3D:
    """3D objects (and with ``points``, the labelled point cloud) of one segmented frame.

    Args:
        result: the frame's segmentation (after tracking, so ids are the published ones).
        depth_m: (H, W) float32 metres, NaN = no reading (:func:`depth_in_meters`,
            :func:`align_depth`), at the segmentation's resolution.
        intrinsics: the colour image's rectified pinhole camera.
        image: (H, W, 3) uint8 RGB for the points' colours (black without it).
        points: also build the point cloud.
        device: where to compute (the engine's device).
    """
    config = (config or DepthConfig()).validate()
    device = torch.device(device)
    height, width = result.height, result.width
    depth = torch.as_tensor(depth_m, device=device, dtype=torch.float32)
    if tuple(depth.shape) != (height, width):
        raise ValueError(f"depth image {tuple(depth.shape)} does not match the {width}x{height} segmentation")
    u, v = _pixel_rays(height, width, intrinsics, device)

    inst = result.instances
    objects: list[Object3D] = []
    # per instance slot s = 1..N (slot 0: no instance): the inlier band [lo, hi] and whether it has an object
    slot_of_id = None
    keep_slot = torch.zeros(1, dtype=torch.bool, device=device)
    lo = hi = None
    if inst is not None and len(inst):
        num = len(inst) + 1
        lut = np.zeros(int(inst.ids.max()) + 1, np.int64)  # the id map holds exactly these ids
        lut[inst.ids] = np.arange(1, num)
        slot_of_id = torch.as_tensor(lut, device=device)
        # only the instance pixels, found on the host where the id map is (one upload of their indices)
        id_map = inst.instance_ids
        flat_np = np.flatnonzero(id_map)
        core_np = _interior(id_map, config.edge_px).ravel()[flat_np]
        flat = torch.as_tensor(flat_np, device=device)
        rows_np, cols_np = np.divmod(flat_np, width)
        rows, cols = torch.as_tensor(rows_np, device=device), torch.as_tensor(cols_np, device=device)
        s = torch.as_tensor(lut[id_map.ravel()[flat_np]], device=device)
        core = torch.as_tensor(core_np, device=device)
        z = depth.flatten().index_select(0, flat)
        ok = _readable(z, config.max_range_m) & (s > 0)
        # Median and MAD from the mask's interior where it has enough pixels (its edge is where it
        # bleeds), from an even sample of about STATS_SAMPLES pixels per instance at most: every
        # step-th pixel in raster order (a grid, shifted from row to row).
        core &= ok
        core_counts = torch.bincount(s, weights=core.float(), minlength=num)
        core |= ok & (_at(core_counts, s) < config.min_points)
        usable = torch.bincount(s, weights=core.float(), minlength=num).long()
        step = torch.clamp((usable + STATS_SAMPLES - 1) // STATS_SAMPLES, min=1)
        drawn = core & (flat % _at(step, s) == 0)
        drawn_at = drawn.nonzero().squeeze(1)
        sample_slots, sample_z = _at(s, drawn_at), _at(z, drawn_at)
        median = _segment_medians(sample_slots, sample_z, num)
        mad = _segment_medians(sample_slots, (sample_z - _at(median, sample_slots)).abs(), num)
        band = torch.clamp(config.outlier_mads * MAD_TO_SIGMA * mad, min=config.min_depth_band_m)
        lo, hi = median - band, median + band
        kept = (ok & (z >= _at(lo, s)) & (z <= _at(hi, s))).nonzero().squeeze(1)
        s, z, rows, cols = _at(s, kept), _at(z, kept), _at(rows, kept), _at(cols, kept)
        xyz = (_at(u, cols) * z, _at(v, rows) * z, z)
        counts = torch.bincount(s, minlength=num)
        inf = torch.full((num,), torch.inf, device=device)
        box_min = torch.stack([inf.scatter_reduce(0, s, c, "amin") for c in xyz], 1)
        box_max = torch.stack([(-inf).scatter_reduce(0, s, c, "amax") for c in xyz], 1)
        sums = torch.stack([torch.bincount(s, weights=c.double(), minlength=num) for c in xyz], 1)
        keep_slot = counts >= config.min_points
        keep_slot[0] = False
        # one device -> host transfer for every object's numbers
        stats = (
            torch.cat(
                [
                    box_min.double(),
                    box_max.double(),
                    sums,
                    counts[:, None].double(),
                    keep_slot[:, None].double(),
                ],
                1,
            )
            .cpu()
            .numpy()
        )
        for slot in np.flatnonzero(stats[:, 10]):
            i = slot - 1
            b0, b1, total, n = stats[slot, :3], stats[slot, 3:6], stats[slot, 6:9], stats[slot, 9]
            objects.append(
                Object3D(
                    id=int(inst.ids[i]),
                    class_id=int(inst.class_ids[i]),
                    score=float(inst.scores[i]),
                    center=((b0 + b1) / 2).astype(np.float32),
                    size=(b1 - b0).astype(np.float32),
                    centroid=(total / n).astype(np.float32),
                    num_points=int(n),
                )
            )
    cloud = None
    if points:
        cloud = _points(result, depth, config, u, v, image, slot_of_id, keep_slot, lo, hi)
    return Depth3D(objects, cloud)


def _at(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values[index]`` for a 1-D index: ``index_select``, several times faster than advanced
    indexing on the CPU."""
    return values.index_select(0, index)


def _readable(z: torch.Tensor, max_range_m: float) -> torch.Tensor:
    """Depths that are a reading: finite, positive, within ``max_range_m`` (0: no limit)."""
    ok = torch.isfinite(z) & (z > 0)
    return ok & (z <= max_range_m) if max_range_m > 0 else ok


def _points(
    result: Segmentation,
    depth: torch.Tensor,
    config: DepthConfig,
    u: torch.Tensor,
    v: torch.Tensor,
    image: np.ndarray | None,
    slot_of_id: torch.Tensor | None,
    keep_slot: torch.Tensor,
    lo: torch.Tensor | None,
    hi: torch.Tensor | None,
) -> PointCloud:
    """The strided grid's readings as labelled points (only the grid is read: 1/stride² of the frame)."""
    device, stride = depth.device, config.point_stride
    grid = depth[::stride, ::stride].contiguous()
    grid_width = grid.shape[1]
    at = _readable(grid.flatten(), config.max_range_m).nonzero().squeeze(1)  # flat grid index
    r, c = at // grid_width, at % grid_width
    z = _at(grid.flatten(), at)
    rows, cols = r * stride, c * stride
    xyz = torch.stack([_at(u, cols) * z, _at(v, rows) * z, z], 1)

    def on_grid(strided: np.ndarray) -> torch.Tensor:  # a host map on the grid -> its values at the points
        return _at(torch.as_tensor(np.ascontiguousarray(strided).astype(np.int64).ravel(), device=device), at)

    labels = on_grid(label_map(result, stride))
    instance = torch.zeros_like(labels)
    inst = result.instances
    if inst is not None and slot_of_id is not None and lo is not None and hi is not None:
        ids = on_grid(inst.instance_ids[::stride, ::stride])
        slots = _at(slot_of_id, ids)
        inside = _at(keep_slot, slots) & (z >= _at(lo, slots)) & (z <= _at(hi, slots))
        instance = torch.where(inside, ids, instance)
    # one device -> host transfer (float64 holds every coordinate, class and id exactly)
    packed = (
        torch.cat([xyz.double(), torch.stack([rows, cols, labels, instance], 1).double()], 1).cpu().numpy()
    )
    xyz_h, (r_h, c_h, lab_h, ins_h) = packed[:, :3], packed[:, 3:].astype(np.int64).T
    rgb = image[r_h, c_h] if image is not None else np.zeros((len(r_h), 3), np.uint8)
    return PointCloud(
        xyz=np.ascontiguousarray(xyz_h, dtype=np.float32),
        rgb=np.ascontiguousarray(rgb, dtype=np.uint8),
        label=lab_h.astype(np.uint32),
        instance=ins_h.astype(np.uint32),
    )
