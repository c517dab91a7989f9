"""Pictures for people: colourised label maps and overlays with boxes and class names.

Everything takes and returns RGB uint8 numpy arrays at the input's resolution. These run for every
frame that rviz watches, so the per-pixel work is OpenCV's (table lookups and a saturating blend,
SIMD and one pass each) rather than numpy expressions with full-size temporaries.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from segmentation_ros.engine.labels import LabelSet, palette
from segmentation_ros.engine.results import PanopticResult, Segmentation

__all__ = [
    "colorize_labels",
    "colorize_instances",
    "colorize_panoptic",
    "instance_color",
    "overlay",
    "point_colors",
    "side_by_side",
    "top_view",
]

_INSTANCE_COLORS = palette(256)[1:]  # distinct, deterministic; 0 stays black
# Colour of every uint16 instance id: 0 black, then the palette repeating.
_INSTANCE_TABLE = np.concatenate([np.zeros((1, 3), np.uint8), np.resize(_INSTANCE_COLORS, (65535, 3))])
_CAPTION_FONT = cv2.FONT_HERSHEY_SIMPLEX
# Captions sit on an opaque chip of this colour (white letters): legible on any image, dark or light.
_CAPTION_BACKGROUND = (24, 24, 24)


def _color_lookup(ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(H, W) non-negative ids -> (H, W, 3) rows of ``table``; ids past its end are black."""
    if ids.dtype == np.uint8:  # OpenCV's LUT: a 256-entry table per channel
        lut = np.zeros((256, 1, 3), np.uint8)
        lut[: min(len(table), 256), 0] = table[:256]
        return cv2.LUT(cv2.cvtColor(np.ascontiguousarray(ids), cv2.COLOR_GRAY2RGB), lut)
    black = np.concatenate([table, np.zeros((1, 3), np.uint8)])  # "clip" sends every larger id here
    return np.take(black, ids, axis=0, mode="clip")


