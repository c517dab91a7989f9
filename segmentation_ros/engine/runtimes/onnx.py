"""ONNX Runtime for the fixed-shape network parts: export, an on-disk cache, sessions, providers.

What is exported: a :class:`NetworkSpec`, one fixed-shape network part of a loaded model (the
engine's ``_semantic_network``: a whole semantic network to its logits at the output stride;
``_instance_network``: Mask R-CNN's backbone, FPN and RPN head). Its input is ``images``, a
``(batch, 3, h, w)`` float32 tensor, normalised as the model's metadata says; its outputs are the
part's tensors, named by the part (``logits``; ``features.<level>``, ``objectness.<i>``,
``deltas.<i>``) and put back into the part's structure (:mod:`torch.utils._pytree`) after a run.

Exporter: ``torch.onnx.export(..., dynamo=True)``, the ``torch.export``-based exporter (onnxscript),
opset :data:`OPSET`. In torch 2.14 the TorchScript-based exporter (``dynamo=False``) exports these
models as well and about twice as fast (2 s instead of 4-6 s per model on 2 cores), to graphs that
differ by an op or two (``GlobalAveragePool`` for ``ReduceMean``); it is deprecated and warns that
it will be removed, so the engine uses the ``torch.export`` one.

Shapes: one export per input shape ``(batch, 3, h, w)``, at the first pass of that shape, cached
on disk. A camera has one resolution, so a node exports once per model (and once per batch size
when it serves several cameras of one size, whose frames may come one or several per pass). Fixed
shapes let ONNX Runtime and TensorRT plan every buffer (no TensorRT optimisation profiles); a
dynamic batch axis doubled the export time (symbolic shapes: 7 s instead of 3.5 s for the demo
LR-ASPP on 2 cores) and would gain nothing for one camera.

Cache: ``<cache_dir>/<model>-<part>-<batch>x3x<h>x<w>-<key>.onnx`` with a ``.json`` beside it, the JSON
written last (an entry without it is incomplete). ``key`` digests the content key
(:func:`cache_key`): model name, part, SHA-256 of the weights as loaded (state dict: files,
torchvision weights and random initialisation alike), the architecture (``repr`` of the module) and
the exported function's source, input shape, opset and the exporter's versions (torch, torchvision,
onnxscript). Both files are written atomically (:func:`atomic_write_bytes`). An entry whose JSON
does not parse, whose key or SHA-256 does not match its file, or that ONNX Runtime cannot load is
deleted and exported again, with a warning; an unwritable cache directory costs a warning, and the
session runs from memory. Default directory: ``$SEGMENTATION_ROS_ONNX_CACHE``, else
``$XDG_CACHE_HOME/segmentation_ros/onnx``, else ``~/.cache/segmentation_ros/onnx``.

Execution providers: TensorRT > CUDA > CPU, those of them that the installed onnxruntime has, for a
CUDA device (inputs and outputs stay on the GPU through I/O binding); the CPU provider for a CPU
device. ``EngineConfig.onnx_providers`` or ``$SEGMENTATION_ROS_ONNX_PROVIDERS`` (comma-separated;
``tensorrt``, ``cuda``, ``cpu`` or full provider names) override the choice; a provider asked for
that this onnxruntime lacks is a ``ValueError`` naming the available ones. The provider a session
actually runs on (ONNX Runtime itself falls back when one fails to start) is logged, and warned
about when it is not the first asked for; :attr:`OnnxNetwork.provider` exposes it. TensorRT builds
its engines into ``<cache_dir>/tensorrt`` (FP16 kernels with ``fp16``). CPU sessions use torch's
thread count (``torch.get_num_threads()``), so both runtimes compare at the same threads, and their
idle threads do not spin.

Errors: onnxruntime (or onnx/onnxscript for exporting) missing is a :class:`MissingDependencyError`
naming the extra ``segmentation-ros[onnx]``; a part that cannot be exported is an
:class:`ExportError` naming the model, the part, the input size and the reason. The engine never
falls back to torch silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import inspect
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils import _pytree as pytree

from segmentation_ros.engine.imageio import atomic_write_bytes, write_json

__all__ = [
    "OPSET",
    "EXTRA",
    "PROVIDERS_ENV",
    "CACHE_ENV",
    "PROVIDER_ALIASES",
    "ExportError",
    "MissingDependencyError",
    "NetworkSpec",
    "ExportedNetwork",
    "OnnxNetwork",
    "import_onnxruntime",
    "canonical_provider",
    "requested_providers",
    "select_providers",
    "provider_options",
    "default_cache_dir",
    "weights_digest",
    "cache_key",
    "export_network",
    "load_or_export",
]

log = logging.getLogger(__name__)

#: ONNX opset of every export (TensorRT 8.6+ and ONNX Runtime 1.14+ read it).
OPSET = 18
#: The pip extra that installs what this module needs.
EXTRA = "segmentation-ros[onnx]"
PROVIDERS_ENV = "SEGMENTATION_ROS_ONNX_PROVIDERS"
CACHE_ENV = "SEGMENTATION_ROS_ONNX_CACHE"
#: Short names accepted for execution providers (any case), in the automatic order of preference.
PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
#: Bumped when what a cache entry holds changes in a way the other parts of the key do not show.
_CACHE_FORMAT = 1
_TORCH_DTYPES = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16}


class ExportError(RuntimeError):
    """A network part could not be exported to ONNX, or ONNX Runtime could not load it."""


class MissingDependencyError(RuntimeError):
    """onnxruntime, onnx or onnxscript is not installed (``pip install 'segmentation-ros[onnx]'``)."""


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or :class:`MissingDependencyError` naming the extra."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError(
            f"runtime 'onnxruntime' needs the onnxruntime package, which cannot be imported ({exc}); "
            f"install it with: pip install '{EXTRA}' (or onnxruntime-gpu for the CUDA and TensorRT providers)"
        ) from None
    return onnxruntime


def _require_exporter() -> None:
    missing = []
    for name in ("onnx", "onnxscript"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingDependencyError(
            f"exporting to ONNX needs {' and '.join(missing)}, not installed; install with: pip install '{EXTRA}'"
        )


# ---- execution providers ----------------------------------------------------------------------------
def canonical_provider(name: str) -> str:
    """``cuda`` -> ``CUDAExecutionProvider``; full names pass as they are. ValueError for others."""
    text = str(name).strip()
    if text.lower() in PROVIDER_ALIASES:
        return PROVIDER_ALIASES[text.lower()]
    if text.endswith("ExecutionProvider"):
        return text
    raise ValueError(
        f"ONNX Runtime execution provider {name!r}: expected one of {list(PROVIDER_ALIASES)} or a full provider "
        "name ending in 'ExecutionProvider' (onnxruntime.get_available_providers())"
    )


def requested_providers(configured: Sequence[str] = ()) -> tuple[str, ...]:
    """The providers asked for: ``configured`` (``EngineConfig.onnx_providers``) when given, else
    :data:`PROVIDERS_ENV` (comma-separated), else none (the automatic choice)."""
    names = list(configured) or [p for p in os.environ.get(PROVIDERS_ENV, "").split(",") if p.strip()]
    return tuple(canonical_provider(p) for p in names)


def select_providers(
    available: Sequence[str], device: torch.device, requested: Sequence[str] = ()
) -> list[str]:
    """Execution providers for a session, in order of preference.

    Args:
        available: ``onnxruntime.get_available_providers()``.
        device: where the engine's tensors live.
        requested: explicit providers (see :func:`requested_providers`); empty: TensorRT > CUDA >
            CPU, those available, for a CUDA device; the CPU provider for a CPU device.

    Raises:
        ValueError: a requested provider that is not available, naming the available ones.
    """
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise ValueError(
                f"ONNX Runtime execution provider(s) {missing} asked for ({PROVIDERS_ENV} or onnx_providers) but "
                f"not available in this onnxruntime; available: {list(available)}"
            )
        return list(dict.fromkeys(requested))
    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    chosen = [p for p in _GPU_PROVIDERS if p in available]
    if not chosen:
        log.warning(
            "device %s, but this onnxruntime has no CUDA or TensorRT provider (available: %s; install "
            "onnxruntime-gpu): the networks run on ONNX Runtime's CPU provider",
            device,
            list(available),
        )
    return [*chosen, "CPUExecutionProvider"]


def provider_options(name: str, device: torch.device, cache_dir: Path | None, fp16: bool) -> dict[str, Any]:
    """ONNX Runtime options for provider ``name``: the CUDA device; TensorRT's engine cache and FP16."""
    index = (device.index or 0) if device.type == "cuda" else 0
    if name == "TensorrtExecutionProvider":
        options: dict[str, Any] = {"device_id": index, "trt_fp16_enable": bool(fp16)}
        if cache_dir is not None:
            options |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir / "tensorrt")}
        return options
    if name == "CUDAExecutionProvider":
        return {"device_id": index}
    return {}


