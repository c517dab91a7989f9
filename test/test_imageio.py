"""imageio's atomic writers: a reader never sees a half-written file, a failed write leaves no trace."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

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
