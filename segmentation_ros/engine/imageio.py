"""Image and JSON files: decode images safely, write PNG/JSON atomically (temporary name, then rename).

Every image payload, from a file or a ``CompressedImage`` message, is decoded by
:func:`decode_image`: its header is read first (by Pillow, which reads only the header), the
declared size is checked against a pixel limit (:data:`DEFAULT_MAX_PIXELS` unless the caller gives
another), and only then does OpenCV decode it. A few hundred bytes that declare a gigapixel image
(a decompression bomb) are refused before anything is allocated.

A reader of an output directory never sees a half-written file.
"""

from __future__ import annotations

import functools
import io
import json
import os
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FILE_FORMATS",
    "ImageHeader",
    "ImageTooLargeError",
    "atomic_write_bytes",
    "check_image_size",
    "decode_image",
    "read_image",
    "read_image_header",
    "to_8bit",
    "write_json",
    "write_png",
]

#: The default largest image, in pixels (width * height), that is decoded or converted: 40
#: megapixels, above 8K UHD (7680 x 4320 = 33.2 MP) and any common camera.
DEFAULT_MAX_PIXELS = 40_000_000

#: Image file formats :func:`read_image` reads (Pillow's format names; PPM is the PNM family).
FILE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "PPM")

_FORMAT_NAMES = {"JPEG": "JPEG", "PNG": "PNG", "BMP": "BMP", "TIFF": "TIFF", "WEBP": "WebP", "PPM": "PNM"}


class ImageTooLargeError(ValueError):
    """An image declares more pixels than the limit allows; nothing was decoded or allocated."""


class ImageHeader(NamedTuple):
    """What an image payload's header declares: Pillow's format name ("JPEG", "PNG", ...) and size."""

    format: str
    width: int
    height: int


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """Scale uint16 [0, 65535] to uint8 [0, 255] with rounding, as cv_bridge does (factor 255/65535).
    Files and ROS images of 16 bits go through this one function, so they segment alike."""
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)


def check_image_size(width: int, height: int, max_pixels: int, what: str = "image") -> None:
    """Refuse an image of ``width * height`` pixels over ``max_pixels``.

    Raises:
        ImageTooLargeError: the image is larger than the limit.
        ValueError: ``max_pixels`` is not a positive integer.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer; got {max_pixels!r}")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{what} declares {width}x{height} = {width * height} pixels, over the limit of {max_pixels} "
            "pixels; refused before decoding"
        )


@functools.cache
def _header_readers() -> dict[str, type]:
    """Pillow's image classes by format name; constructing one reads and checks only the header.

    They are used directly rather than through ``PIL.Image.open``, whose own decompression-bomb
    check (a warning, then an error, at fixed global limits) would get in the way of ours.
    """
    from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, PpmImagePlugin, TiffImagePlugin

    readers: dict[str, type] = {
        "JPEG": JpegImagePlugin.JpegImageFile,
        "PNG": PngImagePlugin.PngImageFile,
        "BMP": BmpImagePlugin.BmpImageFile,
        "TIFF": TiffImagePlugin.TiffImageFile,
        "PPM": PpmImagePlugin.PpmImageFile,
    }
    try:
        from PIL import WebPImagePlugin
    except ImportError:  # a Pillow built without libwebp: WebP files are then not read
        pass
    else:
        readers["WEBP"] = WebPImagePlugin.WebPImageFile
    return readers


def _describe(formats: Sequence[str]) -> str:
    names = [_FORMAT_NAMES.get(f, f) for f in formats]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _payload_summary(data: np.ndarray) -> str:
    return f"{data.size} bytes starting {data[:8].tobytes()!r}"


def _readers_for(formats: Sequence[str]) -> list[tuple[str, type]]:
    unknown = [f for f in formats if f not in FILE_FORMATS]
    if unknown:
        raise ValueError(f"unknown image formats {unknown}; expected some of {list(FILE_FORMATS)}")
    readers = _header_readers()
    return [(name, readers[name]) for name in formats if name in readers]


def _as_bytes_array(data: bytes | np.ndarray) -> np.ndarray:
    return data.reshape(-1).view(np.uint8) if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)


def _check_png_chunks(raw: bytes) -> None:
    """Refuse a PNG whose chunk table runs past its end: OpenCV allocates each chunk's declared
    length before reading it (an 848-byte PNG declaring a 2.4 GB IDAT took 2.4 GB and seconds).
    Pillow's own check (``verify``) would do this too, but also CRC every byte: 25% of a decode."""
    offset = 8  # the signature
    while offset < len(raw):
        if offset + 12 > len(raw):
            raise ValueError(f"PNG ends inside a chunk header at byte {offset} of {len(raw)}")
        length, kind = struct.unpack_from(">I4s", raw, offset)
        if offset + 12 + length > len(raw):
            raise ValueError(
                f"PNG chunk {kind!r} at byte {offset} declares {length} bytes; only {len(raw) - offset - 12} follow"
            )
        offset += 12 + length
        if kind == b"IEND":
            break


