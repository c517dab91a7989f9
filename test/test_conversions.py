"""Image / CompressedImage <-> numpy: every encoding, padded rows, byte order, colour, compression."""

from __future__ import annotations

import array
import struct
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from bombs import bomb_jpeg, bomb_png

from segmentation_ros.ros.conversions import (
    COLOR_ENCODINGS,
    ConversionError,
    compressed_to_color,
    compressed_to_numpy,
    encoding_info,
    image_to_color,
    image_to_numpy,
    image_to_rgb,
    numpy_to_compressed,
    numpy_to_image,
)
from segmentation_ros.ros.messages import RosbagsFactory, deserialize, make_header, serialize

# encoding -> (dtype, channels) as cv_bridge's imgmsg_to_cv2(msg, "passthrough") returns them.
ENCODINGS: dict[str, tuple[type, int]] = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "rgb16": (np.uint16, 3),
    "bgra16": (np.uint16, 4),
    "mono8": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "8UC1": (np.uint8, 1),
    "8UC3": (np.uint8, 3),
    "8UC4": (np.uint8, 4),
    "8SC2": (np.int8, 2),
    "16UC1": (np.uint16, 1),
    "16SC1": (np.int16, 1),
    "32FC1": (np.float32, 1),
    "32SC1": (np.int32, 1),
    "64FC3": (np.float64, 3),
    "32FC": (np.float32, 1),
    "bayer_rggb8": (np.uint8, 1),
    "bayer_bggr8": (np.uint8, 1),
    "bayer_gbrg8": (np.uint8, 1),
    "bayer_grbg8": (np.uint8, 1),
    "bayer_rggb16": (np.uint16, 1),
    "yuv422": (np.uint8, 2),
    "uyvy": (np.uint8, 2),
    "yuyv": (np.uint8, 2),
    "yuv422_yuy2": (np.uint8, 2),
}
MULTI_BYTE = [e for e, (dt, _) in ENCODINGS.items() if np.dtype(dt).itemsize > 1]


@pytest.fixture(scope="module", params=["humble", "jazzy"])
def factory(request: pytest.FixtureRequest) -> RosbagsFactory:
    return RosbagsFactory(request.param)


@pytest.fixture(scope="module")
def humble() -> RosbagsFactory:
    return RosbagsFactory("humble")


def sample(encoding: str, height: int = 5, width: int = 6, seed: int = 0) -> np.ndarray:
    """Random pixels of the shape and dtype ``encoding`` implies."""
    dtype, channels = ENCODINGS[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.floating):
        return rng.normal(size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def raw_image(
    factory: RosbagsFactory, pixels: np.ndarray, encoding: str, *, pad: int = 0, big_endian: bool = False
) -> object:
    """Build an Image by hand: ``pad`` garbage bytes after each row, data in the chosen byte order."""
    ordered = pixels.astype(pixels.dtype.newbyteorder(">" if big_endian else "<"))
    height, width = pixels.shape[:2]
    rows = ordered.reshape(height, -1).view(np.uint8)
    garbage = np.full((height, pad), 0xAB, dtype=np.uint8)
    data = np.concatenate([rows, garbage], axis=1)
    return factory.new(
        "sensor_msgs/msg/Image",
        header=make_header(factory, 1, "cam"),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(big_endian),
        step=data.shape[1],
        data=data.reshape(-1),
    )


def image_with(**fields: object) -> SimpleNamespace:
    """A duck-typed Image; fields default to a valid 2x3 mono8 image."""
    defaults = {"height": 2, "width": 3, "encoding": "mono8", "is_bigendian": 0, "step": 3, "data": bytes(6)}
    return SimpleNamespace(**{**defaults, **fields})


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_encoding_info_matches_cv_bridge(encoding: str) -> None:
    dtype, channels = encoding_info(encoding)
    assert (dtype, channels) == (np.dtype(ENCODINGS[encoding][0]), ENCODINGS[encoding][1])


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_round_trip_every_encoding(encoding: str, factory: RosbagsFactory) -> None:
    pixels = sample(encoding)
    msg = numpy_to_image(pixels, encoding, make_header(factory, 5, "cam"), factory)
    itemsize = pixels.dtype.itemsize
    channels = ENCODINGS[encoding][1]
    assert (msg.height, msg.width, msg.encoding) == (5, 6, encoding)
    assert msg.step == 6 * channels * itemsize and msg.data.size == msg.height * msg.step
    assert msg.is_bigendian == int(itemsize > 1 and sys.byteorder == "big")
    back = image_to_numpy(msg)
    assert back.dtype == pixels.dtype and back.shape == pixels.shape
    np.testing.assert_array_equal(back, pixels)
    # ... and through CDR with the distro's real sensor_msgs/Image
    again = deserialize(serialize(msg, "sensor_msgs/msg/Image", factory), "sensor_msgs/msg/Image", factory)
    np.testing.assert_array_equal(image_to_numpy(again), pixels)


@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "mono16", "32FC1", "64FC3", "yuv422", "bayer_gbrg8"])
@pytest.mark.parametrize("pad", [1, 7, 64])
def test_padded_rows_are_skipped(encoding: str, pad: int, humble: RosbagsFactory) -> None:
    pixels = sample(encoding, height=4, width=7, seed=pad)
    msg = raw_image(humble, pixels, encoding, pad=pad)
    assert msg.step > pixels[0].nbytes
    back = image_to_numpy(msg)
    assert back.dtype == pixels.dtype
    np.testing.assert_array_equal(back, pixels)


