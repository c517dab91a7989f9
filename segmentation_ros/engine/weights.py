"""Weights resolution: torchvision names (hub cache or download), local files, or random init.

Never hangs and never falls back silently: when weights cannot be had, :class:`WeightsError` says
what was tried and where to put the file.

``weights`` is ``"DEFAULT"``, a torchvision weights name, a file path, or ``"none"`` / ``"random"``
/ None for random initialisation. An empty or blank string is an error, never random weights: it
is what an unset shell variable or launch argument gives.

Checkpoint files are either a plain state dict or a dict with ``"model"`` (or ``"state_dict"``)
holding it; this package's own checkpoints also carry ``"arch"``, ``"labels"`` (a label set dict,
see :mod:`segmentation_ros.engine.labels`) and ``"meta"``, so the weights bring their class names.
:func:`read_checkpoint` checks all of it (the types of every part, the label set, the tensors) and
refuses anything else with a :class:`WeightsError` naming the file; :func:`check_state_dict`
compares the tensors' shapes with the architecture built on the meta device, so a label
set that claims far more classes than the tensors hold is refused before a huge class head is
allocated.
"""

from __future__ import annotations

import io
import os
import reprlib
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from segmentation_ros.engine.imageio import atomic_write_bytes
from segmentation_ros.engine.labels import LabelSet, get_label_set
from segmentation_ros.engine.paths import models_dir

__all__ = [
    "WeightsError",
    "Checkpoint",
    "is_random_init",
    "load_weights",
    "read_checkpoint",
    "check_state_dict",
    "apply_state_dict",
    "save_checkpoint",
    "hub_checkpoint_path",
]

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


def is_random_init(weights: str | os.PathLike | None, *, subject: str = "weights") -> bool:
    """Whether ``weights`` asks for random initialisation: None, ``"none"`` or ``"random"`` (any case).

    Raises:
        WeightsError: ``weights`` is empty or blank (an unset shell variable or launch argument:
            never silently random weights), or not a string (``subject`` names what it is for).
    """
    if weights is None:
        return True
    spec = os.fspath(weights) if isinstance(weights, os.PathLike) else weights
    if not isinstance(spec, str):
        raise WeightsError(f"{subject}: expected a string, got {reprlib.repr(spec)} ({type(spec).__name__})")
    if not spec.strip():
        raise WeightsError(
            f"{subject}: empty weights {spec!r} (an unset variable?); use 'none' for random init, "
            f"'DEFAULT' for the model's default weights, or a file path"
        )
    return spec.strip().lower() in ("none", "random")


def load_weights(
    entry: Any, weights: str | None, *, labels: str | LabelSet | None = None, offline: bool | None = None
) -> tuple[dict[str, torch.Tensor] | None, LabelSet, str, dict[str, Any]]:
    """Resolve ``weights`` for a registry entry.

    Returns:
        (state_dict or None for random init, label set, description of the source, metadata).

    Raises:
        WeightsError: empty weights, unknown names, files that are missing, unreadable or not what
            :func:`save_checkpoint` writes (see :func:`read_checkpoint`), downloads that fail.
    """
    override = get_label_set(labels) if labels else None
    if is_random_init(weights, subject=f"weights of model {entry.name!r}"):
        return None, override or get_label_set(entry.labels), "none (random init)", {}

    spec = os.fspath(weights)
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
    state = read_checkpoint(cached).state
    return state, label_set, f"{source} ({cached})", dict(member.meta)


def _read(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read weights file {path}: {exc}") from exc


@dataclass(frozen=True)
class Checkpoint:
    """A weights file's content, checked by :func:`read_checkpoint`."""

    path: Path
    state: dict[str, torch.Tensor]  # parameter name -> tensor, as the file has them
    arch: str | None = None  # the registry name it was saved for, where the file says
    labels: LabelSet | None = None  # its label set, where the file carries one
    meta: dict[str, Any] = field(default_factory=dict)


def _state_problem(state: Any) -> str | None:
    """What makes ``state`` no state dict (str -> tensor, not empty), or None."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a dict of tensors"
    if not state:
        return "an empty dict"
    for key, value in state.items():
        if not isinstance(key, str):
            return f"a key {reprlib.repr(key)} that is not a string"
        if not isinstance(value, torch.Tensor):
            return f"{key!r}: a {type(value).__name__}, not a tensor"
    return None


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a weights file and check that it is what :func:`save_checkpoint` writes, or a state dict.

    Accepted: a state dict (parameter name -> tensor), or a dict whose ``"model"`` (else
    ``"state_dict"``) is one, with optionally ``"arch"`` (a non-empty string), ``"labels"`` (a label
    set dict, checked by :meth:`LabelSet.from_dict`) and ``"meta"`` (a dict with string keys).
    Other keys are ignored.

    Raises:
        WeightsError: naming the file and what is wrong with it.
    """
    path = Path(path)
    data = _read(path)
    if not isinstance(data, dict):
        raise WeightsError(f"weights file {path} holds a {type(data).__name__}, expected a state dict or checkpoint")
    wrapper = next((key for key in ("model", "state_dict") if key in data), None)
    state = data if wrapper is None else data[wrapper]
    problem = _state_problem(state)
    if problem is not None:
        where = "itself" if wrapper is None else f"{wrapper!r}"
        raise WeightsError(
            f"weights file {path} has no state dict (looked for 'model', 'state_dict', or tensors): "
            f"{where} is {problem}"
        )
    if wrapper is None:
        return Checkpoint(path, state)
    arch = data.get("arch")
    if arch is not None and (not isinstance(arch, str) or not arch.strip()):
        raise WeightsError(f"weights file {path}: 'arch' must be a model name, got {reprlib.repr(arch)}")
    labels = None
    if "labels" in data:
        try:
            labels = LabelSet.from_dict(data["labels"])
        except ValueError as exc:
            raise WeightsError(f"weights file {path}: its 'labels' are not a label set: {exc}") from exc
    meta = data.get("meta", {})
    if not isinstance(meta, dict) or not all(isinstance(key, str) for key in meta):
        raise WeightsError(
            f"weights file {path}: 'meta' must be a dict with string keys, got {reprlib.repr(meta)} "
            f"({type(meta).__name__})"
        )
    return Checkpoint(path, state, arch, labels, dict(meta))


def _load_file(
    entry: Any, path: Path, override: LabelSet | None
) -> tuple[dict[str, torch.Tensor], LabelSet, str, dict[str, Any]]:
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} for model {entry.name!r} does not exist; put the file there or "
            f"pass 'DEFAULT' (torchvision download) or 'none' (random init)"
        )
    checkpoint = read_checkpoint(path)
    arch = checkpoint.arch
    if arch is not None and arch != entry.name and not entry.name.endswith(arch):
        raise WeightsError(f"weights file {path} is for model {arch!r}, not {entry.name!r}")
    label_set = override or checkpoint.labels or get_label_set(entry.labels)
    return checkpoint.state, label_set, str(path), checkpoint.meta


