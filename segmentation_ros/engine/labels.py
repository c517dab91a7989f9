"""Label sets: class ids, names, colours and the thing/stuff split that a model carries.

A :class:`LabelSet` is the single source of class metadata: the engine's outputs, the CLI's JSON,
the node's ``vision_msgs/LabelInfo`` and detection class names all read it. Built-in sets:

- ``coco``: the 91-id COCO detection space torchvision's instance models use, with its ``N/A`` gaps
  (ids that exist in the network's output but name no class);
- ``voc``: the 21 Pascal VOC classes torchvision's semantic models predict;
- any YAML file in ``config/labels/`` (for example ``shapes``), or a YAML path (JSON, a subset of
  YAML, reads the same).

YAML format::

    name: shapes
    void_id: 0            # "no class": ignored by panoptic fusion and metrics (null for none)
    classes:
      - {id: 0, name: unlabeled, color: [0, 0, 0], isthing: false}
      - {id: 3, name: box, color: [230, 90, 40], isthing: true}

Class ids (and ``void_id``) are integers in ``0..MAX_CLASS_ID`` (65535): label images are
``mono8`` or ``mono16`` (:attr:`LabelSet.label_dtype`), so every id must fit 16 bits. The cap also
bounds everything indexed by class id (the colour table, the engine's class maps, a model's class
dimension) to 65536 entries, whatever a file claims. ``color`` is optional (default: the
:func:`palette` colour of the id); ``isthing`` defaults to false. Anything else is refused by
:meth:`LabelSet.from_dict` with a ``ValueError`` naming the entry, before anything sized by it is
allocated.
"""

from __future__ import annotations

import reprlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml

from segmentation_ros.engine.paths import config_dir

__all__ = ["LabelClass", "LabelSet", "get_label_set", "palette", "builtin_label_sets", "MAX_CLASS_ID"]

#: The largest class id a label set may use: label images are mono8 or mono16.
MAX_CLASS_ID = 65535


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
    return _palette_colors(np.arange(n, dtype=np.int64))


def _palette_colors(ids: np.ndarray) -> np.ndarray:
    """:func:`palette`'s colours of the given (N,) int64 ids only, as (N, 3) uint8."""
    colors = np.zeros((len(ids), 3), dtype=np.int64)
    for shift in range(8):
        for channel in range(3):
            colors[:, channel] |= ((ids >> (3 * shift + channel)) & 1) << (7 - shift)
    return colors.astype(np.uint8)


