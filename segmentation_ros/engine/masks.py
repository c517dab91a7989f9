"""Instance masks and id maps: pasting masks into the image, painting id maps, and the boxes,
histograms and lookups of id maps, on any device.

torchvision's ``paste_masks_in_image`` loops over boxes in Python (a host sync and a zero-filled
full-image float allocation per box). Here bilinear resampling is done as what it is, separable:
each pasted mask is ``Ry @ mask @ Rx.T`` with small interpolation matrices. On CUDA that is two
batched matmuls over the whole image and no step reads a value back to the host; on the CPU each
mask is resampled over its own box region only.

Thresholds mean exactly what they say: a value passes ``threshold`` when its float64 value does
(:func:`exceeds`), whatever precision it was computed in; a float32 threshold rounded from the
float64 one would let a probability of 0.69999998808 pass 0.7.
"""

from __future__ import annotations

import functools
import threading

import numpy as np
import torch
from threadpoolctl import ThreadpoolController

__all__ = [
    "paste_masks",
    "paint_instance_ids",
    "mask_extents",
    "boxes_from_masks",
    "bincount",
    "lookup",
    "exceeds",
    "float32_cutoff",
]

_workspace = threading.local()


@functools.cache
def _blas_threads() -> ThreadpoolController:
    """numpy's BLAS thread pools, found once (a scan of the loaded libraries takes milliseconds)."""
    return ThreadpoolController()


def _scratch(numel: int) -> torch.Tensor:
    """A float32 CPU buffer of ``numel`` elements, reused across calls (one per thread).

    Memory fresh from the OS costs a page fault per 4 KiB on first touch (about 1 us each on a
    VM); the interpolation matrices are a few MB a frame, so they live in one buffer that only grows.
    """
    buffer = getattr(_workspace, "buffer", None)
    if buffer is None or buffer.numel() < numel:
        with torch.inference_mode(False):  # a normal tensor: writable inside and outside inference mode
            buffer = _workspace.buffer = torch.empty(numel)
    return buffer[:numel]


def float32_cutoff(threshold: float, *, inclusive: bool = False) -> np.float32:
    """The float32 ``c`` that decides a float64 threshold exactly for float32 values: for every
    float32 ``x``, ``x >= c`` (``inclusive``) or ``x > c`` (not) evaluated in float32 is
    ``float64(x) >= threshold`` or ``float64(x) > threshold``.

    ``c`` is the smallest float32 at least ``threshold`` (``inclusive``), or the largest at most it.
    (``float32(threshold)`` instead is wrong whenever it rounds the wrong way: up for 0.1, so
    ``x = float32(0.1)`` fails ``x >= 0.1``; down for 0.7, so ``x = float32(0.7)`` passes it.)
    """
    threshold = float(threshold)
    cutoff = np.float32(threshold)
    if inclusive and float(cutoff) < threshold:
        cutoff = np.nextafter(cutoff, np.float32(np.inf))
    elif not inclusive and float(cutoff) > threshold:
        cutoff = np.nextafter(cutoff, np.float32(-np.inf))
    return cutoff


def exceeds(values: torch.Tensor, threshold: float, *, inclusive: bool = False) -> torch.Tensor:
    """``values > threshold`` (``>=`` when ``inclusive``) decided as in float64, for values of any
    float dtype, without a float64 copy of float32 (or narrower) data (:func:`float32_cutoff`).

    Returns:
        bool tensor of ``values``' shape, on their device.
    """
    if values.dtype == torch.float64:
        return values >= threshold if inclusive else values > threshold
    # float16/bfloat16 -> float32 is exact, and a float32 cutoff is exact as a float32 scalar
    cutoff = float(float32_cutoff(threshold, inclusive=inclusive))
    return values.float() >= cutoff if inclusive else values.float() > cutoff


