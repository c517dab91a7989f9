"""Pictures for people: colourised label maps and overlays with boxes and class names.

Everything takes and returns RGB uint8 numpy arrays at the input's resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

from .labels import LabelSet, palette
from .results import Segmentation

__all__ = ["colorize_labels", "colorize_instances", "colorize_panoptic", "overlay", "side_by_side"]

_INSTANCE_COLORS = palette(256)[1:]  # distinct, deterministic; 0 stays black


def colorize_labels(labels: np.ndarray, label_set: LabelSet) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 class colours (unknown ids black)."""
    table = label_set.color_table
    return table[np.minimum(labels, table.shape[0] - 1)] * (labels < table.shape[0])[..., None]


def colorize_instances(instance_ids: np.ndarray) -> np.ndarray:
    """(H, W) instance ids -> (H, W, 3) uint8, a distinct colour per id, black for 0."""
    colors = _INSTANCE_COLORS[(instance_ids.astype(np.int64) - 1) % len(_INSTANCE_COLORS)]
    return colors * (instance_ids > 0)[..., None].astype(np.uint8)


def colorize_panoptic(panoptic: np.ndarray, label_set: LabelSet, label_divisor: int) -> np.ndarray:
    """(H, W) encoded panoptic map -> RGB: stuff in its class colour, each thing instance shifted."""
    classes = panoptic // label_divisor
    instances = panoptic % label_divisor
    rgb = colorize_labels(classes, label_set).astype(np.int16)
    shift = ((instances * 37) % 96 - 48).astype(np.int16)  # same class, different instances differ
    rgb = np.where((instances > 0)[..., None], rgb + shift[..., None], rgb)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def overlay(image: np.ndarray, result: Segmentation, alpha: float = 0.5) -> np.ndarray:
    """The camera image blended with the most specific result, boxes and names drawn on top.

    Args:
        image: (H, W, 3) uint8 RGB, or (H, W) grayscale.
        result: the frame's :class:`Segmentation`.
        alpha: weight of the colours.
    """
    base = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
    if result.panoptic is not None:
        colors = colorize_panoptic(result.panoptic.panoptic, result.panoptic.label_set, result.panoptic.label_divisor)
        painted = result.panoptic.segment_ids > 0
    elif result.instances is not None:
        colors = colorize_instances(result.instances.instance_ids)
        painted = result.instances.instance_ids > 0
    elif result.semantic is not None:
        sem = result.semantic
        colors = colorize_labels(sem.labels, sem.label_set)
        painted = sem.labels != (sem.label_set.void_id if sem.label_set.void_id is not None else -1)
    else:
        return base.copy()
    out = base.astype(np.float32)
    blend = (1 - alpha) * out + alpha * colors.astype(np.float32)
    out = np.where(painted[..., None], blend, out).astype(np.uint8)
    if result.instances is not None:
        _draw_boxes(out, result)
    return out


def _draw_boxes(canvas: np.ndarray, result: Segmentation) -> None:
    inst = result.instances
    assert inst is not None
    scale = max(0.35, min(canvas.shape[:2]) / 900)
    for i, c, s, box in zip(inst.ids, inst.class_ids, inst.scores, inst.boxes, strict=True):
        color = tuple(int(v) for v in _INSTANCE_COLORS[(int(i) - 1) % len(_INSTANCE_COLORS)])
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, 1, cv2.LINE_AA)
        text = f"{int(i)} {inst.label_set.name_of(int(c))} {float(s):.2f}"
        y = max(y1 - 3, 10)
        cv2.putText(canvas, text, (x1, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(canvas, text, (x1, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def side_by_side(panels: list[np.ndarray], titles: list[str] | None = None, gap: int = 4) -> np.ndarray:
    """Concatenate same-height RGB panels horizontally with optional titles (for figures)."""
    height = max(p.shape[0] for p in panels)
    row = []
    for k, panel in enumerate(panels):
        panel = np.repeat(panel[..., None], 3, axis=2) if panel.ndim == 2 else panel
        canvas = np.full((height, panel.shape[1], 3), 255, np.uint8)
        canvas[: panel.shape[0]] = panel
        if titles:
            cv2.putText(canvas, titles[k], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(canvas, titles[k], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        row.append(canvas)
        row.append(np.full((height, gap, 3), 255, np.uint8))
    return np.concatenate(row[:-1], axis=1)
