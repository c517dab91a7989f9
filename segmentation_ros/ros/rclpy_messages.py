"""The live node's message factory: rclpy's generated classes (with :mod:`.node`, the only rclpy users).

:class:`RclpyFactory` is the :class:`~segmentation_ros.ros.messages.MessageFactory` the node core
builds messages with in the live node; the offline processor uses
:class:`~segmentation_ros.ros.messages.RosbagsFactory`. rclpy and the interface packages are
imported inside the functions, so importing this module needs no ROS.
"""

from __future__ import annotations

import array
import functools
import importlib
import os
from typing import Any

from segmentation_ros.ros.messages import as_uint8_array, normalize_type_name

__all__ = ["RclpyFactory", "rclpy_message_class"]


@functools.cache
def rclpy_message_class(type_name: str) -> type:
    """The rosidl-generated Python class of ``type_name`` ("sensor_msgs/msg/Image" or "sensor_msgs/Image").

    What ``rosidl_runtime_py.utilities.get_message`` does, with nothing but importlib: the class
    lives in the interface package's ``msg`` module. Raises ``ImportError`` naming the type when
    its package is not installed.
    """
    package, kind, name = normalize_type_name(type_name).split("/")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"message type {type_name!r} is not installed ({exc})") from exc


class RclpyFactory:
    """:class:`MessageFactory` over rclpy's generated message classes (needs a sourced ROS 2).

    rclpy and the message packages are imported inside the methods, so constructing this class, or
    importing this module, works without ROS.
    """

    def __init__(self, distro: str | None = None) -> None:
        self.distro = distro if distro is not None else os.environ.get("ROS_DISTRO", "")

    def __repr__(self) -> str:
        return f"RclpyFactory(distro={self.distro!r})"

    def new(self, type_name: str, **fields: Any) -> Any:
        """Return a new rclpy message; see :meth:`MessageFactory.new`.

        Raises:
            TypeError: unknown field name.
        """
        name = normalize_type_name(type_name)
        msg = rclpy_message_class(name)()
        known = msg.get_fields_and_field_types()
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise TypeError(f"{name} has no field(s) {unknown}; its fields are {list(known)}")
        for field, value in fields.items():
            setattr(msg, field, value)
        return msg

    def uint8_array(self, data: Any) -> array.array:
        """Return ``data``'s bytes as ``array.array('B')``, the type rclpy stores ``uint8[]`` in (one copy)."""
        out = array.array("B")
        out.frombytes(as_uint8_array(data).data)
        return out

    def serialize(self, msg: Any, type_name: str | None = None) -> bytes:
        """Serialize ``msg`` to CDR bytes with rclpy (``type_name`` is not needed and ignored)."""
        from rclpy.serialization import serialize_message

        return serialize_message(msg)

    def deserialize(self, data: bytes, type_name: str) -> Any:
        """Deserialize CDR bytes into an rclpy message of ``type_name``."""
        from rclpy.serialization import deserialize_message

        return deserialize_message(bytes(data), rclpy_message_class(type_name))
