"""upsampled_argmax: the labels of the dense bilinear upsample, computed only on class borders."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segmentation_ros.engine import pipeline as engine
from segmentation_ros.engine.upsample import upsampled_argmax


def _dense(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False).argmax(1)


def _network_like(batch: int, classes: int, h: int, w: int, seed: int, noise: float = 0.05) -> torch.Tensor:
    """Smooth class fields (regions a few cells across, as a trained network gives) plus noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(batch, classes, max(2, h // 6), max(2, w // 6), generator=g) * 3
    smooth = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return smooth + noise * torch.randn(batch, classes, h, w, generator=g)


@pytest.mark.parametrize(
    ("batch", "classes", "low", "size"),
    [
        (1, 21, (60, 80), (480, 640)),  # LR-ASPP's stride 8
        (2, 6, (42, 56), (240, 320)),  # non-integer scale
        (3, 21, (13, 17), (97, 131)),  # odd sizes
        (1, 5, (30, 40), (20, 27)),  # downsampling
        (1, 2, (1, 9), (4, 33)),  # a single input row
    ],
)
def test_equals_the_dense_upsample(batch, classes, low, size) -> None:
    logits = _network_like(batch, classes, *low, seed=sum(size))
    got = upsampled_argmax(logits, size)
    assert got.shape == (batch, *size) and got.dtype == torch.int64
    assert torch.equal(got, _dense(logits, size))


def test_only_border_pixels_are_interpolated(monkeypatch) -> None:
    """With one class everywhere nothing is undecided; the result is still the dense one."""
    logits = torch.zeros(1, 4, 10, 12)
    logits[:, 2] = 1.0
    assert torch.equal(upsampled_argmax(logits, (80, 96)), torch.full((1, 80, 96), 2))
    # Noise everywhere: most pixels undecided, the dense path takes over; a smooth map does not need it.
    noisy = torch.randn(2, 7, 10, 12, generator=torch.Generator().manual_seed(0))
    smooth = _network_like(1, 7, 20, 24, seed=1, noise=0.0)
    expected = [_dense(noisy, (80, 96)), _dense(smooth, (160, 192))]
    calls = []
    real = F.interpolate
    monkeypatch.setattr(engine.F, "interpolate", lambda *a, **k: calls.append(tuple(k["size"])) or real(*a, **k))
    assert torch.equal(upsampled_argmax(noisy, (80, 96)), expected[0])
    assert (80, 96) in calls, "the dense fallback was not used for a noisy map"
    calls.clear()
    assert torch.equal(upsampled_argmax(smooth, (160, 192)), expected[1])
    assert (160, 192) not in calls, "a smooth map should not need the full-size upsample"


def test_same_size_is_a_plain_argmax() -> None:
    logits = _network_like(2, 3, 16, 16, seed=3)
    assert torch.equal(upsampled_argmax(logits, (16, 16)), logits.argmax(1))


@pytest.mark.parametrize("size", [(48, 64), (20, 20)])
def test_narrow_labels_are_the_same_labels(size) -> None:
    logits = _network_like(2, 12, 20, 20, seed=5)
    wide = upsampled_argmax(logits, size)
    narrow = upsampled_argmax(logits, size, torch.uint8)
    assert narrow.dtype == torch.uint8 and torch.equal(narrow.long(), wide)
