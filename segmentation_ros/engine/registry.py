"""The model registry: name -> builder, task, label set and weights, like torchvision's ``_api``.

Registering another architecture is one call::

    @register_model("my_net", task="semantic", labels="shapes")
    def my_net(num_classes: int) -> torch.nn.Module:
        return MyNet(num_classes)

A builder returns a randomly initialised module for ``num_classes`` outputs and never downloads
anything; weights are loaded afterwards by :func:`build_model` (see :mod:`segmentation_ros.engine.weights`).
Semantic modules return ``{"out": logits}`` like torchvision's; instance modules are torchvision
``MaskRCNN`` instances.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import entry_points
from typing import Any

import torch
from torchvision.models import detection, segmentation

from segmentation_ros.engine.labels import LabelSet

__all__ = ["ModelEntry", "LoadedModel", "register_model", "get_model_entry", "list_models", "build_model", "TASKS"]

TASKS = ("semantic", "instance")


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about one architecture."""

    name: str
    task: str  # "semantic" or "instance"
    builder: Callable[[int], torch.nn.Module]
    labels: str  # label set used when the weights carry none
    weights_enum: Any = None  # torchvision WeightsEnum class, if torchvision publishes weights
    default_weights: str = "DEFAULT"  # what "DEFAULT" resolves to: an enum member name or a file
    description: str = ""
    input_size: int = 0  # semantic: shorter side the network expects (0: any, run at camera size)

    def published(self) -> dict[str, Any]:
        """torchvision's published accuracy and cost for the default weights, where it has them."""
        if self.weights_enum is None:
            return {}
        meta = self.weights_enum.DEFAULT.meta
        return {
            "weights": self.weights_enum.DEFAULT.name,
            "metrics": next(iter(meta.get("_metrics", {}).values()), {}),
            "params_m": round(meta.get("num_params", 0) / 1e6, 1),
            "gflops": meta.get("_ops"),
            "file_mb": meta.get("_file_size"),
        }


@dataclass
class LoadedModel:
    """A built model in eval mode with the label set and the weights it was loaded with."""

    entry: ModelEntry
    module: torch.nn.Module
    labels: LabelSet
    weights: str  # human-readable source of the weights
    meta: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    task: str,
    labels: str,
    weights_enum: Any = None,
    default_weights: str = "DEFAULT",
    description: str = "",
    input_size: int = 0,
) -> Callable[[Callable[[int], torch.nn.Module]], Callable[[int], torch.nn.Module]]:
    """Decorator registering ``builder(num_classes) -> nn.Module`` under ``name``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def wrap(builder: Callable[[int], torch.nn.Module]) -> Callable[[int], torch.nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(
            name, task, builder, labels, weights_enum, default_weights, description, input_size
        )
        return builder

    return wrap


def get_model_entry(name: str) -> ModelEntry:
    _ensure_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}: expected one of {list_models()}") from None


def list_models(task: str | None = None) -> list[str]:
    """Registered model names, optionally only those of one task."""
    _ensure_plugins()
    return sorted(n for n, e in _REGISTRY.items() if task is None or e.task == task)


def build_model(
    name: str,
    weights: str | None = "DEFAULT",
    *,
    labels: str | LabelSet | None = None,
    offline: bool | None = None,
) -> LoadedModel:
    """Build a registered model in eval mode and load its weights.

    Args:
        name: a name from :func:`list_models`.
        weights: ``"DEFAULT"``, a torchvision weights name, a file path, or ``"none"``/None for
            random initialisation ('' is an error, not random weights).
        labels: label set override (name, YAML path or LabelSet) for weights that carry none.
        offline: never try to download; None reads ``SEGMENTATION_ROS_OFFLINE``.

    Raises:
        WeightsError: the weights are empty, cannot be had, are malformed, or do not fit the model
            (checked on the meta device before the model is built for real).
    """
    from segmentation_ros.engine.weights import apply_state_dict, check_state_dict, load_weights

    entry = get_model_entry(name)
    state, label_set, source, meta = load_weights(entry, weights, labels=labels, offline=offline)
    if state is not None:
        check_state_dict(entry, state, labels=label_set, source=source)
    module = entry.builder(label_set.num_classes)
    if state is not None:
        apply_state_dict(module, state, entry=entry, labels=label_set, source=source)
    module.eval().requires_grad_(False)
    return LoadedModel(entry, module, label_set, source, meta)


# ---- torchvision architectures --------------------------------------------------------------------
def _torchvision(fn: Callable[..., torch.nn.Module], num_classes: int) -> torch.nn.Module:
    # aux heads are for training only: torchvision runs them in eval too, so leave them out.
    return fn(weights=None, weights_backbone=None, num_classes=num_classes)


for _name, _fn, _weights in [
    ("fcn_resnet50", segmentation.fcn_resnet50, segmentation.FCN_ResNet50_Weights),
    ("fcn_resnet101", segmentation.fcn_resnet101, segmentation.FCN_ResNet101_Weights),
    ("deeplabv3_resnet50", segmentation.deeplabv3_resnet50, segmentation.DeepLabV3_ResNet50_Weights),
    ("deeplabv3_resnet101", segmentation.deeplabv3_resnet101, segmentation.DeepLabV3_ResNet101_Weights),
    (
        "deeplabv3_mobilenet_v3_large",
        segmentation.deeplabv3_mobilenet_v3_large,
        segmentation.DeepLabV3_MobileNet_V3_Large_Weights,
    ),
    ("lraspp_mobilenet_v3_large", segmentation.lraspp_mobilenet_v3_large, segmentation.LRASPP_MobileNet_V3_Large_Weights),
]:
    register_model(_name, task="semantic", labels="voc", weights_enum=_weights, description=f"torchvision {_name}")(
        partial(_torchvision, _fn)
    )

for _name, _fn, _weights in [
    ("maskrcnn_resnet50_fpn", detection.maskrcnn_resnet50_fpn, detection.MaskRCNN_ResNet50_FPN_Weights),
    ("maskrcnn_resnet50_fpn_v2", detection.maskrcnn_resnet50_fpn_v2, detection.MaskRCNN_ResNet50_FPN_V2_Weights),
]:
    register_model(_name, task="instance", labels="coco", weights_enum=_weights, description=f"torchvision {_name}")(
        partial(_torchvision, _fn)
    )


#: Entry point group of model plugins: modules that call :func:`register_model` when imported. The
#: demo models are one (``setup.py``); a third-party package adds its own models the same way.
PLUGIN_GROUP = "segmentation_ros.models"
_PLUGINS_LOADED = False


def _ensure_plugins() -> None:
    """Import every registered model plugin (entry point group :data:`PLUGIN_GROUP`) on first use.

    A plugin that fails to import is reported with a warning and skipped: one broken package must
    not take every other model down.
    """
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for entry_point in sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
        try:
            entry_point.load()
        except Exception as exc:  # noqa: BLE001 - any failure of foreign code
            warnings.warn(f"model plugin {entry_point.name!r} ({entry_point.value}) failed to load: {exc!r}", stacklevel=2)
