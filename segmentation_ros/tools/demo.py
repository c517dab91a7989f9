"""``segmentation-ros demo``: prove the package segments, offline, on a fresh machine.

1. Record a synthetic Gazebo-style RGB-D camera drive as a rosbag2 (``camera/``: colour,
   camera_info and the aligned depth image).
2. Run panoptic segmentation with depth over it with the demo models through the bag processor,
   exactly as ``segmentation-ros bag --depth-topic /camera/depth/image`` does (``segmented/``).
3. Read the output bag back: overlay PNGs per frame, and one picture with input / semantic /
   instances / panoptic / a top view of the labelled points and 3D boxes side by side for a few
   frames (``demo.png``).
4. Score the same models on held-out synthetic scenes: mIoU, mask AP, PQ (``metrics.json``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run_demo", "add_subcommand"]

DEMO_PARAMETERS: dict[str, Any] = {
    "task": "panoptic",
    "semantic_model": "shapes_lraspp",
    "instance_model": "shapes_maskrcnn",
    "semantic_weights": "DEFAULT",
    "instance_weights": "DEFAULT",
    "stuff_area_threshold": 128,  # ~0.2 % of a 320x240 frame; the default 4096 is for ~1 Mpx cameras
}


def _bag_messages(bag: Path, topics: list[str]) -> dict[str, dict[int, Any]]:
    """topic -> {header stamp ns: message} for the given topics of a bag; Images as arrays."""
    from rosbags.highlevel import AnyReader

    from segmentation_ros.ros.conversions import image_to_numpy
    from segmentation_ros.ros.messages import time_to_ns

    out: dict[str, dict[int, Any]] = {t: {} for t in topics}
    with AnyReader([bag]) as reader:
        connections = [c for c in reader.connections if c.topic in out]
        for conn, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, conn.msgtype)
            value = np.array(image_to_numpy(msg)) if conn.msgtype == "sensor_msgs/msg/Image" else msg
            out[conn.topic][time_to_ns(msg.header.stamp)] = value
    return out


def _top_view(points: Any, detections: Any, labels: Any, size: tuple[int, int]) -> np.ndarray:
    """The frame's labelled points from above (instance colour, else class colour) with its 3D boxes."""
    from segmentation_ros.engine.visualize import point_colors, top_view
    from segmentation_ros.ros.depth_outputs import point_cloud_from_message

    cloud = point_cloud_from_message(points)
    xyz = np.stack([cloud["x"], cloud["y"], cloud["z"]], 1)
    colors = point_colors(cloud["label"], cloud["instance"], labels)
    boxes = []
    for d in detections.detections:
        c, s = d.bbox.center.position, d.bbox.size
        boxes.append((int(d.id), np.array([c.x, c.y, c.z]), np.array([s.x, s.y, s.z])))
    return top_view(xyz, colors, boxes, size)


def run_demo(
    out_dir: str | Path,
    *,
    frames: int = 30,
    width: int = 320,
    height: int = 240,
    seed: int = 0,
    eval_scenes: int = 50,
    device: str = "auto",
    picture_frames: int = 4,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the whole demo into ``out_dir`` and return a summary (paths, bag summary, metrics).

    Raises:
        ValueError: ``frames``, ``eval_scenes`` or ``picture_frames`` below 1.
    """
    from segmentation_ros.engine.imageio import write_json, write_png
    from segmentation_ros.engine.labels import get_label_set
    from segmentation_ros.engine.visualize import colorize_instances, colorize_labels, side_by_side
    from segmentation_ros.ros.bag import load_engine, process_bag
    from segmentation_ros.tools.evaluate import evaluate, format_report
    from segmentation_ros.tools.synthetic import generate_scenes, generate_sequence, write_sequence_bag

    for name, value in (("frames", frames), ("eval_scenes", eval_scenes), ("picture_frames", picture_frames)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    params = {**DEMO_PARAMETERS, "device": device}

    camera_bag = write_sequence_bag(
        out / "camera", generate_sequence(frames, seed, width, height, split="val"), overwrite=True
    )
    ns = "/camera"
    engine = load_engine(params)
    try:
        summary = process_bag(
            camera_bag,
            out / "segmented",
            params,
            depth_topics=[f"{ns}/depth/image"],
            engine=engine,
            overwrite=True,
            progress=progress,
        )

        # What the bag holds, as people look at it.
        topics = [f"{ns}/image_raw", f"{ns}/overlay", f"{ns}/semantic/labels", f"{ns}/instances/ids", f"{ns}/panoptic/color"]
        images = _bag_messages(out / "segmented", [*topics, f"{ns}/points", f"{ns}/detections_3d"])
        overlay_dir = out / "overlay"
        shutil.rmtree(overlay_dir, ignore_errors=True)
        for k, (_, overlay) in enumerate(sorted(images[f"{ns}/overlay"].items())):
            write_png(overlay_dir / f"frame_{k:04d}.png", overlay)
        stamps = sorted(images[f"{ns}/panoptic/color"])
        chosen = [stamps[int(i)] for i in np.linspace(0, len(stamps) - 1, min(picture_frames, len(stamps)))]
        labels = get_label_set("shapes")
        rows = []
        for stamp in chosen:
            panels = [
                images[f"{ns}/image_raw"][stamp],
                colorize_labels(images[f"{ns}/semantic/labels"][stamp], labels),
                colorize_instances(images[f"{ns}/instances/ids"][stamp]),
                images[f"{ns}/panoptic/color"][stamp],
                _top_view(images[f"{ns}/points"][stamp], images[f"{ns}/detections_3d"][stamp], labels, (height, width)),
            ]
            rows.append(side_by_side(panels, ["input", "semantic", "instances", "panoptic", "3D, from above"]))
        picture = np.concatenate([np.pad(r, ((0, 4), (0, 0), (0, 0)), constant_values=255) for r in rows])[:-4]
        write_png(out / "demo.png", picture)

        # Metrics on held-out scenes the models never saw.
        report = evaluate(engine, generate_scenes(eval_scenes, seed, width, height, split="test"), progress=progress)
        report["config"] = {"parameters": params, "scenes": eval_scenes, "resolution": [width, height], "seed": seed}
        write_json(out / "metrics.json", report)
        (out / "metrics.txt").write_text(format_report(report) + "\n")
    finally:
        engine.close()
    return {
        "camera_bag": str(camera_bag),
        "segmented_bag": str(out / "segmented"),
        "picture": str(out / "demo.png"),
        "overlays": str(overlay_dir),
        "metrics": report,
        "bag": summary.report(),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def _demo_command(args: argparse.Namespace) -> int:
    from segmentation_ros.tools.evaluate import format_report

    result = run_demo(
        args.out,
        frames=args.frames,
        width=args.width,
        height=args.height,
        seed=args.seed,
        eval_scenes=args.eval_scenes,
        device=args.device,
        progress=not args.quiet,
    )
    print(result["bag"])
    print(format_report(result["metrics"]))
    keys = ("camera_bag", "segmented_bag", "picture", "overlays", "wall_s")
    print(json.dumps({k: result[k] for k in keys}, indent=2))
    print(
        f"\nView: ros2 bag play {result['segmented_bag']} and rviz2 -d config/segmentation.rviz "
        "(displays under /camera/...), or open the bag in Foxglove."
    )
    return 0


def add_subcommand(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="synthetic camera bag -> panoptic bag, pictures and metrics")
    p.add_argument("--out", default="demo_out", help="output directory (default: %(default)s)")
    p.add_argument("--frames", type=int, default=30, help="frames in the camera recording")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-scenes", type=int, default=50, help="held-out scenes for the metrics")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_demo_command)
