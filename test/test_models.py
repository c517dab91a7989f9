"""Every registered model through the engine on tiny odd-sized frames, random weights, CPU (and CUDA).

Random weights still exercise every step between the camera frame and the results: colour order,
grayscale, batching, resizing back to the camera's resolution, mask pasting, id painting, panoptic
fusion and encoding. For instance models ``score_threshold=0.0`` keeps random-weight detections,
``mask_threshold=0.4`` keeps their masks (a random mask head's probabilities can stay below 0.5 everywhere,
as the demo Mask R-CNN's do), ``instance_min_size=0`` runs at the frame's own size and
``max_detections=20`` bounds the mask head's work (its cost is per detection).

Same-frame results computed along different paths (a batch of two vs one frame, a grayscale frame
vs its RGB copy) differ by float rounding (~1e-6): oneDNN and BLAS pick other kernels for a batch
of two, and a grayscale frame reaches the network in another memory layout. With random weights
many classes and detections nearly tie, so such comparisons allow a few flips (see
:func:`assert_equivalent`) while still failing for a wrong frame, channel order or batch split.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segmentation_ros.engine.panoptic import decode_panoptic
from segmentation_ros.engine.pipeline import SegmentationEngine, panoptic_label_space
from segmentation_ros.engine.registry import get_model_entry, list_models
from segmentation_ros.engine.results import InstanceResult, Segmentation, SemanticResult

H, W = 97, 131  # odd on purpose: nothing may assume a multiple of the network stride
GRAY_H, GRAY_W = 61, 83
SEMANTIC_MODELS = list_models("semantic")
INSTANCE_MODELS = list_models("instance")
PANOPTIC_MODELS = ("fcn_resnet50", "maskrcnn_resnet50_fpn")

cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def engine_options(name: str, **overrides: object) -> dict:
    """Engine settings for one registered model: random weights, CPU, fast instance settings."""
    options: dict = {"device": "cpu", "semantic_weights": "none", "instance_weights": "none", "offline": True}
    if get_model_entry(name).task == "semantic":
        options.update(task="semantic", semantic_model=name)
    else:
        options.update(
            task="instance",
            instance_model=name,
            score_threshold=0.0,
            mask_threshold=0.4,
            instance_min_size=0,
            max_detections=20,
        )
    options.update(overrides)
    return options


@pytest.fixture(scope="module")
def frames() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "rgb1": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        "rgb2": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        "gray": rng.integers(0, 256, (GRAY_H, GRAY_W), dtype=np.uint8),
    }


def run_model(name: str, frames: dict[str, np.ndarray], **overrides: object) -> SimpleNamespace:
    """Build ``name`` once; segment rgb1 and (as BGR) rgb2 singly, both batched with a grayscale frame of
    another size, and the grayscale frame's RGB copy. (Six frames: Mask R-CNN's box head costs about
    a second per frame on a CPU, whatever the frame's size.)"""
    torch.manual_seed(0)
    engine = SegmentationEngine(**engine_options(name, **overrides))
    rgb1, rgb2, gray = frames["rgb1"], frames["rgb2"], frames["gray"]
    return SimpleNamespace(
        name=name,
        engine=engine,
        singles=[
            engine.segment(rgb1),
            engine.segment(np.ascontiguousarray(rgb2[:, :, ::-1]), color_order="bgr"),
        ],
        mixed=engine([rgb1, gray, rgb2]),  # rgb1 and rgb2 share a batch; gray runs on its own
        gray_as_rgb=engine.segment(np.repeat(gray[:, :, None], 3, axis=2)),
    )


@pytest.fixture(scope="module", params=SEMANTIC_MODELS)
def semantic_run(request, frames):
    run = run_model(request.param, frames)
    yield run
    run.engine.close()


@pytest.fixture(scope="module", params=INSTANCE_MODELS)
def instance_run(request, frames):
    run = run_model(request.param, frames)
    yield run
    run.engine.close()


def all_results(run: SimpleNamespace) -> list[tuple[Segmentation, tuple[int, int]]]:
    shapes = [(H, W), (H, W), (H, W), (GRAY_H, GRAY_W), (H, W), (GRAY_H, GRAY_W)]
    return list(zip([*run.singles, *run.mixed, run.gray_as_rgb], shapes, strict=True))


