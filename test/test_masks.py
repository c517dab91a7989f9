"""Batched mask pasting and id-map painting against their definitions and against torchvision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection.roi_heads import paste_masks_in_image

from segmentation_ros.engine.masks import bincount, boxes_from_masks, paint_instance_ids, paste_masks

H, W = 97, 131


def smooth_masks(
    n: int, size: tuple[int, int] = (28, 28), *, sharpness: float = 40.0, seed: int = 0
) -> torch.Tensor:
    """(n, *size) float mask probabilities shaped like Mask R-CNN's: blobs with sharp edges."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 1, 4, 4, generator=g) * sharpness
    return torch.sigmoid(F.interpolate(logits, size=size, mode="bilinear", align_corners=False))[:, 0]


def random_boxes(n: int, height: int, width: int, *, max_side: float, seed: int = 0) -> torch.Tensor:
    """(n, 4) float boxes x1, y1, x2, y2 of sides 0.5..max_side px, many crossing the borders."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n, 2, generator=g) * torch.tensor([width + 20.0, height + 20.0]) - 10
    sides = torch.rand(n, 2, generator=g) ** 2 * (max_side - 0.5) + 0.5  # many small boxes
    return torch.cat([centres - sides / 2, centres + sides / 2], 1)


def reference_probabilities(
    masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """paste_masks' definition: bilinear ``grid_sample`` of each mask over its box at pixel centres.

    Returns (N, height, width) float64 probabilities (zero padding, align_corners=False).
    """
    xs = torch.arange(width, dtype=torch.float64) + 0.5
    ys = torch.arange(height, dtype=torch.float64) + 0.5
    out = []
    for mask, (x1, y1, x2, y2) in zip(masks.double(), boxes.double(), strict=True):
        gx = (xs - x1) / max(float(x2 - x1), 1e-3) * 2 - 1
        gy = (ys - y1) / max(float(y2 - y1), 1e-3) * 2 - 1
        grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1)[None]  # (1, H, W, 2) as (x, y)
        sampled = F.grid_sample(
            mask[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        out.append(sampled[0, 0])
    return torch.stack(out)


def assert_matches_definition(pasted: torch.Tensor, reference: torch.Tensor, threshold: float) -> None:
    """Equal to ``reference > threshold`` except where float32 rounding can tip a value (|p - t| < 1e-4)."""
    expected = reference > threshold
    differ = pasted != expected
    assert not bool((differ & ((reference - threshold).abs() > 1e-4)).any()), (
        f"{int(differ.sum())} pixels differ from the grid_sample definition"
    )


# ---- paste_masks against its definition ----------------------------------------------------------
@pytest.mark.parametrize("threshold", [0.5, 0.2, 0.8])
def test_paste_matches_grid_sample_definition(threshold: float) -> None:
    boxes = random_boxes(120, H, W, max_side=70, seed=1)
    masks = smooth_masks(120, sharpness=4.0, seed=1)  # soft masks: many values near any threshold
    pasted = paste_masks(masks, boxes, H, W, threshold)
    assert pasted.shape == (120, H, W) and pasted.dtype == torch.bool
    assert int(pasted.sum()) > 0
    assert_matches_definition(pasted, reference_probabilities(masks, boxes, H, W), threshold)


def test_paste_low_threshold_keeps_the_fringe_outside_large_boxes() -> None:
    """Below 0.5 a mask reaches up to half a mask cell beyond its box; a large box's cell is several
    pixels, so a window cut at the box edge would lose pixels that the definition includes."""
    height, width = 300, 420
    boxes = torch.tensor([[60.3, 40.2, 380.7, 270.9], [5.5, 150.0, 200.0, 290.0], [300.0, 10.0, 419.0, 60.0]])
    masks = torch.ones(3, 28, 28)
    for threshold in (0.1, 0.3, 0.5):
        reference = reference_probabilities(masks, boxes, height, width)
        pasted = paste_masks(masks, boxes, height, width, threshold)
        assert_matches_definition(pasted, reference, threshold)
        if threshold < 0.5:  # the case in point: pixels outside the box are in the mask
            x1, y1, x2, y2 = boxes[0].tolist()
            assert bool(pasted[0, int(y1) + 1 : int(y2) - 1, int(x1) - 1].any())


def test_paste_tiny_degenerate_and_outside_boxes() -> None:
    boxes = torch.tensor(
        [
            [10.2, 20.1, 10.9, 20.6],  # under a pixel
            [30.0, 30.0, 30.0, 45.0],  # zero width
            [-50.0, -40.0, -5.0, -2.0],  # entirely above-left of the image
            [W + 3.0, 10.0, W + 30.0, 40.0],  # entirely right of the image
            [-20.0, -20.0, W + 20.0, H + 20.0],  # larger than the image on every side
            [0.0, 0.0, 1.0, 1.0],  # one pixel in the corner
        ]
    )
    masks = torch.ones(len(boxes), 28, 28)
    pasted = paste_masks(masks, boxes, H, W)
    assert_matches_definition(pasted, reference_probabilities(masks, boxes, H, W), 0.5)
    assert int(pasted[1].sum()) == 0 and int(pasted[2].sum()) == 0 and int(pasted[3].sum()) == 0
    assert bool(pasted[4].all())
    assert pasted[5].nonzero().tolist() == [[0, 0]]


def test_paste_non_square_masks_are_not_transposed() -> None:
    g = torch.Generator().manual_seed(3)
    masks = torch.rand(5, 14, 28, generator=g)  # (mh, mw) = (14, 28)
    boxes = random_boxes(5, H, W, max_side=60, seed=3)
    boxes[:, 2:] = boxes[:, :2] + torch.tensor([50.0, 30.0])
    pasted = paste_masks(masks, boxes, H, W)
    assert_matches_definition(pasted, reference_probabilities(masks, boxes, H, W), 0.5)


def test_paste_accepts_channel_dim_empty_input_and_tensors_with_grad() -> None:
    masks = smooth_masks(4, seed=5)
    boxes = random_boxes(4, H, W, max_side=50, seed=5)
    assert torch.equal(paste_masks(masks[:, None], boxes, H, W), paste_masks(masks, boxes, H, W))
    grads = paste_masks(masks.clone().requires_grad_(), boxes.clone().requires_grad_(), H, W)  # no autograd
    assert torch.equal(grads, paste_masks(masks, boxes, H, W))
    empty = paste_masks(torch.zeros(0, 1, 28, 28), torch.zeros(0, 4), H, W)
    assert empty.shape == (0, H, W) and empty.dtype == torch.bool


def test_paste_inside_and_outside_inference_mode_in_one_thread() -> None:
    """The reused weight buffer must serve calls under torch.inference_mode (the engine) and
    outside it (a user) in any order, on a thread that has not pasted before."""
    from concurrent.futures import ThreadPoolExecutor

    boxes = random_boxes(6, H, W, max_side=50, seed=4)
    masks = smooth_masks(6, seed=4)
    reference = reference_probabilities(masks, boxes, H, W)

    def calls(first_inference: bool) -> list[torch.Tensor]:
        out = []
        for inference in (first_inference, not first_inference, first_inference):
            with torch.inference_mode(inference):
                out.append(paste_masks(masks, boxes, H, W))
        return out

    with ThreadPoolExecutor(1) as pool:  # fresh threads: fresh per-thread buffers
        runs = pool.submit(calls, True).result()
    with ThreadPoolExecutor(1) as pool:
        runs += pool.submit(calls, False).result()
    for pasted in runs:
        assert_matches_definition(pasted, reference, 0.5)


def test_device_paste_runs_here_and_equals_the_cpu_paste() -> None:
    """The CUDA path (whole-image batched matmuls) is plain torch: run on the CPU it must give the
    definition's masks and exactly the CPU path's."""
    from segmentation_ros.engine.masks import _paste_whole

    boxes = random_boxes(40, H, W, max_side=70, seed=11)
    boxes[0] = torch.tensor([-20.0, -20.0, W + 20.0, H + 20.0])  # beyond the image on every side
    masks = smooth_masks(40, sharpness=4.0, seed=11)
    for threshold in (0.3, 0.5):
        whole = _paste_whole(masks, boxes, H, W, threshold)
        assert_matches_definition(whole, reference_probabilities(masks, boxes, H, W), threshold)
        assert torch.equal(whole, paste_masks(masks, boxes, H, W, threshold))


def test_paste_reuses_its_workspace_across_calls_and_threads() -> None:
    """The CPU paste computes in a per-thread buffer that only grows: a small call after a large one,
    and calls from several threads at once, must each see only their own interpolation weights."""
    from concurrent.futures import ThreadPoolExecutor

    cases = [
        (random_boxes(k, H, W, max_side=side, seed=k), smooth_masks(k, seed=k))
        for k, side in ((60, 90), (3, 20), (25, 60))
    ]
    expected = [reference_probabilities(m, b, H, W) for b, m in cases]
    for (boxes, masks), reference in zip(cases, expected, strict=True):  # large, then small, then medium
        assert_matches_definition(paste_masks(masks, boxes, H, W), reference, 0.5)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda case: [paste_masks(case[1], case[0], H, W) for _ in range(5)], cases))
    for runs, (boxes, masks) in zip(results, cases, strict=True):
        sequential = paste_masks(masks, boxes, H, W)
        assert all(torch.equal(run, sequential) for run in runs)


# ---- paste_masks against torchvision -------------------------------------------------------------
def _within_edge_band(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """(N, H, W) bool: pixels within ``radius`` px (Chebyshev) of an edge of ``mask``; off-image is outside."""
    k = 2 * radius + 1
    m = F.pad(mask.float()[:, None], (radius,) * 4)  # zero padding: the image border is an edge
    dilated = F.max_pool2d(m, k, 1)[:, 0] > 0
    eroded = -F.max_pool2d(-m, k, 1)[:, 0] > 0
    return dilated & ~eroded


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paste_agrees_with_torchvision(seed: int) -> None:
    """torchvision truncates each (padded) box to whole pixels and pastes it one pixel wider, so its
    masks sit up to a pixel or two off the exact ones (on 1-2 px wide rims, ~3% of the pixels inside
    the boxes here). Agreement is therefore checked as: >= 99% of all pixels, and, for boxes whose
    mask cells are a pixel or larger, every disagreement within 2 px of torchvision's mask edge.
    (Where a box squeezes 28 cells into a few pixels, a sub-pixel offset moves the mask by several
    cells, so that edge distance says nothing there.)"""
    boxes = random_boxes(300, H, W, max_side=90, seed=seed)
    # torchvision's paste fails on boxes wholly outside the image: keep boxes that overlap it
    overlaps = (boxes[:, 2] > 1) & (boxes[:, 0] < W - 1) & (boxes[:, 3] > 1) & (boxes[:, 1] < H - 1)
    boxes = boxes[overlaps]
    masks = smooth_masks(len(boxes), seed=seed)
    ours = paste_masks(masks, boxes, H, W, 0.5)
    theirs = paste_masks_in_image(masks[:, None], boxes, (H, W))[:, 0] > 0.5
    assert int(theirs.sum()) > 0

    assert (ours == theirs).float().mean().item() >= 0.99
    sized = ((boxes[:, 2:] - boxes[:, :2]) >= 28).all(1)
    assert int(sized.sum()) >= 20
    far = (ours != theirs) & ~_within_edge_band(theirs, 2)
    assert int(far[sized].sum()) == 0, (
        f"{int(far[sized].sum())} pixels differ away from torchvision's mask edges"
    )


# ---- paint_instance_ids -------------------------------------------------------------------------
def _reference_ids(masks: np.ndarray) -> np.ndarray:
    """Lowest index (highest score) covering each pixel, + 1; 0 where none does."""
    ids = np.zeros(masks.shape[1:], dtype=np.int32)
    for k in range(masks.shape[0] - 1, -1, -1):
        ids[masks[k]] = k + 1
    return ids


def test_paint_overlap_goes_to_lower_index() -> None:
    masks = torch.zeros(3, 6, 8, dtype=torch.bool)
    masks[0, 0:3, 0:4] = True
    masks[1, 2:5, 2:6] = True
    masks[2, 1:6, 3:8] = True
    ids = paint_instance_ids(masks)
    assert ids.dtype == torch.int32 and ids.shape == (6, 8)
    assert int(ids[2, 3]) == 1  # masks 0, 1 and 2
    assert int(ids[1, 3]) == 1  # masks 0 and 2
    assert int(ids[3, 4]) == 2  # masks 1 and 2
    assert int(ids[5, 7]) == 3  # mask 2 only
    assert int(ids[5, 0]) == 0  # none
    np.testing.assert_array_equal(ids.numpy(), _reference_ids(masks.numpy()))


def test_paint_random_masks_matches_reference() -> None:
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(12, 40, 50, generator=g) > 0.8
    np.testing.assert_array_equal(paint_instance_ids(masks).numpy(), _reference_ids(masks.numpy()))


def test_cpu_region_paint_equals_the_device_paint() -> None:
    """The CPU paints each mask over its own rows and columns; the device path (one argmax over the
    whole image, run here on the CPU) gives the same map, pasted masks with empty ones included."""
    from segmentation_ros.engine.masks import _paint_whole

    boxes = random_boxes(40, H, W, max_side=60, seed=7)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, W)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, H)
    masks = paste_masks(smooth_masks(40, seed=7), boxes, H, W, 0.3)
    masks[5] = False  # an empty mask
    assert int(masks.sum()) > 0
    np.testing.assert_array_equal(paint_instance_ids(masks).numpy(), _reference_ids(masks.numpy()))
    assert torch.equal(_paint_whole(masks), paint_instance_ids(masks))


def test_mask_extents_are_the_tight_rows_and_columns() -> None:
    from segmentation_ros.engine.masks import mask_extents

    masks = torch.zeros(3, 6, 8, dtype=torch.bool)
    masks[0, 2, 3] = True
    masks[1, 1:5, 0:8] = True  # third mask empty
    masks[1, 3, 7] = False
    assert mask_extents(masks) == [(2, 3, 3, 4), (1, 5, 0, 8), (0, 6, 0, 8)]
    assert mask_extents(masks.float()) == mask_extents(masks)


def test_paint_empty_input() -> None:
    ids = paint_instance_ids(torch.zeros(0, 5, 7, dtype=torch.bool))
    assert ids.shape == (5, 7) and ids.dtype == torch.int32 and int(ids.abs().sum()) == 0
    ids = paint_instance_ids(torch.zeros(2, 5, 7, dtype=torch.bool))
    assert ids.shape == (5, 7) and ids.dtype == torch.int32 and int(ids.abs().sum()) == 0


# ---- boxes_from_masks ---------------------------------------------------------------------------
def test_boxes_from_hand_made_map() -> None:
    ids = torch.zeros(6, 9, dtype=torch.int32)
    ids[1:3, 2:5] = 1  # 2 rows x 3 columns
    ids[4, 7] = 2  # one pixel
    ids[0, 0] = 4  # id 3 has no pixels
    ids[5, 8] = 4
    boxes, areas = boxes_from_masks(ids, 4)
    assert boxes.tolist() == [[2, 1, 5, 3], [7, 4, 8, 5], [0, 0, 0, 0], [0, 0, 9, 6]]
    assert areas.tolist() == [6, 1, 0, 2]


def test_boxes_from_random_map_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 8, (23, 31)).astype(np.int32)
    ids[ids == 5] = 0  # a missing id
    boxes, areas = boxes_from_masks(torch.from_numpy(ids), 7)
    for k in range(1, 8):
        ys, xs = np.nonzero(ids == k)
        if ys.size == 0:
            assert boxes[k - 1].tolist() == [0, 0, 0, 0] and int(areas[k - 1]) == 0
        else:
            assert boxes[k - 1].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert int(areas[k - 1]) == ys.size


def test_bincount_is_torch_bincount() -> None:
    g = torch.Generator().manual_seed(0)
    values = torch.randint(0, 9, (13, 17), generator=g, dtype=torch.int32)
    weights = torch.rand(13, 17, generator=g)
    counts = bincount(values, 12)
    assert counts.dtype == torch.int64 and torch.equal(counts, torch.bincount(values.reshape(-1).long(), minlength=12))
    sums = bincount(values, 3, weights=weights)  # minlength below the largest value + 1: grows
    assert sums.dtype == torch.float32 and sums.shape == (9,)
    torch.testing.assert_close(sums, torch.bincount(values.reshape(-1).long(), weights.reshape(-1), 3))


# ---- thresholds decided exactly -----------------------------------------------------------------
def _float32_around(threshold: float) -> list[np.float32]:
    """The float32 values that straddle ``threshold``: float32(threshold) and its two neighbours."""
    at = np.float32(threshold)
    return [np.nextafter(at, np.float32(-1)), at, np.nextafter(at, np.float32(2))]


TWO_DIGIT_THRESHOLDS = [j / 100 for j in range(1, 100)]


@pytest.mark.parametrize("path", ["cpu", "device"])
def test_mask_threshold_is_decided_in_float64_on_both_paths(path: str) -> None:
    """A pixel is inside when float64(p) > mask_threshold; a float32 comparison with float32(0.1)
    rounded up would leave p = float32(0.1) > 0.1 out. A 28x28 mask over a 28x28 box puts every
    cell's probability on one pixel unchanged, so the pasted values are exactly the chosen ones."""
    from segmentation_ros.engine.masks import _paste_whole

    paste = paste_masks if path == "cpu" else _paste_whole
    box = torch.tensor([[0.0, 0.0, 28.0, 28.0]])
    for threshold in [*TWO_DIGIT_THRESHOLDS, 0.0, 1.0]:
        values = torch.tensor(_float32_around(threshold) + [np.float32(0), np.float32(1)])
        mask = torch.zeros(1, 28, 28)
        mask[0, 0, : len(values)] = values
        pasted = paste(mask, box, 28, 28, threshold)[0, 0, : len(values)]
        expected = [float(v) > threshold for v in values.tolist()]
        assert pasted.tolist() == expected, f"threshold {threshold}: values {values.tolist()}"


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    st.floats(0.0, 1.0, width=32),
    st.floats(0.0, 1.0),
    st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]),
)
def test_exceeds_is_the_float64_comparison(value: float, threshold: float, dtype: torch.dtype) -> None:
    from segmentation_ros.engine.masks import exceeds

    values = torch.tensor([value, threshold, float(np.float32(threshold))], dtype=torch.float64).to(dtype)
    exact = values.double()
    assert exceeds(values, threshold).tolist() == (exact > threshold).tolist()
    assert exceeds(values, threshold, inclusive=True).tolist() == (exact >= threshold).tolist()
