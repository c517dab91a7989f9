"""Label sets: the built-ins, the shapes YAML, YAML round trips, the label image dtype, and malformed
files refused with a clear ValueError before anything sized by them is allocated."""

from __future__ import annotations

import copy
import json
import re
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights
from torchvision.models.segmentation import FCN_ResNet50_Weights

from segmentation_ros.engine.labels import (
    MAX_CLASS_ID,
    LabelClass,
    LabelSet,
    builtin_label_sets,
    get_label_set,
    palette,
)
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


# ---- malformed label sets: clear ValueErrors, nothing allocated by what a file claims -----------
ABSURD_ID = 300_000_000  # 3e8: a palette or colour table that large would take gigabytes


@contextmanager
def numpy_peak() -> Iterator[list[int]]:
    """Peak bytes Python and numpy allocated inside the block (numpy reports to tracemalloc)."""
    peak: list[int] = []
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


@pytest.mark.parametrize("key", ["id", "void_id"])
def test_an_absurd_class_id_is_refused_without_allocating(tmp_path: Path, key: str) -> None:
    data = {"classes": [{"id": 0, "name": "a"}]}
    if key == "id":
        data["classes"].append({"id": ABSURD_ID, "name": "b"})
    else:
        data["void_id"] = ABSURD_ID
    as_yaml, as_json = tmp_path / "absurd.yaml", tmp_path / "absurd.json"
    as_yaml.write_text(yaml.safe_dump(data))
    as_json.write_text(json.dumps(data))
    for load in (lambda: LabelSet.from_dict(data), lambda: get_label_set(str(as_yaml)), lambda: get_label_set(str(as_json))):
        with numpy_peak() as peak, pytest.raises(ValueError, match=f"{key}' .*in \\[0, {MAX_CLASS_ID}\\], got {ABSURD_ID}"):
            load()
        assert peak[0] < 1_000_000
    with pytest.raises(ValueError, match=re.escape(str(as_yaml))):  # a file's errors name the file
        LabelSet.from_yaml(as_yaml)


def test_more_entries_than_ids_are_refused_before_reading_them() -> None:
    entries = [{} for _ in range(MAX_CLASS_ID + 2)]  # no entry is even valid: the count comes first
    with pytest.raises(ValueError, match=f"at most {MAX_CLASS_ID + 1} classes .*got {MAX_CLASS_ID + 2}"):
        LabelSet.from_dict({"classes": entries})
    with pytest.raises(ValueError, match=f"{MAX_CLASS_ID + 2} categories, at most"):
        LabelSet.from_categories("many", ["c"] * (MAX_CLASS_ID + 2))


@pytest.mark.parametrize(
    "text, match",
    [  # values that used to be coerced (int(2.5), str(None), bool("no")) or to escape as other errors
        ("classes:\n  - {id: 2.5, name: a}\n", r"integer 'id' .*got 2\.5 \(float\)"),
        ("classes:\n  - {id: '3', name: a}\n", r"integer 'id' .*got '3' \(str\)"),
        ("classes:\n  - {id: true, name: a}\n", r"integer 'id' .*got True \(bool\)"),
        ("classes:\n  - {id: 0, name: null}\n", r"string 'name', got None"),
        ("classes:\n  - {id: 0, name: 5}\n", r"string 'name', got 5 \(int\); quote it"),
        ("classes:\n  - {id: 0, name: [a]}\n", r"string 'name'"),
        ("classes:\n  - {id: 0, name: a, color: [1.5, 2, 3]}\n", r"'color' must be 3 integers"),
        ("classes:\n  - {id: 0, name: a, color: [true, 2, 3]}\n", r"'color' must be 3 integers"),
        ("classes:\n  - {id: 0, name: a, isthing: 'no'}\n", r"'isthing' must be true or false"),
        ("classes:\n  - {id: 0, name: a, isthing: 2}\n", r"'isthing' must be true or false"),
        ("void_id: -1\nclasses:\n  - {id: 0, name: a}\n", r"'void_id' .*got -1"),
        ("void_id: x\nclasses:\n  - {id: 0, name: a}\n", r"'void_id' .*got 'x' \(str\)"),
        ("name: 5\nclasses:\n  - {id: 0, name: a}\n", r"'name' must be a string, got 5"),
        ("classes:\n  - {id: 0, name: a}\n  - {id: 7, name: b}\n  - {id: 7, name: c}\n", r"duplicate class ids \[7\]"),
        ("[" * 1000, "cannot read label set"),  # nesting too deep for the YAML parser (RecursionError)
    ],
)
def test_bad_values_are_refused_not_coerced(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        LabelSet.from_yaml(path)
    assert str(path) in str(info.value)


def test_a_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "labels.yaml"
    path.write_bytes(bytes(range(128, 256)))  # not UTF-8
    with pytest.raises(ValueError, match=f"cannot read label set {re.escape(str(path))}"):
        get_label_set(str(path))


# A value of any type and size that a YAML or JSON file (or a checkpoint) could hold.
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([ABSURD_ID, MAX_CLASS_ID, MAX_CLASS_ID + 1, -1, 255, 256]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.integers(min_value=-300, max_value=300), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
FIELDS = ("id", "name", "color", "isthing")


def _mutated(base: dict, mutations: list[tuple[tuple, object]]) -> dict:
    """``base`` with each (path, value) applied where the path still leads somewhere; ``...`` deletes."""
    data = copy.deepcopy(base)
    for path, value in mutations:
        parent: object = data
        for step in path[:-1]:
            if isinstance(parent, dict):
                parent = parent.get(step)
            elif isinstance(parent, list) and isinstance(step, int) and step < len(parent):
                parent = parent[step]
            else:
                parent = None
        key = path[-1]
        if isinstance(parent, dict) and value is ...:
            parent.pop(key, None)
        elif isinstance(parent, dict):
            parent[key] = value
        elif isinstance(parent, list) and isinstance(key, int) and key < len(parent):
            if value is ...:
                del parent[key]
            else:
                parent[key] = value
    return data


def label_set_mutations() -> st.SearchStrategy:
    paths = st.one_of(
        st.sampled_from([("name",), ("void_id",), ("classes",)]),
        st.tuples(st.just("classes"), st.integers(0, 6)),
        st.tuples(st.just("classes"), st.integers(0, 6), st.sampled_from(FIELDS)),
    )
    return st.lists(st.tuples(paths, st.one_of(ANY_VALUE, st.just(...))), min_size=1, max_size=3)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(mutations=label_set_mutations())
def test_mutated_label_sets_are_kept_exactly_or_refused(mutations: list) -> None:
    """Only ValueError escapes, memory stays small, and what is accepted is what the file says."""
    data = _mutated(get_label_set("shapes").to_dict(), mutations)
    with numpy_peak() as peak:
        try:
            labels = LabelSet.from_dict(data)
        except ValueError:
            labels = None
    assert peak[0] < 1_000_000
    if labels is None:
        return
    assert labels.name == data.get("name", "custom") and labels.void_id == data.get("void_id", 0)
    given_classes = sorted(data["classes"], key=lambda e: e["id"])
    for got, entry in zip(labels.classes, given_classes, strict=True):
        assert (got.id, got.name, got.isthing) == (entry["id"], entry["name"], entry.get("isthing", False))
        assert type(got.id) is int and type(got.name) is str and type(got.isthing) is bool
        if "color" in entry and entry["color"] is not None:
            assert list(got.color) == entry["color"]
        assert all(type(v) is int and 0 <= v <= 255 for v in got.color)
    assert labels.color_table.shape == (labels.num_classes, 3) and labels.num_classes <= MAX_CLASS_ID + 1
