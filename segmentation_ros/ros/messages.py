"""Message factories: build ROS 2 messages without importing rclpy.

The node core builds every output message through a :class:`MessageFactory`, so the same code runs
with rclpy's generated classes (live node,
:class:`~segmentation_ros.ros.rclpy_messages.RclpyFactory`) and with rosbags' dataclasses (offline
bag processing and the tests, :class:`RosbagsFactory`). Nothing here imports rclpy.

rosbags ships the standard interfaces of each distro (``std_msgs``, ``sensor_msgs``,
``diagnostic_msgs``, ...) but not ``vision_msgs``; :func:`make_typestore` registers those from
:data:`VISION_MSGS_DEFINITIONS`. The definitions are the released ones: vision_msgs 4.1.1 in Humble and
Jazzy, 4.2.0 in Kilted. The ``.msg`` files are identical in all three releases (4.2.0 changed only
the CMake test target), so one set of definitions serves every supported distro.

The two kinds of message differ in how a ``uint8[]`` field is held: rosbags wants a 1-D ``np.uint8``
ndarray, rclpy an ``array.array('B')``. Code that fills such a field calls
``factory.uint8_array(data)`` and never builds the container itself.
"""

from __future__ import annotations

import array
import dataclasses
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

__all__ = [
    "SUPPORTED_DISTROS",
    "VISION_MSGS_DEFINITIONS",
    "VISION_MSGS_RELEASES",
    "MessageFactory",
    "RosbagsFactory",
    "as_uint8_array",
    "deserialize",
    "make_header",
    "make_time",
    "make_typestore",
    "message_to_dict",
    "messages_equal",
    "normalize_type_name",
    "serialize",
    "time_from_ns",
    "time_to_ns",
]

SUPPORTED_DISTROS: tuple[str, ...] = ("humble", "jazzy", "kilted")

#: vision_msgs release shipped with each distro (ros2-gbp/vision_msgs-release tags).
VISION_MSGS_RELEASES: dict[str, str] = {"humble": "4.1.1", "jazzy": "4.1.1", "kilted": "4.2.0"}

#: Field declarations of every vision_msgs message (comments left out; they do not change the type).
VISION_MSGS_DEFINITIONS: dict[str, str] = {
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y\n",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/BoundingBox2DArray": "std_msgs/Header header\nvision_msgs/BoundingBox2D[] boxes\n",
    "vision_msgs/msg/BoundingBox3D": "geometry_msgs/Pose center\ngeometry_msgs/Vector3 size\n",
    "vision_msgs/msg/BoundingBox3DArray": "std_msgs/Header header\nvision_msgs/BoundingBox3D[] boxes\n",
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": (
        "vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n"
    ),
    "vision_msgs/msg/Classification": "std_msgs/Header header\nvision_msgs/ObjectHypothesis[] results\n",
    "vision_msgs/msg/Detection2D": (
        "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
        "vision_msgs/BoundingBox2D bbox\nstring id\n"
    ),
    "vision_msgs/msg/Detection2DArray": "std_msgs/Header header\nvision_msgs/Detection2D[] detections\n",
    "vision_msgs/msg/Detection3D": (
        "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
        "vision_msgs/BoundingBox3D bbox\nstring id\n"
    ),
    "vision_msgs/msg/Detection3DArray": "std_msgs/Header header\nvision_msgs/Detection3D[] detections\n",
    "vision_msgs/msg/VisionClass": "uint16 class_id\nstring class_name\n",
    "vision_msgs/msg/LabelInfo": "std_msgs/Header header\nvision_msgs/VisionClass[] class_map\nfloat32 threshold\n",
    "vision_msgs/msg/VisionInfo": (
        "std_msgs/Header header\nstring method\nstring database_location\nint32 database_version\n"
    ),
}

#: Default values that ROS 2 message definitions declare (``float64 w 1``): rosbags' typestores drop
#: them, rclpy's classes have them. Without this an offline-written detection's hypothesis pose had
#: the quaternion (0, 0, 0, 0) where the live node's has the identity. ``test_ros_interfaces``
#: compares every type the package builds with rclpy's defaults.
FIELD_DEFAULTS: dict[str, dict[str, Any]] = {"geometry_msgs/msg/Quaternion": {"w": 1.0}}

