"""Panoptic fusion (Panoptic FPN, Kirillov et al. 2019) as a pure function, and panoptic encodings.

:func:`fuse_panoptic` merges one frame's instance predictions with a semantic map: instances in
descending score order claim pixels, stuff classes fill what is left. Every threshold is an
argument; nothing is read from a model or a global.

Both claiming paths (the CPU one per mask region, the device one over whole images) decide with the
same exact rules, in double precision: a score passes when its float64 value is at least
``score_threshold`` (:func:`~segmentation_ros.engine.masks.exceeds`), and an instance's claimed
fraction is ``claimed / area`` divided in float64 (correctly rounded), so a two-digit threshold
decides like its decimal: 0.29 keeps an instance claimed at exactly 29 of its 100 pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from segmentation_ros.engine.masks import bincount, boxes_from_masks, exceeds, lookup, mask_extents

__all__ = [
    "Segment",
    "PanopticFusion",
    "fuse_panoptic",
    "encode_panoptic",
    "decode_panoptic",
    "id_to_rgb",
    "rgb_to_id",
]


@dataclass(frozen=True)
class Segment:
    """One panoptic segment (COCO panoptic ``segments_info`` entry plus score and instance id)."""

    id: int  # segment id in the segment map (1..S); 0 is void
    class_id: int  # in the panoptic label space
    isthing: bool
    area: int  # pixels
    bbox: tuple[int, int, int, int]  # x, y, width, height in camera pixels
    score: float  # instance score for things, mean semantic confidence for stuff
    instance_id: int  # 1..K for things (the fused instance's id), 0 for stuff


@dataclass
class PanopticFusion:
    """Output of :func:`fuse_panoptic` (device tensors, plus the small segment list on the host).

    Attributes:
        segment_ids: (H, W) int32, segment id per pixel, 0 = void.
        kept: (K,) int64 indices into the input instances; instance id k + 1 is ``kept[k]``.
        instance_ids: (H, W) int32 fused instance ids (only the pixels each kept instance won).
        segments: segments sorted by id; things first (ids 1..K), then stuff.
    """

    segment_ids: torch.Tensor
    kept: torch.Tensor
    instance_ids: torch.Tensor
    segments: list[Segment]


def fuse_panoptic(
    semantic: torch.Tensor,
    masks: torch.Tensor,
    scores: torch.Tensor,
    classes: torch.Tensor,
    stuff_map: torch.Tensor,
    *,
    score_threshold: float = 0.5,
    overlap_threshold: float = 0.5,
    stuff_area_threshold: int = 4096,
    semantic_confidence: torch.Tensor | None = None,
) -> PanopticFusion:
    """Fuse instance masks and a semantic map into non-overlapping panoptic segments.

    Instances are taken in descending score order; one scoring below ``score_threshold`` is dropped;
    one whose mask lies on already-claimed pixels for more than ``overlap_threshold`` of its area is
    dropped, otherwise it claims only its unclaimed pixels. Both are decided in float64, exactly:
    a score ``s`` passes when ``float64(s) >= score_threshold``; an instance of ``area`` pixels,
    ``claimed`` of them already taken, is dropped when ``claimed / area`` (divided in float64)
    ``> overlap_threshold``, so 29 of 100 pixels pass 0.29 and 30 do not. Then each stuff class of
    the semantic map fills the still-unclaimed pixels it labels, unless that leaves it fewer than
    ``stuff_area_threshold`` pixels. Pixels left over are void (segment id 0).

    Args:
        semantic: (H, W) integer class ids in the semantic model's label space.
        masks: (N, H, W) bool instance masks.
        scores: (N,) float instance scores (any float dtype; compared exactly as float64).
        classes: (N,) int64 instance class ids, already in the panoptic label space.
        stuff_map: (C,) int64 lookup, semantic class id -> panoptic stuff class id, or -1 where the
            semantic class is not stuff (things, void). C must exceed every id in ``semantic``.
        score_threshold: minimum instance score (inclusive).
        overlap_threshold: maximum fraction of an instance's area already claimed (inclusive).
        stuff_area_threshold: minimum pixels of a stuff segment.
        semantic_confidence: optional (H, W) confidence in [0, 1] (float) or [0, 255] (uint8),
            averaged into the stuff segments' scores (1.0 without it).

    Returns:
        A :class:`PanopticFusion`.
    """
    if masks.dim() != 3 or masks.shape[1:] != semantic.shape:
        raise ValueError(f"masks must be (N, H, W) with (H, W) = {tuple(semantic.shape)}, got {tuple(masks.shape)}")
    if not 0.0 <= overlap_threshold <= 1.0:
        raise ValueError(f"overlap_threshold must be in [0, 1], got {overlap_threshold}")
    device = semantic.device
    order = torch.argsort(scores, descending=True, stable=True)
    scores, classes = scores[order], classes[order]
    eligible = exceeds(scores, score_threshold, inclusive=True)  # one score rule for both paths
    if device.type == "cpu":
        claimed, keep = _claim_in_regions(masks, order, eligible, overlap_threshold)
    else:
        claimed, keep = _claim(masks[order], eligible, overlap_threshold)
    n = masks.shape[0]

    # Stuff fills what no kept instance claimed; counted per semantic class (ids < len(stuff_map)).
    semantic = semantic.long()
    stuff_map = stuff_map.to(device)
    fill = (claimed == 0) & (lookup(stuff_map, semantic) >= 0)
    # The unfilled pixels are counted in an extra last bin (no boolean indexing: no dynamic shape).
    unfilled = torch.full_like(semantic, stuff_map.numel())
    stuff_area = bincount(torch.where(fill, semantic, unfilled), stuff_map.numel() + 1)[: stuff_map.numel()]
    stuff_keep = (stuff_area >= max(stuff_area_threshold, 1)) & (stuff_map >= 0)

    # Segment ids: kept things 1..K in score order, then kept stuff classes in class order.
    thing_lut = torch.zeros(n + 1, dtype=torch.int32, device=device)
    thing_lut[1:] = torch.where(keep, torch.cumsum(keep, 0, dtype=torch.int32), 0)
    num_things = keep.sum(dtype=torch.int32)
    stuff_lut = torch.where(stuff_keep, num_things + torch.cumsum(stuff_keep, 0, dtype=torch.int32), 0)
    instance_ids = lookup(thing_lut, claimed)
    segment_ids = torch.where(claimed > 0, instance_ids, torch.where(fill, lookup(stuff_lut.to(torch.int32), semantic), 0))
    segment_ids = segment_ids.to(torch.int32)

    # One host transfer for everything small.
    kept = order[keep]
    stuff_classes = torch.nonzero(stuff_keep).flatten()  # semantic ids of the kept stuff
    num_segments = int(kept.numel() + stuff_classes.numel())
    boxes, areas = boxes_from_masks(segment_ids, num_segments)
    if semantic_confidence is not None:
        conf = semantic_confidence.float()
        if semantic_confidence.dtype == torch.uint8:
            conf = conf / 255.0
        conf_sum = bincount(segment_ids, num_segments + 1, weights=conf)[1:]
        stuff_scores = conf_sum[kept.numel() :] / areas[kept.numel() :].clamp(min=1)
    else:
        stuff_scores = torch.ones(stuff_classes.numel(), device=device)
    parts = (classes[keep], scores[keep], stuff_map[stuff_classes], stuff_scores, boxes.reshape(-1), areas)
    # float64 holds every id, score and pixel count exactly: one copy to the host, then split.
    host = torch.cat([t.to(torch.float64) for t in parts]).cpu().numpy()
    thing_classes, thing_scores, stuff_cls, stuff_sc, boxes_np, areas_np = np.split(
        host, np.cumsum([t.numel() for t in parts])[:-1]
    )
    boxes_np = boxes_np.reshape(-1, 4)

    segments = []
    for s in range(num_segments):
        isthing = s < len(thing_classes)
        x1, y1, x2, y2 = (int(v) for v in boxes_np[s])
        segments.append(
            Segment(
                id=s + 1,
                class_id=int(thing_classes[s] if isthing else stuff_cls[s - len(thing_classes)]),
                isthing=isthing,
                area=int(areas_np[s]),
                bbox=(x1, y1, x2 - x1, y2 - y1),
                score=float(thing_scores[s] if isthing else stuff_sc[s - len(thing_classes)]),
                instance_id=s + 1 if isthing else 0,
            )
        )
    return PanopticFusion(segment_ids=segment_ids, kept=kept, instance_ids=instance_ids, segments=segments)


def _within_overlap(
    claimed: int | torch.Tensor, area: int | torch.Tensor, overlap_threshold: float
) -> bool | torch.Tensor:
    """The overlap rule of both claiming paths: ``claimed / area <= overlap_threshold`` with the
    division in float64, correctly rounded (Python's int division and IEEE float64 division both
    are), never ``claimed <= overlap_threshold * area``, whose product rounds (0.29 * 100 < 29).
    Python ints on the CPU path, 0-d integer tensors on the device path."""
    if isinstance(claimed, torch.Tensor):
        return claimed.double() / torch.as_tensor(area).double() <= overlap_threshold
    return claimed / area <= overlap_threshold


def _claim(
    masks: torch.Tensor, eligible: torch.Tensor, overlap_threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy claiming on the device, masks in score order: no value is read back to the host.

    Args:
        masks: (N, H, W) bool, sorted by descending score.
        eligible: (N,) bool, which of the sorted instances pass the score threshold.
        overlap_threshold: see :func:`_within_overlap`.

    Returns:
        claimed: (H, W) int32, the sorted slot + 1 of the instance owning each pixel, 0 = none.
        keep: (N,) bool per sorted slot.
    """
    claimed = torch.zeros(masks.shape[1:], dtype=torch.int32, device=masks.device)
    keep = torch.zeros(masks.shape[0], dtype=torch.bool, device=masks.device)
    for k in range(masks.shape[0]):
        mask = masks[k]
        free = mask & (claimed == 0)
        area = mask.sum()
        free_area = free.sum()
        ok = eligible[k] & (free_area > 0) & _within_overlap(area - free_area, area, overlap_threshold)
        claimed = torch.where(free & ok, k + 1, claimed)
        keep[k] = ok
    return claimed, keep