@pytest.mark.parametrize("encoding", MULTI_BYTE)
@pytest.mark.parametrize("pad", [0, 3])
def test_big_endian_data_is_swapped(encoding: str, pad: int, humble: RosbagsFactory) -> None:
    pixels = sample(encoding, seed=11)
    msg = raw_image(humble, pixels, encoding, pad=pad, big_endian=True)
    back = image_to_numpy(msg)
    assert back.dtype == pixels.dtype and back.dtype.isnative
    np.testing.assert_array_equal(back, pixels)


def test_big_endian_array_is_stored_as_big_endian(humble: RosbagsFactory) -> None:
    pixels = sample("mono16")
    msg = numpy_to_image(pixels.astype(">u2"), "mono16", None, humble)
    assert msg.is_bigendian == 1
    assert msg.data[:2].tobytes() == struct.pack(">H", pixels[0, 0])
    np.testing.assert_array_equal(image_to_numpy(msg), pixels)


def test_result_is_a_read_only_view_on_the_message(humble: RosbagsFactory) -> None:
    pixels = sample("rgb8")
    for pad in (0, 5):
        msg = raw_image(humble, pixels, "rgb8", pad=pad)
        view = image_to_numpy(msg)
        assert np.shares_memory(view, msg.data)
        assert not view.flags.writeable
        with pytest.raises(ValueError):
            view[0, 0, 0] = 1


def test_rclpy_style_data_fields() -> None:
    pixels = sample("mono16")
    raw = pixels.astype("<u2").tobytes()
    for data in (raw, bytearray(raw), array.array("B", raw), memoryview(raw), list(raw)):
        msg = image_with(encoding="mono16", height=5, width=6, step=12, is_bigendian=0, data=data)
        np.testing.assert_array_equal(image_to_numpy(msg), pixels)


def test_empty_image() -> None:
    back = image_to_numpy(image_with(height=0, width=4, step=12, data=b"", encoding="rgb8"))
    assert back.shape == (0, 4, 3)


def test_unknown_encoding() -> None:
    with pytest.raises(ConversionError, match="unknown image encoding 'rgb9'.*rgb8.*8UC3"):
        image_to_numpy(image_with(encoding="rgb9"))
    with pytest.raises(ConversionError, match="'8UC0'"):
        encoding_info("8UC0")


def test_short_data() -> None:
    with pytest.raises(ConversionError, match=r"holds 5 bytes; expected height \* step = 2 \* 3 = 6"):
        image_to_numpy(image_with(data=bytes(5)))
    with pytest.raises(ConversionError, match="holds 7 bytes"):
        image_to_numpy(image_with(data=bytes(7)))


def test_step_too_small() -> None:
    msg = image_with(encoding="rgb8", step=8, data=bytes(16))
    with pytest.raises(
        ConversionError, match=r"step 8 is smaller than width \* bytes_per_pixel = 3 \* 3 = 9"
    ):
        image_to_numpy(msg)


