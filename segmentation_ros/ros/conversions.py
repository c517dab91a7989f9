"""sensor_msgs Image and CompressedImage <-> numpy, without cv_bridge or rclpy.

The functions work on any object with the message's fields: rclpy messages (``data`` an
``array.array('B')`` or bytes) and rosbags dataclasses (``data`` a uint8 ndarray) alike. Messages
are built through a :class:`~segmentation_ros.ros.messages.MessageFactory`.

Dtypes and shapes follow cv_bridge's ``imgmsg_to_cv2(msg, "passthrough")``: one channel gives
(H, W), more give (H, W, C); ``mono16`` is uint16, ``32FC1`` float32, the YUV 4:2:2 encodings
(H, W, 2) uint8 and the Bayer encodings (H, W) of the raw mosaic.

Every problem with an input, whatever the message holds (unknown or absurd encoding, data of the
wrong size, a step too small for the width, a payload that is not a JPEG or PNG, more pixels than
``max_pixels``), raises :class:`ConversionError`, which names the bad value and what was expected;
nothing else escapes. The pixel limit (``max_pixels``, default
:data:`~segmentation_ros.engine.imageio.DEFAULT_MAX_PIXELS`) is checked before anything is
allocated: from ``height * width`` for an ``Image``, from the header for a ``CompressedImage`` (a
few hundred bytes can declare a gigapixel image).
"""

from __future__ import annotations

import re
import struct
import sys
from typing import Any, NamedTuple

import cv2
import numpy as np

from segmentation_ros.engine.imageio import DEFAULT_MAX_PIXELS, check_image_size, decode_image, to_8bit
from segmentation_ros.ros.messages import MessageFactory, as_uint8_array, make_header

__all__ = [
    "COLOR_ENCODINGS",
    "ColorImage",
    "ConversionError",
    "compressed_to_color",
    "compressed_to_numpy",
    "encoding_info",
    "image_to_color",
    "image_to_numpy",
    "image_to_rgb",
    "numpy_to_compressed",
    "numpy_to_image",
]


class ConversionError(ValueError):
    """An image message cannot be converted: bad encoding, size, step or compressed payload, or more
    pixels than the limit (then its ``__cause__`` is an
    :class:`~segmentation_ros.engine.imageio.ImageTooLargeError`)."""


# encoding -> (dtype, channels) for the named encodings of sensor_msgs/image_encodings.hpp.
# "yuv422" is UYVY and "yuv422_yuy2" is YUYV: Humble knows only these two names, Jazzy and later
# add "uyvy" and "yuyv" and call the old names deprecated aliases.
_NAMED_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    **{name: (np.dtype(np.uint8), 3) for name in ("rgb8", "bgr8")},
    **{name: (np.dtype(np.uint8), 4) for name in ("rgba8", "bgra8")},
    **{name: (np.dtype(np.uint16), 3) for name in ("rgb16", "bgr16")},
    **{name: (np.dtype(np.uint16), 4) for name in ("rgba16", "bgra16")},
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    **{f"bayer_{p}8": (np.dtype(np.uint8), 1) for p in ("rggb", "bggr", "gbrg", "grbg")},
    **{f"bayer_{p}16": (np.dtype(np.uint16), 1) for p in ("rggb", "bggr", "gbrg", "grbg")},
    **{name: (np.dtype(np.uint8), 2) for name in ("yuv422", "uyvy", "yuyv", "yuv422_yuy2")},
}

# OpenCV-style encodings such as "8UC3" or "32FC1"; a missing channel count means 1 (as cv_bridge).
_CV_TYPE = re.compile(r"(8U|8S|16U|16S|32S|32F|64F)C([0-9]*)")
_CV_MAX_CHANNELS = 512  # OpenCV's CV_CN_MAX: no cv::Mat has more channels
_CV_DEPTHS: dict[str, np.dtype] = {
    "8U": np.dtype(np.uint8),
    "8S": np.dtype(np.int8),
    "16U": np.dtype(np.uint16),
    "16S": np.dtype(np.int16),
    "32S": np.dtype(np.int32),
    "32F": np.dtype(np.float32),
    "64F": np.dtype(np.float64),
}