def _claim_in_regions(
    masks: torch.Tensor, order: torch.Tensor, eligible: torch.Tensor, overlap_threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_claim` on the CPU: each instance touches only the rows and columns its mask covers
    (a sync is free here, and a mask is a small part of the image), with numpy's cheap calls.
    ``masks`` are in input order; ``order`` sorts them and ``eligible`` is in sorted order."""
    n, height, width = masks.shape
    masks = masks if masks.dtype == torch.bool else masks.ne(0)
    regions = mask_extents(masks)
    masks_np = masks.numpy()
    claimed = np.zeros((height, width), np.int32)
    keep = np.zeros(n, np.bool_)
    allowed = eligible.tolist()
    for k, index in enumerate(order.tolist()):
        top, bottom, left, right = regions[index]
        mask = masks_np[index, top:bottom, left:right]
        area = np.count_nonzero(mask)
        if not allowed[k] or area == 0:
            continue
        owner = claimed[top:bottom, left:right]
        free = mask & (owner == 0)
        free_area = np.count_nonzero(free)
        if free_area > 0 and _within_overlap(area - free_area, area, overlap_threshold):
            owner[free] = k + 1
            keep[k] = True
    return torch.from_numpy(claimed), torch.from_numpy(keep)


def encode_panoptic(segment_ids: torch.Tensor, segments: list[Segment], label_divisor: int) -> torch.Tensor:
    """Map a segment-id map to ``class_id * label_divisor + instance_id`` (stuff: instance 0).

    Args:
        segment_ids: (H, W) int32, 0 = void.
        segments: the segments, ids 1..S.
        label_divisor: must exceed every instance id.

    Returns:
        (H, W) int32 encoded panoptic map; void pixels are 0 (``class 0, instance 0``).
    """
    lut = torch.zeros(len(segments) + 1, dtype=torch.int64)
    for s in segments:
        if s.instance_id >= label_divisor:
            raise ValueError(f"instance id {s.instance_id} does not fit label_divisor {label_divisor}")
        lut[s.id] = s.class_id * label_divisor + s.instance_id
    if int(lut.max()) > np.iinfo(np.int32).max:
        raise ValueError(f"class ids times label_divisor {label_divisor} overflow int32")
    return lookup(lut.to(segment_ids.device, torch.int32), segment_ids)


def decode_panoptic(panoptic: np.ndarray, label_divisor: int) -> tuple[np.ndarray, np.ndarray]:
    """Split an encoded panoptic map into ``(class_ids, instance_ids)``, both (H, W) int32."""
    panoptic = np.asarray(panoptic, dtype=np.int32)
    return panoptic // label_divisor, panoptic % label_divisor


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """COCO panoptic PNG colours: segment id ``R + 256 G + 256**2 B``.

    Args:
        ids: (H, W) non-negative integer ids below 2**24.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= 256**3):
        raise ValueError(f"COCO panoptic ids must be in [0, 2**24), got [{ids.min()}, {ids.max()}]")
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """Inverse of :func:`id_to_rgb`: (H, W, 3) uint8 RGB -> (H, W) int32 ids."""
    rgb = np.asarray(rgb, dtype=np.int32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