# ---- what is exported ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class NetworkSpec:
    """One fixed-shape network part of a loaded model: what to export and what travels with it.

    Attributes:
        model: registry name (names the files and the errors).
        part: ``"semantic"`` or ``"instance"`` (which of the engine's network parts).
        module: the module whose weights ``fn`` uses (hashed for the cache key, its parameters
            become the ONNX initialisers).
        fn: ``(B, 3, h, w) float32 -> a tensor or a (nested) tuple/list/dict of tensors``, no
            data-dependent control flow.
        outputs: a name per top-level output (one for a bare tensor), e.g. ``("features",
            "objectness", "deltas")``; nested keys are appended: ``features.0``, ``objectness.2``.
        metadata: JSON-serialisable facts written beside the file (labels, normalisation, ...).
    """

    model: str
    part: str
    module: torch.nn.Module
    fn: Callable[[torch.Tensor], Any]
    outputs: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExportedNetwork:
    """An exported part: the ONNX file's bytes and its description (what the ``.json`` holds)."""

    data: bytes
    info: dict[str, Any]

    @property
    def out_spec(self) -> pytree.TreeSpec:
        return pytree.treespec_loads(self.info["out_spec"])


def default_cache_dir() -> Path:
    """``$SEGMENTATION_ROS_ONNX_CACHE``, else ``$XDG_CACHE_HOME/segmentation_ros/onnx``, else
    ``~/.cache/segmentation_ros/onnx``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "segmentation_ros" / "onnx"


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's state dict as loaded: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        digest.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _source_digest(fn: Callable[..., Any]) -> str:
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):  # built without source (a frozen app): the other parts still key it
        source = getattr(fn, "__qualname__", repr(fn))
    return hashlib.sha256(source.encode()).hexdigest()


def cache_key(spec: NetworkSpec, shape: Sequence[int], opset: int = OPSET) -> dict[str, Any]:
    """What a cached export depends on (see the module docstring); JSON-serialisable."""
    return {
        "format": _CACHE_FORMAT,
        "model": spec.model,
        "part": spec.part,
        "weights_sha256": weights_digest(spec.module),
        "architecture_sha256": hashlib.sha256(repr(spec.module).encode()).hexdigest(),
        "code_sha256": _source_digest(spec.fn),
        "input": [int(v) for v in shape],
        "opset": int(opset),
        "exporter": "torch.onnx.export(dynamo=True)",
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "onnxscript": _version("onnxscript"),
    }


def _digest_key(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


class _Part(torch.nn.Module):
    """``spec.fn`` as a module, for ``torch.export``."""

    def __init__(self, spec: NetworkSpec):
        super().__init__()
        self.network = spec.module  # registered: its parameters become the graph's initialisers
        self.fn = spec.fn

    def forward(self, x: torch.Tensor) -> Any:
        return self.fn(x)


#: Loggers of the exporter that report every graph pass at INFO level.
_EXPORTER_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx", "torch.export", "torch._export")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's warnings and INFO chatter held back for the duration of an export (its
    errors still raise)."""
    loggers = [logging.getLogger(name) for name in _EXPORTER_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _output_names(spec: NetworkSpec, out_spec: pytree.TreeSpec) -> list[str]:
    """``logits``; ``features.0``, ``objectness.2``: the part's names with the nested keys."""
    skeleton = pytree.tree_unflatten(list(range(out_spec.num_leaves)), out_spec)
    paths = [path for path, _ in pytree.tree_flatten_with_path(skeleton)[0]]
    names = []
    for path in paths:
        keys = [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]
        if not keys:
            names.append(spec.outputs[0])
        else:
            head = int(keys[0]) if keys[0].isdigit() else None
            first = spec.outputs[head] if head is not None and head < len(spec.outputs) else keys[0]
            names.append(".".join([first, *keys[1:]]))
    if len(set(names)) != len(names):
        raise ValueError(f"model {spec.model!r} ({spec.part}): output names {names} are not unique")
    return names


def export_network(spec: NetworkSpec, shape: Sequence[int], opset: int = OPSET) -> ExportedNetwork:
    """Export ``spec`` for inputs of ``shape`` ``(batch, 3, h, w)`` with torch's exporter.

    Returns:
        the ONNX bytes (the weights inside; metadata_props hold the description too) and the
        description: key, SHA-256 of the bytes, input and output names and shapes, metadata.

    Raises:
        MissingDependencyError: onnx or onnxscript is not installed.
        ExportError: the exporter failed; the message names the model, part, size and reason.
    """
    return _export(spec, cache_key(spec, shape, opset))


def _export(spec: NetworkSpec, key: dict[str, Any]) -> ExportedNetwork:
    _require_exporter()
    opset = key["opset"]
    batch, channels, height, width = key["input"]
    part = _Part(spec).eval()
    module = spec.module
    parameter = next(module.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    example = torch.zeros(batch, channels, height, width, device=device)
    where = f"model {spec.model!r} ({spec.part} network) at input {_shape_text(key['input'])}"
    try:
        with _quiet_exporter(), torch.no_grad():
            exported = torch.export.export(part, (example,), strict=False)
            out_spec = exported.call_spec.out_spec  # the outputs' structure; ONNX's are its leaves
            names = _output_names(spec, out_spec)
            program = torch.onnx.export(
                exported,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=["images"],
                output_names=names,
                external_data=False,
                verbose=False,
                optimize=True,
            )
            proto = program.model_proto
    except Exception as exc:  # noqa: BLE001 - any exporter failure is the model's: say which and why
        reason = " ".join(str(exc).split())[:600] or type(exc).__name__
        raise ExportError(f"{where} cannot be exported to ONNX: {type(exc).__name__}: {reason}") from exc
    outputs = []
    for value in proto.graph.output:
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        outputs.append({"name": value.name, "shape": dims})
    info = {
        "key": key,
        "file_sha256": "",
        "input": {"name": "images", "shape": key["input"], "dtype": "float32"},
        "outputs": outputs,
        "out_spec": pytree.treespec_dumps(out_spec),
        "metadata": spec.metadata,
    }
    entry = proto.metadata_props.add()  # the description inside the file too, for other toolchains
    entry.key, entry.value = (
        "segmentation_ros",
        json.dumps({k: v for k, v in info.items() if k != "file_sha256"}),
    )
    try:
        data = proto.SerializeToString()
    except ValueError as exc:  # protobuf refuses models over 2 GB
        raise ExportError(f"{where}: the exported model cannot be serialised: {exc}") from exc
    info["file_sha256"] = hashlib.sha256(data).hexdigest()
    return ExportedNetwork(data, info)


def _shape_text(shape: Sequence[int]) -> str:
    """(1, 3, 480, 640) -> ``1x3x480x640`` (batch x channels x height x width)."""
    return "x".join(str(int(v)) for v in shape)


def _entry_paths(cache_dir: Path, spec: NetworkSpec, key: dict[str, Any]) -> tuple[Path, Path]:
    stem = f"{spec.model}-{spec.part}-{_shape_text(key['input'])}-{_digest_key(key)}"
    return cache_dir / f"{stem}.onnx", cache_dir / f"{stem}.json"


def _read_entry(onnx_path: Path, json_path: Path, key: dict[str, Any]) -> ExportedNetwork:
    """A cache entry, checked: its JSON parses, its key is ``key``, its file's SHA-256 matches."""
    info = json.loads(json_path.read_text())
    if not isinstance(info, dict) or info.get("key") != key:
        raise ValueError("its key does not match")
    data = onnx_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != info.get("file_sha256"):
        raise ValueError("its file's SHA-256 does not match")
    pytree.treespec_loads(info["out_spec"])
    return ExportedNetwork(data, info)


def _delete_entry(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot delete the ONNX cache file %s: %s", path, exc)


def load_or_export(
    spec: NetworkSpec, shape: Sequence[int], cache_dir: Path | None, opset: int = OPSET
) -> tuple[ExportedNetwork, bool]:
    """The cached export of ``spec`` for inputs of ``shape``, else a new export, cached.

    Returns:
        (the export, whether it came from the cache). A corrupt entry is deleted and exported
        again (warning); a cache that cannot be written costs a warning, not the export.
    """
    if cache_dir is None:
        return export_network(spec, shape, opset), False
    key = cache_key(spec, shape, opset)
    onnx_path, json_path = _entry_paths(cache_dir, spec, key)
    if json_path.exists() or onnx_path.exists():
        try:
            return _read_entry(onnx_path, json_path, key), True
        except (OSError, ValueError, KeyError, TypeError) as exc:  # unreadable, truncated, foreign
            log.warning(
                "ONNX cache entry %s is corrupt (%s): deleting it and exporting again", onnx_path, exc
            )
            _delete_entry(json_path, onnx_path)
    log.info(
        "exporting %s (%s network) to ONNX for input %s (once per shape): %s",
        spec.model,
        spec.part,
        _shape_text(shape),
        onnx_path,
    )
    exported = _export(spec, key)
    try:
        atomic_write_bytes(onnx_path, exported.data)
        write_json(json_path, exported.info)  # last: an entry without its JSON is incomplete
    except OSError as exc:
        log.warning("cannot write the ONNX cache entry %s (%s); running from memory", onnx_path, exc)
    return exported, False


def invalidate(spec: NetworkSpec, shape: Sequence[int], cache_dir: Path, opset: int = OPSET) -> None:
    """Delete the cache entry of ``spec`` for inputs of ``shape``."""
    onnx_path, json_path = _entry_paths(cache_dir, spec, cache_key(spec, shape, opset))
    _delete_entry(json_path, onnx_path)


# ---- sessions ---------------------------------------------------------------------------------------------
class _Session:
    """One ONNX Runtime session (one input size) and how to feed it."""

    def __init__(self, session: Any, exported: ExportedNetwork):
        self.session = session
        self.out_spec = exported.out_spec
        self.input_name = session.get_inputs()[0].name
        self.outputs = session.get_outputs()
        self.provider = session.get_providers()[0]

    def run(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x.to(torch.float32).contiguous()
        if x.device.type == "cuda" and self.provider in _GPU_PROVIDERS:
            return self._run_bound(x)
        outputs = self.session.run(None, {self.input_name: x.detach().cpu().numpy()})
        return [torch.from_numpy(o).to(x.device) for o in outputs]

    def _run_bound(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Inputs and outputs in torch's CUDA memory (I/O binding): no host round trip."""
        index = x.device.index or 0
        binding = self.session.io_binding()
        binding.bind_input(self.input_name, "cuda", index, np.float32, tuple(x.shape), x.data_ptr())
        results = []
        for output in self.outputs:
            shape = list(output.shape)  # fixed: every export is for one input shape
            dtype = _TORCH_DTYPES[output.type]
            tensor = torch.empty(shape, dtype=dtype, device=x.device)
            numpy_dtype = np.float32 if dtype == torch.float32 else np.float16
            binding.bind_output(output.name, "cuda", index, numpy_dtype, tuple(shape), tensor.data_ptr())
            results.append(tensor)
        torch.cuda.current_stream(x.device).synchronize()  # x was written on torch's stream
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return results


class OnnxNetwork:
    """``spec.fn(x)`` run by ONNX Runtime: exported per input size on first use, cached on disk.

    Args:
        spec: the network part.
        device: where the engine's tensors live (inputs come from there, outputs go there).
        providers: explicit execution providers (empty: :data:`PROVIDERS_ENV`, else automatic;
            see :func:`select_providers`).
        cache_dir: the export cache (None: no cache, export in memory every time).
        fp16: TensorRT may use FP16 kernels.
        max_shapes: sessions kept (input shapes); the oldest is closed beyond that.

    Raises:
        MissingDependencyError: onnxruntime is not installed.
        ValueError: a provider asked for is not available.

    Calling it raises :class:`ExportError` when the part cannot be exported or loaded.
    """

    def __init__(
        self,
        spec: NetworkSpec,
        *,
        device: torch.device,
        providers: Sequence[str] = (),
        cache_dir: Path | None = None,
        fp16: bool = False,
        max_shapes: int = 8,
        opset: int = OPSET,
    ):
        self.ort = import_onnxruntime()
        self.spec = spec
        self.device = device
        self.providers = select_providers(
            self.ort.get_available_providers(), device, requested_providers(providers)
        )
        self.cache_dir = cache_dir
        self.fp16 = fp16
        self.max_shapes = max_shapes
        self.opset = opset
        self.provider: str | None = None  # the provider the newest session runs on
        self._sessions: dict[tuple[int, ...], _Session] = {}

    def __call__(self, x: torch.Tensor) -> Any:
        shape = tuple(int(v) for v in x.shape)
        session = self._sessions.get(shape) or self._open(shape)
        return pytree.tree_unflatten(session.run(x), session.out_spec)

    def _open(self, shape: tuple[int, ...]) -> _Session:
        exported, cached = load_or_export(self.spec, shape, self.cache_dir, self.opset)
        try:
            session = self._session(exported)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            if not cached:
                raise ExportError(
                    f"model {self.spec.model!r} ({self.spec.part} network) at input {_shape_text(shape)}: ONNX "
                    f"Runtime cannot load the exported model: {' '.join(str(exc).split())[:600]}"
                ) from exc
            log.warning(
                "ONNX cache entry of %s for input %s does not load (%s): exporting again",
                self.spec.model,
                _shape_text(shape),
                exc,
            )
            assert self.cache_dir is not None
            invalidate(self.spec, shape, self.cache_dir, self.opset)
            exported, _ = load_or_export(self.spec, shape, self.cache_dir, self.opset)
            session = self._session(exported)
        if len(self._sessions) >= self.max_shapes:
            self._sessions.pop(next(iter(self._sessions)))
        entry = self._sessions[shape] = _Session(session, exported)
        self.provider = entry.provider
        log_at = logging.INFO if entry.provider == self.providers[0] else logging.WARNING
        log.log(
            log_at,
            "ONNX Runtime: %s (%s network) for input %s runs on %s (asked for %s)%s",
            self.spec.model,
            self.spec.part,
            _shape_text(shape),
            entry.provider,
            " > ".join(self.providers),
            " from the cache" if cached else "",
        )
        return entry

    def _session(self, exported: ExportedNetwork) -> Any:
        ort = self.ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # the same threads as torch
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only; the provider used is logged here
        # Idle workers sleep instead of spinning: the rest of the frame (torch) and the robot's other
        # processes need the cores (LR-ASPP 640x480, 2 threads on a loaded 2-core box: 162 ms per
        # frame end to end without spinning, 192 ms with).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if "TensorrtExecutionProvider" in self.providers and self.cache_dir is not None:
            try:  # where TensorRT keeps the engines it builds (it does not create the folder)
                (self.cache_dir / "tensorrt").mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                log.warning(
                    "cannot create the TensorRT engine cache %s: %s", self.cache_dir / "tensorrt", exc
                )
        providers = [(p, provider_options(p, self.device, self.cache_dir, self.fp16)) for p in self.providers]
        return ort.InferenceSession(exported.data, sess_options=options, providers=providers)

    def close(self) -> None:
        """Close every session."""
        self._sessions.clear()
