"""An output bag appears whole or not at all: :func:`atomic_bag` (``segmentation-ros bag``, and the
synthetic bag writer).

The bag is written in a partial directory next to OUT, ``.<OUT name>.partial-<pid>-XXXX/<OUT name>/``
(rosbag2 names its data file after the bag directory), and renamed to OUT at the end; an error or
Ctrl-C removes the partial directory and leaves OUT as it was (with ``overwrite``, the previous OUT
stays until the new one replaces it). Each run holds a lock on its partial directory until it ends,
however it ends, so a run killed outright (SIGKILL, power loss) leaves one whose lock is free: the
next write of the same OUT reports and removes it (:func:`prepare_output`), and gives back a previous
OUT that a run killed between its two renames left there.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

__all__ = ["BagError", "atomic_bag", "prepare_output"]


class BagError(RuntimeError):
    """The bag cannot be processed: unreadable input, OUT in the way, a topic that cannot be copied."""


def prepare_output(dst: Path, overwrite: bool) -> None:
    """Check that ``dst`` can be created (or, with ``overwrite``, replaced), after cleaning up what
    killed runs left next to it.

    Raises:
        BagError: a file where a directory of the path should be, a directory that is not writable,
            or ``dst`` exists and not ``overwrite``.
    """
    parent = Path(os.path.abspath(dst)).parent
    existing = next(p for p in (parent, *parent.parents) if os.path.lexists(p))
    if not existing.is_dir():
        raise BagError(f"cannot create output {dst}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BagError(f"cannot create output {dst}: directory {existing} is not writable")
    if existing == parent:
        try:
            _clean_partials(dst)
        except OSError as exc:
            raise BagError(f"cannot create output {dst}: {exc}") from exc
    if os.path.lexists(dst) and not overwrite:
        raise BagError(f"output {dst} exists; remove it or pass --overwrite")


# A partial output: ".<OUT name>.partial-<pid>-<random>", the directory of a run that is writing OUT.
def _partial_name(dst: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(dst.name)}\.partial-(\d+)-[a-z0-9_]+")


def _clean_partials(dst: Path) -> None:
    """Remove the partial outputs of ``dst`` whose run has ended, reporting each on stderr.

    A run holds a lock on its partial directory until it ends, however it ends (the kernel releases
    it, SIGKILL included), so a directory that can be locked is stale. One that holds the previous OUT
    of an ``overwrite`` killed between its two renames gives it back when OUT is missing.
    """
    pattern = _partial_name(dst)
    for path in sorted(dst.parent.iterdir()):
        match = pattern.fullmatch(path.name)
        if match is None or not path.is_dir() or path.is_symlink() or not _stale(path):
            continue
        previous = path / f"{dst.name}.previous"
        if previous.is_dir() and not os.path.lexists(dst):
            os.replace(previous, dst)
            tqdm.write(f"restored {dst} from {path} (a run stopped while replacing it)", file=sys.stderr)
        shutil.rmtree(path, ignore_errors=True)
        tqdm.write(
            f"removed {path}: partial output of a run (process {match.group(1)}) that ended before finishing",
            file=sys.stderr,
        )


def _lock(path: Path) -> int | None:
    """Lock the directory ``path`` for this process (fcntl.flock; None where there is no fcntl).

    Returns the descriptor that holds the lock; closing it, or the end of the process, releases it.
    Raises OSError when another process holds it.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, and stale partial outputs are left alone
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _stale(path: Path) -> bool:
    """Whether the partial output ``path`` belongs to no running process (its lock is free)."""
    try:
        fd = _lock(path)
    except OSError:  # locked: a run is writing it (or it cannot be opened: leave it)
        return False
    if fd is None:
        return False
    os.close(fd)
    return True


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver them as usual, so that the renames
    that put OUT in place are never cut in between. Only the main thread handles signals; elsewhere
    this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, _frame: caught.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        if caught:
            signal.raise_signal(caught[0])


@contextlib.contextmanager
def atomic_bag(dst: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a path to write the bag at; move it to ``dst`` when the block ends without an error.

    The bag is written to ``<dst parent>/.<dst name>.partial-<pid>-XXXX/<dst name>``: rosbag2 names
    its data file after the bag directory, so the directory keeps its final name and only its parent
    changes. An error or an interrupt removes the partial directory and leaves ``dst`` as it was; a
    process killed outright leaves it, and the next ``atomic_bag`` (or :func:`process_bag`) of the
    same ``dst`` removes it.

    Raises:
        BagError: ``dst`` cannot be created, or exists and not ``overwrite``.
    """
    dst = Path(dst)
    prepare_output(dst, overwrite)
    temp: Path | None = None
    lock: int | None = None
    try:
        with _signals_deferred():  # the partial directory is known (and removed below) once it exists
            try:
                dst.parent.mkdir(parents=True, exist_ok=True)
                temp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.partial-{os.getpid()}-", dir=dst.parent))
            except OSError as exc:
                raise BagError(f"cannot create output {dst}: {exc}") from exc
            with contextlib.suppress(OSError):  # a file system without locks: never taken for stale
                lock = _lock(temp)
        yield temp / dst.name
        with _signals_deferred():  # both renames, or neither
            if os.path.lexists(dst):
                if not overwrite:
                    raise BagError(f"output {dst} appeared while processing; not replacing it (use --overwrite)")
                previous = temp / f"{dst.name}.previous"
                os.replace(dst, previous)
                try:
                    os.replace(temp / dst.name, dst)
                except BaseException:
                    os.replace(previous, dst)
                    raise
            else:
                os.replace(temp / dst.name, dst)
    finally:
        if lock is not None:
            os.close(lock)
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
