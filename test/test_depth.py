"""Depth fusion (engine/depth.py) against the synthetic generator's exact depth, intrinsics and
ground truth: back-projection, per-object 3D boxes and centroids under mask bleed, labelled points."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from segmentation_ros.engine.depth import (
    DepthConfig,
    PinholeIntrinsics,
    align_depth,
    depth_in_meters,
    fuse_depth,
)
from segmentation_ros.tools.synthetic import true_segmentation, visible_points
from segmentation_ros.tools.synthetic.sampling import generate_scene
from segmentation_ros.tools.synthetic.world import Scene

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@functools.cache
def scenes(width: int, height: int, count: int = 8) -> tuple[Scene, ...]:
    return tuple(generate_scene(7, width, height, split="test", index=i) for i in range(count))


def object_errors(
    width: int, height: int, bleed_px: int, config: DepthConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Per object with >= 50 visible pixels: centroid error and worst box error (centre or size
    component) against the exact visible points [m]."""
    centroid, box = [], []
    for scene in scenes(width, height):
        k = PinholeIntrinsics.from_k(scene.intrinsics.k)
        out = fuse_depth(true_segmentation(scene, bleed_px), depth_in_meters(scene.depth), k, config)
        for obj in out.objects:
            truth = visible_points(scene, obj.id)
            if len(truth) < 50:
                continue
            lo, hi = truth.min(0), truth.max(0)
            centroid.append(np.linalg.norm(obj.centroid - truth.mean(0)))
            box.append(np.abs(np.concatenate([obj.center - (lo + hi) / 2, obj.size - (hi - lo)])).max())
    return np.array(centroid), np.array(box)


@pytest.mark.parametrize("size", [(320, 240), (640, 480)])
def test_objects_against_ground_truth_with_bleeding_masks(size):
    """Errors measured (8 test frames, ~40 objects each size): with masks bleeding 2 px (320x240)
    or 4 px (640x480) onto the background, centroids within ~3 cm and boxes within ~15-25 cm
    (median); the same masks without outlier rejection put boxes metres off."""
    bleed = 2 if size[0] == 320 else 4
    centroid, box = object_errors(*size, bleed, DepthConfig(max_range_m=0))
    assert len(centroid) >= 25
    assert np.median(centroid) < 0.05 and np.percentile(centroid, 90) < 0.25
    assert np.median(box) < 0.35 and np.percentile(box, 90) < 1.5
    # the same masks with no rejection (a band wider than any scene) and no edge erosion
    naive = DepthConfig(max_range_m=0, outlier_mads=1e6, edge_px=0)
    naive_centroid, naive_box = object_errors(*size, bleed, naive)
    assert np.percentile(naive_box, 90) > 3 * np.percentile(box, 90)
    assert np.median(naive_centroid) > 2 * np.median(centroid)


def test_exact_masks_give_exact_objects_when_nothing_is_rejected():
    scene = scenes(320, 240)[0]
    config = DepthConfig(max_range_m=0, outlier_mads=1e6, edge_px=0, min_points=1)
    out = fuse_depth(
        true_segmentation(scene),
        depth_in_meters(scene.depth),
        PinholeIntrinsics.from_k(scene.intrinsics.k),
        config,
    )
    seen = {int(i) for i in np.unique(scene.instances[np.isfinite(scene.depth)]) if i}
    assert {o.id for o in out.objects} == seen
    for obj in out.objects:
        truth = visible_points(scene, obj.id)
        np.testing.assert_allclose(obj.centroid, truth.mean(0), atol=1e-4)
        np.testing.assert_allclose(obj.size, np.ptp(truth, 0), atol=1e-4)
        assert obj.num_points == len(truth)
        assert obj.class_id == scene.instance_class_ids[obj.id - 1]


@pytest.mark.parametrize("device", DEVICES)
def test_points_reproject_to_their_pixels_with_true_labels(device):
    scene = scenes(320, 240)[1]
    k = PinholeIntrinsics.from_k(scene.intrinsics.k)
    config = DepthConfig(point_stride=1, max_range_m=0, outlier_mads=1e6, edge_px=0, min_points=1)
    cloud = fuse_depth(
        true_segmentation(scene),
        depth_in_meters(scene.depth),
        k,
        config,
        image=scene.image,
        points=True,
        device=device,
    ).points
    assert cloud is not None
    finite = np.isfinite(scene.depth)
    assert len(cloud) == int(finite.sum())  # sky (inf) dropped, every reading kept at stride 1
    x, y, z = cloud.xyz.T.astype(np.float64)
    u = np.rint(k.fx * x / z + k.cx).astype(int)
    v = np.rint(k.fy * y / z + k.cy).astype(int)
    np.testing.assert_allclose(k.fx * x / z + k.cx, u, atol=1e-3)
    np.testing.assert_allclose(z, scene.depth[v, u], rtol=1e-6)
    np.testing.assert_array_equal(cloud.label, scene.semantic[v, u])
    np.testing.assert_array_equal(cloud.instance, scene.instances[v, u])
    np.testing.assert_array_equal(cloud.rgb, scene.image[v, u])
    assert (
        cloud.xyz.dtype == np.float32 and cloud.label.dtype == np.uint32 and cloud.instance.dtype == np.uint32
    )


