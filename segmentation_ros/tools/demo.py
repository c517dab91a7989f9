"""``segmentation-ros demo``: prove the package segments, offline, on a fresh machine.

1. Record a synthetic Gazebo-style RGB-D camera drive as a rosbag2 (``camera/``: colour,
   camera_info and the aligned depth image).
2. Run panoptic segmentation with depth over it with the demo models through the bag processor,
   exactly as ``segmentation-ros bag --depth-topic /camera/depth/image`` does (``segmented/``).
3. Read the output bag back: overlay PNGs per frame, and one picture with input / semantic /
   instances / panoptic / a top view of the labelled points and 3D boxes side by side for a few
   frames (``demo.png``).
4. Score the same models on held-out synthetic scenes, in-distribution (split ``test``: the
   training split's appearance) and out-of-distribution (split ``ood``: sky hues and ground textures
   training never shows): mIoU, mask AP, PQ of each (``metrics.json``, ``metrics.txt``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run_demo", "format_demo_metrics", "add_subcommand"]

DEMO_PARAMETERS: dict[str, Any] = {
    "task": "panoptic",
    "semantic_model": "shapes_lraspp",
    "instance_model": "shapes_maskrcnn",
    "semantic_weights": "DEFAULT",
    "instance_weights": "DEFAULT",
    "stuff_area_threshold": 128,  # ~0.2 % of a 320x240 frame; the default 4096 is for ~1 Mpx cameras
}

#: The demo's evaluations: key in ``metrics.json`` -> (synthetic split, title).
EVAL_SPLITS: dict[str, tuple[str, str]] = {
    "in_distribution": ("test", "in-distribution (split test: held-out scenes, the training appearance)"),
    "out_of_distribution": (
        "ood",
        "out-of-distribution (split ood: sky hues and ground textures training never shows)",
    ),
}


def format_demo_metrics(metrics: dict[str, Any]) -> str:
    """``metrics.json``'s content as text: the headline numbers side by side, then each split's full
    report (:func:`~segmentation_ros.tools.evaluate.format_report`) under its title."""
    from segmentation_ros.tools.evaluate.report import format_report, percent

    width = max(len(key) for key in EVAL_SPLITS)
    lines = [f"{'':{width}} {'split':5} {'mIoU':>6} {'AP50':>6} {'PQ':>6}"]
    for key, (split, _) in EVAL_SPLITS.items():
        report = metrics[key]
        miou = report.get("semantic", {}).get("miou")
        ap50 = report.get("instance", {}).get("segm", {}).get("ap50")
        pq = report.get("panoptic", {}).get("all", {}).get("pq")
        lines.append(f"{key:{width}} {split:5} {percent(miou):>6} {percent(ap50):>6} {percent(pq):>6}")
    for key, (_, title) in EVAL_SPLITS.items():
        lines += ["", f"== {title}", format_report(metrics[key])]
    return "\n".join(lines)


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

    ``metrics`` (also ``metrics.json``): ``{"in_distribution": report, "out_of_distribution": report,
    "config": ...}``, each report as ``evaluate`` returns it for ``eval_scenes`` scenes of the synthetic
    split ``test`` resp. ``ood``, with a ``config`` naming its data.

    Raises:
        ValueError: ``frames``, ``eval_scenes`` or ``picture_frames`` below 1.
    """
    from segmentation_ros.engine.imageio import write_json, write_png
    from segmentation_ros.engine.labels import get_label_set
    from segmentation_ros.engine.visualize import colorize_instances, colorize_labels, side_by_side
    from segmentation_ros.ros.bag import load_engine, process_bag
    from segmentation_ros.tools.evaluate import evaluate
    from segmentation_ros.tools.evaluate.data import synthetic_data_config
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
        topics = [
            f"{ns}/image_raw",
            f"{ns}/overlay",
            f"{ns}/semantic/labels",
            f"{ns}/instances/ids",
            f"{ns}/panoptic/color",
        ]
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
                _top_view(
                    images[f"{ns}/points"][stamp],
                    images[f"{ns}/detections_3d"][stamp],
                    labels,
                    (height, width),
                ),
            ]
            rows.append(
                side_by_side(panels, ["input", "semantic", "instances", "panoptic", "3D, from above"])
            )
        padded = [np.pad(r, ((0, 4), (0, 0), (0, 0)), constant_values=255) for r in rows]
        picture = np.concatenate(padded)[:-4]
        write_png(out / "demo.png", picture)

        # Metrics on held-out scenes the models never saw: in-distribution, then out-of-distribution.
        metrics: dict[str, Any] = {}
        for key, (split, _) in EVAL_SPLITS.items():
            scenes = generate_scenes(eval_scenes, seed, width, height, split=split)
            report = evaluate(engine, scenes, progress=progress)
            # the data keys of `segmentation-ros eval --json`'s config: reports of both compare directly
            data = synthetic_data_config(f"synthetic:{width}x{height}", width, height, split=split, seed=seed, num=eval_scenes)
            metrics[key] = {"config": data, **report}
        metrics["config"] = {
            "parameters": params,
            "scenes": eval_scenes,
            "resolution": [width, height],
            "seed": seed,
            "splits": {key: split for key, (split, _) in EVAL_SPLITS.items()},
        }
        write_json(out / "metrics.json", metrics)
        (out / "metrics.txt").write_text(format_demo_metrics(metrics) + "\n")
    finally:
        engine.close()
    return {
        "camera_bag": str(camera_bag),
        "segmented_bag": str(out / "segmented"),
        "picture": str(out / "demo.png"),
        "overlays": str(overlay_dir),
        "metrics": metrics,
        "bag": summary.report(),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def _demo_command(args: argparse.Namespace) -> int:
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
    print(format_demo_metrics(result["metrics"]))
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
    p.add_argument(
        "--eval-scenes",
        type=int,
        default=50,
        help="held-out scenes for the metrics, per split: in-distribution (test) and out-of-distribution (ood)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_demo_command)
