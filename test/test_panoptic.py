"""Panoptic fusion, encodings and label-space mapping on hand-made inputs with known answers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segmentation_ros.engine import panoptic
from segmentation_ros.engine.labels import LabelClass, LabelSet, get_label_set
from segmentation_ros.engine.panoptic import (
    decode_panoptic,
    encode_panoptic,
    fuse_panoptic,
    id_to_rgb,
    rgb_to_id,
)
from segmentation_ros.engine.pipeline import panoptic_label_space

H, W = 10, 12
# Semantic model classes: 0 void, 1 road (stuff), 2 car (a thing: left to the instance model),
# 3 sky (stuff). Panoptic ids: road -> 21, sky -> 7.
STUFF_MAP = torch.tensor([-1, 21, -1, 7])


def rows(y0: int, y1: int, x0: int = 0, x1: int = W) -> torch.Tensor:
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    return mask


def fuse(semantic, masks, scores, classes, **kwargs):
    masks = torch.stack(masks) if masks else torch.zeros(0, H, W, dtype=torch.bool)
    return fuse_panoptic(
        semantic,
        masks,
        torch.tensor(scores, dtype=torch.float32),
        torch.tensor(classes, dtype=torch.int64),
        STUFF_MAP,
        **kwargs,
    )


def segment_by_id(fusion, segment_id):
    (segment,) = [s for s in fusion.segments if s.id == segment_id]
    return segment


def test_overlap_threshold_drops_covered_and_trims_partly_covered_instances() -> None:
    semantic = torch.zeros(H, W, dtype=torch.int64)
    a = rows(0, 5)  # score 0.9: claims rows 0-4
    b = rows(0, 6, 0, 6)  # score 0.8: 30 of 36 px under a (83%) -> dropped
    c = rows(4, 8)  # score 0.7: 12 of 48 px under a (25%) -> keeps rows 5-7 only
    fusion = fuse(
        semantic, [c, a, b], [0.7, 0.9, 0.8], [3, 5, 4], overlap_threshold=0.5, stuff_area_threshold=1
    )

    assert fusion.kept.tolist() == [1, 0]  # input indices, in score order
    expected = torch.zeros(H, W, dtype=torch.int32)
    expected[a] = 1
    expected[rows(5, 8)] = 2
    assert torch.equal(fusion.instance_ids, expected)
    assert torch.equal(fusion.segment_ids, expected)  # semantic is all void: no stuff
    assert [(s.id, s.class_id, s.isthing, s.instance_id) for s in fusion.segments] == [
        (1, 5, True, 1),
        (2, 3, True, 2),
    ]
    assert segment_by_id(fusion, 1).area == 5 * W and segment_by_id(fusion, 2).area == 3 * W
    assert segment_by_id(fusion, 2).score == pytest.approx(0.7)


def test_overlap_threshold_is_inclusive_and_respected_exactly() -> None:
    semantic = torch.zeros(H, W, dtype=torch.int64)
    a = rows(0, 4)
    half = rows(2, 6)  # exactly half of it under a
    kept = fuse(semantic, [a, half], [0.9, 0.8], [1, 1], overlap_threshold=0.5)
    assert kept.kept.tolist() == [0, 1]
    dropped = fuse(semantic, [a, half], [0.9, 0.8], [1, 1], overlap_threshold=0.49)
    assert dropped.kept.tolist() == [0]
    assert int((dropped.segment_ids == 2).sum()) == 0


def test_fully_covered_instance_is_dropped_even_with_overlap_threshold_one() -> None:
    """An instance with no unclaimed pixel left would be an empty segment."""
    semantic = torch.zeros(H, W, dtype=torch.int64)
    fusion = fuse(semantic, [rows(0, 6), rows(1, 3)], [0.9, 0.8], [1, 2], overlap_threshold=1.0)
    assert fusion.kept.tolist() == [0]
    assert len(fusion.segments) == 1


def test_score_threshold() -> None:
    semantic = torch.full((H, W), 1, dtype=torch.int64)  # road everywhere
    masks, scores = [rows(0, 3), rows(5, 8)], [0.9, 0.4]
    low = fuse(semantic, masks, scores, [5, 6], score_threshold=0.5, stuff_area_threshold=1)
    assert low.kept.tolist() == [0]
    # the dropped instance's pixels are road again
    road = [s for s in low.segments if not s.isthing]
    assert [s.class_id for s in road] == [21] and road[0].area == H * W - 3 * W
    inclusive = fuse(semantic, masks, scores, [5, 6], score_threshold=0.4, stuff_area_threshold=1)
    assert inclusive.kept.tolist() == [0, 1]


def test_stuff_area_counts_only_unclaimed_pixels() -> None:
    semantic = torch.zeros(H, W, dtype=torch.int64)
    semantic[4:10] = 1  # road: 6 rows, 4 of them under the instance below
    instance = rows(2, 8)
    free_road = 2 * W  # rows 8-9
    kept = fuse(semantic, [instance], [0.9], [5], stuff_area_threshold=free_road)
    assert [s.class_id for s in kept.segments] == [5, 21]
    assert segment_by_id(kept, 2).area == free_road
    dropped = fuse(semantic, [instance], [0.9], [5], stuff_area_threshold=free_road + 1)
    assert [s.class_id for s in dropped.segments] == [5]
    assert int((dropped.segment_ids[8:] != 0).sum()) == 0  # too small: void, not another segment


def test_void_and_semantic_things_stay_void() -> None:
    semantic = torch.zeros(H, W, dtype=torch.int64)
    semantic[:, 6:] = 2  # "car" in the semantic map, but no instance claims it
    semantic[8:, :6] = 3  # sky
    fusion = fuse(semantic, [], [], [], stuff_area_threshold=1)
    assert [(s.id, s.class_id, s.isthing) for s in fusion.segments] == [(1, 7, False)]
    assert torch.equal(fusion.segment_ids, (semantic == 3).to(torch.int32))
    assert fusion.kept.numel() == 0
    assert int(fusion.instance_ids.abs().sum()) == 0
    encoded = encode_panoptic(fusion.segment_ids, fusion.segments, 1000)
    assert int(encoded[semantic != 3].abs().sum()) == 0


def test_segments_things_first_then_stuff_in_semantic_class_order() -> None:
    semantic = torch.zeros(H, W, dtype=torch.int64)
    semantic[0:3] = 3  # sky (panoptic 7)
    semantic[7:10] = 1  # road (panoptic 21)
    fusion = fuse(semantic, [rows(4, 6), rows(3, 4)], [0.6, 0.95], [8, 9], stuff_area_threshold=1)
    assert [(s.id, s.class_id, s.isthing) for s in fusion.segments] == [
        (1, 9, True),
        (2, 8, True),
        (3, 21, False),  # semantic class 1 before semantic class 3
        (4, 7, False),
    ]
    assert [s.instance_id for s in fusion.segments] == [1, 2, 0, 0]


def test_segment_bbox_area_and_scores() -> None:
    semantic = torch.zeros(H, W, dtype=torch.int64)
    semantic[6:9, 2:11] = 1
    thing = torch.zeros(H, W, dtype=torch.bool)
    thing[1:4, 3:5] = True
    thing[2, 7] = True  # not connected: the box spans both parts
    confidence = torch.rand(H, W, generator=torch.Generator().manual_seed(0))
    fusion = fuse(semantic, [thing], [0.8], [5], stuff_area_threshold=1, semantic_confidence=confidence)
    ids = fusion.segment_ids.numpy()
    assert sum(s.area for s in fusion.segments) == int((ids > 0).sum())
    for s in fusion.segments:
        ys, xs = np.nonzero(ids == s.id)
        assert s.area == ys.size
        assert s.bbox == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    assert segment_by_id(fusion, 1).bbox == (3, 1, 5, 3)
    assert segment_by_id(fusion, 2).bbox == (2, 6, 9, 3)
    assert segment_by_id(fusion, 2).score == pytest.approx(float(confidence[6:9, 2:11].mean()), rel=1e-5)
    # uint8 confidence (the engine's) is read as 0..255
    as_bytes = (confidence * 255).round().to(torch.uint8)
    fused = fuse(semantic, [thing], [0.8], [5], stuff_area_threshold=1, semantic_confidence=as_bytes)
    assert segment_by_id(fused, 2).score == pytest.approx(
        float(as_bytes[6:9, 2:11].float().mean() / 255), rel=1e-5
    )
    assert segment_by_id(fuse(semantic, [thing], [0.8], [5], stuff_area_threshold=1), 2).score == 1.0


def test_fusion_rejects_bad_arguments() -> None:
    semantic = torch.zeros(H, W, dtype=torch.int64)
    with pytest.raises(ValueError, match="masks must be"):
        fuse_panoptic(
            semantic,
            torch.zeros(1, H, W + 1, dtype=torch.bool),
            torch.ones(1),
            torch.ones(1).long(),
            STUFF_MAP,
        )
    with pytest.raises(ValueError, match="overlap_threshold"):
        fuse(semantic, [rows(0, 2)], [0.9], [1], overlap_threshold=1.5)


# ---- encodings --------------------------------------------------------------------------------------
def test_encode_decode_round_trip() -> None:
    semantic = torch.zeros(H, W, dtype=torch.int64)
    semantic[7:] = 1
    fusion = fuse(semantic, [rows(0, 3), rows(3, 5, 0, 4)], [0.9, 0.7], [17, 90], stuff_area_threshold=1)
    divisor = 1000
    encoded = encode_panoptic(fusion.segment_ids, fusion.segments, divisor)
    assert encoded.dtype == torch.int32 and encoded.shape == (H, W)
    classes, instances = decode_panoptic(encoded.numpy(), divisor)
    ids = fusion.segment_ids.numpy()
    for s in fusion.segments:
        inside = ids == s.id
        assert (classes[inside] == s.class_id).all() and (instances[inside] == s.instance_id).all()
    assert (encoded.numpy()[ids == 0] == 0).all()
    np.testing.assert_array_equal(classes * divisor + instances, encoded.numpy())


def test_encode_rejects_ids_that_do_not_fit() -> None:
    segment_ids = torch.ones(2, 2, dtype=torch.int32)
    fusion = fuse_panoptic(
        torch.zeros(2, 2, dtype=torch.int64),
        torch.ones(1, 2, 2, dtype=torch.bool),
        torch.ones(1),
        torch.tensor([3]),
        STUFF_MAP,
    )
    with pytest.raises(ValueError, match="label_divisor"):
        encode_panoptic(segment_ids, fusion.segments, 1)  # instance id 1 does not fit divisor 1
    big = [dataclasses.replace(fusion.segments[0], class_id=3_000_000)]
    with pytest.raises(ValueError, match="overflow"):
        encode_panoptic(segment_ids, big, 1000)


def test_id_to_rgb_round_trip_and_coco_convention() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 256**3, (17, 23))
    rgb = id_to_rgb(ids)
    assert rgb.dtype == np.uint8 and rgb.shape == (17, 23, 3)
    np.testing.assert_array_equal(rgb_to_id(rgb), ids)
    # COCO panoptic: id = R + 256 G + 256^2 B
    np.testing.assert_array_equal(id_to_rgb(np.array([[1, 256, 65536]])), [[[1, 0, 0], [0, 1, 0], [0, 0, 1]]])
    with pytest.raises(ValueError):
        id_to_rgb(np.array([256**3]))
    with pytest.raises(ValueError):
        id_to_rgb(np.array([-1]))


# ---- panoptic label space ---------------------------------------------------------------------------
def test_label_space_of_one_shared_set_is_the_identity() -> None:
    shapes = get_label_set("shapes")
    labels, thing_map, stuff_map = panoptic_label_space(shapes, shapes)
    assert [(c.id, c.name, c.isthing) for c in labels.classes] == [
        (c.id, c.name, c.isthing) for c in shapes.classes
    ]
    assert labels.void_id == shapes.void_id
    for c in shapes.classes:
        is_thing = c.isthing and c.id != shapes.void_id
        is_stuff = not c.isthing and c.id != shapes.void_id
        assert int(thing_map[c.id]) == (c.id if is_thing else -1)
        assert int(stuff_map[c.id]) == (c.id if is_stuff else -1)


def test_label_space_coco_things_with_voc_semantics_has_no_stuff() -> None:
    coco, voc = get_label_set("coco"), get_label_set("voc")
    labels, thing_map, stuff_map = panoptic_label_space(voc, coco)
    assert labels.thing_ids == coco.thing_ids
    assert labels.stuff_ids == []
    assert thing_map.shape == (coco.num_classes,) and stuff_map.shape == (voc.num_classes,)
    assert bool((stuff_map == -1).all())
    for cid in range(coco.num_classes):
        assert int(thing_map[cid]) == (cid if cid in coco.thing_ids else -1)  # void and N/A gaps: -1
    assert labels.void_id == 0


def test_label_space_moves_stuff_ids_that_collide_with_things() -> None:
    def cls(cid, name, isthing):
        return LabelClass(cid, name, (cid, cid, cid), isthing)

    instance = LabelSet("things", (cls(0, "void", False), cls(1, "car", True), cls(2, "person", True)))
    semantic = LabelSet(
        "scene",
        (
            cls(0, "void", False),
            cls(1, "road", False),
            cls(2, "person", True),
            cls(4, "sky", False),
            cls(9, "water", False),
        ),
    )
    labels, thing_map, stuff_map = panoptic_label_space(semantic, instance)
    by_name = {c.name: c for c in labels.classes}
    assert by_name["car"].id == 1 and by_name["person"].id == 2 and by_name["person"].isthing
    assert by_name["sky"].id == 4 and by_name["water"].id == 9  # no collision: ids kept
    assert by_name["road"].id not in (0, 1, 2, 4, 9)  # collided with "car": moved to a free id
    assert not any(by_name[n].isthing for n in ("road", "sky", "water"))
    assert len({c.id for c in labels.classes}) == len(labels.classes) == 6
    assert [int(v) for v in stuff_map] == [-1, by_name["road"].id, -1, -1, 4, -1, -1, -1, -1, 9]
    assert [int(v) for v in thing_map] == [-1, 1, 2]
    assert labels.name == "things+scene"


@pytest.mark.parametrize("seed", range(4))
def test_cpu_region_claiming_equals_the_device_loop(seed: int) -> None:
    """The CPU fusion claims pixels inside each mask's rows and columns only; the device loop works
    on whole images. Same greedy rule, so the same owners and the same kept instances."""
    from segmentation_ros.engine.panoptic import _claim, _claim_in_regions

    g = torch.Generator().manual_seed(seed)
    n, height, width = 30, 48, 64
    masks = torch.zeros(n, height, width, dtype=torch.bool)
    for k in range(n - 2):  # random blobs, many overlapping; the last two masks stay empty
        y, x = int(torch.randint(0, height - 8, (1,), generator=g)), int(torch.randint(0, width - 8, (1,), generator=g))
        h, w = int(torch.randint(2, 30, (1,), generator=g)), int(torch.randint(2, 40, (1,), generator=g))
        masks[k, y : y + h, x : x + w] = torch.rand(min(h, height - y), min(w, width - x), generator=g) < 0.8
    scores = torch.rand(n, generator=g)
    scores[3] = scores[5]  # a tie: the stable sort decides
    order = torch.argsort(scores, descending=True, stable=True)
    eligible = scores[order] >= 0.2
    for overlap in (0.0, 0.3, 0.7, 1.0):
        claimed, keep = _claim_in_regions(masks, order, eligible, overlap)
        reference_claimed, reference_keep = _claim(masks[order], eligible, overlap)
        assert torch.equal(keep, reference_keep)
        assert torch.equal(claimed, reference_claimed)
        assert 0 < int(keep.sum()) < n


# ---- thresholds decided exactly, the same on both claiming paths ----------------------------------
def _device_claiming(masks, order, *rest):
    """In place of the CPU's _claim_in_regions: the device path's _claim, same arguments."""
    return panoptic._claim(masks[order], *rest)


@pytest.fixture(params=["cpu", "device"])
def claiming_path(request, monkeypatch: pytest.MonkeyPatch) -> str:
    """fuse_panoptic on the CPU claims per mask region; "device" swaps in the device path's
    whole-image loop (plain torch, so it runs here) for the same call."""
    if request.param == "device":
        monkeypatch.setattr(panoptic, "_claim_in_regions", _device_claiming)
    return request.param


def _float32_around(threshold: float) -> list[float]:
    """float32(threshold) and its two float32 neighbours, as Python floats (exact)."""
    at = np.float32(threshold)
    return [float(v) for v in (np.nextafter(at, np.float32(-1)), at, np.nextafter(at, np.float32(2)))]


def test_score_threshold_is_decided_in_float64(claiming_path: str) -> None:
    """Every two-digit threshold against the float32 scores that straddle it: a score s passes when
    float64(s) >= t. (Compared in float32, 0.69999998808 = float32(0.7) passed 0.7.)"""
    semantic = torch.zeros(H, W, dtype=torch.int64)
    for j in range(0, 101):
        threshold = j / 100
        scores = _float32_around(threshold)
        masks = [rows(0, 3), rows(3, 6), rows(6, 9)]
        fusion = fuse(semantic, masks, scores, [1, 2, 3], score_threshold=threshold)
        expected = sorted((i for i, s in enumerate(scores) if s >= threshold), key=lambda i: -scores[i])
        assert fusion.kept.tolist() == expected, f"threshold {threshold}, scores {scores}"


@settings(derandomize=True, max_examples=150, deadline=None)
@given(score=st.floats(0.0, 1.0, width=32), threshold=st.floats(0.0, 1.0))
def test_score_threshold_matches_float64_for_any_score(score: float, threshold: float) -> None:
    semantic = torch.zeros(H, W, dtype=torch.int64)
    for path in ("cpu", "device"):
        with pytest.MonkeyPatch.context() as patch:
            if path == "device":
                patch.setattr(panoptic, "_claim_in_regions", _device_claiming)
            fusion = fuse(semantic, [rows(0, 3)], [score], [1], score_threshold=threshold)
        assert fusion.kept.tolist() == ([0] if score >= threshold else []), path


def test_overlap_threshold_is_the_float64_fraction(claiming_path: str) -> None:
    """Every fraction k/100 against the two-digit thresholds next to it: an instance of 100 pixels
    with k of them already claimed is kept exactly when k / 100 <= t, that is k <= j for t = j / 100
    (and k < 100: it must keep a pixel). ``claimed <= t * area`` rounded 0.29 * 100 below 29 on the
    CPU and computed in float32 on the device: each dropped some instances claimed at exactly t.

    Each pair in its own 10x10 block: instance B_k (all 100 pixels, score 0.5) under instance A_k
    (its first k pixels, score 0.9)."""
    semantic = torch.zeros(10, 30, dtype=torch.int64)
    for j in range(101):
        threshold = j / 100
        fractions = [k for k in (j - 1, j, j + 1) if 0 <= k <= 100]
        masks = torch.zeros(2 * len(fractions), 10, 30, dtype=torch.bool)
        for n, k in enumerate(fractions):
            masks[n, :, 10 * n : 10 * n + 10] = (torch.arange(100) < k).view(10, 10)  # A_k
            masks[len(fractions) + n, :, 10 * n : 10 * n + 10] = True  # B_k
        scores = torch.tensor([0.9] * len(fractions) + [0.5] * len(fractions))
        classes = torch.ones(len(scores), dtype=torch.int64)
        fusion = fuse_panoptic(semantic, masks, scores, classes, STUFF_MAP, overlap_threshold=threshold)
        kept = set(fusion.kept.tolist())
        got = [k for n, k in enumerate(fractions) if len(fractions) + n in kept]
        assert got == [k for k in fractions if k <= j and k < 100], f"threshold {threshold}"
        assert [k for n, k in enumerate(fractions) if n in kept] == [k for k in fractions if k > 0]