@pytest.mark.parametrize("device", DEVICES)
def test_every_point_of_instance_k_lies_in_box_k(device):
    scene = scenes(320, 240)[2]
    seg = true_segmentation(scene, bleed_px=4)
    depth = depth_in_meters(scene.depth)
    out = fuse_depth(
        seg,
        depth,
        PinholeIntrinsics.from_k(scene.intrinsics.k),
        DepthConfig(point_stride=1),
        points=True,
        device=device,
    )
    boxes = {o.id: (o.center - o.size / 2, o.center + o.size / 2) for o in out.objects}
    cloud = out.points
    assert set(np.unique(cloud.instance)) - {0} == set(boxes)
    for k, (lo, hi) in boxes.items():
        pts = cloud.xyz[cloud.instance == k]
        assert len(pts) > 0
        assert np.all(pts >= lo - 1e-5) and np.all(pts <= hi + 1e-5)
    # bled pixels that were rejected are still points, without an instance: none are lost
    readable = np.isfinite(depth) & (depth <= 10.0)
    assert len(cloud) == int(readable.sum())
    assert int((cloud.instance > 0).sum()) < int((readable & (seg.instances.instance_ids > 0)).sum())


def test_stride_range_and_min_points():
    scene = scenes(320, 240)[3]
    k = PinholeIntrinsics.from_k(scene.intrinsics.k)
    depth = depth_in_meters(scene.depth)
    out = fuse_depth(true_segmentation(scene), depth, k, DepthConfig(point_stride=4, max_range_m=8.0), points=True)
    assert len(out.points) == int((np.isfinite(depth[::4, ::4]) & (depth[::4, ::4] <= 8.0)).sum())
    assert out.points.xyz[:, 2].max() <= 8.0
    # an instance with fewer valid readings than min_points has no object and no points of its own
    sizes = np.bincount(
        scene.instances[np.isfinite(depth) & (depth <= 8.0)], minlength=scene.num_instances + 1
    )
    limit = int(np.median(sizes[1:][sizes[1:] > 0]))
    few = DepthConfig(point_stride=1, max_range_m=8.0, min_points=limit, outlier_mads=1e6, edge_px=0)
    out = fuse_depth(true_segmentation(scene), depth, k, few, points=True)
    kept = {o.id for o in out.objects}
    assert kept == {i for i in range(1, len(sizes)) if sizes[i] >= limit}
    assert set(np.unique(out.points.instance)) - {0} == kept


def test_no_instances_and_no_depth_readings():
    scene = scenes(320, 240)[0]
    k = PinholeIntrinsics.from_k(scene.intrinsics.k)
    empty = np.full(scene.depth.shape, np.nan, np.float32)
    out = fuse_depth(true_segmentation(scene), empty, k, points=True)
    assert out.objects == [] and len(out.points) == 0
    seg = true_segmentation(scene)
    seg.instances = None
    out = fuse_depth(seg, depth_in_meters(scene.depth), k, points=True)
    assert out.objects == [] and not out.points.instance.any()


def test_depth_encodings():
    mm = np.array([[0, 1000], [65535, 250]], np.uint16)
    np.testing.assert_array_equal(depth_in_meters(mm), np.array([[np.nan, 1.0], [65.535, 0.25]], np.float32))
    m = np.array([[0.0, np.nan], [np.inf, -1.0], [2.5, 1e-3]], np.float32)
    out = depth_in_meters(m)
    assert np.isnan(out[:2]).all() and np.isnan(out[1]).all()
    np.testing.assert_array_equal(out[2], m[2])
    with pytest.raises(ValueError, match="uint16 \\(mm\\) or float32"):
        depth_in_meters(np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError, match="\\(H, W\\)"):
        depth_in_meters(np.zeros((2, 2, 3), np.uint16))


def test_align_depth():
    depth = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert align_depth(depth, 3, 4) is depth
    with pytest.raises(ValueError, match="not aligned"):
        align_depth(depth, 6, 8)
    big = align_depth(depth, 6, 8, rescale=True)
    np.testing.assert_array_equal(big, np.repeat(np.repeat(depth, 2, 0), 2, 1))
    with pytest.raises(ValueError, match="aspect ratio"):
        align_depth(depth, 6, 6, rescale=True)


def test_intrinsics_and_config_errors():
    assert PinholeIntrinsics.from_k([500, 0, 320, 0, 510, 240, 0, 0, 1]) == PinholeIntrinsics(
        500, 510, 320, 240
    )
    with pytest.raises(ValueError, match="uncalibrated"):
        PinholeIntrinsics.from_k([0.0] * 9)
    with pytest.raises(ValueError, match="9 elements"):
        PinholeIntrinsics.from_k([1.0] * 4)
    with pytest.raises(ValueError, match="point_stride"):
        DepthConfig(point_stride=0).validate()
    with pytest.raises(ValueError, match="max_range_m"):
        DepthConfig(max_range_m=float("nan")).validate()
    scene = scenes(320, 240)[0]
    with pytest.raises(ValueError, match="does not match"):
        fuse_depth(true_segmentation(scene), np.zeros((10, 10), np.float32), PinholeIntrinsics(1, 1, 0, 0))
