"""Weights resolution: torchvision names (hub cache only, never the network here), local files, none;
empty weights and malformed checkpoints refused with a WeightsError naming the file."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_labels import _mutated, numpy_peak
from torchvision.models import segmentation

from segmentation_ros.engine import registry
from segmentation_ros.engine.imageio import write_png
from segmentation_ros.engine.labels import LabelClass, LabelSet, get_label_set
from segmentation_ros.engine.pipeline import SegmentationEngine
from segmentation_ros.engine.registry import build_model, get_model_entry
from segmentation_ros.engine.weights import (
    WeightsError,
    apply_state_dict,
    hub_checkpoint_path,
    read_checkpoint,
    save_checkpoint,
)
from segmentation_ros.tools.cli import main

NAME = "lraspp_mobilenet_v3_large"  # the smallest registered torchvision architecture
ENUM = segmentation.LRASPP_MobileNet_V3_Large_Weights


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """An empty torch hub cache under tmp_path and a network that records every download attempt."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("SEGMENTATION_ROS_OFFLINE", raising=False)
    attempts: list[str] = []

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        attempts.append(url)
        raise URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    assert str(hub_checkpoint_path(ENUM.DEFAULT.url)).startswith(str(tmp_path))
    return attempts


def sample_input() -> torch.Tensor:
    return torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))


def outputs(module: torch.nn.Module) -> torch.Tensor:
    with torch.inference_mode():
        return module(sample_input())["out"]


# ---- torchvision weights ----------------------------------------------------------------------------
@pytest.mark.parametrize("weights", ["DEFAULT", ENUM.DEFAULT.name])
def test_offline_uncached_torchvision_weights_say_url_and_cache_path(
    downloads: list[str], weights: str
) -> None:
    with pytest.raises(WeightsError) as info:
        build_model(NAME, weights, offline=True)
    message = str(info.value)
    assert ENUM.DEFAULT.url in message
    assert str(hub_checkpoint_path(ENUM.DEFAULT.url)) in message
    assert "downloads are off" in message
    assert downloads == []