def test_numpy_to_image_rejects_mismatched_arrays(humble: RosbagsFactory) -> None:
    with pytest.raises(
        ConversionError, match="dtype float64 does not fit encoding 'mono16'; expected uint16"
    ):
        numpy_to_image(np.zeros((2, 2)), "mono16", None, humble)
    with pytest.raises(
        ConversionError, match=r"shape \(2, 2\) does not fit encoding 'rgb8'; expected \(H, W, 3\)"
    ):
        numpy_to_image(np.zeros((2, 2), np.uint8), "rgb8", None, humble)
    with pytest.raises(ConversionError, match="unknown image encoding"):
        numpy_to_image(np.zeros((2, 2), np.uint8), "grey", None, humble)
    # (H, W, 1) is accepted for one-channel encodings
    assert numpy_to_image(np.zeros((2, 3, 1), np.uint8), "mono8", None, humble).step == 3


def test_header_is_kept(humble: RosbagsFactory) -> None:
    header = make_header(humble, 123, "camera_optical")
    msg = numpy_to_image(sample("mono8"), "mono8", header, humble)
    assert msg.header.frame_id == "camera_optical" and msg.header.stamp.nanosec == 123


# --- colour ----------------------------------------------------------------------------------------


def test_rgb_and_bgr_pass_through_as_views(humble: RosbagsFactory) -> None:
    pixels = sample("rgb8")
    msg = numpy_to_image(pixels, "rgb8", None, humble)
    color = image_to_color(msg)
    assert color.order == "rgb" and np.shares_memory(color.pixels, msg.data)
    np.testing.assert_array_equal(color.pixels, pixels)
    bgr = numpy_to_image(pixels[:, :, ::-1], "bgr8", None, humble)
    assert image_to_color(bgr).order == "bgr"
    np.testing.assert_array_equal(image_to_rgb(bgr), pixels)
    assert image_to_color(numpy_to_image(pixels, "8UC3", None, humble)).order == "bgr"


@pytest.mark.parametrize("encoding, order", [("rgba8", "rgb"), ("bgra8", "bgr"), ("8UC4", "bgr")])
def test_alpha_is_dropped(encoding: str, order: str, humble: RosbagsFactory) -> None:
    pixels = sample("rgba8")
    color = image_to_color(numpy_to_image(pixels, encoding, None, humble))
    assert color.order == order and color.pixels.shape == (5, 6, 3)
    np.testing.assert_array_equal(color.pixels, pixels[:, :, :3])


def test_grayscale(humble: RosbagsFactory) -> None:
    pixels = sample("mono8")
    for encoding in ("mono8", "8UC1"):
        color = image_to_color(numpy_to_image(pixels, encoding, None, humble))
        assert color.order == "gray" and color.pixels.shape == (5, 6)
        np.testing.assert_array_equal(color.pixels, pixels)
    rgb = image_to_rgb(numpy_to_image(pixels, "mono8", None, humble))
    assert rgb.shape == (5, 6, 3) and all((rgb[:, :, c] == pixels).all() for c in range(3))


