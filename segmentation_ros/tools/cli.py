"""``segmentation-ros``: segment images, process rosbags, list models, benchmark, train, evaluate, export.

Every subcommand that runs a model takes the same model options (:func:`add_model_arguments`) and
turns them into one :class:`EngineConfig` (:func:`engine_config_from_args`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from tqdm import tqdm

from segmentation_ros.engine.config import PRECISIONS, TASKS, EngineConfig
from segmentation_ros.engine.imageio import DEFAULT_MAX_PIXELS
from segmentation_ros.engine.runtimes import RUNTIMES

__all__ = [
    "main",
    "add_model_arguments",
    "add_runtime_argument",
    "engine_config_from_args",
    "build_parser",
    "output_stems",
]

log = logging.getLogger("segmentation_ros")

_DEFAULTS = EngineConfig()  # the one source of the defaults below
DEFAULT_MODELS = {"semantic": _DEFAULTS.semantic_model, "instance": _DEFAULTS.instance_model}


def add_model_arguments(parser: argparse.ArgumentParser, *, default_task: str = "semantic") -> None:
    """The model options shared by ``segment``, ``bag``, ``eval`` and ``bench``."""
    g = parser.add_argument_group("model")
    g.add_argument("--task", choices=TASKS, default=default_task, help="what to segment (default: %(default)s)")
    g.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME",
        help="registry name; repeat for panoptic (one semantic and one instance model). "
        f"Defaults: {DEFAULT_MODELS['semantic']}, {DEFAULT_MODELS['instance']}",
    )
    g.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="W",
        help="DEFAULT, a torchvision weights name, a file, or none; one for all models or one per --model",
    )
    g.add_argument("--labels", action="append", default=[], metavar="SET", help="label set override, per --model")
    d = _DEFAULTS
    g.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    g.add_argument("--precision", default=d.precision, choices=list(PRECISIONS))
    g.add_argument("--score-threshold", type=float, default=d.score_threshold)
    g.add_argument("--mask-threshold", type=float, default=d.mask_threshold)
    g.add_argument("--overlap-threshold", type=float, default=d.overlap_threshold)
    g.add_argument("--stuff-area-threshold", type=int, default=d.stuff_area_threshold)
    g.add_argument("--max-detections", type=int, default=d.max_detections)
    g.add_argument("--label-divisor", type=int, default=d.label_divisor)
    g.add_argument(
        "--instance-min-size",
        type=int,
        default=d.instance_min_size,
        help="Mask R-CNN input short side; 0 = native, -1 = the model's own (torchvision: 800) (default)",
    )
    g.add_argument(
        "--instance-max-size",
        type=int,
        default=d.instance_max_size,
        help="Mask R-CNN input long side at most; -1 = the model's own (torchvision: 1333) (default); "
        "with --instance-min-size, enlarges the frame past the model's own size (small objects)",
    )
    g.add_argument("--offline", action="store_true", help="never download weights")


def add_max_image_pixels_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--max-image-pixels``: the decompression-bomb limit (the node's ``max_image_pixels``)."""
    parser.add_argument(
        "--max-image-pixels",
        type=positive_int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help="skip an image whose header declares more than N pixels, before decoding it (default: %(default)s)",
    )


def add_runtime_argument(parser: argparse.ArgumentParser) -> None:
    """``--runtime``: what runs the networks (``EngineConfig.runtime``); read by
    :func:`engine_config_from_args`, which takes the default where a command has no such option."""
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=_DEFAULTS.runtime,
        help="what runs the networks: torch (eager; CUDA graphs on CUDA) or onnxruntime (exported to ONNX once "
        "per model and input shape, cached; pip install 'segmentation-ros[onnx]') (default: %(default)s)",
    )


