"""Result types of the segmentation engine: everything at the input image's resolution."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from segmentation_ros.engine.labels import LabelSet
from segmentation_ros.engine.panoptic import Segment

__all__ = ["SemanticResult", "InstanceResult", "PanopticResult", "Segmentation"]


@dataclass
class SemanticResult:
    """A class per pixel.

    Attributes:
        labels: (H, W) uint8 class ids (uint16 when the label set has more than 256 ids).
        confidence: (H, W) uint8, ``round(255 * p)`` with p the winning class's softmax probability
            (computed at the network's output stride, then bilinearly upsampled).
        label_set: the semantic model's classes.
    """

    labels: np.ndarray
    confidence: np.ndarray
    label_set: LabelSet


@dataclass
class InstanceResult:
    """Separate objects, ids 1..N in descending score order.

    Attributes:
        ids: (N,) int32 instance ids 1..N; they are exactly the non-zero values of ``instance_ids``.
        class_ids: (N,) int64 class ids in ``label_set``.
        scores: (N,) float32.
        boxes: (N, 4) float32 ``x1, y1, x2, y2`` in camera pixels.
        masks: (N, H, W) bool full masks on the engine's device (not copied to the host unless
            asked: ``result.masks.cpu().numpy()``). Overlaps are allowed here.
        instance_ids: (H, W) uint16, 0 = none; an overlapped pixel belongs to the higher score.
        label_set: the instance model's classes.
    """

    ids: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    masks: torch.Tensor
    instance_ids: np.ndarray
    label_set: LabelSet

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def detections(self) -> list[dict]:
        """JSON-ready detections: id, class_id, class_name, score, bbox ``[x, y, w, h]``."""
        out = []
        for i, c, s, (x1, y1, x2, y2) in zip(self.ids, self.class_ids, self.scores, self.boxes, strict=True):
            out.append(
                {
                    "id": int(i),
                    "class_id": int(c),
                    "class_name": self.label_set.name_of(int(c)),
                    "score": round(float(s), 5),
                    "bbox": [round(float(v), 2) for v in (x1, y1, x2 - x1, y2 - y1)],
                }
            )
        return out


@dataclass
class PanopticResult:
    """Every pixel one segment: stuff by class, things by instance.

    Attributes:
        segment_ids: (H, W) int32 segment id per pixel, 0 = void.
        panoptic: (H, W) int32 ``class_id * label_divisor + instance_id`` (stuff: instance 0,
            void: 0). Thing instance ids equal the fused :class:`InstanceResult` ids.
        segments: one entry per segment id 1..S.
        label_set: the panoptic classes (the instance model's things and the semantic model's stuff).
        label_divisor: see ``panoptic``.
    """

    segment_ids: np.ndarray
    panoptic: np.ndarray
    segments: list[Segment]
    label_set: LabelSet
    label_divisor: int

    def segments_info(self) -> list[dict]:
        """COCO panoptic ``segments_info`` (plus score)."""
        return [
            {
                "id": s.id,
                "category_id": s.class_id,
                "isthing": int(s.isthing),
                "area": s.area,
                "bbox": list(s.bbox),
                "score": round(s.score, 5),
                "iscrowd": 0,
            }
            for s in self.segments
        ]


@dataclass
class Segmentation:
    """One frame's results. Which parts are set follows the task (panoptic sets all three: its
    ``instances`` are the instances that survived fusion)."""

    height: int
    width: int
    semantic: SemanticResult | None = None
    instances: InstanceResult | None = None
    panoptic: PanopticResult | None = None
    timings: dict[str, float] = field(default_factory=dict)
