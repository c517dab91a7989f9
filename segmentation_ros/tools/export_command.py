"""``segmentation-ros export``: a model's fixed-shape network part(s) as ONNX files, with metadata.

For a camera size, each model of the task gets ``<out>/<model>.onnx`` and ``<out>/<model>.json``:
exactly what the engine runs with ``runtime: onnxruntime`` (:mod:`segmentation_ros.engine.runtimes.onnx`)
at that camera size: a semantic network to its logits at the output stride; Mask R-CNN's backbone,
FPN and RPN head (the data-dependent rest, proposals and ROI heads, is not in the file). The JSON
(and the ONNX file's ``segmentation_ros`` metadata entry) holds the labels, the input shape and
normalisation, the outputs and the cache key's facts (weights SHA-256, opset, exporter versions), so
an existing TensorRT or ONNX toolchain can take the files (``trtexec --onnx=<model>.onnx``).
Files are written atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

__all__ = ["add_subcommand"]


def add_subcommand(subparsers: Any) -> None:
    """Add ``segmentation-ros export``."""
    from segmentation_ros.engine.runtimes.onnx import OPSET
    from segmentation_ros.tools.bench.command import parse_size
    from segmentation_ros.tools.cli import add_model_arguments, positive_int

    p = subparsers.add_parser(
        "export",
        help="write a model's network part(s) as ONNX files with their metadata (labels, input, normalisation)",
        description=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(p)
    p.add_argument(
        "--size",
        type=parse_size,
        required=True,
        metavar="WxH",
        help="camera size; the network input follows from it as in the engine",
    )
    p.add_argument(
        "--semantic-input-size",
        type=int,
        default=-1,
        help="semantic network input short side; 0 = camera resolution, -1 = the model's own (default)",
    )
    p.add_argument("--batch", type=positive_int, default=1, help="frames per pass (default: %(default)s)")
    p.add_argument("--opset", type=positive_int, default=OPSET, help="ONNX opset (default: %(default)s)")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    import numpy as np

    from segmentation_ros.engine.imageio import atomic_write_bytes, write_json
    from segmentation_ros.engine.pipeline import SegmentationEngine, validate_frame
    from segmentation_ros.engine.runtimes.onnx import export_network
    from segmentation_ros.tools.cli import engine_config_from_args

    width, height = args.size
    try:  # the engine's frame limits
        validate_frame(np.zeros((height, width), np.uint8))
    except ValueError as exc:
        raise ValueError(f"--size {width}x{height}: {str(exc).removeprefix('frame 0: ')}") from None
    config = dataclasses.replace(engine_config_from_args(args), semantic_input_size=args.semantic_input_size)
    engine = SegmentationEngine(config)
    out = Path(args.out)
    for part in ("semantic", "instance"):
        if (engine.semantic_model if part == "semantic" else engine.instance_model) is None:
            continue
        spec = engine.network_spec(part)
        h, w = engine.network_input_size(part, height, width)
        exported = export_network(spec, (args.batch, 3, h, w), args.opset)
        info = {
            **exported.info,
            "camera": {"width": width, "height": height},
            "network_input": {"height": h, "width": w},
        }
        if part == "instance":
            rh, rw = engine.network_input_size(part, height, width, padded=False)
            info["network_input"] |= {"resized_height": rh, "resized_width": rw}
        path = out / f"{spec.model}.onnx"
        try:
            atomic_write_bytes(path, exported.data)
            write_json(path.with_suffix(".json"), info)
        except OSError as exc:
            raise RuntimeError(f"cannot write {path}: {exc.strerror or exc}") from None
        outputs = ", ".join(o["name"] for o in info["outputs"])
        print(
            f"wrote {path} ({len(exported.data) / 2**20:.1f} MiB) and {path.with_suffix('.json').name}: "
            f"input images {'x'.join(map(str, info['input']['shape']))}, outputs {outputs}"
        )
    return 0