def _fitted(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` without DDP ``module.`` prefixes and, for a module without one, the aux head."""
    has_aux = getattr(module, "aux_classifier", None) is not None
    cleaned = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith("aux_classifier.") and not has_aux:
            continue
        cleaned[key] = value
    return cleaned


def _misfit(entry: Any, source: str, reason: str, detail: str) -> WeightsError:
    return WeightsError(f"weights {source} do not fit model {entry.name!r}: {reason}.\n{detail}")


def _class_count_reason(labels: LabelSet) -> str:
    return f"its class count does not match label set {labels.name!r} ({labels.num_classes} classes)"


_NAMES_REASON = "its parameter names do not match the architecture"


def check_state_dict(entry: Any, state: dict[str, torch.Tensor], *, labels: LabelSet, source: str) -> None:
    """Check that ``state``'s tensors fit ``entry``'s architecture for ``labels`` before building it.

    The architecture is built on the meta device (shapes only, no memory) and the shapes of the
    parameters both have are compared: a checkpoint whose label set claims 65536 classes over a
    6-class head is refused here, not after a gigabyte-sized class head is allocated. Names are
    left to :func:`apply_state_dict`, since modules rename old keys while loading (torchvision's
    RPN head and FPN, batch norm's ``num_batches_tracked``). A builder that cannot run on the meta
    device is skipped (:func:`apply_state_dict` still checks after the real build).

    Raises:
        WeightsError: tensors of another shape (the first few are listed), naming ``source``.
    """
    try:
        with torch.device("meta"):
            reference = entry.builder(labels.num_classes)
        expected = {key: tuple(value.shape) for key, value in reference.state_dict().items()}
    except Exception:  # noqa: BLE001 - foreign builder code; the real build checks instead
        return
    cleaned = _fitted(reference, state)
    wrong = [
        (key, tuple(value.shape), expected[key])
        for key, value in cleaned.items()
        if key in expected and tuple(value.shape) != expected[key]
    ]
    if wrong:
        # a class head: the model has num_classes along a dimension where the file has another count
        counts = sorted(
            {
                have
                for _, got, want in wrong
                if len(got) == len(want)
                for have, need in zip(got, want, strict=True)
                if need == labels.num_classes and have != need
            }
        )
        reason = (
            f"{_class_count_reason(labels)}, the file's tensors have {' or '.join(map(str, counts))}"
            if counts
            else "its tensor shapes do not match the architecture"
        )
        detail = "; ".join(f"{key}: {got} in the file, {want} in the model" for key, got, want in wrong[:3])
        raise _misfit(entry, source, reason, f"size mismatch: {detail}")


def apply_state_dict(
    module: torch.nn.Module, state: dict[str, torch.Tensor], *, entry: Any, labels: LabelSet, source: str
) -> None:
    """Load ``state`` strictly, dropping training-only aux heads and DDP ``module.`` prefixes."""
    try:
        module.load_state_dict(_fitted(module, state), strict=True)
    except RuntimeError as exc:
        reason = _class_count_reason(labels) if "size mismatch" in str(exc) else _NAMES_REASON
        raise _misfit(entry, source, reason, str(exc)) from exc


def save_checkpoint(path: str | Path, module: torch.nn.Module, *, arch: str, labels: LabelSet, **meta: Any) -> Path:
    """Write a self-describing checkpoint atomically (temporary name, then rename)."""
    buffer = io.BytesIO()
    torch.save({"model": module.state_dict(), "arch": arch, "labels": labels.to_dict(), "meta": meta}, buffer)
    return atomic_write_bytes(path, buffer.getvalue())
