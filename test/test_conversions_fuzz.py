"""Any message content gives a ConversionError or a valid image: property tests and a short fuzz run.

The contract (ros/conversions.py): for every field value of a sensor_msgs Image or CompressedImage,
the conversions either raise ConversionError or return pixels of the declared shape, uint8 for
colour, never float or int pixels from a compressed colour image, never more than max_pixels.
hypothesis runs derandomized and the fuzz loop is seeded, so CI sees the same inputs every time.
"""

from __future__ import annotations

import struct
import zlib
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmentation_ros.ros.conversions import (
    COLOR_ENCODINGS,
    ConversionError,
    compressed_to_color,
    compressed_to_numpy,
    encoding_info,
    image_to_color,
    image_to_numpy,
    image_to_rgb,
)

PROPERTY = settings(
    derandomize=True, max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

KNOWN_ENCODINGS = [*COLOR_ENCODINGS, "16UC1", "32FC1", "8SC2", "64FC3", "32SC4", "16SC1", "8UC", "32FC"]
ENCODINGS = st.one_of(
    st.sampled_from(KNOWN_ENCODINGS),
    st.from_regex(r"(8U|8S|16U|16S|32S|32F|64F)C[0-9]{0,5}", fullmatch=True),
    st.text(max_size=12),
)
SMALL = st.integers(0, 9)
ANY_SIZE = st.one_of(SMALL, SMALL, st.integers(-3, 2**40))


def _check_raw_result(msg: SimpleNamespace) -> None:
    """Every conversion of ``msg`` raises ConversionError or returns pixels of its declared shape."""
    try:
        pixels = image_to_numpy(msg)
    except ConversionError:
        pass
    else:
        dtype, channels = encoding_info(msg.encoding)
        expected = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
        assert pixels.shape == expected and pixels.dtype == dtype and pixels.dtype.isnative
    try:
        color = image_to_color(msg)
    except ConversionError:
        pass
    else:
        assert color.pixels.dtype == np.uint8
        assert color.order in ("rgb", "bgr", "gray")
        expected = (msg.height, msg.width) if color.order == "gray" else (msg.height, msg.width, 3)
        assert color.pixels.shape == expected
    try:
        rgb = image_to_rgb(msg)
    except ConversionError:
        pass
    else:
        assert rgb.dtype == np.uint8 and rgb.shape == (msg.height, msg.width, 3)


@st.composite
def raw_images(draw: st.DrawFn) -> SimpleNamespace:
    """Images with any fields: mostly consistent ones (so conversions run), some with any field off."""
    encoding = draw(ENCODINGS)
    try:
        dtype, channels = encoding_info(encoding)
        row = dtype.itemsize * channels
    except ConversionError:
        row = draw(st.integers(1, 16))
    height, width = draw(SMALL), draw(SMALL)
    step = width * row + draw(st.sampled_from([0, 0, 1, 3]))
    size = height * step
    fields = {"height": height, "width": width, "step": step, "size": size}
    for name in draw(st.sets(st.sampled_from(sorted(fields)), max_size=2)):  # spoil up to two fields
        fields[name] = draw(ANY_SIZE)
    size = fields.pop("size")
    data = draw(st.binary(min_size=min(max(size, 0), 4096), max_size=min(max(size, 0), 4096)))
    return SimpleNamespace(
        encoding=encoding, is_bigendian=draw(st.integers(0, 2)), data=data, **fields
    )


@PROPERTY
@given(raw_images())
def test_any_image_message_converts_or_raises_conversion_error(msg: SimpleNamespace) -> None:
    _check_raw_result(msg)


@PROPERTY
@given(
    encoding=st.sampled_from([e for e in COLOR_ENCODINGS if e.startswith(("bayer", "yuv", "uyvy", "yuyv"))]),
    height=st.integers(0, 5),
    width=st.integers(0, 5),
)
def test_bayer_and_yuv_of_any_size(encoding: str, height: int, width: int) -> None:
    """OpenCV's demosaic and YUV conversions refuse empty input; the conversions must not."""
    dtype, channels = encoding_info(encoding)
    step = width * channels * dtype.itemsize
    msg = SimpleNamespace(
        encoding=encoding, height=height, width=width, step=step, is_bigendian=0, data=bytes(height * step)
    )
    _check_raw_result(msg)


def _check_compressed_result(msg: SimpleNamespace, max_pixels: int | None = None) -> None:
    limit = {} if max_pixels is None else {"max_pixels": max_pixels}
    depth = "compresseddepth" in str(msg.format).lower()
    try:
        pixels = compressed_to_numpy(msg, **limit)
    except ConversionError:
        pass
    else:
        allowed = (np.float32 if str(msg.format).lstrip().startswith("32F") else np.uint16,) if depth else (
            np.uint8,
            np.uint16,
        )
        assert pixels.dtype in allowed, (pixels.dtype, msg.format)
        assert pixels.ndim == 2 or (not depth and pixels.ndim == 3 and pixels.shape[2] in (3, 4))
        assert pixels.shape[0] >= 1 and pixels.shape[1] >= 1
        if max_pixels is not None:
            assert pixels.shape[0] * pixels.shape[1] <= max_pixels
    try:
        color = compressed_to_color(msg, **limit)
    except ConversionError:
        pass
    else:
        assert not depth
        assert color.pixels.dtype == np.uint8
        assert (color.order, color.pixels.ndim) in (("gray", 2), ("bgr", 3))
        assert color.pixels.shape[2:] in ((), (3,))
        np.testing.assert_array_equal(color.pixels.shape[:2], pixels.shape[:2])


FORMATS = st.one_of(
    st.sampled_from(
        ["jpeg", "png", "", "rgb8; jpeg compressed bgr8", "16UC1; compressedDepth png", "32FC1; compressedDepth"]
    ),
    st.text(max_size=30),
)


def _encoded(ext: str, pixels: np.ndarray) -> bytes:
    ok, data = cv2.imencode(ext, pixels)
    assert ok
    return data.tobytes()


# Payloads OpenCV decodes to pixels other than 8-bit gray/BGR(A): they must be refused.
FOREIGN = [
    _encoded(".tiff", np.full((3, 4), 0.25, np.float32)),
    _encoded(".tiff", np.full((3, 4, 3), 9, np.uint16)),
    _encoded(".hdr", np.full((3, 4, 3), 0.25, np.float32)),
    _encoded(".pfm", np.full((3, 4), 0.25, np.float32)),
    _encoded(".bmp", np.zeros((3, 4, 3), np.uint8)),
]


@PROPERTY
@given(
    fmt=FORMATS,
    payload=st.one_of(st.binary(max_size=300), st.sampled_from(FOREIGN)),
    depth_header=st.booleans(),
)
def test_any_compressed_payload_decodes_to_8_bit_or_raises_conversion_error(
    fmt: str, payload: bytes, depth_header: bool
) -> None:
    data = (struct.pack("<iff", 0, 1.0, 0.0) if depth_header else b"") + payload
    _check_compressed_result(SimpleNamespace(format=fmt, data=data))


def _png(pixels: np.ndarray) -> bytes:
    return _encoded(".png", pixels)


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    return [
        _png(bgr),
        _png(bgr[:, :, 0]),
        _png(rng.integers(0, 65536, (6, 7), dtype=np.uint16)),
        _png(np.dstack([bgr, bgr[:, :, :1]])),
        _encoded(".jpg", bgr),
        _encoded(".jpg", bgr[:, :, 0]),
    ]


def _mutate(payload: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(payload)
    kind = rng.integers(6)
    if kind == 0:  # flip a few bytes anywhere
        for i in rng.integers(0, len(data), rng.integers(1, 8)):
            data[i] = int(rng.integers(256))
    elif kind == 1:  # truncate
        del data[int(rng.integers(1, len(data))) :]
    elif kind == 2:  # insert garbage
        at = int(rng.integers(len(data)))
        data[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif kind == 3 and data[:4] == b"\x89PNG":  # any IHDR size, bit depth and colour type, valid CRC
        data[16:24] = struct.pack(">II", *rng.integers(0, 2**32, 2))
        data[24:26] = bytes(rng.choice([1, 2, 4, 8, 16, 0, 3, 255], 2).astype(np.uint8))
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    elif kind == 3:  # any JPEG frame size and component count
        sof = bytes(data).find(b"\xff\xc0")
        data[sof + 5 : sof + 10] = struct.pack(">HHB", *rng.integers(0, 2**16, 2), int(rng.integers(256)))
    elif kind == 4:  # bytes of the header region only
        for i in rng.integers(0, min(len(data), 64), rng.integers(1, 4)):
            data[i] = int(rng.integers(256))
    else:  # splice two payloads
        other = _seeds()[int(rng.integers(6))]
        data = data[: int(rng.integers(len(data)))] + other[int(rng.integers(len(other))) :]
    return bytes(data)


def test_fuzz_compressed_payloads_seeded() -> None:
    """Mutated PNG and JPEG payloads, plain and behind a compressedDepth header: a bounded, seeded run
    (about a second). The pixel limit keeps a mutated header from making the decode itself slow."""
    rng = np.random.default_rng(20240611)
    seeds = _seeds()
    formats = ["jpeg", "png", "16UC1; compressedDepth png", "32FC1; compressedDepth png"]
    for i in range(2000):
        payload = _mutate(seeds[i % len(seeds)], rng)
        fmt = formats[int(rng.integers(len(formats)))]
        if "compressedDepth" in fmt:
            payload = struct.pack("<iff", 0, 100.0, -10.0) + payload
        _check_compressed_result(SimpleNamespace(format=fmt, data=payload), max_pixels=4096)


def test_fuzz_image_messages_seeded() -> None:
    """Valid Image messages of every encoding with one field spoiled at random: bounded and seeded."""
    rng = np.random.default_rng(11)
    encodings = [*COLOR_ENCODINGS, "16UC1", "32FC1", "8SC2", "64FC3"]
    spoilers = {
        "height": lambda: int(rng.choice([0, 1, 3, 2**31, -1])),
        "width": lambda: int(rng.choice([0, 1, 3, 2**31, -1])),
        "step": lambda: int(rng.choice([0, 1, 5, 2**40, -7])),
        "encoding": lambda: str(rng.choice(["bayer_rggb16", "yuv422", "8UC0", "8UC600", "16FC1", "rgb", " rgb8"])),
        "data": lambda: bytes(int(rng.integers(0, 200))),
        "is_bigendian": lambda: int(rng.integers(0, 3)),
    }
    for _ in range(3000):
        encoding = encodings[int(rng.integers(len(encodings)))]
        dtype, channels = encoding_info(encoding)
        height, width = int(rng.integers(0, 6)), 2 * int(rng.integers(0, 4))
        step = width * channels * dtype.itemsize + int(rng.integers(0, 3))
        fields = {
            "encoding": encoding,
            "height": height,
            "width": width,
            "step": step,
            "is_bigendian": 0,
            "data": rng.integers(0, 256, height * step, dtype=np.uint8).tobytes(),
        }
        spoiled = list(spoilers)[int(rng.integers(len(spoilers) + 1)) - 1] if rng.integers(4) else None
        if spoiled:
            fields[spoiled] = spoilers[spoiled]()
        _check_raw_result(SimpleNamespace(**fields))


@pytest.mark.parametrize("max_pixels", [1, 5, 47])
@settings(derandomize=True, max_examples=60, deadline=None)
@given(height=st.integers(1, 9), width=st.integers(1, 9))
def test_the_pixel_limit_means_exactly_what_it_says(max_pixels: int, height: int, width: int) -> None:
    """An image of exactly max_pixels pixels converts; one more pixel is refused; raw and compressed."""
    pixels = np.full((height, width, 3), 77, np.uint8)
    raw = SimpleNamespace(
        encoding="bgr8", height=height, width=width, step=3 * width, is_bigendian=0, data=pixels.tobytes()
    )
    compressed = SimpleNamespace(format="png", data=_png(pixels))
    for convert, msg in ((image_to_color, raw), (compressed_to_color, compressed)):
        if height * width <= max_pixels:
            assert convert(msg, max_pixels=max_pixels).pixels.shape == (height, width, 3)
        else:
            with pytest.raises(ConversionError, match=f"over the limit of {max_pixels} pixels"):
                convert(msg, max_pixels=max_pixels)