def _class_id(value: object, what: str) -> int:
    """``value`` as a class id, or ValueError: an integer (not a bool, float or string) in range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"needs an integer {what} in [0, {MAX_CLASS_ID}], got {reprlib.repr(value)} ({type(value).__name__})"
        )
    if not 0 <= value <= MAX_CLASS_ID:
        raise ValueError(f"needs an integer {what} in [0, {MAX_CLASS_ID}], got {value}")
    return int(value)


def _class_entry(entry: object) -> tuple[int, str, tuple[int, int, int] | None, bool]:
    """(id, name, colour or None for the default, isthing) of one ``classes`` entry, checked."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"must be a mapping with an integer 'id' and a string 'name', got a {type(entry).__name__}")
    if "id" not in entry:
        raise ValueError("needs an integer 'id'")
    class_id = _class_id(entry["id"], "'id'")
    if "name" not in entry:
        raise ValueError("needs a string 'name'")
    name = entry["name"]
    if not isinstance(name, str):
        hint = "; quote it in YAML" if isinstance(name, (bool, int, float)) or name is None else ""
        raise ValueError(f"needs a string 'name', got {reprlib.repr(name)} ({type(name).__name__}){hint}")
    color = entry.get("color")
    if color is not None:
        if (
            not isinstance(color, (list, tuple))
            or len(color) != 3
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in color)
            or not all(0 <= v <= 255 for v in color)
        ):
            raise ValueError(f"'color' must be 3 integers in 0..255 (RGB), got {reprlib.repr(color)}")
        color = (int(color[0]), int(color[1]), int(color[2]))
    isthing = entry.get("isthing", False)
    if isinstance(isthing, (bool, np.bool_)) or (isinstance(isthing, (int, np.integer)) and isthing in (0, 1)):
        isthing = bool(isthing)
    else:
        raise ValueError(f"'isthing' must be true or false (or COCO's 1 or 0), got {reprlib.repr(isthing)}")
    return class_id, name, color, isthing


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
        if min(ids) < 0 or max(ids) > MAX_CLASS_ID:
            raise ValueError(
                f"label set {self.name!r}: class ids must be in [0, {MAX_CLASS_ID}], got {min(ids)}..{max(ids)}"
            )
        if len(set(ids)) != len(ids):
            duplicates = sorted(i for i, count in Counter(ids).items() if count > 1)
            raise ValueError(f"label set {self.name!r} has duplicate class ids {reprlib.repr(duplicates)}")
        if self.void_id is not None and not 0 <= self.void_id <= MAX_CLASS_ID:
            raise ValueError(f"label set {self.name!r}: void_id must be in [0, {MAX_CLASS_ID}] or None, got {self.void_id}")
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
        if len(categories) > MAX_CLASS_ID + 1:
            raise ValueError(f"label set {name!r}: {len(categories)} categories, at most {MAX_CLASS_ID + 1} (ids 0..{MAX_CLASS_ID})")
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
        """Build from the YAML structure described in the module docstring.

        Every value is checked before anything sized by it is made, so a file claiming a class
        id of 3e8 costs nothing but this error.

        Raises:
            ValueError: naming the entry and what is wrong: not a mapping; no ``classes`` list, or
                more than ``MAX_CLASS_ID + 1`` entries; an ``id`` or ``void_id`` that is not an
                integer in ``[0, MAX_CLASS_ID]``; a ``name`` that is not a string; a ``color``
                that is not 3 integers in 0..255; ``isthing`` not a boolean; duplicate ids.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("classes"), list) or not data["classes"]:
            raise ValueError("a label set needs a mapping with a non-empty 'classes' list")
        entries = data["classes"]
        if len(entries) > MAX_CLASS_ID + 1:  # distinct ids in 0..MAX_CLASS_ID: no more entries than that
            raise ValueError(f"a label set has at most {MAX_CLASS_ID + 1} classes (ids 0..{MAX_CLASS_ID}), got {len(entries)}")
        name = data.get("name", default_name)
        if not isinstance(name, str):
            raise ValueError(f"a label set's 'name' must be a string, got {reprlib.repr(name)} ({type(name).__name__})")
        void = data.get("void_id", 0)
        try:
            void = None if void is None else _class_id(void, "'void_id' (or null)")
        except ValueError as exc:
            raise ValueError(f"label set {name!r} {exc}") from None
        parsed = []
        for index, entry in enumerate(entries):
            try:
                parsed.append(_class_entry(entry))
            except ValueError as exc:
                raise ValueError(f"bad class entry {index} {reprlib.repr(entry)}: {exc}") from None
        # default colours of the entries without one, computed for those ids only
        default_ids = np.array([class_id for class_id, _, color, _ in parsed if color is None], dtype=np.int64)
        defaults = iter(_palette_colors(default_ids).tolist())
        classes = tuple(
            LabelClass(class_id, class_name, color if color is not None else tuple(next(defaults)), isthing)
            for class_id, class_name, color, isthing in parsed
        )
        return cls(name, classes, void)

    @classmethod
    def from_yaml(cls, path: str | Path) -> LabelSet:
        """Read a label set file (YAML, or JSON). Raises ValueError naming the file."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
            raise ValueError(f"cannot read label set {path}: {exc}") from exc
        try:
            return cls.from_dict(data, default_name=path.stem)
        except ValueError as exc:
            raise ValueError(f"label set file {path}: {exc}") from exc

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
