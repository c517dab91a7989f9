"""Tests of the synthetic Gazebo-style frames (segmentation_ros.tools.synthetic): geometry, labels, COCO."""

from __future__ import annotations

import colorsys
import dataclasses
import json
import math

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from test_bag import assert_rosbag2_reads

from segmentation_ros.engine.labels import get_label_set
from segmentation_ros.engine.panoptic import rgb_to_id
from segmentation_ros.engine.visualize import colorize_instances, colorize_labels
from segmentation_ros.ros.conversions import image_to_numpy
from segmentation_ros.ros.messages import SUPPORTED_DISTROS
from segmentation_ros.tools.synthetic import (
    HELD_OUT_SPLITS,
    CameraPose,
    Primitive,
    generate_scene,
    generate_scenes,
    generate_sequence,
    parse_synthetic_spec,
    render,
    render_preview,
    shapes_categories,
    write_dataset,
    write_sequence_bag,
)
from segmentation_ros.tools.synthetic.sampling import (
    GROUND_FAMILIES,
    HELD_OUT_GROUND_FAMILIES,
    HELD_OUT_SKY_FAMILIES,
    SKY_FAMILIES,
)
from segmentation_ros.tools.synthetic.world import _Sensor

W, H = 96, 72
GROUND, SKY, THINGS = 1, 2, (3, 4, 5)


def _same_class_touching_pairs(scene) -> set[tuple[int, int]]:
    """Pairs of different instances of one class that are 4-neighbours somewhere."""
    ids = scene.instances.astype(np.int64)
    pairs = set()
    for a, b in ((ids[:, 1:], ids[:, :-1]), (ids[1:, :], ids[:-1, :])):
        touching = (a > 0) & (b > 0) & (a != b)
        for i, j in zip(a[touching].tolist(), b[touching].tolist(), strict=True):
            if scene.instance_class_ids[i - 1] == scene.instance_class_ids[j - 1]:
                pairs.add((min(i, j), max(i, j)))
    return pairs


@pytest.fixture(scope="module")
def scenes():
    return list(generate_scenes(8, seed=11, width=W, height=H))