def test_mono16_is_scaled_to_8_bit(humble: RosbagsFactory) -> None:
    pixels = np.array([[0, 257, 128 * 257, 65535, 128, 129]], dtype=np.uint16)
    color = image_to_color(numpy_to_image(pixels, "mono16", None, humble))
    assert color.pixels.dtype == np.uint8
    assert color.pixels.tolist() == [[0, 1, 128, 255, 0, 1]]
    expected = np.round(pixels.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(color.pixels, expected)  # cv_bridge's convertTo(255/65535)


def test_big_endian_mono16_colour(humble: RosbagsFactory) -> None:
    pixels = np.full((2, 4), 65535, np.uint16)
    msg = raw_image(humble, pixels, "mono16", big_endian=True, pad=2)
    assert (image_to_color(msg).pixels == 255).all()


def bayer_mosaic(pattern: str, rgb: tuple[int, int, int], height: int = 8, width: int = 10) -> np.ndarray:
    """A uniform colour sampled through the 2x2 Bayer ``pattern`` (e.g. "rggb": R at (0, 0))."""
    value = dict(zip("rgb", rgb, strict=True))
    mosaic = np.empty((height, width), np.uint8)
    for i, letter in enumerate(pattern):
        mosaic[i // 2 :: 2, i % 2 :: 2] = value[letter]
    return mosaic


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_uniform_colour(pattern: str, humble: RosbagsFactory) -> None:
    rgb = (200, 100, 30)
    msg = numpy_to_image(bayer_mosaic(pattern, rgb), f"bayer_{pattern}8", None, humble)
    color = image_to_color(msg)
    assert color.order == "rgb" and color.pixels.shape == (8, 10, 3) and color.pixels.dtype == np.uint8
    interior = color.pixels[2:-2, 2:-2].reshape(-1, 3)
    assert (interior == rgb).all(), f"{pattern}: {interior[0]} != {rgb}"


def test_bayer16_is_scaled(humble: RosbagsFactory) -> None:
    mosaic = bayer_mosaic("rggb", (200, 100, 30)).astype(np.uint16) * 257
    color = image_to_color(numpy_to_image(mosaic, "bayer_rggb16", None, humble))
    assert (color.pixels[2:-2, 2:-2] == (200, 100, 30)).all()


def yuv422(pattern: str, luma: list[int], u: int = 128, v: int = 128) -> np.ndarray:
    """Pack one row of 4:2:2 pixels by hand: UYVY is U Y0 V Y1, YUYV is Y0 U Y1 V."""
    out = []
    for y0, y1 in zip(luma[::2], luma[1::2], strict=True):
        out += [u, y0, v, y1] if pattern == "uyvy" else [y0, u, y1, v]
    return np.array(out, np.uint8).reshape(1, len(luma), 2)


@pytest.mark.parametrize(
    "encoding, pattern", [("yuv422", "uyvy"), ("uyvy", "uyvy"), ("yuyv", "yuyv"), ("yuv422_yuy2", "yuyv")]
)
def test_yuv422_byte_order(encoding: str, pattern: str, humble: RosbagsFactory) -> None:
    luma = [40, 220, 40, 220]
    rgb = image_to_rgb(numpy_to_image(yuv422(pattern, luma), encoding, None, humble))
    assert rgb.shape == (1, 4, 3)
    # neutral chroma: grey pixels, dark where Y is low and bright where Y is high
    assert (np.ptp(rgb.astype(int), axis=2) <= 1).all()
    assert rgb[0, 0, 0] < 50 and rgb[0, 1, 0] > 200 and rgb[0, 2, 0] < 50 and rgb[0, 3, 0] > 200


@pytest.mark.parametrize("encoding, code", [("uyvy", "UYVY"), ("yuyv", "YUY2")])
def test_yuv422_uniform_colour(encoding: str, code: str, humble: RosbagsFactory) -> None:
    rgb = (200, 60, 30)
    packed = cv2.cvtColor(np.full((4, 6, 3), rgb, np.uint8), getattr(cv2, f"COLOR_RGB2YUV_{code}"))
    color = image_to_color(numpy_to_image(packed, encoding, None, humble))
    assert color.order == "rgb"
    assert np.abs(color.pixels.astype(int) - rgb).max() <= 3


def test_yuv422_odd_width(humble: RosbagsFactory) -> None:
    msg = numpy_to_image(np.zeros((2, 3, 2), np.uint8), "uyvy", None, humble)
    with pytest.raises(ConversionError, match="width must be even"):
        image_to_color(msg)


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1", "32SC1", "8UC2"])
def test_no_colour_for_non_colour_encodings(encoding: str, humble: RosbagsFactory) -> None:
    dtype, channels = encoding_info(encoding)
    shape = (2, 2) if channels == 1 else (2, 2, channels)
    msg = numpy_to_image(np.zeros(shape, dtype), encoding, None, humble)
    with pytest.raises(
        ConversionError, match=f"{encoding!r} has no colour interpretation; expected one of rgb8"
    ):
        image_to_color(msg)


def test_every_colour_encoding_gives_8_bit(humble: RosbagsFactory) -> None:
    for encoding in COLOR_ENCODINGS:
        dtype, channels = encoding_info(encoding)
        shape = (4, 6) if channels == 1 else (4, 6, channels)
        color = image_to_color(numpy_to_image(np.zeros(shape, dtype), encoding, None, humble))
        assert color.pixels.dtype == np.uint8, encoding
        assert color.pixels.shape == ((4, 6) if color.order == "gray" else (4, 6, 3)), encoding


# --- compressed ------------------------------------------------------------------------------------


def smooth_bgr(height: int = 48, width: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], axis=2).astype(
        np.uint8
    )


def test_png_round_trip_is_exact(factory: RosbagsFactory) -> None:
    bgr = smooth_bgr()
    msg = numpy_to_compressed(bgr, "png", make_header(factory, 9, "cam"), factory)
    assert msg.format == "bgr8; png compressed bgr8" and msg.header.frame_id == "cam"
    again = deserialize(
        serialize(msg, "sensor_msgs/msg/CompressedImage", factory), "sensor_msgs/msg/CompressedImage", factory
    )
    np.testing.assert_array_equal(compressed_to_numpy(again), bgr)


def test_png_rgb_source_is_stored_as_bgr(humble: RosbagsFactory) -> None:
    rgb = smooth_bgr()
    msg = numpy_to_compressed(rgb, "png", None, humble, encoding="rgb8")
    assert msg.format == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(compressed_to_numpy(msg), rgb[:, :, ::-1])  # OpenCV decodes to BGR
    color = compressed_to_color(msg)
    assert color.order == "bgr"
    np.testing.assert_array_equal(color.pixels[:, :, ::-1], rgb)


def test_png_mono_and_16_bit(humble: RosbagsFactory) -> None:
    mono = sample("mono8", 16, 16)
    msg = numpy_to_compressed(mono, "png", None, humble)
    assert msg.format == "mono8; png compressed "  # image_transport names no target for mono PNG
    np.testing.assert_array_equal(compressed_to_numpy(msg), mono)
    depth = sample("mono16", 16, 16)
    msg16 = numpy_to_compressed(depth, "png", None, humble)
    back = compressed_to_numpy(msg16)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, depth)
    assert compressed_to_color(msg16).order == "gray"


