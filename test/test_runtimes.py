"""The ONNX Runtime runtime (engine/runtimes/onnx.py): results equal to torch's, export, the disk
cache, execution providers, errors, the ``export`` command and the ``runtime`` options.

Equality is tested for every registered model with random weights on tiny frames, and for the
demo models with their shipped weights on a rendered scene: labels identical on >= 99.9 % of the
pixels, boxes and scores within 1e-3 relative, each mask on >= 99 % of the pixels. The cache and
error tests export a tiny network (under a second); each registered model's export takes torch's
exporter 3-8 s on two cores. onnxruntime, onnx and onnxscript come with the test extras
(``pip install -e '.[test]'``): without them these tests fail, naming the ``[onnx]`` extra.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from segmentation_ros.engine.labels import get_label_set
from segmentation_ros.engine.pipeline import IMAGENET_MEAN, IMAGENET_STD, EngineConfig, SegmentationEngine
from segmentation_ros.engine.registry import list_models
from segmentation_ros.engine.results import Segmentation
from segmentation_ros.engine.runtimes import RUNTIMES
from segmentation_ros.engine.runtimes import onnx as ort_runtime
from segmentation_ros.engine.runtimes.onnx import (
    ExportError,
    MissingDependencyError,
    NetworkSpec,
    OnnxNetwork,
    load_or_export,
    provider_options,
    requested_providers,
    select_providers,
)
from segmentation_ros.ros import node_core
from segmentation_ros.ros.messages import RosbagsFactory
from segmentation_ros.tools.bench.paths import _shape_random_detector
from segmentation_ros.tools.cli import build_parser, engine_config_from_args, main
from segmentation_ros.tools.synthetic import generate_scene

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

DEMO_MODELS = ("shapes_lraspp", "shapes_maskrcnn")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


# ---- helpers ----------------------------------------------------------------------------------------------
class Tiny(torch.nn.Module):
    """A two-convolution network with structured outputs: a dict of levels and a list."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.b = torch.nn.Conv2d(4, 2, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        a = torch.relu(self.a(x))
        b = self.b(a)
        return {"0": a, "pool": torch.nn.functional.max_pool2d(b, 2)}, [b.sigmoid()]


def tiny_spec(module: torch.nn.Module | None = None, model: str = "tiny") -> NetworkSpec:
    torch.manual_seed(0)
    module = (module or Tiny()).eval()
    return NetworkSpec(model, "instance", module, module.forward, ("features", "scores"), {"labels": "none"})


def flat(value: Any) -> list[torch.Tensor]:
    return torch.utils._pytree.tree_leaves(value)


def config(model: str, **overrides: Any) -> EngineConfig:
    instance = model in list_models("instance")
    fields: dict[str, Any] = {
        "task": "instance" if instance else "semantic",
        "device": "cpu",
        "semantic_weights": "none",
        "instance_weights": "none",
        "semantic_input_size": 0,  # the camera's resolution
        "instance_min_size": 0,
        "score_threshold": 0.0,  # random heads score low: every detection, max_detections of them
        "max_detections": 10,
        "offline": True,
    }
    fields["instance_model" if instance else "semantic_model"] = model
    return EngineConfig(**(fields | overrides))


def engines(cfg: EngineConfig, cache_dir: Path) -> tuple[SegmentationEngine, SegmentationEngine]:
    """A torch engine and an ONNX Runtime engine with the same weights (random ones seeded alike)."""
    built = []
    for runtime in RUNTIMES:
        torch.manual_seed(0)
        engine = SegmentationEngine(
            cfg, runtime=runtime, onnx_cache_dir=str(cache_dir) if runtime != "torch" else None
        )
        model = engine.instance_model
        if model is not None and cfg.instance_weights == "none":
            _shape_random_detector(model.module)  # anchor-sized boxes instead of degenerate ones
        built.append(engine)
    torch_engine, ort_engine = built
    for a, b in zip(
        (torch_engine.semantic_model, torch_engine.instance_model),
        (ort_engine.semantic_model, ort_engine.instance_model),
        strict=True,
    ):
        if a is not None:  # the same weights (the last layer built is the last random draw)
            torch.testing.assert_close(list(a.module.parameters())[-1], list(b.module.parameters())[-1])
    return torch_engine, ort_engine