# How image_to_color turns the encodings that are not plain RGB/BGR/mono into colour. Bayer and YUV
# use cv_bridge's OpenCV codes; 16-bit Bayer is demosaiced at 16 bits, then scaled to 8 (cv_bridge's
# order: colour conversion first, depth last).
_BAYER_TO_RGB = {  # OpenCV names Bayer patterns after the second row; this mapping matches cv_bridge.
    "rggb": cv2.COLOR_BayerBG2RGB,
    "bggr": cv2.COLOR_BayerRG2RGB,
    "gbrg": cv2.COLOR_BayerGR2RGB,
    "grbg": cv2.COLOR_BayerGB2RGB,
}
_YUV422_TO_RGB = {
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuyv": cv2.COLOR_YUV2RGB_YUY2,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
}
# cv_bridge refuses these ("not a color format"); we read them in OpenCV's BGR convention.
_GENERIC_COLOR = {"8UC1": "gray", "8UC3": "bgr", "8UC4": "bgr"}

#: Encodings :func:`image_to_color` accepts.
COLOR_ENCODINGS: tuple[str, ...] = (
    ("rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16", "mono8", "mono16")
    + tuple(f"bayer_{p}{bits}" for bits in (8, 16) for p in _BAYER_TO_RGB)
    + tuple(_YUV422_TO_RGB)
    + tuple(_GENERIC_COLOR)
)


class ColorImage(NamedTuple):
    """An image ready for a colour model, with its channel order.

    Attributes:
        pixels: (H, W, 3) uint8 when ``order`` is "rgb" or "bgr"; (H, W) uint8 when "gray". May be
            a read-only, non-contiguous view on the message data.
        order: "rgb", "bgr" or "gray".
    """

    pixels: np.ndarray
    order: str


def encoding_info(encoding: str) -> tuple[np.dtype, int]:
    """Return the native-endian element dtype and channel count of an image encoding.

    Raises:
        ConversionError: unknown encoding.
    """
    if encoding in _NAMED_ENCODINGS:
        return _NAMED_ENCODINGS[encoding]
    match = _CV_TYPE.fullmatch(encoding)
    if match:
        channels = int(match.group(2)) if match.group(2) else 1
        if 1 <= channels <= _CV_MAX_CHANNELS:
            return _CV_DEPTHS[match.group(1)], channels
    raise ConversionError(
        f"unknown image encoding {encoding!r}; expected one of {', '.join(_NAMED_ENCODINGS)} "
        "or an OpenCV type such as 8UC3, 16UC1, 32FC1 (depth 8U/8S/16U/16S/32S/32F/64F, "
        f"C1 to C{_CV_MAX_CHANNELS})"
    )


def _field(msg: Any, name: str) -> int:
    """An integer field of a duck-typed message, as a ConversionError when it is none."""
    value = getattr(msg, name, None)
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise ConversionError(f"image field {name} is {value!r}; expected a non-negative integer") from None
    if number < 0:
        raise ConversionError(f"image field {name} is {number}; expected a non-negative integer")
    return number


def _bytes_of(data: Any, what: str) -> np.ndarray:
    try:
        return as_uint8_array(data)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConversionError(f"{what} data of type {type(data).__name__} is not bytes: {exc}") from None


def _limit(width: int, height: int, max_pixels: int, what: str) -> None:
    """check_image_size, with the too-large error as a ConversionError (its cause kept)."""
    try:
        check_image_size(width, height, max_pixels, what)
    except ValueError as exc:
        raise ConversionError(str(exc)) from exc


