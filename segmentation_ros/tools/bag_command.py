"""``segmentation-ros bag IN OUT``: the command line of the rosbag2 processor (:mod:`segmentation_ros.ros.bag`).

Exit statuses (:data:`EXIT_STATUSES`, also in ``--help``): 0 OUT written (rejected frames are
reported, not an error); 2 nothing written: bad options, IN unreadable, OUT not creatable or in the
way; 130 interrupted by Ctrl-C (SIGINT) and 143 by SIGTERM, as shells report a process ended by
those signals (128 + the signal's number). SIGTERM unwinds like Ctrl-C: the partial output is
removed. An interrupt that comes after OUT was written says so: OUT is complete.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

from segmentation_ros.ros.bag import STORAGES, BagError, process_bag
from segmentation_ros.ros.messages import SUPPORTED_DISTROS

__all__ = ["EXIT_STATUSES", "add_subcommand", "core_parameters_from_args"]

EXIT_OK, EXIT_ERROR = 0, 2
#: Exit status -> meaning, as ``--help`` lists them.
EXIT_STATUSES: dict[int, str] = {
    EXIT_OK: "OUT written (frames that could not be segmented are reported and skipped)",
    EXIT_ERROR: "nothing written: bad options, IN unreadable (e.g. no metadata.yaml, a corrupt mcap "
    "chunk, a truncated .db3), OUT not creatable (under a file, in a read-only directory) or in the way",
    128 + signal.SIGINT: "interrupted by Ctrl-C (SIGINT): no partial output is left; OUT is as it was, "
    "or complete if the interrupt came after it was written (the last line says which)",
    128 + signal.SIGTERM: "terminated by SIGTERM, handled like Ctrl-C",
}


class _Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised where the program is so that it unwinds (and cleans up) as on Ctrl-C.

    A subclass, not KeyboardInterrupt itself: once a plain KeyboardInterrupt has passed through code
    run by ``exec`` of a string (rosbags and dataclasses generate code so), CPython counts it as
    unhandled even when caught, and ends the process by SIGINT whatever status ``main`` returns.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signal.Signals(signum)


@contextlib.contextmanager
def _interrupt_on_signals() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise :class:`_Interrupted` (signal handlers live in
    the main thread; elsewhere this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: Any) -> None:
        raise _Interrupted(signum)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of ``path`` itself, None when there is nothing there."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


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
    if getattr(args, "max_image_pixels", None):
        params["max_image_pixels"] = args.max_image_pixels
    if getattr(args, "depth_topics", None):
        params["depth_slop"] = args.depth_slop
    return params


def add_subcommand(subparsers: Any) -> None:
    """Add ``segmentation-ros bag IN OUT``."""
    from segmentation_ros.tools.cli import (
        add_max_image_pixels_argument,
        add_model_arguments,
        add_runtime_argument,
    )

    p = subparsers.add_parser(
        "bag",
        help="segment every camera frame of a rosbag2 into a new bag (no ROS needed)",
        description=textwrap.fill(
            "Copy a rosbag2 (mcap or sqlite3) and add the segmentation node's output topics for every "
            "camera frame. OUT appears only when complete. A frame that cannot be segmented is "
            "reported and skipped; the run goes on.",
            width=78,
        ),
        epilog="exit status:\n"
        + "\n".join(
            textwrap.fill(meaning, width=78, initial_indent=f"  {status:<4} ", subsequent_indent=" " * 7)
            for status, meaning in EXIT_STATUSES.items()
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the table's lines as they are
    )
    p.add_argument("input", metavar="IN", help="input rosbag2: a bag directory, or a .mcap / .db3 file")
    p.add_argument("output", metavar="OUT", help="output bag directory (must not exist, unless --overwrite)")
    add_model_arguments(p)
    add_runtime_argument(p)
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
        "--depth-topic",
        action="append",
        default=[],
        dest="depth_topics",
        metavar="TOPIC",
        help="an aligned depth image topic (16UC1 mm or 32FC1 m) of the camera whose namespace holds it; "
        "repeat per camera; adds points, detections_3d and markers",
    )
    g.add_argument(
        "--depth-slop",
        type=float,
        default=0.01,
        metavar="S",
        help="with --depth-topic: max stamp difference of a colour and a depth frame paired (default: %(default)s s)",
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
    add_max_image_pixels_argument(g)
    g.add_argument("--overwrite", action="store_true", help="replace OUT once the new bag is complete")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    before = _identity(args.output)  # OUT as it was: after an interrupt, a new OUT is this run's
    try:
        with _interrupt_on_signals():
            summary = process_bag(
                args.input,
                args.output,
                core_parameters_from_args(args),
                image_topics=args.image_topics or None,
                depth_topics=args.depth_topics or None,
                storage=args.storage,
                distro=args.distro,
                overwrite=args.overwrite,
                progress=not args.quiet,
                max_batch=args.max_batch,
                offline=True if args.offline else None,
            )
            print(summary.report())
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, _Interrupted) else signal.SIGINT
        after = _identity(args.output)
        if after is not None and after != before:  # OUT is renamed into place only when complete
            state = f" after {args.output} was written; it is complete"
        elif before is not None:
            state = f"; {args.output} not replaced, the previous one is kept"
        else:
            state = f"; {args.output} not written"
        print(f"segmentation-ros bag: interrupted ({signum.name}){state}", file=sys.stderr)
        return 128 + signum
    except OSError as exc:  # the environment (a disk, a permission), not a bug: one line, no traceback
        raise BagError(f"{type(exc).__name__}: {exc}") from exc
    return EXIT_OK