# ---- checks shared by the tests -----------------------------------------------------------------------
def check_semantic(result: SemanticResult, shape: tuple[int, int]) -> None:
    labels = result.label_set
    assert result.labels.shape == shape and result.labels.dtype == np.uint8 == labels.label_dtype
    assert result.confidence.shape == shape and result.confidence.dtype == np.uint8
    assert set(np.unique(result.labels).tolist()) <= set(labels.ids)
    # the winning class's softmax probability is at least 1 / num_classes
    assert int(result.confidence.min()) >= int(255 / labels.num_classes)


def reference_paint(masks: np.ndarray) -> np.ndarray:
    """Each pixel: 1 + index of the first (highest-score) mask covering it; 0 where none does."""
    ids = np.zeros(masks.shape[1:], dtype=np.int64)
    for k in range(masks.shape[0] - 1, -1, -1):
        ids[masks[k]] = k + 1
    return ids


def check_instances(result: InstanceResult, shape: tuple[int, int], mask_threshold: float) -> None:
    n = len(result)
    height, width = shape
    np.testing.assert_array_equal(result.ids, np.arange(1, n + 1))
    assert result.ids.dtype == np.int32
    assert result.instance_ids.shape == shape and result.instance_ids.dtype == np.uint16
    assert set(np.unique(result.instance_ids).tolist()) - {0} == set(result.ids.tolist())
    assert result.class_ids.shape == (n,) and result.class_ids.dtype == np.int64
    # only classes the label set names as things (not void, not COCO's N/A slots)
    assert set(result.class_ids.tolist()) <= set(result.label_set.thing_ids)
    assert result.scores.shape == (n,) and result.scores.dtype == np.float32
    assert ((result.scores >= 0) & (result.scores <= 1)).all() and (np.diff(result.scores) <= 0).all()
    boxes = result.boxes
    assert boxes.shape == (n, 4) and boxes.dtype == np.float32
    assert (boxes >= 0).all() and (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    masks = result.masks.cpu().numpy()
    assert masks.shape == (n, height, width) and masks.dtype == bool
    # the id map is the masks painted in score order; every listed instance shows
    np.testing.assert_array_equal(result.instance_ids, reference_paint(masks))
    # bilinear resampling reaches (0.5 - threshold) of a mask cell (box / 28) beyond the box, no further
    reach = max(0.5 - mask_threshold, 0.0) / 28
    for mask, (x1, y1, x2, y2) in zip(masks, boxes, strict=True):
        ys, xs = np.nonzero(mask)
        assert (xs + 0.5 >= x1 - reach * (x2 - x1) - 1e-3).all() and (
            xs + 0.5 <= x2 + reach * (x2 - x1) + 1e-3
        ).all()
        assert (ys + 0.5 >= y1 - reach * (y2 - y1) - 1e-3).all() and (
            ys + 0.5 <= y2 + reach * (y2 - y1) + 1e-3
        ).all()
    assert [d["id"] for d in result.detections()] == result.ids.tolist()


def assert_same(a: Segmentation, b: Segmentation) -> None:
    assert (a.height, a.width) == (b.height, b.width)
    for part in ("semantic", "instances", "panoptic"):
        assert (getattr(a, part) is None) == (getattr(b, part) is None), part
    if a.semantic is not None:
        np.testing.assert_array_equal(a.semantic.labels, b.semantic.labels)
        np.testing.assert_array_equal(a.semantic.confidence, b.semantic.confidence)
    if a.instances is not None:
        for field in ("ids", "class_ids", "scores", "boxes", "instance_ids"):
            np.testing.assert_array_equal(
                getattr(a.instances, field), getattr(b.instances, field), err_msg=field
            )
        assert torch.equal(a.instances.masks.cpu(), b.instances.masks.cpu())
    if a.panoptic is not None:
        np.testing.assert_array_equal(a.panoptic.panoptic, b.panoptic.panoptic)
        np.testing.assert_array_equal(a.panoptic.segment_ids, b.panoptic.segment_ids)
        assert a.panoptic.segments == b.panoptic.segments


def close_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    detection: tuple[np.ndarray, float, int],
    *,
    box_tolerance: float,
    score_tolerance: float,
) -> np.ndarray:
    """(N,) bool: which of the N detections (boxes, scores, classes) are ``detection`` (box, score,
    class) up to float rounding: the same class, every box coordinate within ``box_tolerance`` px
    and the score within ``score_tolerance``."""
    box, score, class_id = detection
    return (
        (np.abs(boxes - box).max(1) <= box_tolerance)
        & (np.abs(scores - score) <= score_tolerance)
        & (classes == class_id)
    )