def _tent_weights(
    start: torch.Tensor,
    size: int,
    lo: torch.Tensor,
    hi: torch.Tensor,
    m: int,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bilinear weights that sample an ``m``-cell mask spanning ``[lo, hi)`` at pixel centres.

    Args:
        start: (N,) int64 first pixel of each window.
        size: window length in pixels.
        lo, hi: (N,) float box edges along this axis, in image pixels.
        m: mask resolution along this axis.
        out: optional (N * size * m,) float buffer to compute in (no allocation).

    Returns:
        (N, size, m) float weights; zero outside the mask (zero padding, like ``grid_sample``).
    """
    pixels = start[:, None].to(lo.dtype) + torch.arange(size, device=lo.device, dtype=lo.dtype)[None] + 0.5
    scale = m / (hi - lo).clamp(min=1e-3)
    u = (pixels - lo[:, None]) * scale[:, None] - 0.5  # (N, size) position in mask cells
    cells = torch.arange(m, device=lo.device, dtype=lo.dtype)
    distance = torch.sub(u[:, :, None], cells, out=None if out is None else out.view(len(u), size, m))
    return distance.abs_().neg_().add_(1).clamp_(min=0)


def _box_regions(boxes: torch.Tensor, mask_size: tuple[int, int], height: int, width: int) -> torch.Tensor:
    """Integer pixel regions ``x0, y0, x1, y1`` (N, 4) that hold every non-zero pixel of each mask.

    Bilinear sampling with zero padding reaches half a mask cell beyond the box; one whole cell
    plus a pixel of margin is kept.
    """
    mh, mw = mask_size
    cell = torch.stack([(boxes[:, 2] - boxes[:, 0]) / mw, (boxes[:, 3] - boxes[:, 1]) / mh], 1).clamp(min=0)
    margin = cell.ceil() + 1
    lo = (boxes[:, :2] - margin).floor().clamp(min=0)
    hi = (boxes[:, 2:] + margin).ceil()
    hi = torch.minimum(hi, torch.tensor([width, height], device=boxes.device, dtype=boxes.dtype))
    return torch.cat([lo, torch.maximum(hi, lo)], 1).long()


def paste_masks(
    masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int, threshold: float = 0.5
) -> torch.Tensor:
    """Paste per-box mask probabilities into full-image binary masks, all boxes at once.

    Equivalent to bilinear ``grid_sample`` of each mask over its box (align_corners=False, zero
    padding) followed by ``> threshold``.

    On CUDA every mask is resampled over the whole image in two batched matmuls: no host sync,
    no loop. On the CPU, where arithmetic is the cost and a sync is free, each mask is resampled
    over its own box region only (:func:`_paste_windows`).

    Args:
        masks: (N, M, M) or (N, 1, M, M) float mask probabilities in box coordinates.
        boxes: (N, 4) float boxes ``x1, y1, x2, y2`` in image pixels.
        height, width: image size.
        threshold: probability above which a pixel belongs to the mask: a pixel whose resampled
            (float32) probability ``p`` has ``float64(p) > threshold`` (:func:`exceeds`).

    Returns:
        (N, height, width) bool masks on the masks' device.
    """
    if masks.dim() == 4:
        masks = masks[:, 0]
    n, mh, mw = masks.shape
    if n == 0:
        return torch.zeros((0, height, width), dtype=torch.bool, device=masks.device)
    boxes = boxes.detach().to(torch.float32)  # a thresholded mask has no gradient anyway
    masks = masks.detach().to(torch.float32)
    if masks.device.type != "cpu":
        return _paste_whole(masks, boxes, height, width, threshold)
    return _paste_windows(masks, boxes, height, width, threshold)


def _paste_whole(masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int, threshold: float) -> torch.Tensor:
    """Device paste: every mask resampled over the whole image in two batched matmuls, no loop and
    no value read back to the host (the arithmetic is nothing to a GPU; syncs and launches are)."""
    n, mh, mw = masks.shape
    start = torch.zeros(n, dtype=torch.long, device=masks.device)
    rx = _tent_weights(start, width, boxes[:, 0], boxes[:, 2], mw)  # (N, W, mw)
    ry = _tent_weights(start, height, boxes[:, 1], boxes[:, 3], mh)  # (N, H, mh)
    return exceeds(torch.bmm(torch.bmm(ry, masks), rx.transpose(1, 2)), threshold)


def _paste_windows(
    masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int, threshold: float
) -> torch.Tensor:
    """CPU paste: each mask resampled over its own box region only, thresholded straight into place.

    The interpolation matrices of all boxes come from one batched call into a reused buffer; the
    per-box work is two small BLAS products and one ``numpy.greater`` writing into the output slice
    (numpy's per-call cost is about a microsecond, torch's ten), so no pixel outside a box is
    computed and no intermediate window is copied.
    """
    n, mh, mw = masks.shape
    regions = _box_regions(boxes, (mh, mw), height, width)
    span_x, span_y = (regions[:, 2:] - regions[:, :2]).amax(0).clamp(min=1).tolist()
    buffer_x, buffer_y = _scratch(n * (span_x * mw + span_y * mh)).split([n * span_x * mw, n * span_y * mh])
    rx = _tent_weights(regions[:, 0], span_x, boxes[:, 0], boxes[:, 2], mw, buffer_x).numpy()  # (N, W', mw)
    ry = _tent_weights(regions[:, 1], span_y, boxes[:, 1], boxes[:, 3], mh, buffer_y).numpy()  # (N, H', mh)
    probabilities = masks.numpy()
    cutoff = float32_cutoff(threshold)  # numpy compares float32 windows in float32: exact with it
    # calloc'd zeros: fresh pages from the OS are zero already and pages no box reaches are never
    # touched (torch.zeros writes all N*H*W bytes).
    out = np.zeros((n, height, width), dtype=np.bool_)
    # One BLAS thread: these products are small, and OpenBLAS's spinning threads fight torch's
    # OpenMP threads for the same cores (2x slower on 2 cores). The limit is process-wide while
    # the loop runs (numpy's BLAS has no per-thread setting).
    with _blas_threads().limit(limits=1, user_api="blas"):
        for k, (x0, y0, x1, y1) in enumerate(regions.tolist()):
            if x1 > x0 and y1 > y0:
                wy, wx = ry[k, : y1 - y0], rx[k, : x1 - x0].T
                # (h, m) @ (m, m) @ (m, w): the cheaper association first.
                window = (wy @ probabilities[k]) @ wx if y1 - y0 < x1 - x0 else wy @ (probabilities[k] @ wx)
                np.greater(window, cutoff, out=out[k, y0:y1, x0:x1])
    return torch.from_numpy(out)


def mask_extents(masks: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """The rows and columns each mask covers, ``(top, bottom, left, right)`` (bottom and right
    exclusive): two reductions over the masks' bytes, no loop. An empty mask gets the whole image
    (0, H, 0, W) (its slice is all False).

    Args:
        masks: (N, H, W) bool (any other dtype: non-zero = in the mask).
    """
    n, height, width = masks.shape
    as_bytes = (masks if masks.dtype == torch.bool else masks.ne(0)).view(torch.uint8)
    rows, cols = as_bytes.amax(2), as_bytes.amax(1)  # (N, H), (N, W): which rows/columns a mask has
    top, left = rows.argmax(1), cols.argmax(1)  # first covered row/column
    bottom, right = height - rows.flip(1).argmax(1), width - cols.flip(1).argmax(1)
    return [tuple(r) for r in torch.stack([top, bottom, left, right], 1).tolist()]


def paint_instance_ids(masks: torch.Tensor) -> torch.Tensor:
    """Instance-id map from masks sorted by descending score: overlaps go to the higher score.

    On the CPU each mask is painted over its own rows and columns only (lowest score first, so
    higher scores overwrite); on a device, in one pass over the whole image (:func:`_paint_whole`).

    Args:
        masks: (N, H, W) bool, row k is the instance with id k + 1.

    Returns:
        (H, W) int32 ids, 0 where no mask covers the pixel.
    """
    n, height, width = masks.shape
    if n == 0:
        return torch.zeros((height, width), dtype=torch.int32, device=masks.device)
    if masks.device.type != "cpu":
        return _paint_whole(masks)
    masks = masks if masks.dtype == torch.bool else masks.ne(0)
    masks_np = masks.numpy()
    ids = np.zeros((height, width), np.int32)
    extents = mask_extents(masks)
    for k in range(n - 1, -1, -1):
        top, bottom, left, right = extents[k]
        ids[top:bottom, left:right][masks_np[k, top:bottom, left:right]] = k + 1
    return torch.from_numpy(ids)


def _paint_whole(masks: torch.Tensor) -> torch.Tensor:
    """Device painting: the first (highest-score) covering mask of every pixel, by one argmax."""
    as_bytes = masks.view(torch.uint8) if masks.dtype == torch.bool else masks.ne(0).view(torch.uint8)
    first = as_bytes.argmax(0).to(torch.int32)
    return torch.where(as_bytes.amax(0) > 0, first + 1, torch.zeros_like(first))


def bincount(values: torch.Tensor, minlength: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``torch.bincount`` of the flattened values; numpy's on the CPU, where torch's runs on one
    thread (about 4x slower for a camera-sized map).

    Returns:
        (max(minlength, values.max() + 1),) int64 counts, or sums of ``weights`` in their dtype.
    """
    flat = values.reshape(-1)
    flat_weights = None if weights is None else weights.reshape(-1)
    if flat.device.type != "cpu":
        return torch.bincount(flat, flat_weights, minlength)
    counts = np.bincount(flat.numpy(), None if flat_weights is None else flat_weights.numpy(), minlength)
    return torch.from_numpy(counts if weights is None else counts.astype(np.float32)).to(
        torch.int64 if weights is None else weights.dtype
    )


def lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` for a 1-D table and an integer map of any shape, by ``index_select`` (torch's
    advanced indexing is 2-3x slower on the CPU)."""
    return table.index_select(0, index.reshape(-1).long()).view(index.shape)


def boxes_from_masks(ids: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tight boxes and pixel areas of the segments ``1..count`` of an id map, without a loop.

    Two histograms, of (row, id) and of (column, id) pairs, say which rows and columns each id
    occupies; the first and last of those are its box.

    Args:
        ids: (H, W) integer id map with values in ``0..count``, 0 = none.
        count: largest id.

    Returns:
        boxes: (count, 4) int64 ``x1, y1, x2, y2`` inclusive-exclusive (x2 = last column + 1);
            all zero for an id with no pixels.
        areas: (count,) int64 pixel counts.
    """
    h, w = ids.shape
    bins = count + 1
    ids = ids.long()
    row_start = torch.arange(h, device=ids.device)[:, None] * bins
    col_start = torch.arange(w, device=ids.device)[None, :] * bins
    per_row = bincount(ids + row_start, h * bins).view(h, bins)[:, 1:]  # (H, count) pixels per row
    per_col = bincount(ids + col_start, w * bins).view(w, bins)[:, 1:]
    areas = per_row.sum(0)
    rows, cols = per_row > 0, per_col > 0
    y1, x1 = rows.to(torch.uint8).argmax(0), cols.to(torch.uint8).argmax(0)  # first True
    y2 = h - rows.flip(0).to(torch.uint8).argmax(0)
    x2 = w - cols.flip(0).to(torch.uint8).argmax(0)
    boxes = torch.stack([x1, y1, x2, y2], 1)
    return torch.where((areas > 0)[:, None], boxes, torch.zeros_like(boxes)), areas