def assert_same_results(ours: Segmentation, theirs: Segmentation) -> None:
    """The issue's tolerances: labels on >= 99.9 % of the pixels, boxes and scores within 1e-3
    relative, each instance mask on >= 99 % of the pixels."""
    if theirs.semantic is not None:
        assert np.mean(ours.semantic.labels == theirs.semantic.labels) >= 0.999
    if theirs.instances is not None:
        a, b = ours.instances, theirs.instances
        assert len(a.boxes) == len(b.boxes)
        np.testing.assert_allclose(a.boxes, b.boxes, rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-3, atol=1e-6)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)
        for mask_a, mask_b in zip(a.masks, b.masks, strict=True):
            assert float((mask_a == mask_b).float().mean()) >= 0.99
        assert np.mean(a.instance_ids == b.instance_ids) >= 0.99
    if theirs.panoptic is not None:
        assert np.mean(ours.panoptic.panoptic == theirs.panoptic.panoptic) >= 0.99


# ---- equality with torch ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model", [m for m in list_models() if m not in DEMO_MODELS])
def test_every_registered_model_matches_torch(model: str, cache_dir: Path) -> None:
    """Random weights, a 64x48 rendered frame at camera resolution: the same network outputs within
    float tolerance, and the same labels, boxes and masks."""
    torch_engine, ort_engine = engines(config(model), cache_dir)
    frame = generate_scene(1, 64, 48, split="test", index=0).image
    assert_same_results(ort_engine.segment(frame), torch_engine.segment(frame))
    with torch.inference_mode():
        if torch_engine.semantic_model is not None:
            x = torch_engine._semantic_input(torch_engine._upload([frame], "rgb"))
            expected, got = [torch_engine._semantic_forward(x)], [ort_engine._semantic_forward(x)]
        else:
            x = torch_engine._instance_input(torch_engine._upload([frame], "rgb")).tensors
            expected, got = flat(torch_engine._instance_trunk(x)), flat(ort_engine._instance_trunk(x))
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        scale = float(b.abs().max()) or 1.0
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4 * scale)
    assert ort_engine.execution_providers == {
        "semantic" if torch_engine.semantic_model is not None else "instance": "CPUExecutionProvider"
    }


