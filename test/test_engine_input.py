"""Frames the engine refuses or accepts, configuration checks, and runtime parameter updates."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segmentation_ros.engine.pipeline import (
    MAX_ASPECT_RATIO,
    MAX_NETWORK_SIDE,
    MIN_FRAME_SIDE,
    EngineConfig,
    SegmentationEngine,
    validate_frame,
)

H, W = 53, 71


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def engine() -> SegmentationEngine:
    torch.manual_seed(0)
    return SegmentationEngine(
        task="semantic", semantic_model="fcn_resnet50", semantic_weights="none", device="cpu", offline=True
    )


@pytest.fixture(scope="module")
def reference(engine, frame):
    return engine.segment(frame).semantic


def assert_same_semantic(result, reference) -> None:
    np.testing.assert_array_equal(result.labels, reference.labels)
    np.testing.assert_array_equal(result.confidence, reference.confidence)


# ---- frames -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((H, W, 3), dtype=np.float32), "frame 0: expected dtype uint8, got float32"),
        (
            np.zeros((H, W, 4), dtype=np.uint8),
            r"frame 0: expected shape .* got \(53, 71, 4\) \(drop an alpha channel",
        ),
        (np.zeros((H, W, 2), dtype=np.uint8), r"got \(53, 71, 2\)"),
        (np.zeros((0, W, 3), dtype=np.uint8), r"frame 0: zero-sized image \(0, 71, 3\)"),
        (np.zeros((H, 0), dtype=np.uint8), "zero-sized"),
        (np.zeros(W, dtype=np.uint8), r"expected shape .* got \(71,\)"),
    ],
)
def test_bad_frames_are_refused_with_the_reason(engine, bad: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        engine.segment(bad)


def test_a_list_with_a_non_array_names_the_frame(engine, frame) -> None:
    with pytest.raises(ValueError, match="frame 1: expected a numpy array, got str"):
        engine([frame, "frame.png"])
    with pytest.raises(ValueError, match="frame 2: expected a numpy array, got list"):
        engine([frame, frame, frame.tolist()])


def test_bad_colour_orders(engine, frame) -> None:
    with pytest.raises(ValueError, match="color_order must be 'rgb' or 'bgr', got 'rgba'"):
        engine.segment(frame, color_order="rgba")
    with pytest.raises(ValueError, match="got 1 colour orders for 2 frames"):
        engine([frame, frame], ["rgb"])


def test_non_contiguous_and_read_only_frames(engine, frame, reference) -> None:
    flipped = frame[:, ::-1]
    assert not flipped.flags.c_contiguous
    assert_same_semantic(
        engine.segment(flipped).semantic, engine.segment(np.ascontiguousarray(flipped)).semantic
    )
    read_only = frame.copy()
    read_only.setflags(write=False)
    assert_same_semantic(engine.segment(read_only).semantic, reference)
    strided = np.zeros((H, W, 6), dtype=np.uint8)
    strided[:, :, ::2] = frame  # every other byte: a (H, W, 3) view with a channel stride of 2
    assert_same_semantic(engine.segment(strided[:, :, ::2]).semantic, reference)


def test_single_channel_and_array_batches(engine, frame, monkeypatch: pytest.MonkeyPatch) -> None:
    gray = frame[:, :, 1].copy()
    assert_same_semantic(engine.segment(gray[:, :, None]).semantic, engine.segment(gray).semantic)
    # Without oneDNN a batch of two computes each frame bit for bit as alone (oneDNN picks other
    # kernels for two frames, which moves a few confidences by 1), so each frame is checked exactly.
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    flipped = frame[::-1].copy()
    batch = engine(np.stack([frame, flipped]))  # one (B, H, W, 3) array
    assert len(batch) == 2
    assert_same_semantic(batch[0].semantic, engine([frame, flipped])[0].semantic)
    assert_same_semantic(batch[0].semantic, engine.segment(frame).semantic)
    assert_same_semantic(batch[1].semantic, engine.segment(flipped).semantic)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix's own warning
def test_array_subclasses_are_read_as_plain_arrays(engine, frame, reference) -> None:
    """np.matrix frames could not be stacked into a batch (numpy: "shape too large to be a matrix")."""
    gray = frame[:, :, 0].copy()
    for count in (1, 2):
        plain = engine([gray] * count)
        for result, expected in zip(engine([np.asmatrix(gray)] * count), plain, strict=True):
            assert_same_semantic(result.semantic, expected.semantic)
    masked = np.ma.masked_array(frame, mask=np.zeros_like(frame, dtype=bool))
    assert type(validate_frame(masked)) is np.ndarray
    assert_same_semantic(engine.segment(masked).semantic, reference)


def test_per_frame_colour_orders(engine, frame, reference) -> None:
    bgr = np.ascontiguousarray(frame[:, :, ::-1])
    as_rgb, as_bgr = engine([frame, bgr], ["rgb", "bgr"])
    assert_same_semantic(as_rgb.semantic, reference)
    assert_same_semantic(as_bgr.semantic, reference)
    # and reading a BGR frame as RGB is a different image
    assert not np.array_equal(engine.segment(bgr).semantic.confidence, reference.confidence)


# ---- configuration ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes, match",
    [
        ({"task": "depth"}, "task must be one of"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"score_threshold": 1.5}, r"score_threshold must be in \[0, 1\], got 1.5"),
        ({"score_threshold": -0.1}, "score_threshold must be in"),
        ({"mask_threshold": 2}, "mask_threshold must be in"),
        ({"overlap_threshold": -1.0}, "overlap_threshold must be in"),
        ({"stuff_area_threshold": -1}, "stuff_area_threshold must be >= 0"),
        ({"max_detections": 0}, r"max_detections must be in \[1, 1000\]"),
        ({"max_detections": 1001, "label_divisor": 5000}, "max_detections must be in"),
        (
            {"label_divisor": 100, "max_detections": 100},
            r"label_divisor \(100\) must exceed max_detections \(100\)",
        ),
        ({"label_divisor": 50}, r"label_divisor \(50\) must exceed max_detections \(100\)"),
        ({"instance_min_size": -2}, "instance_min_size"),
        ({"instance_min_size": 800, "instance_max_size": 400}, "instance_max_size"),
        ({"semantic_input_size": -2}, "semantic_input_size must be >= -1"),
        ({"semantic_input_size": 4097}, "semantic_input_size must be at most 4096"),
        ({"instance_min_size": 5000, "instance_max_size": 6000}, "instance_min_size must be at most 4096"),
        ({"instance_max_size": 4097}, "instance_max_size must be at most 4096"),
        ({"classes": (3, -1)}, "classes must be non-negative"),
        ({"device": "tpu"}, "device must be 'auto', 'cpu' or 'cuda"),
        ({"semantic_model": "maskrcnn_resnet50_fpn"}, "is not a semantic model"),
        ({"task": "panoptic", "instance_model": "fcn_resnet50"}, "is not an instance model"),
        ({"semantic_model": "no_such_model"}, "unknown model 'no_such_model'"),
    ],
)
def test_config_validation_names_the_bad_value(changes: dict, match: str) -> None:
    config = dataclasses.replace(EngineConfig(), **changes)
    with pytest.raises(ValueError, match=match):
        config.validate()


def test_config_accepts_the_edges() -> None:
    config = EngineConfig(
        score_threshold=0.0,
        mask_threshold=1.0,
        overlap_threshold=1.0,
        label_divisor=101,
        max_detections=100,
        stuff_area_threshold=0,
        instance_min_size=0,
        device="cpu",
    )
    assert config.validate() is config


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is missing")
def test_cuda_device_without_cuda() -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        EngineConfig(device="cuda").validate()


def test_engine_validates_its_configuration() -> None:
    with pytest.raises(ValueError, match="score_threshold"):
        SegmentationEngine(task="semantic", semantic_weights="none", device="cpu", score_threshold=3.0)
    with pytest.raises(TypeError):
        SegmentationEngine(task="semantic", semantic_weights="none", device="cpu", no_such_option=1)


# ---- runtime updates ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def instance_engine() -> SegmentationEngine:
    torch.manual_seed(0)
    return SegmentationEngine(
        task="instance",
        instance_model="maskrcnn_resnet50_fpn",
        instance_weights="none",
        device="cpu",
        score_threshold=0.0,
        mask_threshold=0.4,
        instance_min_size=0,
        max_detections=20,
    )


def test_update_changes_the_score_threshold(instance_engine, frame) -> None:
    everything = instance_engine.segment(frame).instances
    scores = np.unique(everything.scores)
    assert scores.size >= 2
    threshold = float(scores[scores.size // 2 - 1] + scores[scores.size // 2]) / 2  # between two scores
    instance_engine.update(score_threshold=threshold)
    try:
        assert instance_engine.config.score_threshold == threshold
        fewer = instance_engine.segment(frame).instances
    finally:
        instance_engine.update(score_threshold=0.0)
    # the same detections, less those under the threshold: nothing above it changes
    above = everything.scores >= threshold
    assert 0 < len(fewer) < len(everything)
    np.testing.assert_array_equal(fewer.scores, everything.scores[above])
    np.testing.assert_array_equal(fewer.boxes, everything.boxes[above])
    np.testing.assert_array_equal(fewer.class_ids, everything.class_ids[above])


def test_update_class_filter(instance_engine, frame) -> None:
    everything = instance_engine.segment(frame).instances
    common = int(np.bincount(everything.class_ids).argmax())
    instance_engine.update(classes=[common])
    try:
        assert instance_engine.config.classes == (common,)
        only = instance_engine.segment(frame).instances
    finally:
        instance_engine.update(classes=())
    assert len(only) > 0 and set(only.class_ids.tolist()) == {common}


@pytest.mark.parametrize(
    "params, match",
    [
        ({"device": "cpu"}, r"cannot change \['device'\] at runtime"),
        ({"task": "panoptic"}, "cannot change"),
        ({"label_divisor": 5000}, "cannot change"),
        ({"instance_min_size": 800}, "cannot change"),
        ({"no_such_parameter": 1}, r"cannot change \['no_such_parameter'\]"),
        ({"score_threshold": 2.0}, "score_threshold must be in"),
        ({"score_threshold": 0.3, "mask_threshold": 5.0}, "mask_threshold must be in"),
        ({"classes": [-4]}, "classes must be non-negative"),
    ],
)
def test_update_rejects_read_only_unknown_and_bad_values(instance_engine, params: dict, match: str) -> None:
    before = instance_engine.config
    with pytest.raises(ValueError, match=match):
        instance_engine.update(**params)
    assert instance_engine.config == before  # all or nothing


def test_instance_label_set_without_things_is_refused(tmp_path) -> None:
    # Without thing flags every detection would be dropped; say so instead of returning nothing.
    flagless = tmp_path / "flagless.yaml"
    flagless.write_text(
        "name: flagless\nvoid_id: 0\nclasses:\n"
        + "".join(f"  - {{id: {i}, name: c{i}}}\n" for i in range(6))
    )
    with pytest.raises(ValueError, match="marks no class as a thing"):
        SegmentationEngine(
            task="instance",
            instance_model="shapes_maskrcnn",
            instance_weights="none",
            instance_labels=str(flagless),
            device="cpu",
        )


# ---- CPU batch size --------------------------------------------------------------------------------
def test_cpu_passes_hold_at_most_cpu_batch_pixels(engine, instance_engine) -> None:
    """fcn_resnet50 runs at camera resolution, this Mask R-CNN at camera resolution too."""
    from segmentation_ros.engine.pipeline import CPU_BATCH_PIXELS

    assert CPU_BATCH_PIXELS == 4 * 320 * 240
    for e in (engine, instance_engine):
        assert e._frames_per_pass(480, 640) == 1
        assert e._frames_per_pass(240, 320) == 4
        assert e._frames_per_pass(120, 160) == 16
    small_input = dataclasses.replace(engine.config, semantic_input_size=120)
    assert engine._semantic_size(480, 640) == (480, 640)
    engine.config = small_input
    try:
        assert engine._semantic_size(480, 640) == (120, 160)  # resized first: 16 per pass
        assert engine._frames_per_pass(480, 640) == 16
    finally:
        engine.config = dataclasses.replace(small_input, semantic_input_size=-1)


def test_frames_split_over_passes_give_the_batched_results(engine, frame, monkeypatch) -> None:
    from segmentation_ros.engine import pipeline as engine_module

    frames = [np.roll(frame, 7 * k, axis=1) for k in range(5)]
    together = engine(frames)
    passes = []
    run_batch = engine._run_batch
    monkeypatch.setattr(engine_module, "CPU_BATCH_PIXELS", 2 * H * W)  # two frames a pass
    monkeypatch.setattr(engine, "_run_batch", lambda fs, order: passes.append(len(fs)) or run_batch(fs, order))
    split = engine(frames)
    assert passes == [2, 2, 1]
    for a, b in zip(split, together, strict=True):  # other batch sizes: other kernels, float rounding
        same = a.semantic.labels == b.semantic.labels
        assert same.mean() >= 0.999
        assert np.abs(a.semantic.confidence.astype(int) - b.semantic.confidence.astype(int))[same].max() <= 1


# ---- frame geometry: what cannot be segmented is refused, what is accepted costs a bounded pass ------
def shaped(height: int, width: int) -> np.ndarray:
    """A (height, width, 3) uint8 frame that takes no memory (a broadcast view, read-only)."""
    return np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (height, width, 3))


@pytest.mark.parametrize(
    "height, width, match",
    [
        (1, 1200, r"frame 0: 1200x1 \(width x height\) is too small to segment: both sides must be at least 16 "),
        (1200, 1, "1x1200 .* too small"),
        (15, 100, "too small"),
        (8, 8, "too small"),
        (16, 129, r"frame 0: 129x16 \(width x height\) is too elongated to segment: the long side may be at most 8 "),
        (1000, 120, "too elongated"),
    ],
)
def test_frames_that_cannot_be_segmented_sensibly_are_refused(engine, height, width, match) -> None:
    """A 1x1200 rgb8 frame (3.6 KB) cost 20 s and 1.9 GB: its short side was scaled up to the
    network's input size with nothing capping the long side. It is refused before any work."""
    assert (MIN_FRAME_SIDE, MAX_ASPECT_RATIO, MAX_NETWORK_SIDE) == (16, 8, 4096)
    with pytest.raises(ValueError, match=match):
        validate_frame(shaped(height, width))
    with pytest.raises(ValueError, match=match.replace("frame 0", "frame 1")):
        engine([np.zeros((H, W, 3), np.uint8), np.zeros((height, width, 3), np.uint8)])


