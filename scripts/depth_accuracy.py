#!/usr/bin/env python3
"""Accuracy of depth fusion (engine/depth.py) against the synthetic generator's exact depth.

``python scripts/depth_accuracy.py [--frames 20] [--seed 11]`` prints, at 320x240 and 640x480, the
error of each object's centroid and the worst component of its box's centre or size, median and
90th percentile, against the exact points of the object's visible pixels:

- with the true instance masks, exact and grown by 2 and 4 pixels onto pixels of no instance (the
  background behind the object: what predicted masks do at their edges);
- with the demo models' panoptic predictions (``shapes_lraspp`` + ``shapes_maskrcnn``, shipped
  weights, CPU), each detection compared with the true object covering most of its mask (skipped
  when none covers half of it: a false positive has no truth).

The README's depth table comes from this script.
"""

from __future__ import annotations

import argparse

import numpy as np

from segmentation_ros.engine.depth import DepthConfig, PinholeIntrinsics, depth_in_meters, fuse_depth
from segmentation_ros.engine.pipeline import EngineConfig, SegmentationEngine
from segmentation_ros.engine.results import Segmentation
from segmentation_ros.tools.demo import DEMO_PARAMETERS
from segmentation_ros.tools.synthetic import generate_scene, true_segmentation, visible_points


def errors(scene, result: Segmentation, matched: dict[int, int]) -> list[tuple[float, float]]:
    out = fuse_depth(
        result,
        depth_in_meters(scene.depth),
        PinholeIntrinsics.from_k(scene.intrinsics.k),
        DepthConfig(max_range_m=0),
    )
    found = []
    for obj in out.objects:
        truth = matched.get(obj.id)
        if truth is None:
            continue
        points = visible_points(scene, truth)
        if len(points) < 50:
            continue
        lo, hi = points.min(0), points.max(0)
        box = np.abs(np.concatenate([obj.center - (lo + hi) / 2, obj.size - (hi - lo)])).max()
        found.append((float(np.linalg.norm(obj.centroid - points.mean(0))), float(box)))
    return found


def summary(name: str, found: list[tuple[float, float]]) -> str:
    c, b = np.array(found).T * 100
    return (
        f"{name}: {len(found)} objects, centroid p50 {np.median(c):.1f} cm p90 {np.percentile(c, 90):.1f} cm, "
        f"box p50 {np.median(b):.1f} cm p90 {np.percentile(b, 90):.1f} cm"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    engine = SegmentationEngine(EngineConfig(**{**DEMO_PARAMETERS, "device": "cpu"}))
    for width, height in ((320, 240), (640, 480)):
        scenes = [generate_scene(args.seed, width, height, split="test", index=i) for i in range(args.frames)]
        for bleed in (0, 2, 4):
            found = [
                e
                for s in scenes
                for e in errors(s, true_segmentation(s, bleed), {k: k for k in range(1, s.num_instances + 1)})
            ]
            print(summary(f"{width}x{height} true masks, bleeding {bleed} px", found))
        found = []
        for s in scenes:
            result = engine.segment(s.image)
            matched = {}
            for k in result.instances.ids:
                mask = result.instances.instance_ids == k
                ids, count = np.unique(s.instances[mask], return_counts=True)
                count = np.where(ids > 0, count, 0)
                if count.max() >= 0.5 * mask.sum():
                    matched[int(k)] = int(ids[np.argmax(count)])
            found += errors(s, result, matched)
        print(summary(f"{width}x{height} demo models", found))


if __name__ == "__main__":
    main()
