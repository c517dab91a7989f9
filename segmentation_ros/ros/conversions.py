"""sensor_msgs Image and CompressedImage <-> numpy, without cv_bridge or rclpy.

The functions work on any object with the message's fields: rclpy messages (``data`` an
``array.array('B')`` or bytes) and rosbags dataclasses (``data`` a uint8 ndarray) alike. Messages
are built through a :class:`~segmentation_ros.ros.messages.MessageFactory`.

Dtypes and shapes follow cv_bridge's ``imgmsg_to_cv2(msg, "passthrough")``: one channel gives
(H, W), more give (H, W, C); ``mono16`` is uint16, ``32FC1`` float32, the YUV 4:2:2 encodings
(H, W, 2) uint8 and the Bayer encodings (H, W) of the raw mosaic.

Every problem with an input (unknown encoding, data of the wrong size, a step too small for the
width, a payload OpenCV cannot decode) raises :class:`ConversionError`, which names the bad value
and what was expected.
"""

from __future__ import annotations

import re
import struct
import sys
from typing import Any, NamedTuple

import cv2
import numpy as np

from segmentation_ros.engine.imageio import to_8bit
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
    """An image message cannot be converted: bad encoding, size, step or compressed payload."""


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
_CV_TYPE = re.compile(r"(8U|8S|16U|16S|32S|32F|64F)C(\d*)")
_CV_DEPTHS: dict[str, np.dtype] = {
    "8U": np.dtype(np.uint8),
    "8S": np.dtype(np.int8),
    "16U": np.dtype(np.uint16),
    "16S": np.dtype(np.int16),
    "32S": np.dtype(np.int32),
    "32F": np.dtype(np.float32),
    "64F": np.dtype(np.float64),
}

# How image_to_color turns the encodings that are not plain RGB/BGR/mono into colour.
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
_GENERIC_COLOR = {"8UC1": "gray", "8UC3": "bgr", "8UC4": "bgr"}  # OpenCV's BGR convention.

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
        if channels >= 1:
            return _CV_DEPTHS[match.group(1)], channels
    raise ConversionError(
        f"unknown image encoding {encoding!r}; expected one of {', '.join(_NAMED_ENCODINGS)} "
        "or an OpenCV type such as 8UC3, 16UC1, 32FC1 (depth 8U/8S/16U/16S/32S/32F/64F, C1 or more)"
    )


