"""Colourised maps and overlays against a per-pixel reference written out plainly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segmentation_ros.engine.labels import get_label_set
from segmentation_ros.engine.results import InstanceResult, Segmentation, SemanticResult
from segmentation_ros.engine.visualize import (
    _INSTANCE_COLORS,
    colorize_instances,
    colorize_labels,
    colorize_panoptic,
    overlay,
)

H, W = 37, 53


def _reference_colors(ids: np.ndarray, color_of) -> np.ndarray:
    out = np.zeros((*ids.shape, 3), np.uint8)
    for value in np.unique(ids):
        out[ids == value] = color_of(int(value))
    return out


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_colorize_labels_is_the_class_colour_and_black_for_unknown_ids(dtype) -> None:
    voc = get_label_set("voc")  # 21 classes
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 30, (H, W)).astype(dtype)  # 21..29 are not classes
    labels[0, 0] = 255 if dtype == np.uint8 else 4000
    table = voc.color_table

    def color_of(c: int) -> np.ndarray:
        return table[c] if c < len(table) else np.zeros(3, np.uint8)

    got = colorize_labels(labels, voc)
    assert got.shape == (H, W, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, _reference_colors(labels, color_of))
    assert (got[labels >= 21] == 0).all() and got[labels == 15].any()  # 15: person, not black


def test_colorize_instances_distinct_ids_distinct_colours_zero_black() -> None:
    ids = np.arange(H * W, dtype=np.uint16).reshape(H, W) % 300  # ids past the palette's 255 wrap
    got = colorize_instances(ids)
    expected = _reference_colors(ids, lambda i: _INSTANCE_COLORS[(i - 1) % len(_INSTANCE_COLORS)] if i else 0)
    np.testing.assert_array_equal(got, expected)
    first = {tuple(got[ids == i][0]) for i in range(1, 256)}
    assert len(first) == 255 and (0, 0, 0) not in first


def _semantic(labels: np.ndarray) -> Segmentation:
    voc = get_label_set("voc")
    return Segmentation(
        H, W, semantic=SemanticResult(labels=labels, confidence=np.zeros_like(labels), label_set=voc)
    )


def test_overlay_blends_painted_pixels_only_and_keeps_the_rest() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    labels = rng.integers(0, 21, (H, W)).astype(np.uint8)  # 0 = background = void: not painted
    out = overlay(image, _semantic(labels), alpha=0.25)
    colors = colorize_labels(labels, get_label_set("voc")).astype(np.float64)
    painted = labels != 0
    expected = 0.75 * image.astype(np.float64) + 0.25 * colors
    assert np.abs(out[painted].astype(np.float64) - expected[painted]).max() <= 1.0
    np.testing.assert_array_equal(out[~painted], image[~painted])
    assert painted.any() and (~painted).any()


def test_overlay_accepts_gray_and_non_contiguous_images() -> None:
    rng = np.random.default_rng(2)
    bgr = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    labels = np.zeros((H, W), np.uint8)  # nothing painted: the image comes back unchanged
    np.testing.assert_array_equal(overlay(bgr[:, :, ::-1], _semantic(labels)), bgr[:, :, ::-1])
    gray = bgr[:, :, 0]
    np.testing.assert_array_equal(overlay(gray, _semantic(labels)), np.repeat(gray[..., None], 3, axis=2))


def test_overlay_of_instances_draws_boxes_over_the_blend() -> None:
    ids = np.zeros((H, W), np.uint16)
    ids[5:20, 10:30] = 1
    instances = InstanceResult(
        ids=np.array([1], np.int32),
        class_ids=np.array([15], np.int64),
        scores=np.array([0.9], np.float32),
        boxes=np.array([[10, 5, 30, 20]], np.float32),
        masks=torch.from_numpy(ids[None] > 0),
        instance_ids=ids,
        label_set=get_label_set("voc"),
    )
    image = np.full((H, W, 3), 128, np.uint8)
    out = overlay(image, Segmentation(H, W, instances=instances))
    assert out.shape == (H, W, 3)
    assert (out[12, 20] != 128).any()  # inside the mask: blended with the instance colour
    np.testing.assert_array_equal(out[H - 1, W - 1], [128, 128, 128])  # far from the box: untouched


def test_overlay_with_precomputed_colors_is_the_same_picture() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    labels = rng.integers(0, 21, (H, W)).astype(np.uint8)
    result = _semantic(labels)
    made_here = overlay(image, result)
    np.testing.assert_array_equal(
        overlay(image, result, colors=colorize_labels(labels, get_label_set("voc"))), made_here
    )


def test_colorize_panoptic_class_colour_shifted_per_instance() -> None:
    """Each pixel: its segment's class colour, shifted by ``(instance * 37) % 96 - 48`` for things
    (clipped to 0..255), black for void; computed here per pixel from the encoded map."""
    from segmentation_ros.engine.panoptic import Segment
    from segmentation_ros.engine.results import PanopticResult

    coco = get_label_set("coco")
    divisor = 1000
    rng = np.random.default_rng(4)
    segments = [
        Segment(id=1, class_id=1, isthing=True, area=0, bbox=(0, 0, 0, 0), score=0.9, instance_id=1),
        Segment(id=2, class_id=1, isthing=True, area=0, bbox=(0, 0, 0, 0), score=0.8, instance_id=2),
        Segment(id=3, class_id=3, isthing=True, area=0, bbox=(0, 0, 0, 0), score=0.7, instance_id=3),
        Segment(id=4, class_id=13, isthing=False, area=0, bbox=(0, 0, 0, 0), score=1.0, instance_id=0),
    ]
    segment_ids = rng.integers(0, 5, (H, W)).astype(np.int32)
    lookup = {0: 0, **{s.id: s.class_id * divisor + s.instance_id for s in segments}}
    encoded = np.vectorize(lookup.get)(segment_ids).astype(np.int32)
    result = PanopticResult(
        segment_ids=segment_ids, panoptic=encoded, segments=segments, label_set=coco, label_divisor=divisor
    )

    classes, instances = encoded // divisor, encoded % divisor
    reference = coco.color_table[classes].astype(np.int16)
    reference = np.where(
        (instances > 0)[..., None], reference + ((instances * 37) % 96 - 48)[..., None], reference
    )
    reference = np.where((segment_ids == 0)[..., None], 0, np.clip(reference, 0, 255)).astype(np.uint8)
    got = colorize_panoptic(result)
    np.testing.assert_array_equal(got, reference)
    assert not np.array_equal(got[segment_ids == 1][0], got[segment_ids == 2][0])  # two persons differ


# ---- captions: a dark chip behind white letters, legible on any picture ----------------------------
def _assert_legible_caption(picture: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The caption is where ``picture`` differs from ``reference`` (the same picture without it): its
    bounding box must be a chip of one dark colour (its 1-pixel rim uniform) with light letters
    inside. Returns the chip's colour."""
    rows, cols = np.nonzero((picture != reference).any(axis=2))
    assert len(rows), "no caption drawn"
    chip = picture[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].astype(np.int16)
    assert chip.shape[0] >= 8 and chip.shape[1] >= 8, chip.shape
    rim = np.concatenate([chip[0], chip[-1], chip[:, 0], chip[:, -1]])
    assert (rim == rim[0]).all(), "the caption's background is not one uniform colour"
    assert rim[0].max() < 80, f"the caption's background {rim[0]} is not dark"
    assert int(chip.max()) - int(chip.min()) > 150, "letters and their background are too alike"
    assert (chip.min(axis=2) > 150).sum() >= 8, "too few light letter pixels"
    return rim[0]