# numpy dtype of each primitive ROS type that rosbags holds in an ndarray when it is an array element.
_NUMERIC_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(dt)
    for name, dt in {
        "bool": np.bool_,
        "byte": np.uint8,
        "char": np.uint8,
        "octet": np.uint8,
        "int8": np.int8,
        "uint8": np.uint8,
        "int16": np.int16,
        "uint16": np.uint16,
        "int32": np.int32,
        "uint32": np.uint32,
        "int64": np.int64,
        "uint64": np.uint64,
        "float32": np.float32,
        "float64": np.float64,
    }.items()
}


@runtime_checkable
class MessageFactory(Protocol):
    """Builds ROS 2 messages of one message implementation (rclpy or rosbags).

    Attributes:
        distro: ROS 2 distribution the messages belong to ("humble", "jazzy", "kilted"; for rclpy
            whatever ``$ROS_DISTRO`` says).
    """

    distro: str

    def new(self, type_name: str, **fields: Any) -> Any:
        """Return a new message of ``type_name`` (e.g. "sensor_msgs/msg/Image").

        Fields not given get their defaults (zero, empty string, empty sequence, default-built
        sub-message). An unknown field name raises ``TypeError``.
        """
        ...

    def uint8_array(self, data: Any) -> Any:
        """Return the value to assign to a ``uint8[]`` field holding the raw bytes of ``data``.

        Args:
            data: an ndarray of any dtype and shape (its bytes in C order are used, values are not
                converted), or a bytes-like object, or a sequence of ints in [0, 255].
        """
        ...


def normalize_type_name(type_name: str) -> str:
    """Return ``type_name`` in the ``pkg/msg/Name`` form ("std_msgs/Header" -> "std_msgs/msg/Header")."""
    parts = type_name.split("/")
    if len(parts) == 2 and all(parts):
        return f"{parts[0]}/msg/{parts[1]}"
    if len(parts) == 3 and all(parts):
        return type_name
    raise ValueError(f"message type name {type_name!r} is not of the form 'pkg/msg/Name'")


def as_uint8_array(data: Any) -> np.ndarray:
    """View ``data`` as a flat (N,) uint8 ndarray, without copying where the input allows it.

    ndarrays (any dtype: their bytes) and buffer-like objects (bytes, memoryview, array.array, a
    rosbags or rclpy ``uint8[]`` field) are viewed; a plain sequence of ints is converted.
    """
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # a list or tuple of ints
        return np.asarray(data, dtype=np.uint8).reshape(-1)


@functools.lru_cache(maxsize=1)
def _vision_msgs_types() -> dict[str, Any]:
    """Parse :data:`VISION_MSGS_DEFINITIONS` into rosbags' type dictionary (parsed once)."""
    from rosbags.typesys import get_types_from_msg

    types: dict[str, Any] = {}
    for name, text in VISION_MSGS_DEFINITIONS.items():
        types.update(get_types_from_msg(text, name))
    return types


def make_typestore(distro: str) -> Typestore:
    """Return a fresh rosbags typestore for ``distro`` with the vision_msgs types registered.

    Args:
        distro: "humble", "jazzy" or "kilted".

    Raises:
        ValueError: ``distro`` is not one of :data:`SUPPORTED_DISTROS`.
    """
    from rosbags.typesys import Stores, get_typestore

    stores = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY, "kilted": Stores.ROS2_KILTED}
    if distro not in stores:
        raise ValueError(
            f"unsupported ROS 2 distro {distro!r}; expected one of {', '.join(SUPPORTED_DISTROS)}"
        )
    typestore = get_typestore(stores[distro])
    typestore.register(_vision_msgs_types())
    return typestore


class _Layout(NamedTuple):
    """A message type as :meth:`RosbagsFactory.new` builds it."""

    name: str  # normalized
    cls: Any
    fields: tuple[str, ...]
    known: frozenset[str]
    defaults: tuple[Callable[[], Any], ...]  # per field: a fresh default value
    sequences: dict[str, Any]  # array and sequence fields: their definitions (values are coerced)


