"""Semantic labels at camera resolution from low-resolution logits, computed only on class borders.

:func:`upsampled_argmax` gives exactly ``F.interpolate(logits, size, mode="bilinear").argmax(1)``
without materialising the upsampled (B, C, H, W) logits: the one op of the semantic path that the
pipeline (:mod:`segmentation_ros.engine.pipeline`) runs per frame at camera size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["upsampled_argmax"]


def _source_pixels(out_size: int, in_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """For each output pixel along one axis: the two input pixels and the weight of the second, as
    ``F.interpolate(mode="bilinear", align_corners=False)`` computes them (scale in float32)."""
    scale = float(np.float32(in_size) / np.float32(out_size))
    src = ((torch.arange(out_size, device=device, dtype=torch.float32) + 0.5) * scale - 0.5).clamp_(min=0)
    lo = src.long()
    return lo, (lo + 1).clamp_(max=in_size - 1), src - lo


#: Above this share of undecided output pixels the dense upsample is cheaper than the gathers.
_DENSE_ABOVE = 0.25


def upsampled_argmax(logits: torch.Tensor, size: tuple[int, int], dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """``F.interpolate(logits, size, mode="bilinear").argmax(1)`` without the (B, C, H, W) logits.

    A bilinear sample is a convex combination of its four neighbouring logit vectors, and a convex
    combination of vectors that share their (first) argmax keeps it. So every output pixel whose four
    neighbours agree at the network's resolution takes their label as is; only pixels on class
    borders (a few percent for a trained network) are interpolated, over all classes, and compared.
    The labels are the dense computation's, not an approximation of them. On CUDA, and where borders
    are most of the image, the dense computation is used (channels-last, so that argmax reduces
    contiguous memory).

    Args:
        logits: (B, C, h, w) float class scores.
        size: output ``(H, W)``.
        dtype: of the result; ``torch.uint8`` (when C <= 256) expands a quarter of int64's bytes.

    Returns:
        (B, H, W) class ids.
    """
    b, _, h, w = logits.shape
    height, width = size
    if (h, w) == (height, width):
        return logits.argmax(1).to(dtype)
    if logits.device.type == "cpu":
        coarse = logits.argmax(1)  # (B, h, w)
        y0, y1, wy = _source_pixels(height, h, logits.device)
        x0 = _source_pixels(width, w, logits.device)[0]
        # settled[i, j]: the 2x2 block at (i, j) has one winner (the last row and column repeat).
        down = torch.cat([coarse[:, 1:], coarse[:, -1:]], 1)
        settled = (coarse == down) & (coarse == torch.cat([coarse[:, :, 1:], coarse[:, :, -1:]], 2))
        settled &= coarse == torch.cat([down[:, :, 1:], down[:, :, -1:]], 2)
        undecided = settled.index_select(1, y0).index_select(2, x0).logical_not_()
        flat = undecided.view(-1).nonzero().squeeze(1)  # (K,) output pixels on class borders
        if flat.numel() <= _DENSE_ABOVE * undecided.numel():
            labels = coarse.to(dtype).index_select(1, y0).index_select(2, x0)
            if flat.numel():
                # Interpolated along x first, for every input row (h x W: small); then each border
                # pixel blends two of those rows: the same arithmetic, in the same order, as
                # F.interpolate's, so the same labels.
                rows = F.interpolate(logits, size=(h, width), mode="bilinear", align_corners=False)
                rows = rows.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])  # (B*h*W, C)
                batch_rows = torch.arange(b, device=logits.device)[:, None] * h  # (B, 1)
                first = ((batch_rows + y0) * width).view(-1)  # (B*H,): rows' offsets in `rows`
                second = ((batch_rows + y1) * width).view(-1)
                weight = wy.repeat(b)[:, None]
                image_row, x = flat // width, flat % width
                upper = rows.index_select(0, first.index_select(0, image_row) + x)
                lower = rows.index_select(0, second.index_select(0, image_row) + x)
                ry = weight.index_select(0, image_row)
                labels.view(-1).index_copy_(0, flat, (upper * (1 - ry) + lower * ry).argmax(1).to(dtype))
            return labels
    logits = logits.contiguous(memory_format=torch.channels_last)
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False).argmax(1).to(dtype)