def test_png_drops_alpha(humble: RosbagsFactory) -> None:
    bgra = np.dstack([smooth_bgr(), np.full((48, 64), 7, np.uint8)])
    msg = numpy_to_compressed(bgra, "png", None, humble)
    assert msg.format == "bgra8; png compressed bgr8"
    np.testing.assert_array_equal(compressed_to_numpy(msg), bgra[:, :, :3])


@pytest.mark.parametrize("fmt", ["jpeg", "jpg"])
def test_jpeg_round_trip_is_close(fmt: str, factory: RosbagsFactory) -> None:
    bgr = smooth_bgr()
    msg = numpy_to_compressed(bgr, fmt, None, factory, jpeg_quality=95)
    assert msg.format == "bgr8; jpeg compressed bgr8"
    assert msg.data[:2].tobytes() == b"\xff\xd8"
    back = compressed_to_numpy(msg)
    assert back.shape == bgr.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - bgr).mean() < 2.0


@pytest.mark.parametrize(
    "fmt", ["jpeg", "png", "jpg", "rgb8; jpeg compressed bgr8", "bgr8; png compressed bgr8", ""]
)
def test_format_strings_decode(fmt: str) -> None:
    bgr = smooth_bgr(16, 16)
    ok, png = cv2.imencode(".png", bgr)
    msg = SimpleNamespace(format=fmt, data=array.array("B", png.tobytes()))
    np.testing.assert_array_equal(compressed_to_numpy(msg), bgr)


def test_compressed_depth_16uc1() -> None:
    depth = sample("16UC1", 8, 9)
    ok, png = cv2.imencode(".png", depth)
    payload = struct.pack("<iff", -1, 0.0, 0.0) + png.tobytes()
    back = compressed_to_numpy(SimpleNamespace(format="16UC1; compressedDepth png", data=payload))
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, depth)
    with pytest.raises(ConversionError, match="is a depth image"):
        compressed_to_color(SimpleNamespace(format="16UC1; compressedDepth png", data=payload))


def test_compressed_depth_32fc1_inverse_depth() -> None:
    quant_a, quant_b = 100.0, -10.0
    inverse = np.array([[0, 10, 20], [90, 1000, 65535]], np.uint16)
    ok, png = cv2.imencode(".png", inverse)
    payload = struct.pack("<iff", 0, quant_a, quant_b) + png.tobytes()
    for fmt in ("32FC1; compressedDepth png", "32FC1; compressedDepth"):
        depth = compressed_to_numpy(SimpleNamespace(format=fmt, data=payload))
        assert depth.dtype == np.float32 and np.isnan(depth[0, 0])
        np.testing.assert_allclose(depth.ravel()[1:], quant_a / (inverse.ravel()[1:] - quant_b), rtol=1e-6)