def engine_config_from_args(args: argparse.Namespace) -> EngineConfig:
    """Pair ``--model``/``--weights``/``--labels`` by position and fill the task's model slots."""
    from segmentation_ros.engine.registry import get_model_entry

    models = list(args.model)
    if len(args.weights) > 1 and len(args.weights) != len(models):
        raise ValueError(f"give one --weights for all models or one per --model; got {len(args.weights)} for {models}")
    if len(args.labels) > 1 and len(args.labels) != len(models):
        raise ValueError(f"give one --labels for all models or one per --model; got {len(args.labels)} for {models}")
    slots: dict[str, dict[str, str | None]] = {}
    for i, name in enumerate(models):
        task = get_model_entry(name).task
        if task in slots:
            raise ValueError(f"two {task} models given ({slots[task]['model']}, {name}); give at most one of each")
        slots[task] = {
            "model": name,
            "weights": args.weights[i if len(args.weights) > 1 else 0] if args.weights else "DEFAULT",
            "labels": args.labels[i if len(args.labels) > 1 else 0] if args.labels else None,
        }
    needed = {"semantic": ("semantic",), "instance": ("instance",), "panoptic": ("semantic", "instance")}[args.task]
    for task in slots:
        if task not in needed:
            raise ValueError(f"--task {args.task} takes no {task} model ({slots[task]['model']})")
    shared_weights = args.weights[0] if len(args.weights) == 1 else "DEFAULT"
    fields = {}
    for task in ("semantic", "instance"):
        slot = slots.get(task, {"model": DEFAULT_MODELS[task], "weights": shared_weights, "labels": None})
        fields[f"{task}_model"] = slot["model"]
        fields[f"{task}_weights"] = slot["weights"]
        fields[f"{task}_labels"] = slot["labels"]
    return EngineConfig(
        task=args.task,
        device=args.device,
        precision=args.precision,
        score_threshold=args.score_threshold,
        mask_threshold=args.mask_threshold,
        overlap_threshold=args.overlap_threshold,
        stuff_area_threshold=args.stuff_area_threshold,
        max_detections=args.max_detections,
        label_divisor=args.label_divisor,
        instance_min_size=args.instance_min_size,
        instance_max_size=args.instance_max_size,
        runtime=getattr(args, "runtime", _DEFAULTS.runtime),
        offline=True if args.offline else None,
        **fields,
    ).validate()


# ---- segment ------------------------------------------------------------------------------------
def output_stems(images: Sequence[str | Path]) -> list[Path]:
    """Where ``segment`` writes each input's results, relative to ``--out`` and without the suffix.

    Each input keeps its path relative to the deepest folder that holds all the inputs, less its
    extension: inputs of one folder give flat names (``a.png`` -> ``a``); ``cam1/0001.png`` and
    ``cam2/0001.png`` give ``cam1/0001`` and ``cam2/0001``, so no result overwrites another. The
    same file given twice maps to one name.

    Raises:
        ValueError: two different inputs would still share a name (``frame.png`` and ``frame.jpg``
            in one folder); the message names both.
    """
    absolute = [Path(os.path.abspath(path)) for path in images]
    if not absolute:
        return []
    root = Path(os.path.commonpath([path.parent for path in absolute]))
    stems = [path.parent.relative_to(root) / path.stem for path in absolute]
    owner: dict[Path, Path] = {}
    for path, given, stem in zip(absolute, images, stems, strict=True):
        first = owner.setdefault(stem, path)
        if first != path:
            other = images[absolute.index(first)]
            raise ValueError(
                f"inputs {other} and {given} would both write their results to {stem}.* under --out; "
                "rename one, or segment them in separate runs with different --out"
            )
    return stems


@contextlib.contextmanager
def _writable_directory(out: Path) -> Iterator[Path]:
    """Create ``--out`` and prove a file can be written in it, before any model is loaded; if the
    block fails (weights that cannot be loaded, say), remove the directories this created while
    they are still empty, so that a refused run leaves nothing behind."""
    created = [p for p in (out, *out.parents) if not os.path.lexists(p)]
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise RuntimeError(f"--out {out} is not a writable directory: {exc.strerror or exc}") from None
    try:
        yield out
    except BaseException:
        for path in created:  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()  # only while empty
        raise


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _segment(args: argparse.Namespace) -> int:
    from segmentation_ros.engine.imageio import read_image, write_json, write_png
    from segmentation_ros.engine.panoptic import id_to_rgb
    from segmentation_ros.engine.pipeline import SegmentationEngine, validate_frame
    from segmentation_ros.engine.visualize import overlay

    # Everything that can be refused up front is, before the model loads and any result is written.
    stems = output_stems(args.images)
    with _writable_directory(Path(args.out)) as out_dir:
        engine = SegmentationEngine(engine_config_from_args(args))
    failed = 0
    categories = [
        {"id": c.id, "name": c.name, "isthing": int(c.isthing), "color": list(c.color)} for c in engine.labels.classes
    ]
    inputs = list(zip(args.images, stems, strict=True))
    for path, stem in tqdm(inputs, desc="segment", unit="image", disable=len(inputs) < 2 or args.quiet):
        path = Path(path)
        try:
            image = read_image(path, max_pixels=args.max_image_pixels)  # its errors name the file
            try:
                image = validate_frame(image)
            except ValueError as exc:
                raise ValueError(f"image {path}: {exc}") from None
        except ValueError as exc:  # unreadable, too large, or not a frame the engine takes
            failed += 1
            tqdm.write(f"skipped: {exc}", file=sys.stderr)
            continue
        result = engine.segment(image)
        stem = out_dir / stem
        record: dict = {"image": str(path), "height": result.height, "width": result.width, "task": args.task}
        try:
            if result.semantic is not None:
                write_png(f"{stem}.semantic.png", result.semantic.labels)
                record["semantic_labels"] = result.semantic.label_set.name
            if result.instances is not None:
                write_png(f"{stem}.instances.png", result.instances.instance_ids)
                record["detections"] = result.instances.detections()
            if result.panoptic is not None:
                write_png(f"{stem}.panoptic.png", id_to_rgb(result.panoptic.segment_ids))
                record["segments_info"] = result.panoptic.segments_info()
                record["label_divisor"] = result.panoptic.label_divisor
            record["categories"] = categories
            write_png(f"{stem}.overlay.png", overlay(image, result))
            write_json(f"{stem}.json", record)
        except OSError as exc:  # a full disk or a vanished --out: every later write would fail too
            raise RuntimeError(f"cannot write the results of {path} to {stem}.*: {exc.strerror or exc}") from None
    if failed:
        print(f"{failed} of {len(args.images)} inputs were skipped", file=sys.stderr)
    return 1 if failed else 0