def read_image_header(data: bytes | np.ndarray, formats: Sequence[str] = FILE_FORMATS) -> ImageHeader:
    """Read an image payload's format and size from its header, without decoding any pixel data.

    A PNG's chunk table is checked too: every chunk must fit in the payload.

    Args:
        data: the encoded image (bytes, or a flat uint8 array).
        formats: the formats to accept, out of :data:`FILE_FORMATS`.

    Raises:
        ValueError: the payload is none of ``formats``, or its header is broken; or a name in
            ``formats`` is not one of :data:`FILE_FORMATS`.
    """
    readers = _readers_for(formats)
    buffer = _as_bytes_array(data)
    raw = buffer.tobytes()
    for name, reader in readers:
        try:
            with reader(io.BytesIO(raw)) as header:
                width, height = header.size
        except Exception:  # Pillow signals "not this format" and "broken header" with many types
            continue
        if name == "PNG":
            try:
                _check_png_chunks(raw)
            except ValueError as exc:
                raise ValueError(f"{_payload_summary(buffer)}: {exc}") from None
        return ImageHeader(name, int(width), int(height))
    raise ValueError(f"{_payload_summary(buffer)}; expected a {_describe(formats)} image")


def decode_image(
    data: bytes | np.ndarray,
    *,
    formats: Sequence[str] = FILE_FORMATS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    what: str = "image",
) -> np.ndarray:
    """Decode an image payload with OpenCV after checking its header against ``max_pixels``.

    Args:
        data: the encoded image (bytes, or a flat uint8 array).
        formats: the formats to accept, out of :data:`FILE_FORMATS`; any other payload is refused
            whatever OpenCV could make of it (OpenCV decodes by content, not by name).
        max_pixels: the largest ``width * height`` to decode.
        what: names the payload in error messages, e.g. "image file a.png".

    Returns:
        OpenCV's ``IMREAD_UNCHANGED`` pixels: (H, W) or (H, W, 3|4) in BGR(A) order, of the
        header's size; uint8, or another dtype where the format holds one (16-bit PNG, float TIFF).

    Raises:
        ImageTooLargeError: the header declares more than ``max_pixels`` pixels.
        ValueError: the payload is empty, none of ``formats``, or cannot be decoded.
    """
    _readers_for(formats)  # a bad name is the caller's error, not the payload's
    buffer = _as_bytes_array(data)
    if buffer.size == 0:
        raise ValueError(f"{what} is empty")
    try:
        header = read_image_header(buffer, formats)
    except ValueError as exc:
        raise ValueError(f"cannot decode {what}: {exc}") from None
    check_image_size(header.width, header.height, max_pixels, what)
    try:
        pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ValueError(f"cannot decode {what} ({header.format}, {_payload_summary(buffer)}): {exc}") from None
    if pixels is None or pixels.shape[:2] != (header.height, header.width):
        got = "nothing" if pixels is None else f"{pixels.shape[1]}x{pixels.shape[0]} pixels"
        raise ValueError(
            f"cannot decode {what}: its {header.format} header declares {header.width}x{header.height} "
            f"pixels, OpenCV decoded {got} ({_payload_summary(buffer)})"
        )
    return pixels


def read_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3), or (H, W) for grayscale files.

    JPEG, PNG, BMP, TIFF, WebP and PNM files (:data:`FILE_FORMATS`) are read; 16-bit images are
    scaled to 8 bit and an alpha channel is dropped.

    Args:
        path: the file.
        max_pixels: the largest ``width * height`` to read; a larger file is refused from its
            header, before decoding.

    Raises:
        ImageTooLargeError: the file declares more than ``max_pixels`` pixels.
        ValueError: the file is missing, empty, not an image of those formats, or of a pixel type
            other than 8 or 16 bit.
    """
    path = Path(path)
    if not path.is_file():  # not a directory, FIFO or device: reading one could block forever
        raise ValueError(f"cannot read image {path}: missing or not a regular file")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ValueError(f"cannot read image {path}: {exc.strerror or exc}") from None
    image = decode_image(data, max_pixels=max_pixels, what=f"image file {path}")
    if image.dtype == np.uint16:
        image = to_8bit(image)
    elif image.dtype != np.uint8:
        raise ValueError(f"image {path} has unsupported pixel type {image.dtype}; expected 8 or 16 bit")
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
