"""``segmentation-ros eval``: :func:`add_subcommand` adds it to the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from segmentation_ros.tools.evaluate.evaluation import evaluate
from segmentation_ros.tools.evaluate.metrics import MASK_SOURCES
from segmentation_ros.tools.evaluate.report import format_report

DEFAULT_SYNTHETIC_SIZE = (320, 240)
DEFAULT_SYNTHETIC_NUM = 100


def _eval_command(args: argparse.Namespace) -> int:
    from segmentation_ros.engine.imageio import write_json
    from segmentation_ros.engine.pipeline import SegmentationEngine
    from segmentation_ros.tools.cli import engine_config_from_args
    from segmentation_ros.tools.synthetic import generate_scenes, parse_synthetic_spec

    config = engine_config_from_args(args)
    if args.num is not None and args.num < 1:
        raise ValueError(f"--num must be >= 1, got {args.num}")
    size = parse_synthetic_spec(args.data, DEFAULT_SYNTHETIC_SIZE)
    data_config: dict[str, Any] = {"data": args.data}
    if size is not None:
        width, height = size
        num = args.num if args.num is not None else DEFAULT_SYNTHETIC_NUM
        data: Any = generate_scenes(num, args.seed, width, height, split="test")
        data_config.update(split="test", seed=args.seed, num=num, resolution=f"{width}x{height}")
    elif Path(args.data).is_dir():
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
        help="score a model on synthetic or COCO data: mIoU, COCO mask/box AP, PQ",
        description="Run the engine over labelled images and print per-class and overall mIoU, pixel "
        "accuracy, COCO mask and box AP (pycocotools) and panoptic quality (torchmetrics).",
    )
    add_model_arguments(p)
    p.add_argument(
        "--data",
        required=True,
        metavar="SRC",
        help="'synthetic' or 'synthetic:WxH' (the generator's held-out test split, default "
        f"{DEFAULT_SYNTHETIC_SIZE[0]}x{DEFAULT_SYNTHETIC_SIZE[1]}) or a COCO dataset directory "
        "(images/, annotations/instances.json, annotations/panoptic.json + panoptic/)",
    )
    p.add_argument(
        "--num",
        type=int,
        default=None,
        help=f"images to evaluate (synthetic default {DEFAULT_SYNTHETIC_NUM}, COCO: all)",
    )
    p.add_argument("--seed", type=int, default=0, help="synthetic data seed (default: %(default)s)")
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
