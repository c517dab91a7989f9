"""Label sets: the built-ins, the shapes YAML, YAML round trips and the label image dtype."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights
from torchvision.models.segmentation import FCN_ResNet50_Weights

from segmentation_ros.engine.labels import LabelClass, LabelSet, builtin_label_sets, get_label_set, palette
from segmentation_ros.engine.paths import config_dir
from segmentation_ros.engine.pipeline import SegmentationEngine

SHAPES_YAML = Path(__file__).resolve().parent.parent / "config" / "labels" / "shapes.yaml"


def test_coco_has_91_ids_with_na_gaps_and_torchvision_names() -> None:
    categories = MaskRCNN_ResNet50_FPN_Weights.DEFAULT.meta["categories"]
    coco = get_label_set("coco")
    assert coco.num_classes == len(categories) == 91
    named = [i for i, name in enumerate(categories) if name != "N/A"]
    assert coco.ids == named
    assert len(coco) < 91  # the N/A ids are gaps
    for i, name in enumerate(categories):
        if name == "N/A":
            assert i not in coco
            assert coco.name_of(i) == f"class_{i}"
        else:
            assert coco[i].name == name
    assert coco.void_id == 0
    assert coco.thing_ids == named[1:]  # every named class but the background is a thing
    assert coco.stuff_ids == []
    assert coco.by_name("person").id == categories.index("person")


def test_voc_has_21_classes_named_by_torchvision() -> None:
    categories = FCN_ResNet50_Weights.DEFAULT.meta["categories"]
    voc = get_label_set("voc")
    assert voc.num_classes == len(voc) == len(categories) == 21
    assert [c.name for c in voc.classes] == list(categories)
    assert voc.void_id == 0 and 0 not in voc.thing_ids


def test_shapes_from_config_yaml() -> None:
    data = yaml.safe_load(SHAPES_YAML.read_text())
    shapes = get_label_set("shapes")
    assert shapes.name == data["name"] and shapes.void_id == data["void_id"]
    assert [(c.id, c.name, list(c.color), c.isthing) for c in shapes.classes] == [
        (e["id"], e["name"], e["color"], e["isthing"]) for e in sorted(data["classes"], key=lambda e: e["id"])
    ]
    assert shapes.thing_ids == [
        e["id"] for e in data["classes"] if e["isthing"] and e["id"] != data["void_id"]
    ]
    assert shapes.stuff_ids == [
        e["id"] for e in data["classes"] if not e["isthing"] and e["id"] != data["void_id"]
    ]
    assert shapes.thing_ids and shapes.stuff_ids
    assert "shapes" in builtin_label_sets() and {"coco", "voc"} <= set(builtin_label_sets())
    assert (config_dir() / "labels" / "shapes.yaml").is_file()
    # the colour table is what the YAML says, by id
    for e in data["classes"]:
        assert shapes.color_table[e["id"]].tolist() == e["color"]


def test_yaml_round_trip(tmp_path: Path) -> None:
    original = LabelSet(
        "mine",
        (
            LabelClass(0, "nothing", (0, 0, 0), False),
            LabelClass(2, "floor", (10, 20, 30), False),
            LabelClass(7, "robot", (200, 100, 0), True),
        ),
        void_id=0,
    )
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(original.to_dict()))
    assert LabelSet.from_yaml(path) == original
    assert get_label_set(str(path)) == original
    assert LabelSet.from_dict(original.to_dict()) == original
    no_void = LabelSet("nv", original.classes, void_id=None)
    assert LabelSet.from_dict(no_void.to_dict()).void_id is None


def test_colour_defaults_to_the_palette(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text("classes:\n  - {id: 0, name: a}\n  - {id: 5, name: b, isthing: true}\n")
    labels = LabelSet.from_yaml(path)
    assert labels.name == "plain"  # from the file name
    assert labels[5].color == tuple(int(v) for v in palette(6)[5]) and labels[5].isthing
    assert not labels[0].isthing


@pytest.mark.parametrize(
    "text, match",
    [
        ("classes: [ {id: 0, name: a}", "cannot read"),  # not YAML
        ("name: x\n", "classes"),  # no class list
        ("- 1\n- 2\n", "classes"),  # not a mapping
        ("classes:\n  - {id: 0}\n", "bad class entry"),  # no name
        ("classes:\n  - {name: a}\n", "integer 'id'"),  # no id
        ("classes:\n  - {id: zero, name: a}\n", "integer 'id'"),
        ("classes: [1, 2]\n", "integer 'id'"),  # entries are not mappings
        ("classes: 5\n", "non-empty 'classes' list"),
        ("classes: []\n", "non-empty 'classes' list"),
        ("classes:\n  - {id: -1, name: a}\n", "65535"),
        ("classes:\n  - {id: 0, name: a, color: [1, 2]}\n", "color"),
        ("classes:\n  - {id: 0, name: a, color: [1, 2, 300]}\n", "color"),
        ("classes:\n  - {id: 0, name: a}\n  - {id: 0, name: b}\n", "duplicate"),
        ("classes:\n  - {id: 70000, name: a}\n", "65535"),
    ],
)
def test_bad_yaml_raises_value_error(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        LabelSet.from_yaml(path)


def test_unknown_label_set_names_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown label set 'no_such_set'.*coco"):
        get_label_set("no_such_set")
    with pytest.raises(ValueError, match="unknown label set"):
        get_label_set("/nonexistent/labels.yaml")


def test_label_dtype_widens_past_256_ids() -> None:
    assert get_label_set("coco").label_dtype == np.uint8
    assert LabelSet.from_categories("c256", [f"c{i}" for i in range(256)]).label_dtype == np.uint8
    wide = LabelSet.from_categories("c257", [f"c{i}" for i in range(257)])
    assert wide.label_dtype == np.uint16
    sparse = LabelSet("sparse", (LabelClass(0, "a", (0, 0, 0), False), LabelClass(300, "b", (1, 1, 1), True)))
    assert sparse.num_classes == 301 and sparse.label_dtype == np.uint16


def test_engine_returns_uint16_labels_for_a_wide_label_set(tmp_path: Path) -> None:
    wide = LabelSet.from_categories("wide", [f"c{i}" for i in range(300)], thing=False)
    path = tmp_path / "wide.yaml"
    path.write_text(yaml.safe_dump(wide.to_dict()))
    torch.manual_seed(0)
    engine = SegmentationEngine(
        task="semantic",
        semantic_model="lraspp_mobilenet_v3_large",
        semantic_weights="none",
        semantic_labels=str(path),
        device="cpu",
    )
    frame = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    result = engine.segment(frame).semantic
    assert engine.semantic_model.module.classifier.low_classifier.out_channels == 300
    assert result.labels.dtype == np.uint16 and result.labels.shape == (37, 53)
    assert int(result.labels.max()) < 300
    assert result.label_set.num_classes == 300


def test_palette() -> None:
    colors = palette(256)
    assert colors.shape == (256, 3) and colors.dtype == np.uint8
    assert colors[0].tolist() == [0, 0, 0]
    assert len({tuple(c) for c in colors.tolist()}) == 256  # distinct