def test_deterministic_and_splits_differ():
    a = generate_scene(5, W, H, index=3)
    b = generate_scene(5, W, H, index=3)
    for name in ("image", "semantic", "instances", "panoptic", "depth", "instance_class_ids"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.intrinsics == b.intrinsics and a.pose == b.pose
    other_index = generate_scene(5, W, H, index=4)
    other_split = generate_scene(5, W, H, index=3, split="val")
    other_seed = generate_scene(6, W, H, index=3)
    for other in (other_index, other_split, other_seed):
        assert not np.array_equal(a.image, other.image)
        assert a.pose != other.pose


def test_generator_argument_and_errors():
    scene = generate_scene(np.random.default_rng(0), W, H)
    assert scene.image.shape == (H, W, 3)
    with pytest.raises(ValueError, match="split"):
        generate_scene(0, W, H, split="holdout")
    with pytest.raises(ValueError, match="seed"):
        generate_scene(-1, W, H)
    with pytest.raises(ValueError, match="size"):
        generate_scene(0, 2, H)


def test_synthetic_data_spec():
    default = (224, 168)
    assert parse_synthetic_spec("synthetic", default) == default
    assert parse_synthetic_spec("synthetic:160x120", default) == (160, 120)
    assert parse_synthetic_spec("synthetic:160X120", default) == (160, 120)
    assert parse_synthetic_spec("synthetic:16x16", default) == (16, 16)
    for other in ("data/coco", "synthetic_set", "syntheticx", ""):
        assert parse_synthetic_spec(other, default) is None, other  # a directory, not synthetic
    for bad in (
        "synthetic:",
        "synthetic:big",
        "synthetic:160",
        "synthetic:-20x20",
        "synthetic: 32x32",
        "synthetic:3x2x1",
    ):
        with pytest.raises(ValueError, match="WIDTHxHEIGHT, e.g. synthetic:224x168"):
            parse_synthetic_spec(bad, default)
    for small in ("synthetic:15x16", "synthetic:16x15", "synthetic:0x0"):
        with pytest.raises(ValueError, match="at least 16x16"):
            parse_synthetic_spec(small, default)
    assert parse_synthetic_spec("synthetic:128x16", default) == (128, 16)  # 8:1, the engine's limit
    for thin in ("synthetic:400x16", "synthetic:16x129"):  # frames the engine would refuse, every one
        with pytest.raises(ValueError, match="at most 8 times"):
            parse_synthetic_spec(thin, default)


def test_shapes_and_dtypes(scenes):
    for scene in scenes:
        assert scene.image.shape == (H, W, 3) and scene.image.dtype == np.uint8
        assert scene.semantic.shape == (H, W) and scene.semantic.dtype == np.uint8
        assert scene.instances.shape == (H, W) and scene.instances.dtype == np.uint16
        assert scene.panoptic.shape == (H, W) and scene.panoptic.dtype == np.int32
        assert scene.depth.shape == (H, W) and scene.depth.dtype == np.float32
        assert scene.instance_class_ids.dtype == np.uint8
        assert scene.instance_object_ids.shape == scene.instance_class_ids.shape
        assert (scene.intrinsics.width, scene.intrinsics.height) == (W, H)
        assert len(scene.intrinsics.k) == 9 and len(scene.intrinsics.p) == 12


def test_instances_consistent_with_semantic_and_panoptic(scenes):
    for scene in scenes:
        n = scene.num_instances
        assert n > 0
        present = np.unique(scene.instances[scene.instances > 0])
        np.testing.assert_array_equal(present, np.arange(1, n + 1))
        assert set(scene.instance_class_ids.tolist()) <= set(THINGS)
        inside = scene.instances > 0
        expected = scene.instance_class_ids[scene.instances[inside].astype(np.int64) - 1]
        np.testing.assert_array_equal(scene.semantic[inside], expected)
        # thing classes only inside instances; outside: ground, sky or void
        assert set(np.unique(scene.semantic[~inside]).tolist()) <= {0, GROUND, SKY}
        np.testing.assert_array_equal(
            scene.panoptic, scene.semantic.astype(np.int32) * scene.label_divisor + scene.instances
        )
        # tiny or hidden objects are not instances
        areas = np.bincount(scene.instances.ravel(), minlength=n + 1)[1:]
        assert areas.min() >= 8


def test_sky_above_horizon_ground_below(scenes):
    for scene in scenes:
        rows = np.arange(H)[:, None].repeat(W, axis=1)
        horizon = scene.horizon_row
        assert 0 <= horizon < H  # the generator keeps the horizon in view
        assert (rows[scene.semantic == SKY] <= horizon + 1e-3).all()
        assert (rows[scene.semantic == GROUND] >= horizon - 1e-3).all()
        assert (scene.semantic == SKY).any() and (scene.semantic == GROUND).any()
        assert np.isinf(scene.depth[scene.semantic == SKY]).all()


def test_ground_depth_matches_camera_model(scenes):
    """Back-projecting ground pixels with the exposed intrinsics and pose lands on z = 0."""
    for scene in scenes[:3]:
        k, pose = scene.intrinsics, scene.pose
        v, u = np.nonzero(scene.semantic == GROUND)
        depth = scene.depth[v, u].astype(np.float64)
        near = depth < 30.0
        v, u, depth = v[near], u[near], depth[near]
        optical = np.stack([(u - k.cx) / k.fx * depth, (v - k.cy) / k.fy * depth, depth])
        world = pose.rotation() @ optical + np.array([[pose.x], [pose.y], [pose.z]])
        assert (np.abs(world[2]) <= 1e-3 * (1.0 + depth)).all()


def test_perspective_far_objects_smaller():
    """A sphere seen twice as far away covers about a quarter of the pixels."""
    import dataclasses

    from segmentation_ros.tools.synthetic import CameraIntrinsics, Primitive, render

    base = generate_scene(0, W, H).world
    intrinsics = CameraIntrinsics(160, 120, 100.0, 100.0, 79.5, 59.5)
    pose = CameraPose(0.0, 0.0, 0.5, 0.0, 0.0)
    areas = []
    for distance in (4.0, 8.0):
        sphere = Primitive("sphere", (distance, 0.0, 0.5), (0.5, 0.5, 0.5), 0.0, (0.5, 0.5, 0.5))
        scene = render(dataclasses.replace(base, objects=(sphere,)), intrinsics, pose)
        areas.append(int((scene.instances == 1).sum()))
    assert areas[0] > 0 and 3.0 < areas[0] / areas[1] < 5.0


def test_same_class_occlusion_is_common():
    scenes = list(generate_scenes(6, seed=3, width=160, height=120))
    with_touching = [len(_same_class_touching_pairs(scene)) > 0 for scene in scenes]
    assert sum(with_touching) >= 3, with_touching


def test_colour_does_not_reveal_class():
    hues = {c: [] for c in THINGS}
    for scene in generate_scenes(20, seed=7, width=64, height=48):
        for instance_id, class_id in enumerate(scene.instance_class_ids.tolist(), start=1):
            mean = scene.image[scene.instances == instance_id].mean(axis=0) / 255.0
            hue, saturation, _ = colorsys.rgb_to_hsv(*mean)
            if saturation > 0.25:
                hues[class_id].append(hue)
    for class_id, values in hues.items():
        bins = np.unique((np.array(values) * 6).astype(int) % 6)
        assert len(bins) >= 4, (class_id, values)


# pycocotools.mask.decode trips numpy 2's __array__(copy=) deprecation inside pycocotools itself
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_coco_export_round_trip(tmp_path):
    pycocotools_coco = pytest.importorskip("pycocotools.coco")
    from pycocotools import mask as mask_utils

    dataset = write_dataset(tmp_path / "ds", n=3, seed=2, width=W, height=H, split="val")
    scenes = list(generate_scenes(3, seed=2, width=W, height=H, split="val"))
    assert dataset.num_images == 3
    assert not list(tmp_path.rglob("*.tmp"))

    coco = pycocotools_coco.COCO(str(dataset.instances_json))
    assert sorted(coco.getCatIds()) == list(THINGS)
    for image_id, scene in enumerate(scenes, start=1):
        image = cv2.imread(str(dataset.images_dir / coco.imgs[image_id]["file_name"]))[..., ::-1]
        np.testing.assert_array_equal(image, scene.image)
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        assert len(annotations) == scene.num_instances
        for instance_id, annotation in enumerate(annotations, start=1):
            mask = mask_utils.decode(annotation["segmentation"]).astype(bool)
            np.testing.assert_array_equal(mask, scene.instances == instance_id)
            assert annotation["category_id"] == scene.instance_class_ids[instance_id - 1]
            assert annotation["area"] == mask.sum() and annotation["iscrowd"] == 0
            v, u = np.nonzero(mask)
            assert annotation["bbox"] == [u.min(), v.min(), u.max() - u.min() + 1, v.max() - v.min() + 1]

    panoptic = json.loads(dataset.panoptic_json.read_text())
    assert {c["id"]: c["isthing"] for c in panoptic["categories"]} == {1: 0, 2: 0, 3: 1, 4: 1, 5: 1}
    for annotation, scene in zip(panoptic["annotations"], scenes, strict=True):
        png = cv2.imread(str(dataset.panoptic_dir / annotation["file_name"]))[..., ::-1]
        segment_ids = rgb_to_id(png)
        np.testing.assert_array_equal(segment_ids, scene.panoptic)
        listed = {s["id"] for s in annotation["segments_info"]}
        assert listed == set(np.unique(segment_ids).tolist()) - {0}
        for segment in annotation["segments_info"]:
            assert segment["area"] == (segment_ids == segment["id"]).sum()
            assert segment["category_id"] == segment["id"] // scene.label_divisor


def test_sequence_is_smooth_and_consistent():
    fps, speed = 10.0, 1.5
    frames = list(generate_sequence(12, seed=4, width=W, height=H, fps=fps, speed=speed))
    assert all(f.world is frames[0].world for f in frames)
    assert all(f.intrinsics == frames[0].intrinsics for f in frames)
    stamps = np.array([f.stamp_ns for f in frames])
    np.testing.assert_array_equal(np.diff(stamps), round(1e9 / fps))
    for a, b in zip(frames, frames[1:], strict=False):
        step = math.dist((a.pose.x, a.pose.y), (b.pose.x, b.pose.y))
        assert step == pytest.approx(speed / fps, rel=0.05)
        assert abs(a.pose.yaw - b.pose.yaw) < 0.1
        assert (a.semantic == b.semantic).mean() > 0.8
    # the same world objects keep being seen (stable track ids)
    seen = [set(f.instance_object_ids.tolist()) for f in frames]
    assert any(seen) and any(seen[i] & seen[i + 1] for i in range(len(seen) - 1))
    # deterministic
    again = next(iter(generate_sequence(12, seed=4, width=W, height=H, fps=fps, speed=speed)))
    np.testing.assert_array_equal(again.image, frames[0].image)


def test_camera_pose_quaternion_matches_rotation():
    pose = CameraPose(1.0, 2.0, 0.7, 0.8, 0.2)
    x, y, z, w = pose.quaternion_xyzw()
    rotation = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    np.testing.assert_allclose(rotation, pose.rotation(), atol=1e-12)


def test_categories_and_preview(scenes):
    things = shapes_categories(things_only=True)
    assert [c["name"] for c in things] == ["box", "sphere", "cylinder"]
    scene = scenes[0]
    preview = render_preview(scene)
    assert preview.shape == (H, 3 * W, 3) and preview.dtype == np.uint8
    # image | semantic in the shapes colours | instances
    np.testing.assert_array_equal(preview[:, :W], scene.image)
    np.testing.assert_array_equal(
        preview[:, W : 2 * W], colorize_labels(scene.semantic, get_label_set("shapes"))
    )
    np.testing.assert_array_equal(preview[:, 2 * W :], colorize_instances(scene.instances))


@pytest.mark.parametrize("distro", SUPPORTED_DISTROS)
def test_sequence_bag_is_readable_by_the_distros_rosbag2(tmp_path, distro):
    """write_sequence_bag (make demo's camera) writes the metadata version that distro's rosbag2 reads."""
    frames = list(generate_sequence(2, seed=5, width=32, height=24))
    bag = write_sequence_bag(tmp_path / "camera", frames, distro=distro)
    assert_rosbag2_reads(bag, distro)
    with AnyReader([bag]) as reader:
        read = [(c.topic, t) for c, t, _ in reader.messages()]
        depth = [
            reader.deserialize(raw, c.msgtype)
            for c, _, raw in reader.messages()
            if c.topic == "/camera/depth/image"
        ]
    topics = ("/camera/camera_info", "/camera/image_raw", "/camera/depth/image")
    assert read == [(topic, f.stamp_ns) for f in frames for topic in topics]
    # the aligned depth image: 32FC1 metres with the colour frame's header, NaN where the sky is
    for msg, frame in zip(depth, frames, strict=True):
        assert msg.encoding == "32FC1" and msg.header.stamp.nanosec == frame.stamp_ns % 10**9
        np.testing.assert_array_equal(
            image_to_numpy(msg), np.where(np.isfinite(frame.depth), frame.depth, np.nan)
        )


# --------------------------------------------------------------------------------------------
# Appearance randomisation and the held-out appearance split


def _families(split: str, n: int = 60) -> list[tuple[str, str]]:
    # 16x16 frames: the world is drawn before the size matters, and they render in no time
    worlds = (generate_scene(3, 16, 16, split=split, index=i).world for i in range(n))
    return [(w.sky_family, w.ground_family) for w in worlds]


def test_the_ood_split_shows_only_held_out_appearance_and_the_others_never_do():
    for split in ("train", "val", "test"):
        skies, grounds = zip(*_families(split), strict=True)
        assert set(skies) == set(SKY_FAMILIES) and set(grounds) == set(GROUND_FAMILIES), split
    skies, grounds = zip(*_families("ood"), strict=True)
    assert set(skies) == set(HELD_OUT_SKY_FAMILIES) and set(grounds) == set(HELD_OUT_GROUND_FAMILIES)
    assert not (set(SKY_FAMILIES) | set(GROUND_FAMILIES)) & (
        set(HELD_OUT_SKY_FAMILIES) | set(HELD_OUT_GROUND_FAMILIES)
    )
    assert HELD_OUT_SPLITS == {"ood"}


def _sky_hues(split: str, n: int = 80) -> list[float]:
    """Hues of the sky colours drawn for ``n`` frames (zenith, horizon, side; grey ones left out)."""
    hues = []
    for i in range(n):
        w = generate_scene(1, 16, 16, split=split, index=i).world
        for color in (w.sky_zenith, w.sky_horizon, w.sky_side):
            if color is not None and (hsv := colorsys.rgb_to_hsv(*color))[1] > 0.04:
                hues.append(hsv[0])
    return hues


def test_held_out_sky_hues_are_outside_the_training_skies():
    """The tinted skies' hues (green to teal, purple to pink) are never those of the other splits'
    clear, overcast and dusk skies (the camera's white balance then shifts both a little)."""
    train, ood = _sky_hues("train"), _sky_hues("ood")
    assert len(train) > 100 and len(ood) > 100
    assert all(h <= 0.15 or 0.53 <= h <= 0.72 for h in train)
    assert all(0.20 <= h <= 0.47 or 0.74 <= h <= 0.98 for h in ood)


def test_appearance_varies_in_light_sensor_and_texture():
    scenes = list(generate_scenes(60, 7, 16, 16, split="train"))
    worlds = [s.world for s in scenes]
    red_over_blue = [w.sun_color[0] / w.sun_color[2] for w in worlds]  # warm (3000 K) to cool (8000 K) suns
    assert min(red_over_blue) < 0.95 and max(red_over_blue) > 2.0
    textured = [o.texture[0] for w in worlds for o in w.objects if o.texture is not None]
    plain = [o for w in worlds for o in w.objects if o.texture is None]
    assert set(textured) == {"stripes", "checker", "noise"} and len(plain) > len(textured) > 0
    # objects coloured like the ground: hard cases are part of the data
    close = [
        o for w in worlds for o in w.objects if np.abs(np.subtract(o.color, w.ground_color)).max() < 0.15
    ]
    assert len(close) >= 0.05 * sum(len(w.objects) for w in worlds)


def test_sensor_gamma_white_balance_and_jpeg_change_only_the_pixels():
    base = generate_scene(2, 64, 48, index=0)
    plain = _Sensor(exposure=1.0, vignetting=0.0, blur_sigma=0.0, noise_sigma=0.0)
    args = dict(rng=np.random.default_rng(0))
    clean = render(base.world, base.intrinsics, base.pose, plain, **args)
    for sensor in (
        dataclasses.replace(plain, gamma=1.2),
        dataclasses.replace(plain, white_balance=(1.1, 1.0, 0.9)),
        dataclasses.replace(plain, jpeg_quality=40),
    ):
        out = render(base.world, base.intrinsics, base.pose, sensor, **args)
        np.testing.assert_array_equal(out.semantic, clean.semantic)
        np.testing.assert_array_equal(out.panoptic, clean.panoptic)
        diff = np.abs(out.image.astype(int) - clean.image.astype(int))
        assert 0 < diff.mean() < 40, sensor
    warm = render(
        base.world, base.intrinsics, base.pose, dataclasses.replace(plain, white_balance=(1.1, 1.0, 0.9))
    )
    assert warm.image[..., 0].astype(int).sum() > clean.image[..., 0].astype(int).sum()
    assert warm.image[..., 2].astype(int).sum() < clean.image[..., 2].astype(int).sum()


def test_a_textured_object_shows_both_its_colours():
    red, blue = (0.9, 0.1, 0.1), (0.1, 0.1, 0.9)
    base = generate_scene(2, 96, 72, index=0)
    pose = CameraPose(0.0, 0.0, 1.0, 0.0, 0.1)
    box = Primitive("box", (3.0, 0.0, 0.6), (0.6, 0.6, 0.6), 0.3, red, 0.0, ("stripes", blue, 0.1))
    world = dataclasses.replace(base.world, objects=(box,), sky_side=None)
    scene = render(world, base.intrinsics, pose)
    pixels = scene.image[scene.instances == 1].astype(int)
    assert len(pixels) > 200
    reddish = (pixels[:, 0] > pixels[:, 2] + 30).mean()
    bluish = (pixels[:, 2] > pixels[:, 0] + 30).mean()
    assert 0.25 < reddish < 0.75 and 0.25 < bluish < 0.75