def test_demo_models_with_their_weights_match_torch_and_reuse_the_cache(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The trained demo models (panoptic, shipped weights) on a rendered 224x168 scene with real
    borders and objects; a second engine with the same weights loads the exports from the cache."""
    cfg = EngineConfig(
        task="panoptic",
        semantic_model="shapes_lraspp",
        instance_model="shapes_maskrcnn",
        semantic_weights="DEFAULT",
        instance_weights="DEFAULT",
        device="cpu",
        stuff_area_threshold=64,
        offline=True,
    )
    torch_engine, ort_engine = engines(cfg, cache_dir)
    assert ort_engine.runtime_info == "onnxruntime (no frame yet)" and torch_engine.runtime_info == "torch"
    frame = generate_scene(0, 224, 168, split="test", index=0).image
    with caplog.at_level(logging.INFO, logger=ort_runtime.__name__):
        ours = ort_engine.segment(frame)
    theirs = torch_engine.segment(frame)
    assert len(theirs.instances.boxes) > 0 and len(np.unique(theirs.semantic.labels)) > 2  # real work
    assert_same_results(ours, theirs)
    assert ort_engine.execution_providers == {
        "semantic": "CPUExecutionProvider",
        "instance": "CPUExecutionProvider",
    }
    assert ort_engine.runtime_info == "onnxruntime (CPUExecutionProvider)"
    logged = [r.getMessage() for r in caplog.records if "runs on CPUExecutionProvider" in r.getMessage()]
    assert len(logged) == 2 and "shapes_lraspp" in logged[0] and "shapes_maskrcnn" in logged[1]
    assert sorted(p.name.split("-")[0] for p in cache_dir.glob("shapes_*.onnx")) == list(DEMO_MODELS)

    def no_export(*args: object) -> None:
        raise AssertionError("exported again instead of loading the cache")

    monkeypatch.setattr(ort_runtime, "_export", no_export)
    again = SegmentationEngine(cfg, runtime="onnxruntime", onnx_cache_dir=str(cache_dir))
    assert_same_results(again.segment(frame), theirs)


# ---- export and the cache ---------------------------------------------------------------------------------
def test_an_export_is_cached_under_a_content_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tiny_spec()
    exported, cached = load_or_export(spec, (1, 3, 16, 24), tmp_path)
    assert not cached
    (onnx_file,) = tmp_path.glob("*.onnx")
    assert onnx_file.name.startswith("tiny-instance-1x3x16x24-")
    info = json.loads(onnx_file.with_suffix(".json").read_text())
    assert info == exported.info and onnx_file.read_bytes() == exported.data
    key = info["key"]
    assert key["model"] == "tiny" and key["input"] == [1, 3, 16, 24] and key["opset"] == ort_runtime.OPSET
    assert key["weights_sha256"] == ort_runtime.weights_digest(spec.module)
    assert key["torch"] == torch.__version__ and "dynamo" in key["exporter"] and key["onnxscript"]
    assert [o["name"] for o in info["outputs"]] == ["features.0", "features.pool", "scores.0"]
    assert info["metadata"] == {"labels": "none"}

    def no_export(*args: object) -> None:
        raise AssertionError("exported again")

    with monkeypatch.context() as patch:
        patch.setattr(ort_runtime, "_export", no_export)
        again, cached = load_or_export(spec, (1, 3, 16, 24), tmp_path)
    assert cached and again.data == exported.data
    # another shape, other weights, another opset: other entries
    load_or_export(spec, (2, 3, 16, 24), tmp_path)
    with torch.no_grad():
        spec.module.a.bias.add_(1.0)
    load_or_export(spec, (1, 3, 16, 24), tmp_path)
    assert len(list(tmp_path.glob("*.onnx"))) == len(list(tmp_path.glob("*.json"))) == 3
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_onnx_network_runs_the_structured_outputs(tmp_path: Path) -> None:
    """The outputs come back in the function's structure (a dict of levels, a list), on its device,
    equal to torch's; the provider the session runs on is exposed."""
    spec = tiny_spec()
    network = OnnxNetwork(spec, device=CPU, cache_dir=tmp_path)
    assert network.provider is None
    x = torch.randn(2, 3, 16, 24)
    (features, scores), (expected_features, expected_scores) = network(x), spec.fn(x)
    assert list(features) == ["0", "pool"] and isinstance(scores, list) and len(scores) == 1
    for got, expected in zip(
        flat((features, scores)), flat((expected_features, expected_scores)), strict=True
    ):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert network.provider == "CPUExecutionProvider"


def _corrupt_onnx(onnx_file: Path, json_file: Path) -> None:
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx_file.write_bytes(bytes(data))


def _truncate_json(onnx_file: Path, json_file: Path) -> None:
    json_file.write_text(json_file.read_text()[:40])


def _drop_onnx(onnx_file: Path, json_file: Path) -> None:
    onnx_file.unlink()


def _unloadable_with_its_hash(onnx_file: Path, json_file: Path) -> None:
    """A file whose SHA-256 the JSON vouches for but that ONNX Runtime cannot load."""
    import hashlib

    garbage = b"not an onnx model"
    onnx_file.write_bytes(garbage)
    info = json.loads(json_file.read_text())
    info["file_sha256"] = hashlib.sha256(garbage).hexdigest()
    json_file.write_text(json.dumps(info))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding one good entry of :func:`tiny_spec` for 1x3x16x24 inputs."""
    cache = tmp_path_factory.mktemp("pristine")
    load_or_export(tiny_spec(), (1, 3, 16, 24), cache)
    return cache


@pytest.mark.parametrize(
    "corrupt",
    [_corrupt_onnx, _truncate_json, _drop_onnx, _unloadable_with_its_hash],
    ids=lambda f: f.__name__[1:],
)
def test_a_corrupt_cache_entry_is_deleted_and_rebuilt(
    corrupt: Any, pristine: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = tiny_spec()
    x = torch.randn(1, 3, 16, 24)
    expected = flat(spec.fn(x))
    for path in pristine.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    (onnx_file,) = tmp_path.glob("*.onnx")
    json_file = onnx_file.with_suffix(".json")
    good = onnx_file.read_bytes()
    corrupt(onnx_file, json_file)
    with caplog.at_level(logging.WARNING, logger=ort_runtime.__name__):
        got = flat(OnnxNetwork(spec, device=CPU, cache_dir=tmp_path)(x))
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert any("exporting again" in r.getMessage() for r in caplog.records)
    assert onnx_file.read_bytes() == good and json.loads(json_file.read_text())["file_sha256"]
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".onnx"]


def test_an_unwritable_cache_costs_a_warning_not_the_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("in the way")
    spec = tiny_spec()
    x = torch.randn(1, 3, 16, 24)
    with caplog.at_level(logging.WARNING, logger=ort_runtime.__name__):
        got = flat(OnnxNetwork(spec, device=CPU, cache_dir=blocked / "cache")(x))
    for a, b in zip(got, flat(spec.fn(x)), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert any("cannot write the ONNX cache" in r.getMessage() for r in caplog.records)


# ---- errors -----------------------------------------------------------------------------------------------
class DataDependent(torch.nn.Module):
    """Control flow on a tensor's values: torch.export cannot capture it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y if float(y.sum()) > 0 else -y


def test_a_network_that_cannot_be_exported_names_the_model_and_the_reason(tmp_path: Path) -> None:
    spec = tiny_spec(DataDependent(), model="data_dependent_net")
    with pytest.raises(
        ExportError,
        match=r"model 'data_dependent_net' \(instance network\) at input 1x3x8x8 cannot "
        r"be exported to ONNX: \w+",
    ):
        OnnxNetwork(spec, device=CPU, cache_dir=tmp_path)(torch.zeros(1, 3, 8, 8))
    assert not list(tmp_path.iterdir())  # nothing cached


def test_the_engine_never_falls_back_to_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose network cannot be exported fails the frame with ExportError naming it."""

    def not_exportable(self: SegmentationEngine, x: torch.Tensor) -> torch.Tensor:
        logits = self.semantic_model.module.classifier(self.semantic_model.module.backbone(x))
        return logits if float(logits.sum()) > 0 else -logits

    monkeypatch.setattr(SegmentationEngine, "_semantic_network", not_exportable)
    engine = SegmentationEngine(config("shapes_lraspp"), runtime="onnxruntime", onnx_cache_dir=str(tmp_path))
    with pytest.raises(ExportError, match="model 'shapes_lraspp' .* cannot be exported to ONNX"):
        engine.segment(np.zeros((48, 64, 3), np.uint8))


@pytest.mark.parametrize("missing", ["onnxruntime", "onnxscript"])
def test_a_missing_package_names_the_extra(
    missing: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # import fails as if not installed
    if missing == "onnxruntime":
        loaded = []
        monkeypatch.setattr("segmentation_ros.engine.pipeline.build_model", lambda *a, **k: loaded.append(a))
        with pytest.raises(MissingDependencyError, match=r"pip install 'segmentation-ros\[onnx\]'"):
            SegmentationEngine(config("shapes_lraspp"), runtime="onnxruntime")
        assert not loaded  # refused before any weights load
    else:
        with pytest.raises(MissingDependencyError, match=r"needs onnxscript.*'segmentation-ros\[onnx\]'"):
            load_or_export(tiny_spec(), (1, 3, 8, 8), tmp_path)
    assert isinstance(MissingDependencyError("x"), RuntimeError)  # the CLI reports it, exit status 2


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"runtime": "tensorrt"}, r"runtime must be one of \('torch', 'onnxruntime'\), got 'tensorrt'"),
        (
            {"runtime": "onnxruntime", "precision": "bf16"},
            "precision bf16 is not available with runtime 'onnxruntime'",
        ),
        ({"onnx_providers": ("cpu",)}, r"onnx_providers \['cpu'\] given, but runtime is 'torch'"),
        ({"runtime": "onnxruntime", "onnx_providers": ("gpu",)}, "execution provider 'gpu': expected one of"),
    ],
)
def test_engine_config_checks_the_runtime(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config("shapes_lraspp", **changes).validate()


# ---- execution providers -----------------------------------------------------------------------------------
ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize(
    "available, device, requested, expected",
    [
        (ALL, "cuda", (), ALL),
        (["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda:1", (), ALL[1:]),
        (["CPUExecutionProvider"], "cuda", (), ["CPUExecutionProvider"]),
        (ALL, "cpu", (), ["CPUExecutionProvider"]),
        (ALL, "cuda", ("CUDAExecutionProvider", "CPUExecutionProvider"), ALL[1:]),
        (ALL, "cpu", ("TensorrtExecutionProvider",), ALL[:1]),
    ],
    ids=["tensorrt_first", "cuda_first", "cpu_only_build", "cpu_device", "override", "override_on_cpu"],
)
def test_providers_tensorrt_then_cuda_then_cpu(
    available: list[str], device: str, requested: tuple[str, ...], expected: list[str]
) -> None:
    assert select_providers(available, torch.device(device), requested) == expected


def test_providers_requested_by_config_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ort_runtime.PROVIDERS_ENV, raising=False)
    assert requested_providers() == ()
    monkeypatch.setenv(ort_runtime.PROVIDERS_ENV, "TensorRT, cuda,CPUExecutionProvider")
    assert requested_providers() == tuple(ALL)
    assert requested_providers(("cpu",)) == ("CPUExecutionProvider",)  # the config wins
    with pytest.raises(
        ValueError,
        match=r"\['TensorrtExecutionProvider', 'CUDAExecutionProvider'\] asked for .* not "
        r"available in this onnxruntime; available: \['CPUExecutionProvider'\]",
    ):
        select_providers(["CPUExecutionProvider"], CPU, requested_providers())
    with pytest.raises(ValueError, match="not available in this onnxruntime"):
        SegmentationEngine(config("shapes_lraspp"), runtime="onnxruntime")  # this onnxruntime is CPU-only


def test_provider_options(tmp_path: Path) -> None:
    trt = provider_options("TensorrtExecutionProvider", torch.device("cuda", 1), tmp_path, fp16=True)
    assert trt == {
        "device_id": 1,
        "trt_fp16_enable": True,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(tmp_path / "tensorrt"),
    }
    assert provider_options("CUDAExecutionProvider", torch.device("cuda"), tmp_path, fp16=False) == {
        "device_id": 0
    }
    assert provider_options("CPUExecutionProvider", CPU, tmp_path, fp16=False) == {}


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ort_runtime.CACHE_ENV, str(tmp_path / "c"))
    assert ort_runtime.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv(ort_runtime.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert ort_runtime.default_cache_dir() == tmp_path / "segmentation_ros" / "onnx"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_providers_match_torch(cache_dir: Path) -> None:
    """On a GPU: inputs and outputs bound to torch's CUDA memory, the first GPU provider used."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        pytest.skip(f"this onnxruntime has no CUDA provider ({available}): pip install onnxruntime-gpu")
    cfg = config("shapes_lraspp", device="cuda", semantic_weights="DEFAULT")
    torch_engine, ort_engine = engines(cfg, cache_dir)
    frame = generate_scene(0, 224, 168, split="test", index=0).image
    assert_same_results(ort_engine.segment(frame), torch_engine.segment(frame))
    assert ort_engine.execution_providers["semantic"] == ort_engine._semantic_forward.providers[0]


# ---- the export command, the CLI flag and the node parameter -------------------------------------------------
def test_export_command_writes_onnx_files_with_their_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnx
    import onnxruntime

    argv = ["export", "--model", "shapes_lraspp", "--size", "64x48", "--semantic-input-size", "0"]
    assert main([*argv, "--device", "cpu", "--offline", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes_lraspp.json", "shapes_lraspp.onnx"]
    assert "wrote" in capsys.readouterr().out
    info = json.loads((tmp_path / "shapes_lraspp.json").read_text())
    metadata = info["metadata"]
    assert metadata["labels"] == get_label_set("shapes").to_dict()
    assert metadata["normalisation"]["mean"] == list(IMAGENET_MEAN)
    assert metadata["normalisation"]["std"] == list(IMAGENET_STD)
    assert info["input"] == {"name": "images", "shape": [1, 3, 48, 64], "dtype": "float32"}
    assert info["camera"] == {"width": 64, "height": 48} and info["outputs"][0]["name"] == "logits"
    model = onnx.load(str(tmp_path / "shapes_lraspp.onnx"))
    inside = json.loads({p.key: p.value for p in model.metadata_props}["segmentation_ros"])
    assert inside["metadata"] == metadata and inside["key"] == info["key"]
    # what a foreign toolchain runs: the file alone, against the engine's torch network
    engine = SegmentationEngine(config("shapes_lraspp", semantic_weights="DEFAULT"))
    x = torch.randn(1, 3, 48, 64)
    (logits,) = onnxruntime.InferenceSession(str(tmp_path / "shapes_lraspp.onnx")).run(
        None, {"images": x.numpy()}
    )
    with torch.inference_mode():
        torch.testing.assert_close(
            torch.from_numpy(logits), engine._semantic_network(x), rtol=1e-3, atol=1e-4
        )


def test_export_command_refuses_a_bad_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["export", "--model", "shapes_lraspp", "--size", "8x8", "--out", str(tmp_path), "--device", "cpu"]
    assert main(argv) == 2
    assert "--size 8x8: 8x8 (width x height) is too small" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_segment_takes_a_runtime_flag() -> None:
    parser = build_parser()
    argv = ["segment", "--out", "o", "--model", "shapes_lraspp", "--weights", "none", "a.png"]
    assert engine_config_from_args(parser.parse_args(argv)).runtime == "torch"
    assert (
        engine_config_from_args(parser.parse_args([*argv, "--runtime", "onnxruntime"])).runtime
        == "onnxruntime"
    )
    with pytest.raises(SystemExit):
        parser.parse_args([*argv, "--runtime", "tensorrt"])


def test_runtime_is_a_read_only_node_parameter() -> None:
    (spec,) = [p for p in node_core.PARAMETERS if p.name == "runtime"]
    assert spec.default == "torch" and spec.choices == RUNTIMES and spec.read_only
    with pytest.raises(ValueError, match=r"parameter runtime: expected one of \('torch', 'onnxruntime'\)"):
        node_core.validate_parameters({"runtime": "tensorrt"})
    core = node_core.SegmentationCore(
        {"runtime": "onnxruntime", "semantic_weights": "none"}, RosbagsFactory()
    )
    assert core.engine_config().runtime == "onnxruntime"