def image_to_numpy(msg: Any) -> np.ndarray:
    """Return the pixels of a ``sensor_msgs/Image`` as an array, like cv_bridge's passthrough.

    Row padding (``step`` beyond ``width * bytes_per_pixel``) is skipped by striding, so the result
    is a view on ``msg.data`` whenever the data is already in host byte order; such views are
    read-only (copy before writing into them) and live as long as the message data. Multi-byte data
    in the other byte order (``is_bigendian``) is byte-swapped into a new, native-endian array.

    Args:
        msg: any object with ``height``, ``width``, ``encoding``, ``is_bigendian``, ``step`` and
            ``data``.

    Returns:
        (H, W) for one-channel encodings, else (H, W, C); dtype from the encoding (uint8 for
        rgb8/bgr8/mono8/bayer_*8/yuv422, uint16 for mono16/16UC1, float32 for 32FC1, ...).

    Raises:
        ConversionError: unknown encoding, ``step < width * bytes_per_pixel``, or
            ``len(data) != height * step``.
    """
    encoding = str(msg.encoding)
    dtype, channels = encoding_info(encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    pixel_bytes = dtype.itemsize * channels
    if step < width * pixel_bytes:
        raise ConversionError(
            f"image step {step} is smaller than width * bytes_per_pixel = {width} * {pixel_bytes} = "
            f"{width * pixel_bytes} for encoding {encoding!r}"
        )
    buffer = as_uint8_array(msg.data)
    if buffer.size != height * step:
        raise ConversionError(
            f"image data holds {buffer.size} bytes; expected height * step = {height} * {step} = "
            f"{height * step} for a {width}x{height} {encoding!r} image"
        )
    big_endian = bool(msg.is_bigendian)
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


def image_to_color(msg: Any) -> ColorImage:
    """Return a ``sensor_msgs/Image`` as 8-bit colour or grayscale pixels for a segmentation model.

    rgb8 / bgr8 (and 8UC3, taken as BGR) are passed through as views; rgba8 / bgra8 (and 8UC4) drop
    alpha, still a view; mono8 / 8UC1 come back as (H, W) grayscale views. 16-bit encodings are
    scaled to 8 bit. Bayer mosaics are demosaiced and the YUV 4:2:2 encodings converted to RGB with
    OpenCV (new arrays).

    Raises:
        ConversionError: as :func:`image_to_numpy`; or the encoding has no colour meaning (e.g.
            32FC1, 16UC1); or a YUV 4:2:2 image has an odd width.
    """
    encoding = str(msg.encoding)
    if encoding not in COLOR_ENCODINGS:
        encoding_info(encoding)  # unknown encodings get the unknown-encoding message
        raise ConversionError(
            f"image encoding {encoding!r} has no colour interpretation; expected one of {', '.join(COLOR_ENCODINGS)}"
        )
    pixels = image_to_numpy(msg)
    if pixels.dtype == np.uint16:
        pixels = to_8bit(pixels)
    if encoding.startswith("bayer_"):
        return ColorImage(cv2.cvtColor(pixels, _BAYER_TO_RGB[encoding[6:10]]), "rgb")
    if encoding in _YUV422_TO_RGB:
        if pixels.shape[1] % 2:
            raise ConversionError(
                f"{encoding!r} image width must be even (pixel pairs share U, V); got {msg.width}"
            )
        return ColorImage(cv2.cvtColor(pixels, _YUV422_TO_RGB[encoding]), "rgb")
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


def image_to_rgb(msg: Any) -> np.ndarray:
    """Return a ``sensor_msgs/Image`` as (H, W, 3) uint8 RGB (see :func:`image_to_color`).

    rgb8 comes back as a read-only view; BGR input as a read-only reversed-channel view; grayscale
    is replicated into three channels (a copy).
    """
    return _color_to_rgb(image_to_color(msg))


# compressed_depth_image_transport prefixes its PNG with a ConfigHeader: int32 format, float32[2]
# depth quantization parameters, in the publisher's (little-endian in practice) byte order.
_DEPTH_HEADER = struct.Struct("<iff")


def _decode(payload: np.ndarray, fmt: str) -> np.ndarray:
    if payload.size == 0:
        raise ConversionError(f"compressed image (format {fmt!r}) has no data")
    try:
        pixels = cv2.imdecode(payload, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        pixels = None
        reason = f": {exc}"
    else:
        reason = ""
    if pixels is None:
        raise ConversionError(
            f"cannot decode compressed image of format {fmt!r} ({payload.size} bytes starting "
            f"{payload[:8].tobytes()!r}); expected a JPEG or PNG payload{reason}"
        )
    return pixels


def compressed_to_numpy(msg: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG) with OpenCV.

    Colour comes back in OpenCV's **BGR** order, whatever the ``format`` field says the original
    encoding was (image_transport always compresses colour as BGR): (H, W, 3) BGR, (H, W, 4) BGRA,
    or (H, W) grayscale; uint8, or uint16 for 16-bit PNG. ``format`` may be "jpeg", "png", "jpg" or
    image_transport's "rgb8; jpeg compressed bgr8" form. compressed_depth_image_transport payloads
    ("16UC1; compressedDepth png", "32FC1; compressedDepth png") are decoded to (H, W) uint16, or
    float32 depth with NaN where the encoder stored no depth.

    Raises:
        ConversionError: empty or undecodable payload, or an unsupported compressedDepth codec (rvl).
    """
    fmt = str(msg.format)
    payload = as_uint8_array(msg.data)
    if "compresseddepth" not in fmt.lower():
        return _decode(payload, fmt)
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
    pixels = _decode(payload[_DEPTH_HEADER.size :], fmt)
    if not fmt.split(";", 1)[0].strip().startswith("32F"):
        return pixels
    if pixels.dtype != np.uint16 or pixels.ndim != 2:
        raise ConversionError(
            f"compressedDepth 32FC1 payload decoded to {pixels.dtype} {pixels.shape}; expected 16-bit (H, W)"
        )
    inverse = pixels.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.float32(quant_a) / (inverse - np.float32(quant_b))
    depth[pixels == 0] = np.nan
    return depth


def compressed_to_color(msg: Any) -> ColorImage:
    """Decode a ``sensor_msgs/CompressedImage`` to 8-bit colour ("bgr") or grayscale ("gray").

    Alpha is dropped and 16-bit PNGs are scaled to 8 bit. Depth payloads (compressedDepth) raise
    :class:`ConversionError`.
    """
    if "compresseddepth" in str(msg.format).lower():
        raise ConversionError(f"compressed image of format {msg.format!r} is a depth image; it has no colour")
    pixels = compressed_to_numpy(msg)
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