@pytest.fixture(scope="module")
def small_instance_engine() -> SegmentationEngine:
    """The demo Mask R-CNN (MobileNetV3), random weights, at the camera's resolution: cheap."""
    torch.manual_seed(0)
    return SegmentationEngine(
        task="instance",
        instance_model="shapes_maskrcnn",
        instance_weights="none",
        instance_min_size=0,
        device="cpu",
        offline=True,
    )


@pytest.mark.parametrize(
    "changes, frame, expected",
    [
        # the short side to the model's input size, the long side capped
        ({"semantic_input_size": 168}, (16, 128), (168, 1344)),
        ({"semantic_input_size": 168}, (480, 640), (168, 224)),
        ({"semantic_input_size": 4096}, (480, 3840), (512, 4096)),  # 4096 x 32768 uncapped
        ({"semantic_input_size": 4096}, (3000, 2000), (4096, 2731)),
        # native: the camera's resolution up to the cap
        ({"semantic_input_size": 0}, (480, 640), (480, 640)),
        ({"semantic_input_size": 0}, (1024, 8192), (512, 4096)),
        ({"semantic_input_size": 0}, (6000, 6000), (4096, 4096)),
    ],
)
def test_semantic_network_input_is_bounded(engine, changes, frame, expected) -> None:
    before = engine.config
    engine.config = dataclasses.replace(before, **changes)
    try:
        assert engine._semantic_size(*frame) == expected
    finally:
        engine.config = before