def _unmatched(x: InstanceResult, y: InstanceResult) -> int:
    """How many of x's instances y lacks (same class, box within 0.05 px, score within 1e-4)."""
    found = 0
    for i in range(len(x)):
        close = close_detections(
            y.boxes,
            y.scores,
            y.class_ids,
            (x.boxes[i], x.scores[i], x.class_ids[i]),
            box_tolerance=0.05,
            score_tolerance=1e-4,
        )
        found += bool(close.any())
    return len(x) - found


def assert_equivalent(a: Segmentation, b: Segmentation) -> None:
    """The same results up to float rounding: equal but for a few near-tie flips. (A different frame
    shares no detection and few labels.)"""
    assert (a.height, a.width) == (b.height, b.width)
    for part in ("semantic", "instances", "panoptic"):
        assert (getattr(a, part) is None) == (getattr(b, part) is None), part
    if a.semantic is not None:
        same = a.semantic.labels == b.semantic.labels
        assert same.mean() >= 0.999
        assert np.abs(a.semantic.confidence.astype(int) - b.semantic.confidence.astype(int))[same].max() <= 1
    if a.instances is not None:
        x, y = a.instances, b.instances
        flips = max(1, len(x) // 10)
        assert abs(len(x) - len(y)) <= flips
        assert _unmatched(x, y) <= flips and _unmatched(y, x) <= flips
        assert (x.instance_ids == y.instance_ids).mean() >= 0.98
    if a.panoptic is not None:
        assert (a.panoptic.panoptic == b.panoptic.panoptic).mean() >= 0.98


# ---- semantic models ----------------------------------------------------------------------------------
def test_semantic_results_at_input_resolution(semantic_run) -> None:
    for result, shape in all_results(semantic_run):
        assert (result.height, result.width) == shape
        assert result.instances is None and result.panoptic is None
        check_semantic(result.semantic, shape)
        assert result.semantic.label_set is semantic_run.engine.labels


def test_semantic_batch_equals_single_calls(semantic_run) -> None:
    """Batched with a frame of another size: the same as one at a time (the second one given as BGR)."""
    assert_equivalent(semantic_run.mixed[0], semantic_run.singles[0])
    assert_equivalent(semantic_run.mixed[2], semantic_run.singles[1])


def test_semantic_grayscale_equals_its_rgb_copy(semantic_run) -> None:
    assert_equivalent(semantic_run.mixed[1], semantic_run.gray_as_rgb)


# ---- instance models ----------------------------------------------------------------------------------
def test_instance_results_at_input_resolution(instance_run) -> None:
    for result, shape in all_results(instance_run):
        assert (result.height, result.width) == shape
        assert result.semantic is None and result.panoptic is None
        check_instances(result.instances, shape, instance_run.engine.config.mask_threshold)
        assert result.instances.label_set is instance_run.engine.labels
    assert len(instance_run.singles[0].instances) > 0  # random weights at threshold 0 do detect


def test_instance_batch_equals_single_calls(instance_run) -> None:
    """Batched with a frame of another size: the same as one at a time (the second one given as BGR)."""
    assert_equivalent(instance_run.mixed[0], instance_run.singles[0])
    assert_equivalent(instance_run.mixed[2], instance_run.singles[1])
    assert not np.array_equal(
        instance_run.singles[0].instances.boxes, instance_run.singles[1].instances.boxes
    )


def test_instance_grayscale_equals_its_rgb_copy(instance_run) -> None:
    assert_equivalent(instance_run.mixed[1], instance_run.gray_as_rgb)


# ---- panoptic -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["default_labels", "shared_labels"])
def panoptic_run(request, frames):
    """fcn_resnet50 + maskrcnn_resnet50_fpn, with their own label sets (VOC and COCO:
    COCO things, no stuff) or both on the shapes set (stuff and things, identity label mapping)."""
    semantic, instance = PANOPTIC_MODELS
    labels = (
        {}
        if request.param == "default_labels"
        else {"semantic_labels": "shapes", "instance_labels": "shapes"}
    )
    torch.manual_seed(0)
    engine = SegmentationEngine(
        **engine_options(
            instance, task="panoptic", semantic_model=semantic, stuff_area_threshold=50, **labels
        )
    )
    batch = engine([frames["rgb1"], frames["rgb2"]])
    yield SimpleNamespace(
        kind=request.param, engine=engine, batch=batch, single=engine.segment(frames["rgb1"])
    )
    engine.close()


def test_panoptic_maps_and_segments(panoptic_run) -> None:
    engine = panoptic_run.engine
    labels = engine.labels
    for result in panoptic_run.batch:
        pan = result.panoptic
        assert pan.label_set is labels and pan.label_divisor == engine.config.label_divisor
        assert pan.segment_ids.shape == (H, W) and pan.segment_ids.dtype == np.int32
        assert pan.panoptic.shape == (H, W) and pan.panoptic.dtype == np.int32
        check_semantic(result.semantic, (H, W))
        check_instances(result.instances, (H, W), engine.config.mask_threshold)
        assert [s.id for s in pan.segments] == list(range(1, len(pan.segments) + 1))
        assert sum(s.area for s in pan.segments) == int((pan.segment_ids > 0).sum())
        classes, instances = decode_panoptic(pan.panoptic, pan.label_divisor)
        for s in pan.segments:
            inside = pan.segment_ids == s.id
            ys, xs = np.nonzero(inside)
            assert s.area == ys.size > 0
            assert s.bbox == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
            assert (classes[inside] == s.class_id).all() and (instances[inside] == s.instance_id).all()
            if s.isthing:
                assert s.class_id in labels.thing_ids and s.instance_id == s.id
            else:
                assert s.class_id in labels.stuff_ids and s.instance_id == 0
                assert s.area >= engine.config.stuff_area_threshold
        assert (pan.panoptic[pan.segment_ids == 0] == 0).all()  # void


def test_panoptic_instances_are_the_fused_things(panoptic_run) -> None:
    for result in panoptic_run.batch:
        pan, inst = result.panoptic, result.instances
        things = [s for s in pan.segments if s.isthing]
        assert len(things) == len(inst) > 0
        assert [s.instance_id for s in things] == inst.ids.tolist()
        assert [s.class_id for s in things] == inst.class_ids.tolist()  # both label maps are identities here
        assert [s.score for s in things] == pytest.approx(inst.scores.tolist())
        _, instance_part = decode_panoptic(pan.panoptic, pan.label_divisor)
        thing_pixels = np.isin(pan.segment_ids, [s.id for s in things])
        np.testing.assert_array_equal(inst.instance_ids, np.where(thing_pixels, instance_part, 0))


def test_panoptic_stuff_follows_the_semantic_map(panoptic_run) -> None:
    engine = panoptic_run.engine
    _, _, stuff_map = panoptic_label_space(engine.semantic_model.labels, engine.instance_model.labels)
    stuff_map = stuff_map.numpy()
    stuff_seen = 0
    for result in panoptic_run.batch:
        pan, semantic = result.panoptic, result.semantic.labels
        for s in pan.segments:
            if not s.isthing:
                stuff_seen += 1
                assert (stuff_map[semantic[pan.segment_ids == s.id]] == s.class_id).all()
        # pixels no thing claimed and no kept stuff segment covers are exactly the void ones
        kept_stuff = {s.class_id for s in pan.segments if not s.isthing}
        unclaimed = ~np.isin(pan.segment_ids, [s.id for s in pan.segments if s.isthing])
        expected_void = unclaimed & ~np.isin(stuff_map[semantic], list(kept_stuff))
        np.testing.assert_array_equal(pan.segment_ids == 0, expected_void)
    if panoptic_run.kind == "default_labels":
        assert stuff_seen == 0  # VOC has no stuff classes
    else:
        assert stuff_seen > 0


def test_panoptic_batch_equals_single_call(panoptic_run) -> None:
    assert_equivalent(panoptic_run.batch[0], panoptic_run.single)


# ---- the instance path against torchvision's own Mask R-CNN -------------------------------------------
def exact_paste(masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, M, M) probabilities resampled over their boxes at pixel centres (bilinear, zero padding)."""
    xs = torch.arange(width, dtype=torch.float64) + 0.5
    ys = torch.arange(height, dtype=torch.float64) + 0.5
    boxes = boxes.double()
    gx = (xs[None] - boxes[:, 0:1]) / (boxes[:, 2:3] - boxes[:, 0:1]).clamp(min=1e-3) * 2 - 1  # (N, W)
    gy = (ys[None] - boxes[:, 1:2]) / (boxes[:, 3:4] - boxes[:, 1:2]).clamp(min=1e-3) * 2 - 1  # (N, H)
    grid = torch.stack([gx[:, None, :].expand(-1, height, -1), gy[:, :, None].expand(-1, -1, width)], -1)
    return F.grid_sample(
        masks.double()[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )[:, 0]


@pytest.mark.parametrize("min_size", [0, 128])
def test_instance_pipeline_matches_torchvision(frames, min_size: int) -> None:
    """Our staged Mask R-CNN (own resize, RPN, batched paste, painting) against ``model([image])``."""
    torch.manual_seed(0)
    engine = SegmentationEngine(**engine_options("maskrcnn_resnet50_fpn", instance_min_size=min_size))
    ours = engine.segment(frames["rgb1"]).instances
    model = engine.instance_model.module  # the same random weights, score_thresh and detections_per_img
    if min_size == 0:  # native resolution: torchvision's resize becomes the identity
        model.transform.min_size, model.transform.max_size = (min(H, W),), max(H, W)
    else:  # the engine's max_size -1 is the model's own (torchvision's 1333)
        model.transform.min_size = (min_size,)
    raw: list = []
    hook = model.roi_heads.register_forward_hook(
        lambda module, args, output: raw.append({k: v.clone() for k, v in output[0][0].items()})
    )
    try:
        with torch.inference_mode():
            theirs = model([torch.from_numpy(frames["rgb1"]).permute(2, 0, 1).float() / 255])[0]
    finally:
        hook.remove()
    their_boxes, their_scores, their_labels = (theirs[k].numpy() for k in ("boxes", "scores", "labels"))
    assert 0 < len(ours) <= len(their_boxes)
    # random weights also "detect" COCO's unnamed N/A ids; the engine drops those
    named = np.isin(their_labels, engine.labels.thing_ids)

    # Ours lists torchvision's detections in the same order, minus unnamed ones and those no pixel shows.
    matched, previous = [], -1
    for i in range(len(ours)):
        close = close_detections(
            their_boxes,
            their_scores,
            their_labels,
            (ours.boxes[i], ours.scores[i], ours.class_ids[i]),
            box_tolerance=0.05,
            score_tolerance=1e-4,
        )
        candidates = np.nonzero(close)[0]
        candidates = candidates[candidates > previous]
        assert candidates.size, (
            f"instance {i + 1} {ours.boxes[i]} has no torchvision detection after #{previous}"
        )
        previous = int(candidates[0])
        matched.append(previous)

    # Masks: >= 99% of pixels agree with torchvision's (approximate, whole-pixel) paste ...
    their_masks = theirs["masks"][:, 0] > engine.config.mask_threshold
    assert (ours.masks.numpy() == their_masks[matched].numpy()).mean() >= 0.99
    # ... and ours is the exact resampling of the same mask probabilities.
    # (our boxes for ours: they differ from torchvision's by float rounding, ~1e-3 px)
    boxes = theirs["boxes"].clone()
    boxes[matched] = torch.from_numpy(ours.boxes)
    probabilities = exact_paste(raw[0]["masks"][:, 0], boxes, H, W)
    exact = probabilities > engine.config.mask_threshold
    near_threshold = (probabilities[matched] - engine.config.mask_threshold).abs() < 1e-4
    assert not bool(((ours.masks != exact[matched]) & ~near_threshold).any())
    # The dropped named detections are exactly those the exact masks leave invisible, wherever that
    # is decided beyond float noise: random-weight boxes are often slivers under a pixel wide, whose
    # only pixel column is in or out depending on the box's last bits.
    candidates = np.nonzero(named)[0]

    def visible(delta: float, threshold: float) -> set[int]:
        grown = boxes[candidates] + torch.tensor([-delta, -delta, delta, delta], dtype=boxes.dtype)
        masks = exact_paste(raw[0]["masks"][candidates, 0], grown, H, W) > threshold
        shown = np.bincount(reference_paint(masks.numpy()).ravel(), minlength=len(candidates) + 1)[1:] > 0
        return set(candidates[shown].tolist())

    t = engine.config.mask_threshold
    variants = [
        visible(0.0, t),
        visible(0.01, t),
        visible(-0.01, t),
        visible(0.0, t - 1e-4),
        visible(0.0, t + 1e-4),
    ]
    decided = [j for j in candidates.tolist() if len({j in v for v in variants}) == 1]
    assert len(decided) >= 0.5 * len(candidates)
    assert [j for j in matched if j in decided] == [j for j in decided if j in variants[0]]


# ---- precision and CUDA -------------------------------------------------------------------------------
def test_half_precision_on_cpu_runs_fp32_with_a_warning(frames, caplog) -> None:
    name = "fcn_resnet50"
    torch.manual_seed(0)
    fp32 = SegmentationEngine(**engine_options(name))
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING, logger="segmentation_ros.engine.pipeline"):
        fp16 = SegmentationEngine(**engine_options(name, precision="fp16"))
    assert any("needs CUDA" in r.getMessage() for r in caplog.records)
    assert_same(fp16.segment(frames["rgb1"]), fp32.segment(frames["rgb1"]))


@pytest.fixture
def strict_fp32():
    """No TF32 while comparing CUDA with CPU: the check is about fp32 results."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _cuda_and_cpu_engines(name: str, **overrides: object) -> tuple[SegmentationEngine, SegmentationEngine]:
    torch.manual_seed(0)
    cpu = SegmentationEngine(**engine_options(name, **overrides))
    gpu = SegmentationEngine(**engine_options(name, device="cuda", **overrides))
    for a, b in ((cpu.semantic_model, gpu.semantic_model), (cpu.instance_model, gpu.instance_model)):
        if a is not None:
            b.module.load_state_dict(a.module.state_dict())  # the same random weights on both
    return cpu, gpu


@cuda_only
@pytest.mark.parametrize("name", ["deeplabv3_mobilenet_v3_large", "fcn_resnet50", "maskrcnn_resnet50_fpn"])
def test_cuda_matches_cpu(name: str, frames, strict_fp32) -> None:
    cpu_engine, gpu_engine = _cuda_and_cpu_engines(name)
    pairs = list(
        zip(
            cpu_engine([frames["rgb1"], frames["rgb2"]]),
            gpu_engine([frames["rgb1"], frames["rgb2"]]),
            strict=True,
        )
    )
    for cpu, gpu in pairs:
        if cpu.semantic is not None:
            check_semantic(gpu.semantic, (H, W))
            same = cpu.semantic.labels == gpu.semantic.labels
            assert same.mean() >= 0.995  # flips only where two classes all but tie
            diff = np.abs(cpu.semantic.confidence.astype(int) - gpu.semantic.confidence.astype(int))
            assert diff[same].max() <= 1
        if cpu.instances is not None:
            check_instances(gpu.instances, (H, W), gpu_engine.config.mask_threshold)
            a, b = cpu.instances, gpu.instances
            assert len(a) > 0
            # random-weight detections nearly tie, so match by content rather than by rank
            found = 0
            for i in range(len(a)):
                close = close_detections(
                    b.boxes,
                    b.scores,
                    b.class_ids,
                    (a.boxes[i], a.scores[i], a.class_ids[i]),
                    box_tolerance=0.1,
                    score_tolerance=1e-3,
                )
                if close.any():
                    j = int(np.nonzero(close)[0][0])
                    found += 1
                    assert (a.masks[i].numpy() == b.masks[j].cpu().numpy()).mean() >= 0.99
            assert found >= 0.8 * len(a)


@cuda_only
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_reduced_precision_keeps_shapes_and_ids(precision: str, frames) -> None:
    semantic, instance = PANOPTIC_MODELS
    torch.manual_seed(0)
    engine = SegmentationEngine(
        **engine_options(
            instance, task="panoptic", semantic_model=semantic, device="cuda", precision=precision
        )
    )
    for result in engine([frames["rgb1"], frames["rgb2"]]) + [engine.segment(frames["gray"])]:
        shape = (result.height, result.width)
        check_semantic(result.semantic, shape)
        check_instances(result.instances, shape, engine.config.mask_threshold)
        pan = result.panoptic
        assert pan.panoptic.shape == shape and pan.panoptic.dtype == np.int32
        assert sum(s.area for s in pan.segments) == int((pan.segment_ids > 0).sum())
        _, instance_part = decode_panoptic(pan.panoptic, pan.label_divisor)
        thing_pixels = np.isin(pan.segment_ids, [s.id for s in pan.segments if s.isthing])
        np.testing.assert_array_equal(result.instances.instance_ids, np.where(thing_pixels, instance_part, 0))
    engine.close()
