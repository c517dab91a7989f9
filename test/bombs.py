"""Decompression bombs for the tests: tiny, well-formed image payloads whose headers declare a huge
image (the conversions, image files and the CLI must refuse them from the header). The fixture
``no_decoding`` (conftest.py) fails a test that lets one reach OpenCV's decoder."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np


def bomb_jpeg(width: int, height: int) -> bytes:
    """A valid 8x8 JPEG (631 bytes) whose frame header (SOF0) declares ``width`` x ``height``."""
    ok, jpeg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    data = bytearray(jpeg.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bomb_png(width: int, height: int, pixels: np.ndarray | None = None) -> bytes:
    """A valid small PNG whose IHDR (CRC fixed, so it stays a well-formed PNG) declares ``width`` x ``height``."""
    ok, png = cv2.imencode(".png", np.zeros((8, 8), np.uint8) if pixels is None else pixels)
    data = bytearray(png.tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)