# ---- models -------------------------------------------------------------------------------------
def _models(args: argparse.Namespace) -> int:
    from segmentation_ros.engine.labels import get_label_set
    from segmentation_ros.engine.registry import get_model_entry, list_models

    rows = []
    for name in list_models(args.task):
        entry = get_model_entry(name)
        labels = get_label_set(entry.labels)
        rows.append({"name": name, "task": entry.task, "labels": labels.name, "classes": len(labels), **entry.published()})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = f"{'model':32} {'task':9} {'labels':7} {'classes':>7}  {'accuracy (published)':30} {'params M':>8} {'GFLOPS':>7} {'MB':>6}"
    print(header)
    print("-" * len(header))
    for r in rows:
        metrics = ", ".join(f"{k} {v}" for k, v in r.get("metrics", {}).items()) or "-"
        print(
            f"{r['name']:32} {r['task']:9} {r['labels']:7} {r['classes']:>7}  {metrics:30} "
            f"{r.get('params_m', '-'):>8} {r.get('gflops') or '-':>7} {r.get('file_mb') or '-':>6}"
        )
    return 0


# ---- parser -------------------------------------------------------------------------------------
_EXTRA_COMMANDS: list[tuple[str, str]] = [
    # (module, function) adding a subcommand: add_subcommand(subparsers) -> None
    ("segmentation_ros.tools.bag_command", "add_subcommand"),
    ("segmentation_ros.tools.bench", "add_subcommand"),
    ("segmentation_ros.tools.train_command", "add_subcommand"),
    ("segmentation_ros.tools.evaluate", "add_subcommand"),
    ("segmentation_ros.tools.demo", "add_subcommand"),
    ("segmentation_ros.tools.export_command", "add_subcommand"),
]


def build_parser() -> argparse.ArgumentParser:
    import importlib
    import importlib.util

    parser = argparse.ArgumentParser(prog="segmentation-ros", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "segment",
        help="segment image files into label, instance and panoptic PNGs + JSON",
        description="Segment image files (JPEG, PNG, BMP, TIFF, WebP, PNM). Exit status: 0 when every "
        "input was segmented; 1 when some could not be read (reported and skipped, the others "
        "processed); 2 when nothing could be done or the run stopped (bad options, an unwritable "
        "--out, two inputs that would write the same results).",
    )
    add_model_arguments(p)
    add_runtime_argument(p)
    p.add_argument(
        "--out",
        required=True,
        help="output directory; each input's results keep its path relative to the inputs' common folder",
    )
    add_max_image_pixels_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(func=_segment)

    p = sub.add_parser("models", help="list the registered models")
    p.add_argument("--task", choices=["semantic", "instance"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_models)

    for module_name, function in _EXTRA_COMMANDS:
        if importlib.util.find_spec(module_name) is not None:
            getattr(importlib.import_module(module_name), function)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (ValueError, RuntimeError) as exc:  # configuration and weights errors: say it, no traceback
        if args.verbose:
            raise
        print(f"segmentation-ros: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