def test_offline_from_environment(downloads: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMENTATION_ROS_OFFLINE", "1")
    with pytest.raises(WeightsError, match="downloads are off"):
        build_model(NAME, "DEFAULT")
    assert downloads == []


def test_failed_download_names_url_and_cache_path(downloads: list[str]) -> None:
    timeout = socket.getdefaulttimeout()
    with pytest.raises(WeightsError) as info:
        build_model(NAME, "DEFAULT", offline=False)
    assert downloads == [ENUM.DEFAULT.url]
    message = str(info.value)
    assert "could not download" in message and "no network in tests" in message
    assert ENUM.DEFAULT.url in message and str(hub_checkpoint_path(ENUM.DEFAULT.url)) in message
    assert not hub_checkpoint_path(ENUM.DEFAULT.url).exists()
    assert socket.getdefaulttimeout() == timeout  # the download timeout is not left behind


def test_cached_torchvision_weights_load_offline(downloads: list[str]) -> None:
    torch.manual_seed(1)
    reference = build_model(NAME, "none")
    cached = hub_checkpoint_path(ENUM.DEFAULT.url)
    cached.parent.mkdir(parents=True)
    torch.save(reference.module.state_dict(), cached)

    loaded = build_model(NAME, "DEFAULT", offline=True)
    assert downloads == []
    assert str(cached) in loaded.weights
    assert [c.name for c in loaded.labels.classes] == [
        c for c in ENUM.DEFAULT.meta["categories"] if c != "N/A"
    ]
    assert loaded.meta["categories"] == ENUM.DEFAULT.meta["categories"]
    torch.testing.assert_close(outputs(loaded.module), outputs(reference.module), rtol=0, atol=0)

    with pytest.raises(WeightsError, match="has 6 classes but torchvision weights .* predict 21"):
        build_model(NAME, "DEFAULT", labels="shapes", offline=True)


def test_none_never_downloads(downloads: list[str]) -> None:
    for weights in ("none", None, "random", "NONE", " none "):
        loaded = build_model(NAME, weights, offline=False)
        assert loaded.weights.startswith("none")
        assert loaded.labels == get_label_set(get_model_entry(NAME).labels)
    assert downloads == []


def test_unknown_weights_name_lists_the_choices(downloads: list[str]) -> None:
    with pytest.raises(
        WeightsError, match=r"expected 'DEFAULT', 'none', a file path, or one of torchvision's"
    ):
        build_model(NAME, "IMAGENET_V7")
    assert downloads == []


# ---- local files ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shapes_model():
    """A 6-class (shapes) model with random weights."""
    torch.manual_seed(2)
    return build_model(NAME, "none", labels="shapes")


def test_checkpoint_round_trip_carries_labels_and_meta(shapes_model, tmp_path: Path) -> None:
    path = save_checkpoint(
        tmp_path / "sub" / "model.pt", shapes_model.module, arch=NAME, labels=shapes_model.labels, epochs=3
    )
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary file left beside it
    loaded = build_model(NAME, str(path))  # no label override: the checkpoint says "shapes"
    assert loaded.labels == get_label_set("shapes")
    assert loaded.meta == {"epochs": 3}
    assert loaded.weights == str(path)
    torch.testing.assert_close(outputs(loaded.module), outputs(shapes_model.module), rtol=0, atol=0)


def test_plain_state_dict_file(shapes_model, tmp_path: Path) -> None:
    path = tmp_path / "plain.pth"
    torch.save(shapes_model.module.state_dict(), path)
    loaded = build_model(NAME, str(path), labels="shapes")
    assert loaded.labels == get_label_set("shapes")
    torch.testing.assert_close(outputs(loaded.module), outputs(shapes_model.module), rtol=0, atol=0)
    # without the override the registry's 21-class VOC set is assumed, which does not fit
    with pytest.raises(WeightsError, match=r"class count does not match label set 'voc' \(21 classes\)"):
        build_model(NAME, str(path))


def test_wrapped_and_ddp_prefixed_state_dicts(shapes_model, tmp_path: Path) -> None:
    state = shapes_model.module.state_dict()
    wrapped = tmp_path / "wrapped.ckpt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    loaded = build_model(NAME, str(wrapped), labels="shapes")
    torch.testing.assert_close(outputs(loaded.module), outputs(shapes_model.module), rtol=0, atol=0)


def test_training_aux_head_is_dropped() -> None:
    """torchvision's published DeepLab/FCN weights include the training-only aux head; ours has none."""
    torch.manual_seed(3)
    with_aux = segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=6, aux_loss=True
    )
    state = with_aux.state_dict()
    assert any(k.startswith("aux_classifier.") for k in state)
    entry = get_model_entry("deeplabv3_mobilenet_v3_large")
    module = entry.builder(6)
    apply_state_dict(module, state, entry=entry, labels=get_label_set("shapes"), source="test")
    for key, value in module.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_checkpoint_for_6_classes_with_a_21_class_override(shapes_model, tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "six.pt", shapes_model.module, arch=NAME, labels=shapes_model.labels)
    with pytest.raises(WeightsError) as info:
        build_model(NAME, str(path), labels="voc")
    message = str(info.value)
    assert str(path) in message and NAME in message
    assert "class count does not match label set 'voc' (21 classes)" in message


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.pt"
    with pytest.raises(
        WeightsError, match=re.escape(f"weights file {missing} for model '{NAME}' does not exist")
    ):
        build_model(NAME, str(missing))
    with pytest.raises(WeightsError, match="does not exist"):
        build_model(NAME, "no_such_weights_file.pt")  # a bare file name: looked up in models/


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(os.urandom(256))
    with pytest.raises(WeightsError, match=re.escape(f"cannot read weights file {path}")):
        build_model(NAME, str(path))


def test_files_without_a_state_dict(tmp_path: Path) -> None:
    listing = tmp_path / "list.pt"
    torch.save([1, 2, 3], listing)
    with pytest.raises(WeightsError, match="holds a list, expected a state dict"):
        build_model(NAME, str(listing))
    strings = tmp_path / "strings.pt"
    torch.save({"model": {"a": "not a tensor"}}, strings)
    with pytest.raises(WeightsError, match="has no state dict"):
        build_model(NAME, str(strings))


def test_checkpoint_of_another_architecture(shapes_model, tmp_path: Path) -> None:
    path = save_checkpoint(
        tmp_path / "other.pt", shapes_model.module, arch="fcn_resnet50", labels=shapes_model.labels
    )
    with pytest.raises(WeightsError, match=f"is for model 'fcn_resnet50', not '{NAME}'"):
        build_model(NAME, str(path))
    # a plain state dict of another architecture: the parameter names do not match
    plain = tmp_path / "other_plain.pt"
    torch.save(shapes_model.module.state_dict(), plain)
    with pytest.raises(WeightsError, match="parameter names do not match"):
        build_model("deeplabv3_mobilenet_v3_large", str(plain), labels="shapes")