class RosbagsFactory:
    """:class:`MessageFactory` over a rosbags typestore; also serializes to and from CDR.

    Args:
        distro: "humble", "jazzy" or "kilted".
        typestore: a typestore to use instead of ``make_typestore(distro)``; it must already hold
            every type that will be built.
    """

    def __init__(self, distro: str = "humble", typestore: Typestore | None = None) -> None:
        self.distro = distro
        self.typestore = typestore if typestore is not None else make_typestore(distro)
        self._layouts: dict[str, _Layout] = {}  # per type name as given

    def __repr__(self) -> str:
        return f"RosbagsFactory(distro={self.distro!r})"

    def _fielddefs(self, type_name: str) -> list[tuple[str, Any]]:
        name = normalize_type_name(type_name)
        try:
            return self.typestore.fielddefs[name][1]
        except KeyError:
            raise KeyError(f"message type {name!r} is not in the rosbags {self.distro} typestore") from None

    def new(self, type_name: str, **fields: Any) -> Any:
        """Return a new rosbags message; see :meth:`MessageFactory.new`.

        Numeric arrays and sequences given as lists, tuples or bytes are converted to the ndarray
        rosbags expects (``uint8[]`` fields through :meth:`uint8_array`).

        Raises:
            KeyError: unknown message type.
            TypeError: unknown field name.
            ValueError: a fixed-size array field given the wrong number of elements.
        """
        layout = self._layouts.get(type_name) or self._layout(type_name)
        if not layout.known.issuperset(fields):
            unknown = sorted(set(fields) - layout.known)
            raise TypeError(f"{layout.name} has no field(s) {unknown}; its fields are {list(layout.fields)}")
        values = {}
        for field, default in zip(layout.fields, layout.defaults, strict=True):
            if field not in fields:
                values[field] = default()
            elif field in layout.sequences:
                values[field] = self._coerce(layout.name, field, layout.sequences[field], fields[field])
            else:
                values[field] = fields[field]
        return layout.cls(**values)

    def _layout(self, type_name: str) -> _Layout:
        """What :meth:`new` needs of a type, worked out once: a detection array builds dozens of
        nested messages a frame, and walking the field definitions each time cost ~35 us a detection."""
        name = normalize_type_name(type_name)
        fielddefs = self._fielddefs(name)
        fields = tuple(field for field, _ in fielddefs)
        layout = _Layout(
            name=name,
            cls=self.typestore.types[name],
            fields=fields,
            known=frozenset(fields),
            defaults=tuple(
                (lambda v=FIELD_DEFAULTS[name][field]: v)
                if field in FIELD_DEFAULTS.get(name, {})
                else self._default_maker(desc)
                for field, desc in fielddefs
            ),
            sequences={field: desc for field, desc in fielddefs if self._is_sequence(desc)},
        )
        self._layouts[type_name] = layout
        return layout

    @staticmethod
    def _is_sequence(desc: tuple[Any, Any]) -> bool:
        from rosbags.interfaces import Nodetype

        return desc[0] in (Nodetype.ARRAY, Nodetype.SEQUENCE)

    def _default_maker(self, desc: tuple[Any, Any]) -> Callable[[], Any]:
        """A function returning a fresh default value for a field (never a shared mutable one)."""
        from rosbags.interfaces import Nodetype

        kind, spec = desc
        if kind == Nodetype.BASE:
            base = spec[0]
            value: Any = "" if base in ("string", "wstring") else False if base == "bool" else 0.0 if base.startswith("float") else 0
            return lambda: value
        if kind == Nodetype.NAME:
            return lambda: self.new(spec)
        (sub_kind, sub_spec), length = spec
        if kind == Nodetype.SEQUENCE:
            length = 0
        if sub_kind == Nodetype.BASE and sub_spec[0] in _NUMERIC_DTYPES:
            dtype = _NUMERIC_DTYPES[sub_spec[0]]
            return lambda: np.zeros(length, dtype=dtype)
        element = self._default_maker((sub_kind, sub_spec))
        return lambda: [element() for _ in range(length)]

    def _coerce(self, type_name: str, field: str, desc: tuple[Any, Any], value: Any) -> Any:
        from rosbags.interfaces import Nodetype

        kind, spec = desc
        if kind not in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            return value
        (sub_kind, sub_spec), length = spec
        if sub_kind == Nodetype.BASE and sub_spec[0] in _NUMERIC_DTYPES:
            dtype = _NUMERIC_DTYPES[sub_spec[0]]
            if dtype == np.uint8 and not isinstance(value, (list, tuple)):
                value = self.uint8_array(value)
            else:
                value = np.asarray(value, dtype=dtype).reshape(-1)
        else:
            value = list(value)
        if kind == Nodetype.ARRAY and len(value) != length:
            raise ValueError(f"{type_name}.{field} is a fixed array of {length} elements; got {len(value)}")
        return value

    def uint8_array(self, data: Any) -> np.ndarray:
        """Return ``data``'s bytes as a flat (N,) uint8 ndarray; a view when ``data`` is contiguous."""
        return as_uint8_array(data)

    def serialize(self, msg: Any, type_name: str | None = None) -> memoryview:
        """Serialize ``msg`` to CDR (little endian, with the 4-byte encapsulation header).

        Returns rosbags' own buffer, new for every call (no copy into ``bytes``: a camera-sized
        image message is megabytes, and the bag writer takes the view).
        """
        name = normalize_type_name(type_name or msg.__msgtype__)
        return self.typestore.serialize_cdr(msg, name)

    def deserialize(self, data: bytes | memoryview | np.ndarray, type_name: str) -> Any:
        """Deserialize CDR bytes into a rosbags message of ``type_name``."""
        if isinstance(data, np.ndarray):
            data = data.tobytes()
        return self.typestore.deserialize_cdr(data, normalize_type_name(type_name))


