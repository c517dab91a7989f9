"""``segmentation-ros train``: the command line of :mod:`segmentation_ros.tools.train` (its options
are :class:`~segmentation_ros.tools.train.TrainConfig`'s fields, with its defaults)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from segmentation_ros.tools import train as train_module
from segmentation_ros.tools.train import CHECKPOINT_NAME, DEFAULT_SYNTHETIC_SIZE, TrainConfig

__all__ = ["add_subcommand"]


def add_subcommand(subparsers: Any) -> None:
    """Add ``train`` to the ``segmentation-ros`` parser."""
    p = subparsers.add_parser(
        "train",
        help="train or fine-tune a registered model on synthetic frames or a COCO dataset",
        description="Fine-tune a registered architecture on seeded synthetic frames or a COCO dataset; "
        "writes a resumable checkpoint, fp16 weights for build_model and a JSON-lines loss log to --out.",
    )
    # Defaults are TrainConfig's (class attributes of the dataclass): one place to change them.
    p.add_argument("--model", required=True, metavar="NAME", help="registry name (segmentation-ros models)")
    p.add_argument(
        "--weights",
        default=TrainConfig.weights,
        metavar="W",
        help="initial weights: DEFAULT, a file, or none (default: none)",
    )
    p.add_argument(
        "--labels", default=TrainConfig.labels, metavar="SET", help="label set (default: the model's)"
    )
    width, height = DEFAULT_SYNTHETIC_SIZE
    p.add_argument(
        "--data",
        default="synthetic",
        help=f"synthetic[:WxH] (default {width}x{height}) or a COCO dataset directory (default: %(default)s)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="run directory: checkpoint, weights, log")
    p.add_argument(
        "--steps", type=int, default=TrainConfig.steps, help="total optimizer steps (default: %(default)s)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=TrainConfig.batch_size,
        help="frames per step (default: %(default)s)",
    )
    p.add_argument(
        "--lr", type=float, default=TrainConfig.lr, help="AdamW peak learning rate (default: %(default)s)"
    )
    p.add_argument(
        "--weight-decay",
        type=float,
        default=TrainConfig.weight_decay,
        help="AdamW weight decay of weight tensors; biases and norm scales get none (default: %(default)s)",
    )
    p.add_argument(
        "--warmup-steps",
        type=int,
        default=TrainConfig.warmup_steps,
        help="linear warm-up, then cosine decay to 0 (default: %(default)s)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=TrainConfig.checkpoint_every,
        metavar="N",
        help="save the training state every N steps (default: %(default)s)",
    )
    p.add_argument("--device", default=TrainConfig.device, help="cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument(
        "--workers",
        type=int,
        default=TrainConfig.workers,
        metavar="K",
        help="data loader processes (default: %(default)s)",
    )
    p.add_argument("--resume", action="store_true", help=f"continue from DIR/{CHECKPOINT_NAME} if it exists")
    p.add_argument(
        "--seed",
        type=int,
        default=TrainConfig.seed,
        help="seed of the data and of torch (default: %(default)s)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    cfg = TrainConfig(
        model=args.model,
        data=args.data,
        out=args.out,
        weights=args.weights,
        labels=args.labels,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        checkpoint_every=args.checkpoint_every,
        device=args.device,
        workers=args.workers,
        resume=args.resume,
        seed=args.seed,
        progress=not args.quiet,
    )
    summary = train_module.train(cfg)  # looked up on the module: tests replace it
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    from segmentation_ros.tools.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