# ---- empty weights: an error everywhere, never random weights ----------------------------------------
@pytest.mark.parametrize("empty", ["", "  ", "\t\n"])
def test_empty_weights_are_an_error_not_random_init(
    downloads: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], empty: str
) -> None:
    """'' is what an unset shell variable or launch argument gives: it must not mean random weights."""
    expected = r"empty weights .*use 'none' for random init, 'DEFAULT' for the model's default"
    with pytest.raises(WeightsError, match=f"model '{NAME}'.*{expected}"):
        build_model(NAME, empty)
    # the node's semantic_weights / instance_weights parameters reach the models through the engine
    with pytest.raises(WeightsError, match=expected):
        SegmentationEngine(task="semantic", semantic_model=NAME, semantic_weights=empty, device="cpu")
    with pytest.raises(WeightsError, match=expected):
        SegmentationEngine(task="instance", instance_model="shapes_maskrcnn", instance_weights=empty, device="cpu")
    image = tmp_path / "frame.png"
    write_png(image, np.zeros((8, 8, 3), np.uint8))
    assert main(["segment", "--model", NAME, "--weights", empty, "--out", str(tmp_path / "out"), str(image)]) == 2
    assert re.search(expected, capsys.readouterr().err)
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))  # nothing segmented
    assert downloads == []


# ---- malformed checkpoints: a WeightsError naming the file, nothing sized by what it claims ----------
ABSURD_ID = 300_000_000  # 3e8


def _labels(**changes: object) -> dict:
    """The shapes label set dict with its second class changed."""
    data = get_label_set("shapes").to_dict()
    data["classes"][1].update(changes)
    return data