@pytest.mark.parametrize(
    "changes, frame, expected",
    [
        # torchvision's 800 / 1333: the long side caps the short side's scale
        ({"instance_min_size": -1}, (16, 128), (166, 1333)),
        ({"instance_min_size": -1}, (480, 640), (800, 1066)),
        ({"instance_min_size": 4096, "instance_max_size": 4096}, (512, 4096), (512, 4096)),
        ({"instance_min_size": 4096, "instance_max_size": -1}, (3000, 2000), (1333, 888)),
        # native: the camera's resolution, shrunk to an instance_max_size that is set, and the cap
        ({"instance_min_size": 0}, (480, 640), (480, 640)),
        ({"instance_min_size": 0}, (1024, 8192), (512, 4096)),
        ({"instance_min_size": 0}, (6000, 6000), (4096, 4096)),
        ({"instance_min_size": 0, "instance_max_size": 320}, (480, 640), (240, 320)),
    ],
)
def test_instance_network_input_is_bounded(instance_engine, changes, frame, expected) -> None:
    before = instance_engine.config
    instance_engine.config = dataclasses.replace(before, **changes).validate()
    try:
        assert instance_engine._instance_size(*frame) == expected
    finally:
        instance_engine.config = before


def test_the_smallest_and_most_elongated_frames_are_segmented_at_the_computed_sizes(
    engine, small_instance_engine, monkeypatch
) -> None:
    """The limits' edge cases go through both networks, which get _semantic_size and _instance_size
    (here a small semantic size and a small instance cap)."""
    seen = []
    semantic_forward, detect = engine._semantic_forward, small_instance_engine._detect
    monkeypatch.setattr(
        engine, "_semantic_forward", lambda x: seen.append(tuple(x.shape[-2:])) or semantic_forward(x)
    )
    monkeypatch.setattr(
        small_instance_engine, "_detect", lambda images: seen.append(images.image_sizes[0]) or detect(images)
    )
    monkeypatch.setattr(engine, "config", dataclasses.replace(engine.config, semantic_input_size=24))
    monkeypatch.setattr(
        small_instance_engine, "config", dataclasses.replace(small_instance_engine.config, instance_max_size=64)
    )
    for (height, width), sizes in {
        (16, 16): [(24, 24), (16, 16)],
        (16, 128): [(24, 192), (8, 64)],
        (128, 16): [(192, 24), (64, 8)],
    }.items():
        frame = np.full((height, width, 3), 90, np.uint8)
        assert validate_frame(frame) is frame
        seen.clear()
        assert engine.segment(frame).semantic.labels.shape == (height, width)
        assert small_instance_engine.segment(frame).instances.instance_ids.shape == (height, width)
        assert seen == sizes
        assert seen == [engine._semantic_size(height, width), small_instance_engine._instance_size(height, width)]


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    short=st.integers(1, 20_000),
    aspect=st.floats(1.0, 12.0),
    portrait=st.booleans(),
    semantic_size=st.sampled_from([0, 1, 168, 520, 4096]),
    instance_sizes=st.sampled_from([(0, -1), (0, 100), (-1, -1), (800, 4096), (4096, 4096), (16, 16)]),
)
def test_every_accepted_frame_has_a_bounded_network_input(
    engine, instance_engine, short, aspect, portrait, semantic_size, instance_sizes
) -> None:
    """Whatever validate_frame accepts and whatever the size settings: no network input side above
    MAX_NETWORK_SIDE, none below one pixel, and a CPU pass of at least one frame."""
    long = min(round(short * aspect), 60_000)
    height, width = (long, short) if portrait else (short, long)
    try:
        validate_frame(shaped(height, width))
    except ValueError:
        short_side, long_side = sorted((height, width))
        assert short_side < MIN_FRAME_SIDE or long_side > MAX_ASPECT_RATIO * short_side
        return
    semantic, instance = engine.config, instance_engine.config
    engine.config = dataclasses.replace(semantic, semantic_input_size=semantic_size).validate()
    instance_engine.config = dataclasses.replace(
        instance, instance_min_size=instance_sizes[0], instance_max_size=instance_sizes[1]
    ).validate()
    try:
        for size in (engine._semantic_size(height, width), instance_engine._instance_size(height, width)):
            assert 1 <= min(size) and max(size) <= MAX_NETWORK_SIDE, (height, width, size)
        assert engine._frames_per_pass(height, width) >= 1
        assert instance_engine._frames_per_pass(height, width) >= 1
    finally:
        engine.config, instance_engine.config = semantic, instance


