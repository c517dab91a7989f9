"""``segmentation-ros eval``: :func:`add_subcommand` adds it to the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from segmentation_ros.tools.evaluate.data import synthetic_data_config
from segmentation_ros.tools.evaluate.evaluation import evaluate
from segmentation_ros.tools.evaluate.metrics import MASK_SOURCES
from segmentation_ros.tools.evaluate.report import format_report

DEFAULT_SYNTHETIC_SIZE = (320, 240)
DEFAULT_SYNTHETIC_NUM = 100
DEFAULT_TRACKING_SEQUENCES = 4
DEFAULT_TRACKING_FRAMES = 30
DEFAULT_TRACKING_FPS = 10.0
#: ``--task`` values of ``eval``: the engine's tasks, and ``tracking`` (an instance model's ids over
#: time, :mod:`segmentation_ros.tools.evaluate.tracking`).
EVAL_TASKS = ("semantic", "instance", "panoptic", "tracking")
#: ``--split`` values of ``eval`` with synthetic data: ``test`` (in-distribution: held-out frames whose
#: appearance the training split shares) and ``ood`` (out-of-distribution: sky hues and ground texture
#: families that train, val and test never use), see :data:`segmentation_ros.tools.synthetic.SPLITS`.
EVAL_SPLITS = ("test", "ood")
DEFAULT_EVAL_SPLIT = "test"


def _tracking_command(args: argparse.Namespace) -> int:
    """``eval --task tracking``: ``--num`` synthetic drives of ``--frames`` frames from split
    ``--split``, seeds ``--seed``, ``--seed + 1``, ..."""
    from segmentation_ros.engine.imageio import write_json
    from segmentation_ros.engine.pipeline import SegmentationEngine
    from segmentation_ros.engine.tracking import TrackerConfig
    from segmentation_ros.tools.cli import engine_config_from_args
    from segmentation_ros.tools.evaluate.tracking import evaluate_tracking, format_tracking_report
    from segmentation_ros.tools.synthetic import generate_sequence, parse_synthetic_spec

    config = engine_config_from_args(argparse.Namespace(**{**vars(args), "task": "instance"}))
    size = parse_synthetic_spec(args.data, DEFAULT_SYNTHETIC_SIZE)
    if size is None:
        raise ValueError(
            f"--task tracking needs --data synthetic or synthetic:WxH (drives whose object identities are "
            f"known), got {args.data!r}"
        )
    width, height = size
    num = args.num if args.num is not None else DEFAULT_TRACKING_SEQUENCES
    frames = args.frames if args.frames is not None else DEFAULT_TRACKING_FRAMES
    fps = args.fps if args.fps is not None else DEFAULT_TRACKING_FPS
    if frames < 1:
        raise ValueError(f"--frames must be >= 1, got {frames}")
    if not fps > 0.0:
        raise ValueError(f"--fps must be > 0, got {fps}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    seeds = [args.seed + i for i in range(num)]
    engine = SegmentationEngine(config)
    tracker_config = TrackerConfig()
    report = evaluate_tracking(
        engine,
        (generate_sequence(frames, s, width, height, split=args.split, fps=fps) for s in seeds),
        names=[f"seed {s}" for s in seeds],
        tracker_config=tracker_config,
        mask_source=args.mask_source,
        batch_size=args.batch_size,
        progress=not args.quiet,
        total_frames=num * frames,
    )
    report = {
        "config": {
            "task": "tracking",
            "models": {"instance": config.instance_model},
            "weights": {"instance": config.instance_weights},
            "labels": {"instance": engine.instance_model.labels.name},
            "data": args.data,
            "split": args.split,
            "seeds": seeds,
            "sequences": num,
            "frames_per_sequence": frames,
            "fps": fps,
            "resolution": f"{width}x{height}",
            "mask_source": args.mask_source,
        },
        **report,
    }
    print(format_tracking_report(report))
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _eval_command(args: argparse.Namespace) -> int:
    from segmentation_ros.engine.imageio import write_json
    from segmentation_ros.engine.pipeline import SegmentationEngine
    from segmentation_ros.tools.cli import engine_config_from_args
    from segmentation_ros.tools.synthetic import generate_scenes, parse_synthetic_spec

    if args.num is not None and args.num < 1:
        raise ValueError(f"--num must be >= 1, got {args.num}")
    if args.task == "tracking":
        return _tracking_command(args)
    for option in ("frames", "fps"):
        if getattr(args, option) is not None:
            raise ValueError(f"--{option} is for --task tracking")
    config = engine_config_from_args(args)
    size = parse_synthetic_spec(args.data, DEFAULT_SYNTHETIC_SIZE)
    data_config: dict[str, Any] = {"data": args.data}
    if size is not None:
        width, height = size
        num = args.num if args.num is not None else DEFAULT_SYNTHETIC_NUM
        data: Any = generate_scenes(num, args.seed, width, height, split=args.split)
        data_config = synthetic_data_config(args.data, width, height, split=args.split, seed=args.seed, num=num)
    elif Path(args.data).is_dir():
        if args.split != DEFAULT_EVAL_SPLIT:
            raise ValueError(
                f"--split {args.split} is for synthetic data (--data synthetic or synthetic:WxH); "
                f"a dataset directory ({args.data!r}) is evaluated whole, without --split"
            )
        data, num = args.data, args.num
        data_config.update(num=num)
    else:
        raise ValueError(
            f"--data must be 'synthetic', 'synthetic:WxH' or a COCO dataset directory, got {args.data!r}"
        )
    engine = SegmentationEngine(config)
    report = evaluate(
        engine,
        data,
        num=num,
        mask_source=args.mask_source,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    task = config.task
    parts = {"semantic": ("semantic",), "instance": ("instance",), "panoptic": ("semantic", "instance")}[task]
    data_config["num"] = report["data"]["images"]
    data_config["resolution"] = data_config.get("resolution") or ", ".join(report["data"]["resolutions"])
    report = {
        "config": {
            "task": task,
            "models": {p: getattr(config, f"{p}_model") for p in parts},
            "weights": {p: getattr(config, f"{p}_weights") for p in parts},
            "labels": {p: getattr(engine, f"{p}_model").labels.name for p in parts},
            **data_config,
            **({"mask_source": args.mask_source} if "instance" in parts else {}),
        },
        **report,
    }
    print(format_report(report))
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def add_subcommand(subparsers: Any) -> None:
    """Add ``eval`` to the ``segmentation-ros`` command line (see :mod:`segmentation_ros.tools.cli`)."""
    from segmentation_ros.tools.cli import add_model_arguments

    p = subparsers.add_parser(
        "eval",
        help="score a model on synthetic or COCO data: mIoU, COCO mask/box AP, PQ; tracking: IDF1, MOTA",
        description="Run the engine over labelled images and print per-class and overall mIoU, pixel "
        "accuracy, COCO mask and box AP (pycocotools) and panoptic quality (torchmetrics). With --task "
        "tracking: run the instance model over synthetic camera drives whose object identities are known "
        "and print the MOT metrics (motmetrics: IDF1, MOTA, ID switches, ...) of the tracker's ids and of "
        "the per-frame ids.",
        conflict_handler="resolve",  # eval's --task also takes "tracking" (replaces the shared option)
    )
    add_model_arguments(p)
    p.add_argument(
        "--task",
        choices=EVAL_TASKS,
        default="semantic",
        help="what to score (default: %(default)s); tracking: the instance model's ids over time",
    )
    p.add_argument(
        "--data",
        required=True,
        metavar="SRC",
        help="'synthetic' or 'synthetic:WxH' (the generator's held-out --split, default "
        f"{DEFAULT_SYNTHETIC_SIZE[0]}x{DEFAULT_SYNTHETIC_SIZE[1]}) or a COCO dataset directory "
        "(images/, annotations/instances.json, annotations/panoptic.json + panoptic/)",
    )
    p.add_argument(
        "--split",
        choices=EVAL_SPLITS,
        default=DEFAULT_EVAL_SPLIT,
        help="synthetic data: which held-out split (default: %(default)s); test: in-distribution (the "
        "training split's appearance), ood: out-of-distribution (sky hues and ground textures training "
        "never shows)",
    )
    p.add_argument(
        "--num",
        type=int,
        default=None,
        help=f"images to evaluate (synthetic default {DEFAULT_SYNTHETIC_NUM}, COCO: all); --task tracking: "
        f"sequences (default {DEFAULT_TRACKING_SEQUENCES})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="synthetic data seed (default: %(default)s); --task tracking: sequence i has seed SEED + i",
    )
    p.add_argument(
        "--frames",
        type=int,
        default=None,
        help=f"--task tracking: frames per sequence (default {DEFAULT_TRACKING_FRAMES})",
    )
    p.add_argument(
        "--fps",
        type=float,
        default=None,
        help=f"--task tracking: the drives' frame rate, sets the stamps (default {DEFAULT_TRACKING_FPS:g})",
    )
    p.add_argument("--json", metavar="FILE", help="write every number and the configuration here")
    p.add_argument("--batch-size", type=int, default=1, help="frames per forward pass (default: %(default)s)")
    p.add_argument(
        "--mask-source",
        choices=MASK_SOURCES,
        default="masks",
        help="mask AP from each detection's full mask or its visible id-map pixels (default: %(default)s)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_eval_command)
