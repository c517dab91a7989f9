"""Image and JSON files: read camera images, write PNG/JSON atomically (temporary name, then rename).

A reader of an output directory never sees a half-written file.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ["read_image", "to_8bit", "write_png", "write_json", "atomic_write_bytes"]


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """Scale uint16 [0, 65535] to uint8 [0, 255] with rounding, as cv_bridge does (factor 255/65535).
    Files and ROS images of 16 bits go through this one function, so they segment alike."""
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3), or (H, W) for grayscale files.

    16-bit images are scaled to 8 bit and an alpha channel is dropped.

    Raises:
        ValueError: the file is missing or not a readable image.
    """
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
    if image is None:
        raise ValueError(f"cannot read image {path}: missing, empty or not an image file")
    if image.dtype == np.uint16:
        image = to_8bit(image)
    elif image.dtype != np.uint8:
        raise ValueError(f"image {path} has unsupported pixel type {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


@functools.cache
def _new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the process's umask (read without changing it
    where /proc says it; else by the set-and-restore that is the only portable way)."""
    try:
        with open("/proc/self/status") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place.

    The file gets the permissions a plain ``open()`` would give it (``mkstemp``'s own are 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _new_file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_png(path: str | Path, image: np.ndarray, *, rgb: bool = True) -> Path:
    """Write a PNG: (H, W) uint8/uint16 as is, (H, W, 3) uint8 RGB (or BGR with ``rgb=False``)."""
    if image.ndim == 3 and rgb:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"cannot encode {image.dtype} {image.shape} as PNG for {path}")
    return atomic_write_bytes(path, encoded.tobytes())


def write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())
