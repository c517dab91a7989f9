"""Depth in the node core: colour + aligned depth (+ camera_info) in, the 2D outputs plus
``points``, ``detections_3d`` and ``markers`` out, with the demo models on a synthetic frame whose
exact depth and instances are known; pairing by stamp, bad depth counted without costing 2D."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segmentation_ros.ros.conversions import numpy_to_image
from segmentation_ros.ros.depth_outputs import point_cloud_from_message
from segmentation_ros.ros.messages import RosbagsFactory, make_header, time_to_ns
from segmentation_ros.ros.node_core import OUTPUTS, Frame, SegmentationCore
from segmentation_ros.tools.synthetic.sampling import generate_scene

STAMP_NS = 1_700_000_000_000_000_000
DEPTH_OUTPUTS = {o.topic for o in OUTPUTS if o.depth}


@pytest.fixture(scope="module")
def factory() -> RosbagsFactory:
    return RosbagsFactory("jazzy")


@pytest.fixture(scope="module")
def scene():
    return generate_scene(3, 160, 120, split="test", index=0, num_objects=(4, 6))


def core_parameters() -> dict:
    """Panoptic with the demo models (shipped weights) and depth on."""
    return {
        "task": "panoptic",
        "semantic_model": "shapes_lraspp",
        "instance_model": "shapes_maskrcnn",
        "semantic_weights": "shapes_lraspp.pt",
        "instance_weights": "shapes_maskrcnn.pt",
        "device": "cpu",
        "depth": True,
        "point_stride": 2,
        "stuff_area_threshold": 64,
    }


@pytest.fixture(scope="module")
def core(factory) -> SegmentationCore:
    torch.set_num_threads(1)
    params = core_parameters()
    core = SegmentationCore(params, factory, clock_ns=lambda: STAMP_NS)
    core.configure()
    return core


def messages(factory, scene, stamp_ns: int, encoding: str = "32FC1"):
    header = make_header(factory, stamp_ns, "camera_optical")
    image = numpy_to_image(scene.image, "rgb8", header, factory)
    if encoding == "16UC1":
        mm = (
            np.where(np.isfinite(scene.depth), np.rint(scene.depth * 1000), 0)
            .clip(0, 65535)
            .astype(np.uint16)
        )
        depth = numpy_to_image(mm, "16UC1", header, factory)
    else:
        depth = numpy_to_image(
            np.where(np.isfinite(scene.depth), scene.depth, np.nan).astype(np.float32),
            "32FC1",
            header,
            factory,
        )
    k = scene.intrinsics
    info = factory.new(
        "sensor_msgs/msg/CameraInfo", header=header, height=k.height, width=k.width, k=list(k.k), p=list(k.p)
    )
    return image, depth, info


def run(core, factory, scene, stamp_ns, *, depth_stamp_ns=None, encoding="32FC1", info=True, subscribed=True):
    image, depth, camera_info = messages(factory, scene, stamp_ns, encoding)
    if depth_stamp_ns is not None:
        depth.header = make_header(factory, depth_stamp_ns, "camera_optical")  # its own header object
    if depth_stamp_ns != -1:
        core.receive_depth("", depth)
    outputs = core.process(
        [Frame("", image, camera_info if info else None)], None if subscribed else (lambda t: False)
    )
    return {o.topic: o.msg for o in outputs}


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_rgbd_frame_gives_3d_outputs_consistent_with_2d(core, factory, scene, encoding):
    out = run(core, factory, scene, STAMP_NS + 1000 * (encoding == "16UC1"), encoding=encoding)
    assert DEPTH_OUTPUTS <= set(out)
    det2d, det3d = out["detections"], out["detections_3d"]
    ids2d = {d.id for d in det2d.detections}
    assert det3d.detections and {d.id for d in det3d.detections} <= ids2d
    assert det3d.header.stamp == det2d.header.stamp and det3d.header.frame_id == "camera_optical"
    cloud = point_cloud_from_message(out["points"])
    near = scene.depth[::2, ::2]
    assert len(cloud) == int((np.isfinite(near) & (near <= 10.0)).sum())  # max_range: 10 m
    boxes = {}
    for d in det3d.detections:
        c, s = d.bbox.center.position, d.bbox.size
        boxes[int(d.id)] = (
            np.array([c.x - s.x / 2, c.y - s.y / 2, c.z - s.z / 2]),
            np.array([c.x + s.x / 2, c.y + s.y / 2, c.z + s.z / 2]),
        )
    for k, (lo, hi) in boxes.items():
        pts = np.stack([cloud["x"], cloud["y"], cloud["z"]], 1)[cloud["instance"] == k]
        assert len(pts) and np.all(pts >= lo - 1e-4) and np.all(pts <= hi + 1e-4)
    assert set(np.unique(cloud["instance"])) - {0} <= set(boxes)
    markers = out["markers"].markers
    assert markers[0].action == 3 and {m.id for m in markers[1:]} == set(boxes)
    # labels of the points are the panoptic classes at their pixels
    pan = np.frombuffer(bytes(out["panoptic/ids"].data), np.int32).reshape(scene.image.shape[:2])
    assert np.isin(np.unique(cloud["label"]), np.unique(pan // 1000)).all()


def test_3d_centroids_near_the_truth(core, factory, scene):
    """The demo detector's instances in 3D against the exact visible surface of the object they
    overlap most (median over the frame's objects)."""
    out = run(core, factory, scene, STAMP_NS + 5000)
    ids = np.frombuffer(bytes(out["instances/ids"].data), np.uint16).reshape(scene.image.shape[:2])
    k = scene.intrinsics
    errors = []
    for d in out["detections_3d"].detections:
        mask = ids == int(d.id)
        truth, count = np.unique(scene.instances[mask], return_counts=True)
        best = truth[np.argmax(np.where(truth > 0, count, -1))]
        v, u = np.nonzero((scene.instances == best) & np.isfinite(scene.depth))
        z = scene.depth[v, u]
        true = np.array([((u - k.cx) / k.fx * z).mean(), ((v - k.cy) / k.fy * z).mean(), z.mean()])
        p = d.results[0].pose.pose.position
        errors.append(np.linalg.norm(np.array([p.x, p.y, p.z]) - true))
    assert errors and np.median(errors) < 0.3


def test_lazy_3d_outputs_and_unmatched_frames(core, factory, scene):
    stats = core.depth.stats
    out = run(core, factory, scene, STAMP_NS + 10**9, subscribed=False)
    assert "detections_3d" in out and "points" not in out and "markers" not in out
    before = stats.unmatched
    out = run(core, factory, scene, STAMP_NS + 2 * 10**9, depth_stamp_ns=-1)  # no depth frame at all
    assert "detections" in out and not DEPTH_OUTPUTS & set(out)
    assert stats.unmatched == before + 1
    # a depth frame 5 ms off pairs within the 10 ms slop; 50 ms off does not
    out = run(core, factory, scene, STAMP_NS + 3 * 10**9, depth_stamp_ns=STAMP_NS + 3 * 10**9 + 5_000_000)
    assert "detections_3d" in out
    out = run(core, factory, scene, STAMP_NS + 4 * 10**9, depth_stamp_ns=STAMP_NS + 4 * 10**9 + 50_000_000)
    assert "detections_3d" not in out and stats.unmatched == before + 2


def test_bad_depth_is_counted_and_costs_no_2d_output(core, factory, scene):
    stats = core.depth.stats
    rejected = stats.rejected
    out = run(core, factory, scene, STAMP_NS + 20 * 10**9, info=False)  # no camera_info: no intrinsics
    assert "detections" in out and "detections_3d" not in out
    assert stats.rejected == rejected + 1 and "camera_info" in stats.last_error
    header = make_header(factory, STAMP_NS + 21 * 10**9, "camera_optical")
    small = numpy_to_image(np.ones((60, 80), np.float32), "32FC1", header, factory)
    core.receive_depth("", small)
    image, _, info = messages(factory, scene, STAMP_NS + 21 * 10**9)
    out = {o.topic: o.msg for o in core.process([Frame("", image, info)])}
    assert "detections" in out and "detections_3d" not in out
    assert stats.rejected == rejected + 2 and "not aligned" in stats.last_error
    diag = {kv.key: kv.value for kv in core.diagnostics().status[0].values}
    assert diag["depth_frames_rejected"] == str(stats.rejected) and diag["frames_rejected"] == "0"
    assert time_to_ns(out["detections"].header.stamp) == STAMP_NS + 21 * 10**9


def test_depth_off_changes_nothing(factory):
    core = SegmentationCore({"task": "instance", "device": "cpu"}, factory)
    assert "depth" not in core.input_topics()
    assert not DEPTH_OUTPUTS & {o.topic for o in core.outputs()}
    core = SegmentationCore({"task": "semantic", "device": "cpu", "depth": True}, factory)
    assert core.input_topics("front")["depth"] == "front/depth/image"
    assert {o.topic for o in core.outputs()} & DEPTH_OUTPUTS == {"points"}  # no instances: no 3D objects


def test_marker_lifetime_follows_the_frame_rate(core, factory, scene):
    """Markers live three frame periods of header time (0.1 to 2 s): they vanish soon after the
    node stops publishing, and never flicker between frames."""

    def lifetime_ns(stamp_ns: int) -> int:
        markers = run(core, factory, scene, stamp_ns)["markers"].markers
        boxes = [m for m in markers if m.ns == "boxes"]
        assert boxes
        return boxes[0].lifetime.sec * 10**9 + boxes[0].lifetime.nanosec

    start = STAMP_NS + 100 * 10**9
    lifetime_ns(start)
    assert lifetime_ns(start + 100_000_000) == 300_000_000  # 10 Hz: 0.3 s
    assert lifetime_ns(start + 110_000_000) == 100_000_000  # 100 Hz: 30 ms, raised to 0.1 s
    assert lifetime_ns(start + 5 * 10**9) == 2 * 10**9  # one frame in 4.9 s: at most 2 s


def test_a_registered_smaller_depth_image_is_resampled_when_allowed(factory, scene):
    """depth_rescale: a depth image of half the colour size (same field of view) is sampled to the
    colour size and gives the 3D outputs; without it the same frame's depth is rejected."""
    params = {**core_parameters(), "depth_rescale": True}
    rescaling = SegmentationCore(params, factory, clock_ns=lambda: STAMP_NS)
    rescaling.configure()
    try:
        stamp = STAMP_NS + 200 * 10**9
        image, depth, info = messages(factory, scene, stamp)
        half = np.where(np.isfinite(scene.depth[::2, ::2]), scene.depth[::2, ::2], np.nan).astype(np.float32)
        rescaling.receive_depth("", numpy_to_image(half, "32FC1", depth.header, factory))
        out = {o.topic: o.msg for o in rescaling.process([Frame("", image, info)])}
        assert out["detections_3d"].detections and rescaling.depth.stats.rejected == 0
        assert point_cloud_from_message(out["points"])["z"].max() <= 10.0
    finally:
        rescaling.cleanup()
