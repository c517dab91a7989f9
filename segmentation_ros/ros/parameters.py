"""The segmentation node's parameters: their specifications (default, description, range or
choices, element type, whether they can change while running) and their validation. One table,
:data:`PARAMETERS`, serves the live node's descriptors, the node core, the bag processor and the
README's parameter table (a test keeps them equal).

Every value is checked against its parameter's own type: a wrong type or value is a ValueError
naming the parameter (and the element of a list), never a coercion.
"""

from __future__ import annotations

import array
import math
import re
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from segmentation_ros.engine.config import PRECISIONS, TASKS, EngineConfig
from segmentation_ros.engine.imageio import DEFAULT_MAX_PIXELS
from segmentation_ros.engine.runtimes import RUNTIMES
from segmentation_ros.ros.launch_helpers import CAMERA_NAME

__all__ = ["ParameterSpec", "PARAMETERS", "SPECS", "ENGINE_FIELDS", "engine_config", "validate_parameters"]

_LISTS = (list, tuple, array.array)  # array.array: how rclpy may hand over an integer array
_REPR = reprlib.Repr()  # bounded reprs of bad values in error messages
_REPR.maxstring, _REPR.maxother, _REPR.maxlist = 80, 80, 8


def _as_int(value: Any) -> int | None:
    """An integer (or an integral, finite float), else None: never a bool, string, 1.5, NaN or inf."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def _as_float(value: Any) -> float | None:
    """A real number as a float, else None: never a bool, string or NaN (infinities meet the range)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        return None
    return None if math.isnan(number) else number


_CONVERT: dict[type, Callable[[Any], Any]] = {
    bool: lambda v: bool(v) if isinstance(v, (bool, np.bool_)) else None,
    int: _as_int,
    float: _as_float,
    str: lambda v: str(v) if isinstance(v, str) else None,
}