def test_compressed_depth_rvl_is_refused() -> None:
    with pytest.raises(ConversionError, match="codec 'rvl'.*expected png"):
        compressed_to_numpy(SimpleNamespace(format="16UC1; compressedDepth rvl", data=bytes(64)))


def test_corrupt_compressed_payloads() -> None:
    ok, jpeg = cv2.imencode(".jpg", smooth_bgr())
    for data in (b"garbage!", jpeg.tobytes()[:20], b"\xff\xd8" + bytes(200)):
        with pytest.raises(
            ConversionError, match="cannot decode compressed image of format 'jpeg'.*expected a JPEG or PNG"
        ):
            compressed_to_numpy(SimpleNamespace(format="jpeg", data=data))
    with pytest.raises(ConversionError, match="has no data"):
        compressed_to_numpy(SimpleNamespace(format="jpeg", data=b""))
    with pytest.raises(ConversionError, match="holds 4 bytes; expected a 12-byte header"):
        compressed_to_numpy(SimpleNamespace(format="16UC1; compressedDepth png", data=bytes(4)))


def test_numpy_to_compressed_rejects_bad_input(humble: RosbagsFactory) -> None:
    with pytest.raises(ConversionError, match="unsupported compressed format 'tiff'"):
        numpy_to_compressed(smooth_bgr(), "tiff", None, humble)
    with pytest.raises(ConversionError, match="jpeg cannot hold 'mono16'"):
        numpy_to_compressed(np.zeros((4, 4), np.uint16), "jpeg", None, humble)
    with pytest.raises(ConversionError, match="cannot tell the encoding"):
        numpy_to_compressed(np.zeros((4, 4), np.float32), "png", None, humble)
    with pytest.raises(ConversionError, match="cannot compress encoding 'uyvy'"):
        numpy_to_compressed(np.zeros((4, 4, 2), np.uint8), "png", None, humble, encoding="uyvy")


def test_16_bit_files_and_messages_scale_alike(humble: RosbagsFactory, tmp_path) -> None:
    """A 16-bit PNG read by the CLI and the same pixels in an rgb16 message give the same 8-bit
    input (cv_bridge's rounding, not truncation)."""
    from segmentation_ros.engine.imageio import read_image

    pixels = np.random.default_rng(3).integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    pixels[0, 0] = [200, 65535, 0]  # 200 rounds to 1; truncation (>> 8) gave 0
    path = tmp_path / "deep.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    from_file = read_image(path)
    from_message = image_to_color(numpy_to_image(pixels, "rgb16", None, humble)).pixels
    assert from_file.dtype == np.uint8
    np.testing.assert_array_equal(from_file, from_message)
    np.testing.assert_array_equal(from_file, np.round(pixels / 257.0).astype(np.uint8))


# --- hardening: any message content gives ConversionError or a valid image -------------------------
# The names new with the pixel limit are imported inside the tests, so that this module still loads
# against older code and each test fails on its own.


@pytest.mark.parametrize("encoding", COLOR_ENCODINGS)
@pytest.mark.parametrize("height, width", [(0, 0), (0, 4), (3, 0)])
def test_zero_sized_images_give_empty_colour(encoding: str, height: int, width: int) -> None:
    """Bayer and YUV included (OpenCV refuses empty input; cv2.error used to escape)."""
    dtype, channels = encoding_info(encoding)
    step = width * channels * dtype.itemsize
    msg = image_with(encoding=encoding, height=height, width=width, step=step, data=b"")
    color = image_to_color(msg)
    assert color.pixels.dtype == np.uint8
    assert color.pixels.shape == ((height, width) if color.order == "gray" else (height, width, 3))
    assert image_to_rgb(msg).shape == (height, width, 3)


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"encoding": "8UC513", "step": 3 * 513}, "unknown image encoding '8UC513'.*C1 to C512"),
        ({"encoding": "8UC\u0663"}, "unknown image encoding"),  # an Arabic-Indic 3 is no channel count
        ({"encoding": None}, "unknown image encoding 'None'"),
        ({"width": -3}, "width is -3; expected a non-negative integer"),
        ({"height": -1, "data": b""}, "height is -1"),
        ({"step": "wide"}, "step is 'wide'"),
        ({"height": float("nan")}, "height is nan"),
        ({"data": [0, 1, 2, 3, 4, 300]}, "data of type list is not bytes"),
        ({"data": None}, "data of type NoneType is not bytes"),
    ],
)
def test_absurd_fields_are_conversion_errors(fields: dict, match: str) -> None:
    msg = image_with(**fields)
    for convert in (image_to_numpy, image_to_color, image_to_rgb):
        with pytest.raises(ConversionError, match=match):
            convert(msg)


