"""Weights resolution: torchvision names (hub cache or download), local files, or random init.

Never hangs and never falls back silently: when weights cannot be had, :class:`WeightsError` says
what was tried and where to put the file.

Checkpoint files are either a plain state dict or a dict with ``"model"`` (or ``"state_dict"``)
holding it; this package's own checkpoints also carry ``"arch"``, ``"labels"`` (a label set dict,
see :mod:`segmentation_ros.engine.labels`) and ``"meta"``, so the weights bring their class names.
"""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path
from typing import Any

import torch

from segmentation_ros.engine.imageio import atomic_write_bytes
from segmentation_ros.engine.labels import LabelSet, get_label_set
from segmentation_ros.engine.paths import models_dir

__all__ = ["WeightsError", "load_weights", "apply_state_dict", "save_checkpoint", "hub_checkpoint_path"]

DOWNLOAD_TIMEOUT_S = 30.0


class WeightsError(RuntimeError):
    """Weights could not be found, downloaded, read, or fitted to the model."""


def _offline(offline: bool | None) -> bool:
    if offline is not None:
        return offline
    return os.environ.get("SEGMENTATION_ROS_OFFLINE", "").lower() in ("1", "true", "yes")


def hub_checkpoint_path(url: str) -> Path:
    """Where torch hub caches the file behind ``url`` (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _is_none(weights: str | None) -> bool:
    return weights is None or str(weights).strip().lower() in ("", "none", "random")


def load_weights(
    entry: Any, weights: str | None, *, labels: str | LabelSet | None = None, offline: bool | None = None
) -> tuple[dict[str, torch.Tensor] | None, LabelSet, str, dict[str, Any]]:
    """Resolve ``weights`` for a registry entry.

    Returns:
        (state_dict or None for random init, label set, description of the source, metadata).
    """
    override = get_label_set(labels) if labels else None
    if _is_none(weights):
        return None, override or get_label_set(entry.labels), "none (random init)", {}

    spec = str(weights)
    if spec == "DEFAULT":
        spec = entry.default_weights
    enum = entry.weights_enum
    if enum is not None and spec in enum.__members__:
        return _load_torchvision(entry, enum[spec], override, offline)

    path = Path(spec).expanduser()
    if not path.is_absolute() and not path.exists() and (models_dir() / path.name).exists():
        path = models_dir() / path.name  # installed demo weights referenced by file name
    if path.suffix in (".pt", ".pth", ".ckpt") or path.exists() or os.sep in spec:
        return _load_file(entry, path, override)

    known = list(enum.__members__) if enum is not None else []
    raise WeightsError(
        f"weights {weights!r} for model {entry.name!r}: expected 'DEFAULT', 'none', a file path"
        + (f", or one of torchvision's {known}" if known else "")
    )


def _load_torchvision(
    entry: Any, member: Any, override: LabelSet | None, offline: bool | None
) -> tuple[dict[str, torch.Tensor], LabelSet, str, dict[str, Any]]:
    categories = member.meta.get("categories")
    label_set = get_label_set(entry.labels)
    if categories is not None and [c.name for c in label_set.classes] != [c for c in categories if c != "N/A"]:
        label_set = LabelSet.from_categories(f"{entry.name}:{member.name}", categories)
    if override is not None and override.num_classes != label_set.num_classes:
        raise WeightsError(
            f"label set {override.name!r} has {override.num_classes} classes but torchvision weights "
            f"{member} predict {label_set.num_classes}"
        )
    label_set = override or label_set
    cached = hub_checkpoint_path(member.url)
    source = f"torchvision {member}"
    if not cached.exists():
        hint = (
            f"download {member.url} on a machine with network and copy it to {cached} "
            f"(or pass the file's path as the weights)"
        )
        if _offline(offline):
            raise WeightsError(f"{source} are not in the torch hub cache ({cached}) and downloads are off: {hint}")
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # never hang on a dead network
        try:
            torch.hub.load_state_dict_from_url(member.url, progress=False, check_hash=True)
        except Exception as exc:  # URLError, timeout, hash mismatch: all mean "not available"
            cached.unlink(missing_ok=True)
            raise WeightsError(f"could not download {source} ({exc}); {hint}") from exc
        finally:
            socket.setdefaulttimeout(previous)
    state = _read(cached)
    return state, label_set, f"{source} ({cached})", dict(member.meta)


def _read(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read weights file {path}: {exc}") from exc


def _load_file(
    entry: Any, path: Path, override: LabelSet | None
) -> tuple[dict[str, torch.Tensor], LabelSet, str, dict[str, Any]]:
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} for model {entry.name!r} does not exist; put the file there or "
            f"pass 'DEFAULT' (torchvision download) or 'none' (random init)"
        )
    data = _read(path)
    if not isinstance(data, dict):
        raise WeightsError(f"weights file {path} holds a {type(data).__name__}, expected a state dict or checkpoint")
    state = data.get("model", data.get("state_dict", data))
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weights file {path} has no state dict (looked for 'model', 'state_dict', or tensors)")
    arch = data.get("arch")
    if arch is not None and arch != entry.name and not entry.name.endswith(str(arch)):
        raise WeightsError(f"weights file {path} is for model {arch!r}, not {entry.name!r}")
    if override is not None:
        label_set = override
    elif isinstance(data.get("labels"), dict):
        label_set = LabelSet.from_dict(data["labels"])
    else:
        label_set = get_label_set(entry.labels)
    return state, label_set, str(path), dict(data.get("meta", {}))


def apply_state_dict(
    module: torch.nn.Module, state: dict[str, torch.Tensor], *, entry: Any, labels: LabelSet, source: str
) -> None:
    """Load ``state`` strictly, dropping training-only aux heads and DDP ``module.`` prefixes."""
    has_aux = getattr(module, "aux_classifier", None) is not None
    cleaned = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith("aux_classifier.") and not has_aux:
            continue
        cleaned[key] = value
    try:
        module.load_state_dict(cleaned, strict=True)
    except RuntimeError as exc:
        mismatch = "size mismatch" in str(exc)
        reason = (
            f"its class count does not match label set {labels.name!r} ({labels.num_classes} classes)"
            if mismatch
            else "its parameter names do not match the architecture"
        )
        raise WeightsError(f"weights {source} do not fit model {entry.name!r}: {reason}.\n{exc}") from exc


def save_checkpoint(path: str | Path, module: torch.nn.Module, *, arch: str, labels: LabelSet, **meta: Any) -> Path:
    """Write a self-describing checkpoint atomically (temporary name, then rename)."""
    buffer = io.BytesIO()
    torch.save({"model": module.state_dict(), "arch": arch, "labels": labels.to_dict(), "meta": meta}, buffer)
    return atomic_write_bytes(path, buffer.getvalue())
