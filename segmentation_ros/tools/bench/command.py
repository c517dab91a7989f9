"""``segmentation-ros bench``: the command line, its options and running it."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from typing import Any

import torch

from segmentation_ros.engine.runtimes import RUNTIMES
from segmentation_ros.tools.bench.output import format_markdown, format_table
from segmentation_ros.tools.bench.report import run_benchmark
from segmentation_ros.tools.bench.workloads import (
    WORKLOADS,
    BenchOptions,
    _product,
    full_options,
    quick_options,
)


def parse_size(text: str) -> tuple[int, int]:
    """``640x480`` -> (640, 480); the command line's camera sizes."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 640x480; got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


def _description() -> str | None:
    """What ``bench --help`` says: the package docstring without its first line and its list of modules."""
    from segmentation_ros.tools import bench

    doc = bench.__doc__
    return doc.split("\n", 2)[2].split("\nModules:\n", 1)[0] if doc else None


def add_subcommand(subparsers: Any) -> None:
    """Add ``segmentation-ros bench``."""
    p = subparsers.add_parser(
        "bench",
        help="measure this package's pipeline against a naive torchvision node and the bare network",
        description=_description(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.add_argument("--markdown", metavar="FILE", help="write the tables as Markdown")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the reduced set (default on CPU)")
    mode.add_argument("--full", action="store_true", help="the whole matrix (default on CUDA)")
    p.add_argument(
        "--workload",
        action="append",
        metavar="W",
        help=f"{', '.join(WORKLOADS)}, or semantic:MODEL, instance:MODEL, panoptic:SEM+INST; repeatable",
    )
    p.add_argument("--size", action="append", type=parse_size, metavar="WxH", help="camera size; repeatable")
    p.add_argument("--batch", action="append", type=int, metavar="N", help="cameras per step; repeatable")
    p.add_argument("--precision", action="append", choices=["fp32", "fp16", "bf16"], help="ours; repeatable")
    p.add_argument(
        "--runtime",
        action="append",
        choices=RUNTIMES,
        help="what runs our networks; repeatable: each one's variants side by side (default: torch)",
    )
    p.add_argument("--warmup", type=int, help="untimed steps per variant")
    p.add_argument("--repeats", type=int, help="timed runs per variant")
    p.add_argument("--iters", type=int, help="steps per timed run (0 = auto, the CPU default)")
    p.add_argument(
        "--instance-min-size",
        type=int,
        help="Mask R-CNN input short side for naive and ours; 0 = camera resolution, -1 = the model's own",
    )
    p.add_argument("--no-native", action="store_true", help="skip ours at native resolution")
    p.add_argument(
        "--semantic-input-size",
        type=int,
        help="semantic network input short side; -1 = the model's own (default)",
    )
    p.add_argument(
        "--score-threshold",
        type=float,
        help="instance score threshold, naive and ours (default 0: --max-detections sets the count)",
    )
    p.add_argument("--max-detections", type=int, help="detections per frame at most (default 20)")
    p.add_argument("--paste-detections", type=int, help="masks in the paste comparison (default 100)")
    p.add_argument(
        "--tracking-detections", type=int, help="moving boxes per frame in the tracking case (default 100)"
    )
    p.add_argument("--no-depth", action="store_true", help="skip the depth fusion case")
    p.add_argument("--weights", default="none", help="weights for every model (default: none = random)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--check", action="store_true", help="exit 1 when a target judged on this device fails")
    p.set_defaults(func=_run)


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    """The preset (``--quick``, ``--full``, or by device) with the command line's overrides."""
    from segmentation_ros.engine.config import resolve_device

    device = resolve_device(args.device)
    full = args.full or (not args.quick and device.type == "cuda")
    options = full_options(str(device)) if full else quick_options(str(device))
    if args.workload or args.size or args.batch:
        base = options.cases
        workloads = args.workload or list(dict.fromkeys(c.workload.name for c in base))
        sizes = args.size or list(dict.fromkeys((c.width, c.height) for c in base))
        batches = args.batch or sorted({c.batch for c in base})
        options.cases = _product(workloads, sizes, batches)
        options.label = f"{options.label}+custom"
    overrides = {
        "precisions": tuple(args.precision) if args.precision else None,
        "runtimes": tuple(dict.fromkeys(args.runtime)) if args.runtime else None,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "iters": args.iters,
        "instance_min_size": args.instance_min_size,
        "semantic_input_size": args.semantic_input_size,
        "score_threshold": args.score_threshold,
        "max_detections": args.max_detections,
        "paste_detections": args.paste_detections,
        "tracking_detections": args.tracking_detections,
    }
    options = dataclasses.replace(options, **{k: v for k, v in overrides.items() if v is not None})
    options.native = not args.no_native
    options.depth = not args.no_depth
    options.weights = args.weights
    options.seed = args.seed
    return options


def _run(args: argparse.Namespace) -> int:
    from segmentation_ros.engine.imageio import atomic_write_bytes, write_json

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    options = options_from_args(args)
    report = run_benchmark(options, progress=lambda message: print(message, file=sys.stderr, flush=True))
    if sys.argv[1:2] == ["bench"]:  # run from the shell (not through main(argv))
        report["command"] = shlex.join(["segmentation-ros", *sys.argv[1:]])
    print(format_table(report))
    # Atomic (temporary file, then rename): an interrupted run never leaves half a report.
    if args.json:
        write_json(args.json, report)
    if args.markdown:
        atomic_write_bytes(args.markdown, (format_markdown(report) + "\n").encode())
    failed = [t for t in report["targets"] if t["passed"] is False]
    return 1 if args.check and failed else 0