def test_raw_images_over_the_pixel_limit_are_refused_before_anything_is_allocated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from segmentation_ros.engine.imageio import DEFAULT_MAX_PIXELS, ImageTooLargeError

    # 8001 x 5000 mono8 is just over 40 megapixels; calloc'd zeros cost no memory until touched.
    msg = image_with(height=5000, width=8001, step=8001, data=np.zeros(5000 * 8001, np.uint8))
    for convert in (image_to_numpy, image_to_color, image_to_rgb):
        with pytest.raises(ConversionError, match=rf"8001x5000 = 40005000 pixels, over the limit of {DEFAULT_MAX_PIXELS}") as info:
            convert(msg)
        assert isinstance(info.value.__cause__, ImageTooLargeError)
    # checked before the data: a message that declares a huge image and holds nothing says so
    huge = image_with(height=2**31, width=2**31, step=2**31, data=b"")
    with pytest.raises(ConversionError, match="over the limit"):
        image_to_color(huge)
    # the limit is the caller's: 5 x 6 = 30 pixels
    small = numpy_to_image(sample("rgb8"), "rgb8", None, RosbagsFactory("humble"))
    with pytest.raises(ConversionError, match="6x5 = 30 pixels, over the limit of 29"):
        image_to_color(small, max_pixels=29)
    assert image_to_color(small, max_pixels=30).pixels.shape == (5, 6, 3)
    assert image_to_numpy(small, max_pixels=30).shape == (5, 6, 3)


# cv_bridge's codes for bayer_* -> rgb8 (cv_bridge.cpp, getConversionCodes)
CV_BRIDGE_BAYER = {
    "rggb": cv2.COLOR_BayerBG2RGB,
    "bggr": cv2.COLOR_BayerRG2RGB,
    "gbrg": cv2.COLOR_BayerGR2RGB,
    "grbg": cv2.COLOR_BayerGB2RGB,
}