@dataclass(frozen=True)
class ParameterSpec:
    """One node parameter: default, description, range and whether it can change while running.

    A list parameter's elements are of type ``item``, each within ``range`` (and ``choices``).
    """

    name: str
    default: Any
    description: str
    read_only: bool = True
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    item: type | None = None  # the element type of a list parameter

    def check(self, value: Any) -> Any:
        """Return ``value`` as the parameter's type (a list: a new list), or raise ValueError naming it.

        Only values of the parameter's type pass: no bool for a number, no string for a number or a
        list, no list for a string, no fractional or non-finite float for an int, no NaN for a float.
        """
        if not isinstance(self.default, list):
            return self._check_one(value, type(self.default), "")
        assert self.item is not None, f"parameter {self.name}: a list parameter needs its item type"
        if isinstance(value, np.ndarray) and value.ndim == 1:
            value = value.tolist()
        if not isinstance(value, _LISTS):
            expected = f"expected a list of {self.item.__name__}"
            raise ValueError(f"parameter {self.name}: {expected}, got {_REPR.repr(value)}")
        return [self._check_one(v, self.item, f"[{i}]") for i, v in enumerate(value)]

    def _check_one(self, value: Any, kind: type, where: str) -> Any:
        converted = _CONVERT[kind](value)
        name = self.name + where
        if converted is None:
            raise ValueError(f"parameter {name}: expected {kind.__name__}, got {_REPR.repr(value)}")
        if self.choices is not None and converted not in self.choices:
            raise ValueError(f"parameter {name}: expected one of {self.choices}, got {_REPR.repr(converted)}")
        if self.range is not None and not self.range[0] <= converted <= self.range[1]:
            lo, hi = self.range
            raise ValueError(f"parameter {name}: expected a value in [{lo}, {hi}], got {converted}")
        return converted


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("task", "semantic", "semantic, instance or panoptic", choices=TASKS),
    ParameterSpec("semantic_model", "deeplabv3_resnet50", "semantic model (segmentation-ros models)"),
    ParameterSpec("instance_model", "maskrcnn_resnet50_fpn", "instance model (segmentation-ros models)"),
    ParameterSpec("semantic_weights", "DEFAULT", "DEFAULT, a torchvision weights name, a file path, or none"),
    ParameterSpec("instance_weights", "DEFAULT", "DEFAULT, a torchvision weights name, a file path, or none"),
    ParameterSpec("semantic_labels", "", "label set for weights without class names ('' = from the weights)"),
    ParameterSpec("instance_labels", "", "label set for weights without class names ('' = from the weights)"),
    ParameterSpec("device", "auto", "auto (CUDA when available), cpu, cuda or cuda:N"),
    ParameterSpec("precision", "fp32", "fp32, or fp16/bf16 autocast on CUDA", choices=tuple(PRECISIONS)),
    ParameterSpec(
        "runtime",
        "torch",
        "what runs the networks: torch, or onnxruntime (exported to ONNX once per model and input shape, cached; pip extra segmentation-ros[onnx])",
        choices=RUNTIMES,
    ),
    ParameterSpec("score_threshold", 0.5, "minimum instance score (inclusive, compared in double precision)", read_only=False, range=(0.0, 1.0)),
    ParameterSpec("mask_threshold", 0.5, "mask probability above which a pixel is inside (compared in double precision)", read_only=False, range=(0.0, 1.0)),
    ParameterSpec(
        "overlap_threshold", 0.5, "panoptic: max claimed fraction of an instance (inclusive; claimed / area in double precision)", read_only=False, range=(0.0, 1.0)
    ),
    ParameterSpec(
        "stuff_area_threshold", 4096, "panoptic: min stuff segment area (pixels)", read_only=False, range=(0, 10**8)
    ),
    ParameterSpec("max_detections", 100, "instances per frame at most", range=(1, 1000)),
    ParameterSpec("label_divisor", 1000, "panoptic/ids = class_id * label_divisor + instance_id", range=(2, 10**6)),
    ParameterSpec(
        "classes",
        [0],
        "keep only these instance class ids ([] or [0]: all)",
        read_only=False,
        range=(0, 65535),  # each id: the class ids a label set can have
        item=int,
    ),
    ParameterSpec(
        "instance_min_size",
        -1,
        "Mask R-CNN input short side; -1 = the model's own (torchvision: 800), 0 = native camera resolution; the long side never exceeds 4096 (torchvision's models: 1333)",
        range=(-1, 4096),
    ),
    ParameterSpec(
        "instance_max_size",
        -1,
        "Mask R-CNN input long side at most; -1 = the model's own (torchvision: 1333); set it with instance_min_size to enlarge small objects (at least instance_min_size)",
        range=(-1, 4096),
    ),
    ParameterSpec(
        "semantic_input_size",
        -1,
        "semantic network input short side; -1 = the model's own, 0 = native camera resolution; the long side never exceeds 4096",
        range=(-1, 4096),
    ),
    ParameterSpec(
        "tracking",
        False,
        "instance ids persist across frames: ids are track ids (ByteTrack-style, tracks per camera)",
    ),
    ParameterSpec(
        "track_buffer_s",
        1.0,
        "tracking: a track unseen for this long (seconds of header time) is forgotten",
        read_only=False,
        range=(0.0, 3600.0),
    ),
    ParameterSpec(
        "track_match_iou", 0.3, "tracking: minimum box IoU to continue a track", read_only=False, range=(0.01, 1.0)
    ),
    ParameterSpec(
        "track_high_score",
        0.5,
        "tracking: detections scoring at least this are matched first (ByteTrack's two stages)",
        read_only=False,
        range=(0.0, 1.0),
    ),
    ParameterSpec("use_compressed", False, "subscribe to image/compressed (sensor_msgs/CompressedImage)"),
    ParameterSpec(
        "depth",
        False,
        "subscribe to depth/image (16UC1 mm or 32FC1 m, aligned to image) and publish points, detections_3d, markers",
    ),
    ParameterSpec(
        "depth_slop",
        0.01,
        "depth: max stamp difference of a colour and a depth frame paired (seconds; 0 = exact)",
        read_only=False,
        range=(0.0, 10.0),
    ),
    ParameterSpec(
        "depth_rescale", False, "depth: resample a registered depth image of another size (same field of view)"
    ),
    ParameterSpec("point_stride", 4, "depth: points of every n-th pixel and row", read_only=False, range=(1, 64)),
    ParameterSpec(
        "max_range", 10.0, "depth: readings farther than this are ignored (metres; 0 = no limit)", read_only=False,
        range=(0.0, 1000.0),
    ),
    ParameterSpec(
        "depth_min_points", 10, "depth: valid inlier pixels an instance needs for a 3D detection", read_only=False,
        range=(1, 10**6),
    ),
    ParameterSpec(
        "max_image_pixels",
        DEFAULT_MAX_PIXELS,
        "input images larger than this (height x width) are rejected unread",
        range=(1, 2**30),  # 2**30: OpenCV's own decoding limit
    ),
    ParameterSpec(
        "cameras",
        [""],
        "camera namespaces served by one model ([''] = the node's namespace), relative ROS names like rig/left",
        item=str,
    ),
    ParameterSpec("autostart", True, "configure and activate on start"),
    ParameterSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", range=(0.05, 3600.0)),
)
SPECS = {p.name: p for p in PARAMETERS}