def _wrong_shape(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    key = next(iter(state))
    return {**state, key: torch.zeros(2, 2)}


# (what to change in save_checkpoint's dict, the message expected after the file's name)
MALFORMED = {
    "meta is a string": (lambda c: {**c, "meta": "abc"}, "'meta' must be a dict with string keys"),
    "meta is a number": (lambda c: {**c, "meta": 5}, "'meta' must be a dict"),
    "meta has int keys": (lambda c: {**c, "meta": {1: 2}}, "'meta' must be a dict with string keys"),
    "labels are a name": (lambda c: {**c, "labels": "shapes"}, "'labels' are not a label set"),
    "labels are None": (lambda c: {**c, "labels": None}, "'labels' are not a label set"),
    "class id 3e8": (lambda c: {**c, "labels": _labels(id=ABSURD_ID)}, f"integer 'id' in \\[0, 65535\\], got {ABSURD_ID}"),
    "negative class id": (lambda c: {**c, "labels": _labels(id=-5)}, "got -5"),
    "float class id": (lambda c: {**c, "labels": _labels(id=1.5)}, r"got 1\.5 \(float\)"),
    "name is a list": (lambda c: {**c, "labels": _labels(name=["a"])}, "string 'name'"),
    "colour out of range": (lambda c: {**c, "labels": _labels(color=[0, 0, 256])}, "'color' must be 3 integers in 0..255"),
    "void id 3e8": (lambda c: {**c, "labels": {**_labels(), "void_id": ABSURD_ID}}, f"'void_id'.*got {ABSURD_ID}"),
    "too many classes": (
        lambda c: {**c, "labels": {"classes": [{}] * 70_000}},
        "at most 65536 classes",
    ),
    "arch is a number": (lambda c: {**c, "arch": 5}, "'arch' must be a model name, got 5"),
    "arch is empty": (lambda c: {**c, "arch": ""}, "'arch' must be a model name"),
    "model is a string": (lambda c: {**c, "model": "weights"}, "no state dict .*'model' is a str"),
    "model is empty": (lambda c: {**c, "model": {}}, "no state dict .*'model' is an empty dict"),
    "model has int keys": (lambda c: {**c, "model": {1: torch.zeros(1)}}, "a key 1 that is not a string"),
    "state_dict holds lists": (lambda c: {"state_dict": {"a": [1.0]}}, "'state_dict' is 'a': a list, not a tensor"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_checkpoints_are_a_clear_error(shapes_model, tmp_path: Path, case: str) -> None:
    mutate, match = MALFORMED[case]
    good = save_checkpoint(tmp_path / "good.pt", shapes_model.module, arch=NAME, labels=shapes_model.labels)
    path = tmp_path / "bad.pt"
    torch.save(mutate(torch.load(good, weights_only=True)), path)
    started = time.perf_counter()
    with pytest.raises(WeightsError, match=f"weights file {re.escape(str(path))}.*{match}"):
        build_model(NAME, str(path))
    with pytest.raises(WeightsError, match=re.escape(str(path))):
        read_checkpoint(path)
    assert time.perf_counter() - started < 5.0


def test_label_set_larger_than_the_tensors_is_refused_before_building(
    shapes_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A label set may claim up to 65536 classes; the tensors decide whether the file is right, and
    they are compared with the architecture on the meta device before any memory is spent."""
    entry = get_model_entry("shapes_maskrcnn")
    torch.manual_seed(4)
    module = entry.builder(6)
    claims = LabelSet("claims", (LabelClass(0, "a", (0, 0, 0), False), LabelClass(65535, "b", (1, 2, 3), True)))
    path = save_checkpoint(tmp_path / "claims.pt", module, arch=entry.name, labels=claims)
    built: list[tuple[int, str]] = []

    def spy(num_classes: int) -> torch.nn.Module:
        built.append((num_classes, str(torch.get_default_device())))
        return entry.builder(num_classes)

    monkeypatch.setitem(registry._REGISTRY, entry.name, dataclasses.replace(entry, builder=spy))
    with pytest.raises(WeightsError) as info:
        build_model(entry.name, str(path))
    message = str(info.value)
    assert str(path) in message and "class count does not match label set 'claims' (65536 classes), the file's tensors have 6" in message
    assert "roi_heads.box_predictor.cls_score.weight: (6, 256) in the file, (65536, 256) in the model" in message
    assert built == [(65536, "meta")]  # a real 65536-class Mask R-CNN head would be 1.3 GB in torchvision's

    # a tensor of the wrong shape in an otherwise right checkpoint: the same check, the same error
    state = module.state_dict()
    state["backbone.body.0.0.weight"] = torch.zeros(1, 1, 1, 1)
    torch.save({"model": state, "arch": entry.name, "labels": get_label_set("shapes").to_dict()}, path)
    built.clear()
    with pytest.raises(WeightsError, match=r"(?s)tensor shapes do not match.*backbone\.body\.0\.0\.weight: \(1, 1, 1, 1\) in"):
        build_model(entry.name, str(path))
    assert built == [(6, "meta")]


CHECKPOINT_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([ABSURD_ID, 65535, 65536, -1, 256]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.integers(min_value=-300, max_value=300), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.builds(torch.zeros, st.integers(0, 7)),
)
CHECKPOINT_PATHS = st.one_of(
    st.sampled_from([("meta",), ("labels",), ("arch",), ("model",), ("labels", "classes"), ("labels", "void_id")]),
    st.tuples(st.just("labels"), st.just("classes"), st.integers(0, 6)),
    st.tuples(
        st.just("labels"), st.just("classes"), st.integers(0, 6), st.sampled_from(["id", "name", "color", "isthing"])
    ),
    st.tuples(st.just("model"), st.sampled_from(["weight", "bias", "extra"])),
)
TINY = "tiny_conv_for_test_weights"


@pytest.fixture(scope="module")
def tiny_checkpoint() -> Iterator[dict]:
    """save_checkpoint's dict for a 1x1 convolution registered (for this module only) with shapes' labels."""
    builder = lambda num_classes: torch.nn.Conv2d(3, num_classes, 1)  # noqa: E731
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry._REGISTRY, TINY, registry.ModelEntry(TINY, "semantic", builder, "shapes"))
        torch.manual_seed(5)
        state = builder(6).state_dict()
        yield {"model": state, "arch": TINY, "labels": get_label_set("shapes").to_dict(), "meta": {"epochs": 1}}


@settings(derandomize=True, max_examples=150, deadline=None)
@given(mutations=st.lists(st.tuples(CHECKPOINT_PATHS, st.one_of(CHECKPOINT_VALUE, st.just(...))), min_size=1, max_size=3))
def test_mutated_checkpoints_load_or_raise_weights_error(tiny_checkpoint: dict, mutations: list) -> None:
    """Whatever a checkpoint holds, build_model returns a model or raises a WeightsError naming the
    file, quickly and without allocating what the file claims."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "mutated.pt"
        torch.save(_mutated(tiny_checkpoint, mutations), path)
        started = time.perf_counter()
        with numpy_peak() as peak:
            try:
                loaded = build_model(TINY, str(path))
            except WeightsError as exc:
                assert str(path) in str(exc)
            else:
                assert loaded.module.out_channels == loaded.labels.num_classes <= 65536
        assert peak[0] < 10_000_000
        assert time.perf_counter() - started < 5.0
