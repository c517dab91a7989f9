"""``segmentation-ros bag IN OUT``: the command line of the rosbag2 processor (:mod:`segmentation_ros.ros.bag`)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from segmentation_ros.ros.bag import STORAGES, process_bag
from segmentation_ros.ros.messages import SUPPORTED_DISTROS

__all__ = ["add_subcommand", "core_parameters_from_args"]


def core_parameters_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """SegmentationCore parameters from the shared model options (see ``cli.add_model_arguments``)."""
    from segmentation_ros.ros.node_core import PARAMETERS
    from segmentation_ros.tools.cli import engine_config_from_args

    config = engine_config_from_args(args)
    names = {p.name for p in PARAMETERS}
    params: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        if f.name in names:
            value = getattr(config, f.name)
            params[f.name] = list(value) if isinstance(value, tuple) else "" if value is None else value
    if getattr(args, "classes", None):
        params["classes"] = list(args.classes)
    if getattr(args, "tracking", False):
        params["tracking"] = True
        params["track_buffer_s"] = args.track_buffer_s
    return params


def add_subcommand(subparsers: Any) -> None:
    """Add ``segmentation-ros bag IN OUT``."""
    from segmentation_ros.tools.cli import add_model_arguments

    p = subparsers.add_parser(
        "bag",
        help="segment every camera frame of a rosbag2 into a new bag (no ROS needed)",
        description="Copy a rosbag2 (mcap or sqlite3) and add the segmentation node's output topics for "
        "every camera frame. OUT appears only when complete.",
    )
    p.add_argument("input", metavar="IN", help="input rosbag2: a bag directory, or a .mcap / .db3 file")
    p.add_argument("output", metavar="OUT", help="output bag directory (must not exist, unless --overwrite)")
    add_model_arguments(p)
    g = p.add_argument_group("bag")
    g.add_argument(
        "--image-topic",
        action="append",
        default=[],
        dest="image_topics",
        metavar="TOPIC",
        help="a camera image topic (Image or CompressedImage); repeat per camera. Default: every image topic",
    )
    g.add_argument(
        "--classes",
        type=int,
        action="append",
        default=[],
        metavar="ID",
        help="keep only instances of this class id; repeat for more (default: all)",
    )
    g.add_argument(
        "--distro",
        choices=SUPPORTED_DISTROS,
        default="humble",
        help="message definitions (default: %(default)s)",
    )
    g.add_argument("--storage", choices=STORAGES, help="output storage (default: the input's)")
    g.add_argument(
        "--max-batch",
        type=int,
        default=0,
        metavar="N",
        help="frames per batch at most (default 0: the next frame of every camera)",
    )
    g.add_argument(
        "--tracking",
        action="store_true",
        help="instance ids persist across frames (track ids per camera, by header time), as the node's tracking",
    )
    g.add_argument(
        "--track-buffer-s",
        type=float,
        default=1.0,
        metavar="S",
        help="with --tracking: forget a track unseen for this long (default: %(default)s)",
    )
    g.add_argument("--overwrite", action="store_true", help="replace OUT once the new bag is complete")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        summary = process_bag(
            args.input,
            args.output,
            core_parameters_from_args(args),
            image_topics=args.image_topics or None,
            storage=args.storage,
            distro=args.distro,
            overwrite=args.overwrite,
            progress=not args.quiet,
            max_batch=args.max_batch,
            offline=True if args.offline else None,
        )
    except KeyboardInterrupt:
        print(f"segmentation-ros bag: interrupted; {args.output} not written", file=sys.stderr)
        return 130
    print(summary.report())
    return 0