def colorize_labels(labels: np.ndarray, label_set: LabelSet) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 class colours (unknown ids black)."""
    return _color_lookup(labels, label_set.color_table)


def colorize_instances(instance_ids: np.ndarray) -> np.ndarray:
    """(H, W) instance ids -> (H, W, 3) uint8, a distinct colour per id, black for 0."""
    return _color_lookup(instance_ids, _INSTANCE_TABLE)


def colorize_panoptic(panoptic: PanopticResult) -> np.ndarray:
    """A panoptic result -> (H, W, 3) RGB: stuff in its class colour, each thing instance shifted.

    One colour per segment, then one table lookup over the segment-id map (void black).
    """
    table = np.zeros((len(panoptic.segments) + 1, 3), np.uint8)
    colors = panoptic.label_set.color_table
    for s in panoptic.segments:
        color = colors[s.class_id].astype(np.int16) if s.class_id < len(colors) else np.zeros(3, np.int16)
        if s.instance_id > 0:  # same class, different instances differ
            color = color + ((s.instance_id * 37) % 96 - 48)
        table[s.id] = np.clip(color, 0, 255)
    ids = panoptic.segment_ids
    return _color_lookup(ids.astype(np.uint8) if len(table) <= 256 else ids, table)  # every id < len(table)


def overlay(
    image: np.ndarray, result: Segmentation, alpha: float = 0.5, colors: np.ndarray | None = None
) -> np.ndarray:
    """The camera image blended with the most specific result, boxes and names drawn on top.

    Args:
        image: (H, W, 3) uint8 RGB, or (H, W) grayscale.
        result: the frame's :class:`Segmentation`.
        alpha: weight of the colours.
        colors: the colourised map of that result (panoptic, else instances, else semantic), when
            the caller has already made it (the node's colour topics); made here otherwise.
    """
    base = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else np.ascontiguousarray(image)
    if result.panoptic is not None:
        colors = colorize_panoptic(result.panoptic) if colors is None else colors
        painted = result.panoptic.segment_ids > 0
    elif result.instances is not None:
        colors = colorize_instances(result.instances.instance_ids) if colors is None else colors
        painted = result.instances.instance_ids > 0
    elif result.semantic is not None:
        sem = result.semantic
        colors = colorize_labels(sem.labels, sem.label_set) if colors is None else colors
        painted = sem.labels != (sem.label_set.void_id if sem.label_set.void_id is not None else -1)
    else:
        return base.copy()
    out = base.copy()
    cv2.copyTo(cv2.addWeighted(base, 1 - alpha, colors, alpha, 0), painted.view(np.uint8), out)
    if result.instances is not None:
        _draw_boxes(out, result)
    return out


def instance_color(instance_id: int) -> tuple[int, int, int]:
    """The RGB colour of instance ``instance_id`` (>= 1) in every picture: its box, its id-map
    colour, its 3D marker."""
    return tuple(int(v) for v in _INSTANCE_TABLE[(int(instance_id) - 1) % 65535 + 1])


@functools.cache
def _caption_line(scale: float) -> tuple[int, int]:
    """Height and baseline of a line of captions at ``scale``: one height for every caption,
    descenders or not, so titles in a row line up (measured once per scale, not per caption)."""
    (_, height), baseline = cv2.getTextSize("Agy", _CAPTION_FONT, scale, 1)
    return height, baseline


def _draw_caption(
    canvas: np.ndarray, text: str, x: int, y: int, scale: float, *, above: bool = False
) -> None:
    """Draw ``text`` in place on ``canvas`` as a label chip: white letters on an opaque near-black box
    sized by ``cv2.getTextSize``, so it reads the same on any background.

    Args:
        canvas: (H, W, 3) uint8 RGB, drawn on in place.
        text: the caption.
        x, y: the chip's top-left corner; with ``above``, the point its bottom-left corner sits on
            (a box's top-left corner), falling back to below that point where the chip would leave the
            top of the canvas. The chip is shifted inside the canvas where it would cross an edge.
        scale: font scale of ``cv2.FONT_HERSHEY_SIMPLEX``.
    """
    (text_width, text_height), baseline = cv2.getTextSize(text, _CAPTION_FONT, scale, 1)
    line_height, line_baseline = _caption_line(scale)
    text_height, baseline = max(text_height, line_height), max(baseline, line_baseline)
    pad = 2
    width, height = text_width + 2 * pad, text_height + baseline + 2 * pad
    if above:
        y = y - height if y - height >= 0 else y
    x = min(max(int(x), 0), max(canvas.shape[1] - width, 0))
    y = min(max(int(y), 0), max(canvas.shape[0] - height, 0))
    cv2.rectangle(canvas, (x, y), (x + width - 1, y + height - 1), _CAPTION_BACKGROUND, cv2.FILLED)
    cv2.putText(
        canvas, text, (x + pad, y + pad + text_height), _CAPTION_FONT, scale, (255, 255, 255), 1, cv2.LINE_AA
    )


def _draw_boxes(canvas: np.ndarray, result: Segmentation) -> None:
    inst = result.instances
    assert inst is not None
    scale = max(0.35, min(canvas.shape[:2]) / 900)
    for i, c, s, box in zip(inst.ids, inst.class_ids, inst.scores, inst.boxes, strict=True):
        color = instance_color(i)
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, 1, cv2.LINE_AA)
        _draw_caption(
            canvas, f"{int(i)} {inst.label_set.name_of(int(c))} {float(s):.2f}", x1, y1, scale, above=True
        )


def side_by_side(panels: list[np.ndarray], titles: list[str] | None = None, gap: int = 4) -> np.ndarray:
    """Concatenate same-height RGB panels horizontally with optional titles (for figures)."""
    height = max(p.shape[0] for p in panels)
    row = []
    for k, panel in enumerate(panels):
        panel = np.repeat(panel[..., None], 3, axis=2) if panel.ndim == 2 else panel
        canvas = np.full((height, panel.shape[1], 3), 255, np.uint8)
        canvas[: panel.shape[0]] = panel
        if titles:
            _draw_caption(canvas, titles[k], 0, 0, 0.45)
        row.append(canvas)
        row.append(np.full((height, gap, 3), 255, np.uint8))
    return np.concatenate(row[:-1], axis=1)


def point_colors(labels: np.ndarray, instances: np.ndarray, label_set: LabelSet) -> np.ndarray:
    """(P,) class ids and instance ids of points -> (P, 3) uint8: the instance's colour where the
    point has one (as in ``instances/ids`` pictures and boxes), else its class colour."""
    table = label_set.color_table
    by_class = (
        table[np.minimum(labels, len(table) - 1)] if len(table) else np.zeros((len(labels), 3), np.uint8)
    )
    by_instance = _INSTANCE_TABLE[np.minimum(instances, len(_INSTANCE_TABLE) - 1)]
    return np.where((instances > 0)[:, None], by_instance, by_class).astype(np.uint8)


def top_view(
    xyz: np.ndarray,
    colors: np.ndarray,
    boxes: list[tuple[int, np.ndarray, np.ndarray]],
    size: tuple[int, int],
    max_range: float | None = None,
) -> np.ndarray:
    """A bird's-eye picture of optical-frame points (x right, z forward: up in the picture).

    Args:
        xyz: (P, 3) points in metres.
        colors: (P, 3) uint8 RGB per point.
        boxes: (instance id, centre (3,), size (3,)) per 3D object: its footprint in x-z is drawn
            in the instance's colour with its id.
        size: (height, width) of the picture.
        max_range: metres shown ahead of the camera (default: the 98th percentile of z, at least 1).

    Returns:
        (height, width, 3) uint8 RGB, the camera at the bottom centre, a 1 m grid.
    """
    height, width = size
    canvas = np.full((height, width, 3), 255, np.uint8)
    z_far = float(max_range or (np.percentile(xyz[:, 2], 98) if len(xyz) else 1.0))
    z_far = max(z_far, 1.0)
    scale = min((height - 8) / z_far, (width - 8) / (2 * z_far * 0.75))  # pixels per metre

    def pixel(x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.rint(width / 2 + x * scale).astype(np.int64), np.rint(height - 4 - z * scale).astype(
            np.int64
        )

    for metres in range(1, int(z_far) + 1):  # range rings every metre
        cv2.circle(canvas, (width // 2, height - 4), int(metres * scale), (225, 225, 225), 1, cv2.LINE_AA)
    u, v = pixel(xyz[:, 0], xyz[:, 2])
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    order = np.argsort(-xyz[inside, 1])  # lowest points (largest y: optical y is down) first, tops last
    canvas[v[inside][order], u[inside][order]] = colors[inside][order]
    for instance_id, centre, extent in boxes:
        (u0, u1), (v1, v0) = pixel(
            np.array([centre[0] - extent[0] / 2, centre[0] + extent[0] / 2]),
            np.array([centre[2] - extent[2] / 2, centre[2] + extent[2] / 2]),
        )
        color = instance_color(instance_id)
        cv2.rectangle(canvas, (int(u0), int(v0)), (int(u1), int(v1)), color, 2, cv2.LINE_AA)
        _draw_caption(canvas, str(instance_id), int(u0), int(v0), 0.35, above=True)
    cv2.drawMarker(canvas, (width // 2, height - 4), (0, 0, 0), cv2.MARKER_TRIANGLE_UP, 8, 1)
    return canvas