# ---- the score threshold, exactly ---------------------------------------------------------------------
def test_instance_score_threshold_is_decided_in_float64(small_instance_engine, monkeypatch) -> None:
    """torchvision's ROI heads keep ``scores > score_thresh`` in float32: with score_thresh = t, a
    score of exactly 0.5 failed 0.5 and float32(0.1) (above 0.1) failed 0.1. The engine keeps
    float64(s) >= t. The ROI heads are replaced by ones returning chosen scores (in separate boxes)
    through torchvision's own comparison."""
    engine = small_instance_engine
    model = engine.instance_model.module
    chosen: list[float] = []

    class ChosenDetections(torch.nn.Module):
        score_thresh = 0.0
        detections_per_img = 100

        def forward(self, features, proposals, image_sizes):
            scores = torch.tensor(chosen, dtype=torch.float32)
            keep = torch.where(scores > self.score_thresh)[0]  # torchvision's postprocess_detections
            n = len(chosen)
            h, w = image_sizes[0]
            boxes = [[w * (4 * k + 1) / 16, h / 4, w * (4 * k + 3) / 16, h / 2] for k in range(n)]  # apart
            detection = {
                "boxes": torch.tensor(boxes)[keep],
                "scores": scores[keep],
                "labels": torch.full((n,), 3, dtype=torch.int64)[keep],  # "box", a thing
                "masks": torch.ones(n, 1, 28, 28)[keep],
            }
            return [detection] * len(image_sizes), {}

    # Through _modules: monkeypatch.setattr on an nn.Module submodule deletes it at undo (the
    # attribute is not in the instance __dict__), which broke the module-scoped engine for later tests.
    monkeypatch.setitem(model._modules, "roi_heads", ChosenDetections())
    frame = np.zeros((48, 64, 3), np.uint8)
    for threshold in (0.0, 0.1, 0.29, 0.5, 0.7, 0.99, 1.0):
        at = np.float32(threshold)
        around = (np.nextafter(at, np.float32(2)), at, np.nextafter(at, np.float32(-1)))  # by score
        chosen[:] = [float(v) for v in around if 0.0 <= v <= 1.0]
        engine.update(score_threshold=threshold)
        try:
            scores = engine.segment(frame).instances.scores.astype(np.float64).tolist()
        finally:
            engine.update(score_threshold=0.5)
        assert scores == [v for v in chosen if v >= threshold], f"threshold {threshold}"


