"""Weights resolution: torchvision names (hub cache only, never the network here), local files, none."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from torchvision.models import segmentation

from segmentation_ros.engine.labels import get_label_set
from segmentation_ros.engine.registry import build_model, get_model_entry
from segmentation_ros.engine.weights import (
    WeightsError,
    apply_state_dict,
    hub_checkpoint_path,
    save_checkpoint,
)

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
    for weights in ("none", None, "random", "", "NONE"):
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