def validate_parameters(values: Mapping[str, Any], *, between: bool = True) -> dict[str, Any]:
    """Defaults filled in, every value type- and range-checked; unknown names are an error.

    Args:
        values: parameter values by name; the others take their defaults.
        between: also check the rules between parameters (the engine's: ``EngineConfig.validate``
            without the device). False where ``values`` are not all there is yet: the live node
            declares its parameters one at a time, so a rule would be checked against the defaults
            of the ones still to come; it checks the rules when it configures.

    Raises:
        ValueError: naming the parameter and the value that is wrong.
    """
    unknown = sorted(str(name) for name in values if name not in SPECS)
    if unknown:
        raise ValueError(f"unknown parameters {unknown}; known: {sorted(SPECS)}")
    params = {p.name: p.default for p in PARAMETERS}
    for name, value in values.items():
        params[name] = SPECS[name].check(value)
    for name in ("semantic_weights", "instance_weights"):
        if not params[name].strip():  # an unset launch argument or shell variable: never random weights
            raise ValueError(
                f"parameter {name}: empty; use 'none' for random initialisation or 'DEFAULT' for the model's default"
            )
    params["classes"] = [c for c in params["classes"] if c != 0]
    params["cameras"] = [c.strip("/") for c in params["cameras"]] or [""]
    for camera in params["cameras"]:
        if camera and not CAMERA_NAME.fullmatch(camera):  # the launch files' check: ROS 2's name rules
            raise ValueError(
                f"parameter cameras: {_REPR.repr(camera)} is not a relative ROS namespace; expected names "
                "of ASCII letters, digits and underscores, not starting with a digit, separated by single "
                "'/' (for example front or rig/left)"
            )
    if len(set(params["cameras"])) != len(params["cameras"]):
        raise ValueError(f"parameter cameras: names must be unique, got {params['cameras']}")
    # The rules between parameters (instance_max_size >= instance_min_size, label_divisor >
    # max_detections, ...) are the engine's own, checked here where the parameters are set. The
    # error names the parameters it is about, those given here first.
    if not between:
        return params
    try:
        engine_config(params).validate(device=False)
    except ValueError as exc:
        text = str(exc)
        mentioned = sorted((m.start(), n) for n in ENGINE_FIELDS if (m := re.search(rf"\b{n}\b", text)))
        named = [n for _, n in mentioned if n in values] or [n for _, n in mentioned]
        raise ValueError(f"parameter{'s' if len(named) > 1 else ''} {', '.join(named)}: {text}") from None
    return params


#: The parameters that are EngineConfig fields.
ENGINE_FIELDS = frozenset(EngineConfig.__dataclass_fields__) & {p.name for p in PARAMETERS}


def engine_config(params: Mapping[str, Any]) -> EngineConfig:
    """The engine's settings from validated parameters (not validated themselves)."""
    fields = {k: v for k, v in params.items() if k in ENGINE_FIELDS}
    fields["classes"] = tuple(params["classes"])
    for key in ("semantic_labels", "instance_labels"):
        fields[key] = params[key] or None
    return EngineConfig(**fields)