@pytest.mark.parametrize("channels_last", [True, False])
def test_the_networks_get_nhwc_input_on_the_cpu_for_every_kind_of_frame(
    engine, small_instance_engine, frame, monkeypatch, channels_last: bool
) -> None:
    """channels_last holds on the CPU too (oneDNN's NHWC kernels), and not only where the upload's
    permuted view happens to be NHWC: a grayscale frame (its channel expanded) and a BGR or batched
    one reach both networks as NHWC; with channels_last off, as plain NCHW."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    seen: list[bool] = []
    semantic_forward, detect = engine._semantic_forward, small_instance_engine._detect
    monkeypatch.setattr(
        engine, "_semantic_forward", lambda x: seen.append(x.is_contiguous(memory_format=fmt)) or semantic_forward(x)
    )
    monkeypatch.setattr(
        small_instance_engine,
        "_detect",
        lambda images: seen.append(images.tensors.is_contiguous(memory_format=fmt)) or detect(images),
    )
    for e in (engine, small_instance_engine):
        monkeypatch.setattr(e, "config", dataclasses.replace(e.config, channels_last=channels_last))
    gray = np.ascontiguousarray(frame[..., 1])
    for e in (engine, small_instance_engine):
        e.segment(gray)
        e.segment(frame, "bgr")
        e([frame, frame[::-1]])  # two frames, one of them a negative-stride view
    assert seen == [True] * 6