@pytest.mark.parametrize("title", ["input", "3D, from above"])
def test_side_by_side_titles_are_legible_on_black_grey_and_white_panels(title) -> None:
    from segmentation_ros.engine.visualize import side_by_side

    chips = []
    for value in (0, 128, 255):
        panel = np.full((60, 120, 3), value, np.uint8)
        picture = side_by_side([panel, panel], [title, title])
        assert picture.shape == (60, 2 * 120 + 4, 3)
        chips.append(_assert_legible_caption(picture[:, :120], panel))
        np.testing.assert_array_equal(picture[:, 124:], picture[:, :120])  # every panel the same way
    assert all((c == chips[0]).all() for c in chips), "the caption's look depends on the picture"


@pytest.mark.parametrize("top", [30, 1])  # room above the box for the label, and none: inside the box
def test_overlay_box_labels_are_legible_on_black_and_white_images(top) -> None:
    import cv2

    from segmentation_ros.engine.visualize import instance_color

    height, width, box = 80, 120, (20, top, 100, top + 30)
    instances = InstanceResult(
        ids=np.array([3], np.int32),
        class_ids=np.array([15], np.int64),
        scores=np.array([0.9], np.float32),
        boxes=np.array([box], np.float32),
        masks=torch.zeros((1, height, width), dtype=torch.bool),  # nothing painted: only the box and label
        instance_ids=np.zeros((height, width), np.uint16),
        label_set=get_label_set("voc"),
    )
    for value in (0, 255):
        image = np.full((height, width, 3), value, np.uint8)
        reference = image.copy()
        cv2.rectangle(reference, box[:2], box[2:], instance_color(3), 1, cv2.LINE_AA)
        _assert_legible_caption(overlay(image, Segmentation(height, width, instances=instances)), reference)


def test_top_view_ids_are_legible(monkeypatch) -> None:
    from segmentation_ros.engine import visualize

    xyz = np.zeros((0, 3), np.float32)
    colors = np.zeros((0, 3), np.uint8)
    boxes = [(7, np.array([0.0, 0.0, 2.0]), np.array([1.0, 1.0, 1.0]))]
    picture = visualize.top_view(xyz, colors, boxes, (120, 160), max_range=4.0)
    monkeypatch.setattr(visualize, "_draw_caption", lambda *args, **kwargs: None)
    _assert_legible_caption(picture, visualize.top_view(xyz, colors, boxes, (120, 160), max_range=4.0))