def image_to_numpy(msg: Any, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return the pixels of a ``sensor_msgs/Image`` as an array, like cv_bridge's passthrough.

    Row padding (``step`` beyond ``width * bytes_per_pixel``) is skipped by striding, so the result
    is a view on ``msg.data`` whenever the data is already in host byte order; such views are
    read-only (copy before writing into them) and live as long as the message data. Multi-byte data
    in the other byte order (``is_bigendian``) is byte-swapped into a new, native-endian array.

    Args:
        msg: any object with ``height``, ``width``, ``encoding``, ``is_bigendian``, ``step`` and
            ``data``.
        max_pixels: the largest ``height * width`` to convert.

    Returns:
        (H, W) for one-channel encodings, else (H, W, C); dtype from the encoding (uint8 for
        rgb8/bgr8/mono8/bayer_*8/yuv422, uint16 for mono16/16UC1, float32 for 32FC1, ...). A zero
        height or width gives an empty array of that shape.

    Raises:
        ConversionError: unknown encoding, more than ``max_pixels`` pixels,
            ``step < width * bytes_per_pixel``, or ``len(data) != height * step``.
    """
    encoding = str(getattr(msg, "encoding", None))
    dtype, channels = encoding_info(encoding)
    height, width, step = _field(msg, "height"), _field(msg, "width"), _field(msg, "step")
    _limit(width, height, max_pixels, f"{encoding!r} image")
    pixel_bytes = dtype.itemsize * channels
    if step < width * pixel_bytes:
        raise ConversionError(
            f"image step {step} is smaller than width * bytes_per_pixel = {width} * {pixel_bytes} = "
            f"{width * pixel_bytes} for encoding {encoding!r}"
        )
    buffer = _bytes_of(getattr(msg, "data", None), "image")
    if buffer.size != height * step:
        raise ConversionError(
            f"image data holds {buffer.size} bytes; expected height * step = {height} * {step} = "
            f"{height * step} for a {width}x{height} {encoding!r} image"
        )
    big_endian = bool(getattr(msg, "is_bigendian", 0))
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if big_endian else "<")
    shape: tuple[int, ...] = (height, width) if channels == 1 else (height, width, channels)
    strides: tuple[int, ...] = (step, pixel_bytes) if channels == 1 else (step, pixel_bytes, dtype.itemsize)
    if height == 0 or width == 0:
        return np.empty(shape, dtype=dtype.newbyteorder("="))
    pixels = np.ndarray(shape, dtype=dtype, buffer=buffer, strides=strides)
    if dtype.itemsize > 1 and big_endian != (sys.byteorder == "big"):
        return pixels.astype(dtype.newbyteorder("="))
    pixels.flags.writeable = False
    return pixels


def _check_array(array: np.ndarray, encoding: str) -> np.ndarray:
    """Check ``array``'s shape and dtype against ``encoding``; return it with a (H, W, 1) axis dropped.

    Raises:
        ConversionError: unknown encoding, or shape or dtype that do not fit it.
    """
    dtype, channels = encoding_info(encoding)
    if array.ndim == 3 and channels == 1 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != (2 if channels == 1 else 3) or (channels > 1 and array.shape[2] != channels):
        expected = "(H, W)" if channels == 1 else f"(H, W, {channels})"
        raise ConversionError(
            f"array of shape {array.shape} does not fit encoding {encoding!r}; expected {expected}"
        )
    if array.dtype.newbyteorder("=") != dtype:
        raise ConversionError(
            f"array of dtype {array.dtype} does not fit encoding {encoding!r}; expected {dtype}"
        )
    return array


def _guess_encoding(array: np.ndarray) -> str:
    """mono8/mono16 for (H, W), bgr8/bgr16 for (H, W, 3), bgra8/bgra16 for (H, W, 4)."""
    bits = {np.dtype(np.uint8): "8", np.dtype(np.uint16): "16"}.get(array.dtype.newbyteorder("="))
    kind = None
    if array.ndim == 2:
        kind = "mono"
    elif array.ndim == 3:
        kind = {3: "bgr", 4: "bgra"}.get(array.shape[2])
    if bits is None or kind is None:
        raise ConversionError(
            f"cannot tell the encoding of an array of shape {array.shape} and dtype {array.dtype}; expected "
            "uint8 or uint16 pixels shaped (H, W), (H, W, 3) or (H, W, 4), or pass encoding="
        )
    return kind + bits


def numpy_to_image(array: np.ndarray, encoding: str, header: Any, factory: MessageFactory) -> Any:
    """Return a ``sensor_msgs/msg/Image`` holding ``array`` (unpadded rows, ``step = W * C * itemsize``).

    A non-native-endian array (e.g. dtype ``>u2``) is stored as is, with ``is_bigendian`` set to
    match; otherwise the host byte order is used.

    Args:
        array: (H, W) or (H, W, 1) for one-channel encodings, (H, W, C) otherwise, with the dtype
            the encoding implies (see :func:`encoding_info`).
        encoding: a sensor_msgs image encoding, e.g. "rgb8", "mono16", "32FC1".
        header: the message header; None for an empty one (time zero, no frame).
        factory: builds the message.

    Raises:
        ConversionError: unknown encoding, or ``array``'s shape or dtype does not fit it.
    """
    array = _check_array(np.asarray(array), encoding)
    channels = 1 if array.ndim == 2 else array.shape[2]
    big_endian = array.dtype.itemsize > 1 and (
        array.dtype.byteorder == ">" or (array.dtype.byteorder in "=|" and sys.byteorder == "big")
    )
    height, width = array.shape[:2]
    array = np.ascontiguousarray(array)
    return factory.new(
        "sensor_msgs/msg/Image",
        header=header if header is not None else make_header(factory),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(big_endian),
        step=width * channels * array.dtype.itemsize,
        data=factory.uint8_array(array),
    )


def image_to_color(msg: Any, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ColorImage:
    """Return a ``sensor_msgs/Image`` as 8-bit colour or grayscale pixels for a segmentation model.

    As cv_bridge's ``cvtColor`` to rgb8 (or to bgr8 / mono8, keeping the message's own order):
    rgb8 / bgr8 are passed through as views; rgba8 / bgra8 drop alpha, still a view; mono8 comes
    back as an (H, W) grayscale view; 16-bit encodings are scaled to 8 bit (x * 255 / 65535,
    rounded); Bayer mosaics are demosaiced with cv_bridge's OpenCV codes, 16-bit ones at 16 bits
    and then scaled, and the YUV 4:2:2 encodings converted to RGB (new arrays). Unlike cv_bridge,
    which refuses the generic types here, 8UC3 / 8UC4 are read as BGR(A) (OpenCV's convention)
    and 8UC1 as grayscale. A zero height or width gives an empty array of the result's shape.

    Raises:
        ConversionError: as :func:`image_to_numpy`; or the encoding has no colour meaning (e.g.
            32FC1, 16UC1); or a YUV 4:2:2 image has an odd width.
    """
    encoding = str(getattr(msg, "encoding", None))
    if encoding not in COLOR_ENCODINGS:
        encoding_info(encoding)  # unknown encodings get the unknown-encoding message
        raise ConversionError(
            f"image encoding {encoding!r} has no colour interpretation; expected one of {', '.join(COLOR_ENCODINGS)}"
        )
    pixels = image_to_numpy(msg, max_pixels=max_pixels)
    if encoding in _YUV422_TO_RGB and pixels.shape[1] % 2:
        raise ConversionError(f"{encoding!r} image width must be even (pixel pairs share U, V); got {msg.width}")
    code = _BAYER_TO_RGB.get(encoding[6:10]) if encoding.startswith("bayer_") else _YUV422_TO_RGB.get(encoding)
    if code is not None:
        if pixels.size == 0:  # OpenCV refuses empty input
            return ColorImage(np.zeros((*pixels.shape[:2], 3), np.uint8), "rgb")
        try:
            rgb = cv2.cvtColor(pixels, code)
        except cv2.error as exc:  # not expected for any shape that passed the checks above
            raise ConversionError(f"OpenCV cannot convert a {pixels.shape} {encoding!r} image: {exc}") from None
        return ColorImage(to_8bit(rgb) if rgb.dtype == np.uint16 else rgb, "rgb")
    if pixels.dtype == np.uint16:
        pixels = to_8bit(pixels)
    if encoding in _GENERIC_COLOR:
        order = _GENERIC_COLOR[encoding]
    elif encoding.startswith("mono"):
        order = "gray"
    else:
        order = encoding[:3]
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]
    return ColorImage(pixels, order)


def _color_to_rgb(color: ColorImage) -> np.ndarray:
    if color.order == "rgb":
        return color.pixels
    if color.order == "bgr":
        return color.pixels[:, :, ::-1]
    return np.repeat(color.pixels[:, :, None], 3, axis=2)


def image_to_rgb(msg: Any, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return a ``sensor_msgs/Image`` as (H, W, 3) uint8 RGB (see :func:`image_to_color`).

    rgb8 comes back as a read-only view; BGR input as a read-only reversed-channel view; grayscale
    is replicated into three channels (a copy).
    """
    return _color_to_rgb(image_to_color(msg, max_pixels=max_pixels))


# compressed_depth_image_transport prefixes its PNG with a ConfigHeader: int32 format, float32[2]
# depth quantization parameters, in the publisher's (little-endian in practice) byte order.
_DEPTH_HEADER = struct.Struct("<iff")


def _decode(payload: np.ndarray, fmt: str, max_pixels: int, *, depth: bool = False) -> np.ndarray:
    """Decode a JPEG or PNG payload (PNG only for ``depth``) through imageio's header-first decoder.

    Returns (H, W), (H, W, 3) or (H, W, 4) pixels: uint8, or uint16 from a 16-bit PNG.
    """
    what = f"compressed {'depth ' if depth else ''}image of format {fmt!r}"
    if payload.size == 0:
        raise ConversionError(f"{what} has no data")
    formats = ("PNG",) if depth else ("JPEG", "PNG")
    try:
        pixels = decode_image(payload, formats=formats, max_pixels=max_pixels, what=what)
    except ValueError as exc:
        raise ConversionError(str(exc)) from exc
    allowed = (np.uint16,) if depth else (np.uint8, np.uint16)
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if pixels.dtype not in allowed or channels not in ((1,) if depth else (1, 3, 4)):
        expected = "16-bit (H, W)" if depth else "8-bit (or 16-bit PNG) gray, BGR or BGRA pixels"
        raise ConversionError(f"{what} decoded to {pixels.dtype} {pixels.shape}; expected {expected}")
    return pixels


def compressed_to_numpy(msg: Any, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG) with OpenCV.

    Colour comes back in OpenCV's **BGR** order, whatever the ``format`` field says the original
    encoding was (image_transport always compresses colour as BGR): (H, W, 3) BGR, (H, W, 4) BGRA,
    or (H, W) grayscale; uint8, or uint16 for 16-bit PNG. ``format`` may be "jpeg", "png", "jpg" or
    image_transport's "rgb8; jpeg compressed bgr8" form; the payload itself must be a JPEG or PNG
    (OpenCV would decode a TIFF, HDR or PFM payload to int or float pixels: these are refused).
    compressed_depth_image_transport payloads ("16UC1; compressedDepth png", "32FC1;
    compressedDepth png": a 12-byte header, then a 16-bit PNG) are decoded to (H, W) uint16, or
    float32 depth with NaN where the encoder stored no depth.

    Args:
        msg: any object with ``format`` and ``data``.
        max_pixels: the largest ``width * height`` to decode; checked from the payload's header,
            before decoding.

    Raises:
        ConversionError: empty payload, not a JPEG or PNG, more than ``max_pixels`` pixels,
            undecodable; a compressedDepth payload that is not a 16-bit one-channel PNG after its
            header, or an unsupported compressedDepth codec (rvl).
    """
    fmt = str(getattr(msg, "format", None))
    payload = _bytes_of(getattr(msg, "data", None), "compressed image")
    if "compresseddepth" not in fmt.lower():
        return _decode(payload, fmt, max_pixels)
    codec = fmt.lower().split("compresseddepth", 1)[1].strip() or "png"
    if codec != "png":
        raise ConversionError(
            f"compressedDepth codec {codec!r} in format {fmt!r} is not supported; expected png"
        )
    if payload.size <= _DEPTH_HEADER.size:
        raise ConversionError(
            f"compressedDepth image (format {fmt!r}) holds {payload.size} bytes; expected a "
            f"{_DEPTH_HEADER.size}-byte header followed by a PNG"
        )
    _, quant_a, quant_b = _DEPTH_HEADER.unpack(payload[: _DEPTH_HEADER.size].tobytes())
    pixels = _decode(payload[_DEPTH_HEADER.size :], fmt, max_pixels, depth=True)
    if not fmt.split(";", 1)[0].strip().startswith("32F"):
        return pixels
    inverse = pixels.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        depth = np.float32(quant_a) / (inverse - np.float32(quant_b))
    depth[pixels == 0] = np.nan
    return depth


def compressed_to_color(msg: Any, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ColorImage:
    """Decode a ``sensor_msgs/CompressedImage`` to 8-bit colour ("bgr") or grayscale ("gray").

    Alpha is dropped and 16-bit PNGs are scaled to 8 bit. Depth payloads (compressedDepth) raise
    :class:`ConversionError`; otherwise as :func:`compressed_to_numpy`.
    """
    fmt = str(getattr(msg, "format", None))
    if "compresseddepth" in fmt.lower():
        raise ConversionError(f"compressed image of format {fmt!r} is a depth image; it has no colour")
    pixels = compressed_to_numpy(msg, max_pixels=max_pixels)
    if pixels.dtype == np.uint16:
        pixels = to_8bit(pixels)
    if pixels.ndim == 2:
        return ColorImage(pixels, "gray")
    return ColorImage(pixels[:, :, :3], "bgr")


def numpy_to_compressed(
    array: np.ndarray,
    fmt: str,
    header: Any,
    factory: MessageFactory,
    *,
    encoding: str | None = None,
    jpeg_quality: int = 95,
    png_level: int = 3,
) -> Any:
    """Compress an image into a ``sensor_msgs/msg/CompressedImage`` the way image_transport does.

    Colour is compressed as BGR (alpha dropped); ``format`` is written in image_transport's form,
    e.g. "rgb8; jpeg compressed bgr8", so image_transport subscribers restore the original order.

    Args:
        array: (H, W) grayscale, or (H, W, 3|4) colour in the order ``encoding`` names; uint8, or
            uint16 for PNG.
        fmt: "jpeg" (or "jpg") or "png".
        header: the message header; None for an empty one.
        factory: builds the message.
        encoding: what ``array`` holds; default from its shape and dtype: mono8/mono16 for (H, W),
            bgr8/bgr16 for 3 channels, bgra8/bgra16 for 4.
        jpeg_quality: JPEG quality, 0-100.
        png_level: PNG compression level, 0-9.

    Raises:
        ConversionError: unknown format, or an array the format cannot hold (JPEG is 8-bit only).
    """
    codec = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}.get(fmt.lower())
    if codec is None:
        raise ConversionError(f"unsupported compressed format {fmt!r}; expected 'jpeg', 'jpg' or 'png'")
    array = np.asarray(array)
    if encoding is None:
        encoding = _guess_encoding(array)
    array = _check_array(array, encoding)
    channels = 1 if array.ndim == 2 else array.shape[2]
    pixels = array.astype(array.dtype.newbyteorder("="), copy=False)
    bit_depth = pixels.dtype.itemsize * 8
    if pixels.dtype not in (np.uint8, np.uint16) or (codec == "jpeg" and bit_depth != 8):
        allowed = "uint8" if codec == "jpeg" else "uint8 or uint16"
        raise ConversionError(
            f"{codec} cannot hold {encoding!r} ({pixels.dtype}) images; expected {allowed} pixels"
        )
    if channels == 1:
        target = "mono8" if codec == "jpeg" else ""  # image_transport names no target for mono PNG
    elif channels in (3, 4) and encoding[:3] in ("rgb", "bgr", "8UC", "16U"):
        target = f"bgr{bit_depth}"
        pixels = pixels[:, :, 2::-1] if encoding.startswith("rgb") else pixels[:, :, :3]
    else:
        raise ConversionError(
            f"cannot compress encoding {encoding!r}; expected a one-channel, rgb(a) or bgr(a) encoding"
        )
    pixels = np.ascontiguousarray(pixels)
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
        if codec == "jpeg"
        else [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)]
    )
    ok, encoded = cv2.imencode(".jpg" if codec == "jpeg" else ".png", pixels, params)
    if not ok:
        raise ConversionError(f"OpenCV could not encode a {pixels.shape} {pixels.dtype} image as {codec}")
    return factory.new(
        "sensor_msgs/msg/CompressedImage",
        header=header if header is not None else make_header(factory),
        format=f"{encoding}; {codec} compressed {target}",
        data=factory.uint8_array(encoded),
    )
