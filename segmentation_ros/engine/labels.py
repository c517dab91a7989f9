"""Label sets: class ids, names, colours and the thing/stuff split that a model carries.

A :class:`LabelSet` is the single source of class metadata: the engine's outputs, the CLI's JSON,
the node's ``vision_msgs/LabelInfo`` and detection class names all read it. Built-in sets:

- ``coco``: the 91-id COCO detection space torchvision's instance models use, with its ``N/A`` gaps
  (ids that exist in the network's output but name no class);
- ``voc``: the 21 Pascal VOC classes torchvision's semantic models predict;
- any YAML file in ``config/labels/`` (for example ``shapes``), or a YAML path.

YAML format::

    name: shapes
    void_id: 0            # "no class": ignored by panoptic fusion and metrics (null for none)
    classes:
      - {id: 0, name: unlabeled, color: [0, 0, 0], isthing: false}
      - {id: 3, name: box, color: [230, 90, 40], isthing: true}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml

from segmentation_ros.engine.paths import config_dir

__all__ = ["LabelClass", "LabelSet", "get_label_set", "palette", "builtin_label_sets"]


@dataclass(frozen=True)
class LabelClass:
    """One class: its id in label images, name, display colour (RGB) and thing/stuff flag."""

    id: int
    name: str
    color: tuple[int, int, int]
    isthing: bool


def palette(n: int) -> np.ndarray:
    """The Pascal VOC colour palette (bit-interleaved), extended to ``n`` entries.

    Returns:
        (n, 3) uint8 RGB colours; entry 0 is black.
    """
    ids = np.arange(n, dtype=np.int64)
    colors = np.zeros((n, 3), dtype=np.int64)
    for shift in range(8):
        for channel in range(3):
            colors[:, channel] |= ((ids >> (3 * shift + channel)) & 1) << (7 - shift)
    return colors.astype(np.uint8)


@dataclass(frozen=True)
class LabelSet:
    """An immutable set of classes, indexed by class id (ids may have gaps, as COCO's do)."""

    name: str
    classes: tuple[LabelClass, ...]
    void_id: int | None = 0

    def __post_init__(self) -> None:
        ids = [c.id for c in self.classes]
        if not ids:
            raise ValueError(f"label set {self.name!r} has no classes")
        if len(set(ids)) != len(ids):
            raise ValueError(f"label set {self.name!r} has duplicate class ids")
        if min(ids) < 0 or max(ids) > 65535:
            raise ValueError(f"label set {self.name!r}: class ids must be in [0, 65535], got {min(ids)}..{max(ids)}")
        object.__setattr__(self, "classes", tuple(sorted(self.classes, key=lambda c: c.id)))

    # ---- lookups -------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Size of the network's class dimension: the largest id plus one (gaps included)."""
        return self.classes[-1].id + 1

    @cached_property
    def _by_id(self) -> dict[int, LabelClass]:
        return {c.id: c for c in self.classes}

    @cached_property
    def _by_name(self) -> dict[str, LabelClass]:
        return {c.name: c for c in self.classes}

    def __contains__(self, class_id: object) -> bool:
        return class_id in self._by_id

    def __getitem__(self, class_id: int) -> LabelClass:
        try:
            return self._by_id[int(class_id)]
        except KeyError:
            raise KeyError(f"class id {class_id} is not in label set {self.name!r}") from None

    def __len__(self) -> int:
        return len(self.classes)

    def by_name(self, name: str) -> LabelClass | None:
        return self._by_name.get(name)

    def name_of(self, class_id: int) -> str:
        """Class name, or ``"class_<id>"`` for an id the set does not name (an N/A gap)."""
        c = self._by_id.get(int(class_id))
        return c.name if c is not None else f"class_{int(class_id)}"

    @property
    def ids(self) -> list[int]:
        return [c.id for c in self.classes]

    @property
    def thing_ids(self) -> list[int]:
        return [c.id for c in self.classes if c.isthing and c.id != self.void_id]

    @property
    def stuff_ids(self) -> list[int]:
        return [c.id for c in self.classes if not c.isthing and c.id != self.void_id]

    @cached_property
    def color_table(self) -> np.ndarray:
        """(num_classes, 3) uint8 RGB colour per class id; gaps are black."""
        table = np.zeros((self.num_classes, 3), dtype=np.uint8)
        for c in self.classes:
            table[c.id] = c.color
        return table

    @property
    def label_dtype(self) -> np.dtype:
        """uint8 while every id fits, else uint16 (label images, ``mono8`` vs ``mono16``)."""
        return np.dtype(np.uint8) if self.num_classes <= 256 else np.dtype(np.uint16)

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def from_categories(
        cls,
        name: str,
        categories: Sequence[str],
        *,
        thing: bool | Iterable[int] = True,
        void_id: int | None = 0,
        skip: Iterable[str] = ("N/A",),
    ) -> LabelSet:
        """Build from a list of names indexed by id (torchvision's ``weights.meta["categories"]``).

        Entries named in ``skip`` become gaps. ``thing`` is True (all but void are things), False,
        or the ids that are things.
        """
        skip = set(skip)
        colors = palette(len(categories))
        thing_ids = None if isinstance(thing, bool) else set(thing)
        classes = []
        for i, cat in enumerate(categories):
            if cat in skip:
                continue
            isthing = (thing if thing_ids is None else i in thing_ids) and i != void_id
            classes.append(LabelClass(i, cat, tuple(int(v) for v in colors[i]), bool(isthing)))
        return cls(name, tuple(classes), void_id)

    @classmethod
    def from_dict(cls, data: Mapping, *, default_name: str = "custom") -> LabelSet:
        """Build from the YAML structure described in the module docstring."""
        if not isinstance(data, Mapping) or not isinstance(data.get("classes"), list) or not data["classes"]:
            raise ValueError("a label set needs a mapping with a non-empty 'classes' list")
        try:  # default colours are indexed by id: read every id before the per-entry checks below
            top_id = max(int(entry["id"]) for entry in data["classes"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"every class entry needs an integer 'id': {exc!r}") from exc
        colors = palette(1 + max(top_id, 0))  # a negative id is reported by the LabelSet checks
        classes = []
        for entry in data["classes"]:
            try:
                cid = int(entry["id"])
                color = tuple(int(v) for v in entry.get("color", colors[cid]))
                if len(color) != 3 or not all(0 <= v <= 255 for v in color):
                    raise ValueError(f"color must be 3 values in 0..255, got {entry.get('color')}")
                classes.append(LabelClass(cid, str(entry["name"]), color, bool(entry.get("isthing", False))))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"bad class entry {entry!r}: {exc}") from exc
        void = data.get("void_id", 0)
        return cls(str(data.get("name", default_name)), tuple(classes), None if void is None else int(void))

    @classmethod
    def from_yaml(cls, path: str | Path) -> LabelSet:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read label set {path}: {exc}") from exc
        return cls.from_dict(data, default_name=path.stem)

    def to_dict(self) -> dict:
        """The YAML structure (also stored inside checkpoints so weights carry their classes)."""
        return {
            "name": self.name,
            "void_id": self.void_id,
            "classes": [
                {"id": c.id, "name": c.name, "color": list(c.color), "isthing": c.isthing} for c in self.classes
            ],
        }


def _coco() -> LabelSet:
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

    return LabelSet.from_categories("coco", MaskRCNN_ResNet50_FPN_Weights.DEFAULT.meta["categories"])


def _voc() -> LabelSet:
    from torchvision.models.segmentation import FCN_ResNet50_Weights

    return LabelSet.from_categories("voc", FCN_ResNet50_Weights.DEFAULT.meta["categories"])


_BUILTIN = {"coco": _coco, "voc": _voc}
_CACHE: dict[str, LabelSet] = {}


def builtin_label_sets() -> list[str]:
    """Names accepted by :func:`get_label_set` (built-ins and YAML files in ``config/labels``)."""
    names = set(_BUILTIN)
    directory = config_dir() / "labels"
    if directory.is_dir():
        names.update(p.stem for p in directory.glob("*.yaml"))
    return sorted(names)


def get_label_set(name_or_path: str | Path | LabelSet) -> LabelSet:
    """A label set by built-in name, by name of a YAML in ``config/labels/``, or by YAML path."""
    if isinstance(name_or_path, LabelSet):
        return name_or_path
    key = str(name_or_path)
    if key in _CACHE:
        return _CACHE[key]
    if key in _BUILTIN:
        result = _BUILTIN[key]()
    else:
        path = Path(key)
        if not path.suffix:
            path = config_dir() / "labels" / f"{key}.yaml"
        if not path.is_file():
            raise ValueError(f"unknown label set {key!r}: expected one of {builtin_label_sets()} or a YAML file path")
        result = LabelSet.from_yaml(path)
    _CACHE[key] = result
    return result
