"""imageio's atomic writers: a reader never sees a half-written file, a failed write leaves no trace."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bombs import bomb_png

from segmentation_ros.engine import imageio


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_atomic_write_bytes_creates_parents_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "out.bin"
    assert imageio.atomic_write_bytes(path, b"first") == path
    assert path.read_bytes() == b"first"
    imageio.atomic_write_bytes(str(path), b"second")
    assert path.read_bytes() == b"second"
    assert _names(path.parent) == ["out.bin"]


class _HalfWriter:
    """A file whose write stores half the data, then fails (a full disk, an interrupt mid-write)."""

    def __init__(self, file: Any, error: type[BaseException]):
        self.file, self.error = file, error

    def __enter__(self) -> _HalfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()

    def write(self, data: bytes) -> int:
        self.file.write(data[: len(data) // 2])
        self.file.flush()
        raise self.error("interrupted mid-write")


@pytest.mark.parametrize("where", ["write", "replace"])
@pytest.mark.parametrize("error", [OSError, KeyboardInterrupt])
def test_a_failed_write_keeps_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, error: type[BaseException]
) -> None:
    path = tmp_path / "out.json"
    path.write_text("old")
    (tmp_path / "other.txt").write_text("untouched")
    if where == "write":
        fdopen = os.fdopen

        def half_open(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> _HalfWriter:
            return _HalfWriter(fdopen(fd, mode, *args, **kwargs), error)

        monkeypatch.setattr(os, "fdopen", half_open)
    else:

        def fail(src: object, dst: object) -> None:
            assert Path(str(src)).name.startswith(".out.json.") and Path(str(src)).read_bytes() == b"new"
            raise error("interrupted before the rename")

        monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(error):
        imageio.atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert _names(tmp_path) == ["other.txt", "out.json"]  # no .out.json.*.tmp left behind


def test_write_json_and_png_are_complete_files(tmp_path: Path) -> None:
    data = {"a": [1, 2.5, None], "b": "x"}
    path = imageio.write_json(tmp_path / "d.json", data)
    assert json.loads(path.read_text()) == data and path.read_text().endswith("\n")
    image = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    imageio.write_png(tmp_path / "i.png", image)
    np.testing.assert_array_equal(imageio.read_image(tmp_path / "i.png"), image)
    assert _names(tmp_path) == ["d.json", "i.png"]


def test_written_files_get_the_permissions_of_a_plain_open(tmp_path) -> None:
    """mkstemp creates 0600 files; a published PNG or checkpoint must be as readable as open() makes it."""
    import stat

    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    written = imageio.atomic_write_bytes(tmp_path / "atomic.bin", b"x")
    assert stat.S_IMODE(written.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


# --- decoding: the header first, the pixel limit, only the formats asked for -----------------------


def _encoded(ext: str, pixels: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(ext, pixels)
    assert ok, ext
    return data.tobytes()




@pytest.mark.parametrize(
    "ext, name", [(".jpg", "JPEG"), (".png", "PNG"), (".bmp", "BMP"), (".tiff", "TIFF"), (".webp", "WEBP"), (".ppm", "PPM")]
)
def test_the_header_gives_format_and_size_without_decoding(ext: str, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = _encoded(ext, np.zeros((7, 11, 3), np.uint8))
    monkeypatch.setattr("cv2.imdecode", None)  # nothing may decode
    assert imageio.read_image_header(payload) == (name, 11, 7)
    assert imageio.read_image_header(np.frombuffer(payload, np.uint8)).format == name


def test_read_image_refuses_a_bomb_from_its_header(tmp_path: Path, no_decoding: None) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(32768, 32768))  # 1 gigapixel declared in under 100 bytes
    with pytest.raises(imageio.ImageTooLargeError, match=r"bomb.png declares 32768x32768 = 1073741824 pixels, over the limit of 40000000"):
        imageio.read_image(path)
    assert imageio.DEFAULT_MAX_PIXELS == 40_000_000


def test_the_pixel_limit_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "frame.png"
    path.write_bytes(_encoded(".png", np.zeros((6, 7, 3), np.uint8)))
    assert imageio.read_image(path, max_pixels=42).shape == (6, 7, 3)
    with pytest.raises(imageio.ImageTooLargeError, match="7x6 = 42 pixels, over the limit of 41"):
        imageio.read_image(path, max_pixels=41)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
            imageio.read_image(path, max_pixels=bad)


@pytest.mark.parametrize(
    "ext, pixels",
    [(".tiff", np.full((3, 4), 0.5, np.float32)), (".bmp", np.zeros((3, 4, 3), np.uint8)), (".hdr", np.ones((3, 4, 3), np.float32))],
)
def test_decode_image_takes_only_the_formats_asked_for(ext: str, pixels: np.ndarray) -> None:
    """OpenCV decodes by content; a payload of another format is refused, not decoded."""
    payload = _encoded(ext, pixels)
    with pytest.raises(ValueError, match=r"cannot decode message: \d+ bytes starting .*; expected a JPEG or PNG image"):
        imageio.decode_image(payload, formats=("JPEG", "PNG"), what="message")
    with pytest.raises(ValueError, match="unknown image formats"):
        imageio.decode_image(payload, formats=("GIF",))


def test_read_image_refuses_float_and_foreign_files(tmp_path: Path) -> None:
    for ext, pixels, match in (
        (".tiff", np.full((3, 4), 0.5, np.float32), "unsupported pixel type float32"),
        (".hdr", np.ones((3, 4, 3), np.float32), "expected a JPEG, PNG, BMP, TIFF, WebP or PNM image"),
        (".pfm", np.ones((3, 4, 3), np.float32), "expected a JPEG, PNG, BMP, TIFF, WebP or PNM image"),
    ):
        path = tmp_path / f"x{ext}"
        path.write_bytes(_encoded(ext, pixels))
        with pytest.raises(ValueError, match=match):
            imageio.read_image(path)