def make_time(factory: MessageFactory, sec: int = 0, nanosec: int = 0) -> Any:
    """Return a ``builtin_interfaces/msg/Time``; ``nanosec`` must lie in [0, 1e9)."""
    if not 0 <= nanosec < 1_000_000_000:
        raise ValueError(f"nanosec must lie in [0, 1e9); got {nanosec}")
    return factory.new("builtin_interfaces/msg/Time", sec=int(sec), nanosec=int(nanosec))


def time_from_ns(factory: MessageFactory, ns: int) -> Any:
    """Return a ``builtin_interfaces/msg/Time`` for ``ns`` nanoseconds since the epoch."""
    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return make_time(factory, sec, nanosec)


def time_to_ns(stamp: Any) -> int:
    """Return the nanoseconds since the epoch of a ``builtin_interfaces/msg/Time`` (any implementation)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def make_header(factory: MessageFactory, stamp: Any = None, frame_id: str = "") -> Any:
    """Return a ``std_msgs/msg/Header``.

    Args:
        factory: builds the message.
        stamp: a Time message of the factory's kind, an int of nanoseconds since the epoch, or None
            for time zero.
        frame_id: the coordinate frame.
    """
    if stamp is None:
        stamp = make_time(factory)
    elif isinstance(stamp, (int, np.integer)):
        stamp = time_from_ns(factory, int(stamp))
    return factory.new("std_msgs/msg/Header", stamp=stamp, frame_id=frame_id)


def serialize(msg: Any, type_name: str, factory: MessageFactory) -> bytes | memoryview:
    """Serialize ``msg`` to CDR with ``factory`` (a :class:`RosbagsFactory`: a memoryview, or an
    :class:`RclpyFactory`: bytes)."""
    method = getattr(factory, "serialize", None)
    if method is None:
        raise TypeError(f"{factory!r} cannot serialize; use a RosbagsFactory or RclpyFactory")
    return method(msg, type_name)


def deserialize(data: bytes | memoryview | np.ndarray, type_name: str, factory: MessageFactory) -> Any:
    """Deserialize CDR bytes into a message of ``type_name`` with ``factory``."""
    method = getattr(factory, "deserialize", None)
    if method is None:
        raise TypeError(f"{factory!r} cannot deserialize; use a RosbagsFactory or RclpyFactory")
    return method(data, type_name)


def message_to_dict(msg: Any) -> Any:
    """Return ``msg`` as nested dicts and lists of plain Python values (rosbags or rclpy messages).

    Arrays (ndarray, array.array, bytes) become lists, so two messages compare with ``==``.
    """
    if dataclasses.is_dataclass(msg) and not isinstance(msg, type):
        # rosbags declares its ``__msgtype__`` class attribute as a dataclass field; it is no message field.
        names = [f.name for f in dataclasses.fields(msg) if not f.name.startswith("__")]
        return {name: message_to_dict(getattr(msg, name)) for name in names}
    if hasattr(msg, "get_fields_and_field_types"):
        return {name: message_to_dict(getattr(msg, name)) for name in msg.get_fields_and_field_types()}
    if isinstance(msg, np.ndarray):
        return msg.tolist()
    if isinstance(msg, (array.array, bytes, bytearray, memoryview)):
        return list(msg)
    if isinstance(msg, (list, tuple)):
        return [message_to_dict(item) for item in msg]
    if isinstance(msg, np.generic):
        return msg.item()
    return msg


def messages_equal(a: Any, b: Any) -> bool:
    """Whether two messages hold equal values field by field (NaN is unequal to itself, as in ``==``)."""
    return message_to_dict(a) == message_to_dict(b)