@pytest.mark.parametrize("pattern", list(CV_BRIDGE_BAYER))
def test_bayer_demosaics_like_cv_bridge(pattern: str, humble: RosbagsFactory) -> None:
    """cv_bridge's cvtColor(bayer_* -> rgb8) runs its colour code on the image as it is and the depth
    conversion (x * 255 / 65535, rounded) last: 16-bit mosaics are demosaiced at 16 bits; scaling
    first is off by one on some pixels."""
    rng = np.random.default_rng(7)
    mosaic8 = rng.integers(0, 256, (12, 16), dtype=np.uint8)
    color8 = image_to_color(numpy_to_image(mosaic8, f"bayer_{pattern}8", None, humble))
    np.testing.assert_array_equal(color8.pixels, cv2.cvtColor(mosaic8, CV_BRIDGE_BAYER[pattern]))
    mosaic16 = rng.integers(0, 65536, (12, 16), dtype=np.uint16)
    color16 = image_to_color(numpy_to_image(mosaic16, f"bayer_{pattern}16", None, humble))
    demosaiced = cv2.cvtColor(mosaic16, CV_BRIDGE_BAYER[pattern])
    expected = np.round(demosaiced.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert color8.order == color16.order == "rgb"
    np.testing.assert_array_equal(color16.pixels, expected)


def _encoded(ext: str, pixels: np.ndarray) -> bytes:
    ok, data = cv2.imencode(ext, pixels)
    assert ok, ext
    return data.tobytes()


@pytest.mark.parametrize(
    "ext, pixels",
    [
        (".tiff", np.full((6, 5), 0.5, np.float32)),  # OpenCV would return float32 pixels
        (".tiff", np.full((6, 5, 3), 1000, np.uint16)),
        (".tiff", np.zeros((6, 5, 3), np.uint8)),
        (".hdr", np.full((6, 5, 3), 0.5, np.float32)),
        (".pfm", np.full((6, 5, 3), 0.5, np.float32)),
        (".bmp", np.zeros((6, 5, 3), np.uint8)),
        (".webp", np.zeros((6, 5, 3), np.uint8)),
        (".ppm", np.zeros((6, 5, 3), np.uint8)),
    ],
)
@pytest.mark.parametrize("fmt", ["jpeg", "png", "bgr8; tiff compressed bgr8"])
def test_compressed_payloads_other_than_jpeg_or_png_are_refused(fmt: str, ext: str, pixels: np.ndarray) -> None:
    msg = SimpleNamespace(format=fmt, data=_encoded(ext, pixels))
    for convert in (compressed_to_numpy, compressed_to_color):
        with pytest.raises(ConversionError, match=f"cannot decode compressed image of format {fmt!r}.*expected a JPEG or PNG image"):
            convert(msg)


@pytest.mark.parametrize(
    "payload, declared",
    [(bomb_jpeg(16000, 12000), "16000x12000 = 192000000"), (bomb_png(32768, 32768), "32768x32768 = 1073741824")],
    ids=["jpeg", "png"],
)
def test_compressed_bombs_are_refused_from_the_header(payload: bytes, declared: str, no_decoding: None) -> None:
    msg = SimpleNamespace(format="jpeg", data=payload)
    for convert in (compressed_to_numpy, compressed_to_color):
        with pytest.raises(ConversionError, match=f"format 'jpeg' declares {declared} pixels, over the limit of 40000000"):
            convert(msg)


def test_compressed_pixel_limit_is_the_callers(humble: RosbagsFactory) -> None:
    from segmentation_ros.engine.imageio import ImageTooLargeError

    for fmt in ("png", "jpeg"):
        msg = numpy_to_compressed(smooth_bgr(48, 64), fmt, None, humble)
        with pytest.raises(ConversionError, match="64x48 = 3072 pixels, over the limit of 3071") as info:
            compressed_to_color(msg, max_pixels=3071)
        assert isinstance(info.value.__cause__, ImageTooLargeError)
        assert compressed_to_color(msg, max_pixels=3072).pixels.shape == (48, 64, 3)
        assert compressed_to_numpy(msg, max_pixels=3072).shape == (48, 64, 3)


def test_compressed_depth_failures_are_conversion_errors(no_decoding: None) -> None:
    header = struct.pack("<iff", 0, 100.0, -10.0)
    for fmt in ("16UC1; compressedDepth png", "32FC1; compressedDepth png"):
        with pytest.raises(ConversionError, match="declares 32768x32768 = 1073741824 pixels, over the limit"):
            compressed_to_numpy(SimpleNamespace(format=fmt, data=header + bomb_png(32768, 32768)))
        with pytest.raises(ConversionError, match="compressed depth image .*expected a PNG image"):
            compressed_to_numpy(SimpleNamespace(format=fmt, data=header + bomb_jpeg(8, 8)))
        with pytest.raises(ConversionError, match="expected a PNG image"):
            compressed_to_numpy(SimpleNamespace(format=fmt, data=header + b"garbage!"))


@pytest.mark.parametrize("fmt", ["16UC1; compressedDepth png", "32FC1; compressedDepth png"])
@pytest.mark.parametrize(
    "pixels", [np.zeros((4, 5), np.uint8), np.zeros((4, 5, 3), np.uint16)], ids=["8-bit", "colour"]
)
def test_compressed_depth_is_a_16_bit_one_channel_png(fmt: str, pixels: np.ndarray) -> None:
    payload = struct.pack("<iff", 0, 100.0, -10.0) + _encoded(".png", pixels)
    with pytest.raises(ConversionError, match=r"decoded to .*; expected 16-bit \(H, W\)"):
        compressed_to_numpy(SimpleNamespace(format=fmt, data=payload))


def test_a_png_chunk_longer_than_the_payload_is_refused_before_decoding(no_decoding: None) -> None:
    """OpenCV allocates a chunk's declared length before reading it: an 848-byte PNG whose IDAT
    declares 2.4 GB took 2.4 GB of memory and seconds; the chunk table is checked first."""
    ok, png = cv2.imencode(".png", smooth_bgr(12, 16))
    data = bytearray(png.tobytes())
    assert data[37:41] == b"IDAT"
    data[33:37] = struct.pack(">I", 2_399_142_679)
    for fmt, payload in (("png", bytes(data)), ("16UC1; compressedDepth png", bytes(12) + bytes(data))):
        with pytest.raises(ConversionError, match="PNG chunk b'IDAT' at byte 33 declares 2399142679 bytes; only"):
            compressed_to_numpy(SimpleNamespace(format=fmt, data=payload))
