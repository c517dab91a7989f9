"""segmentation-ros bag on bad input and bad luck: bad frames, unreadable bags, unwritable outputs, signals.

What each case must give (the command's exit statuses, ``bag_command.EXIT_STATUSES``): a bad frame is
skipped and listed in the final report (exit 0); a bag that cannot be read or an OUT that cannot be
created ends the run with one line on stderr and exit 2, leaving nothing; Ctrl-C exits 130 and SIGTERM
143, leaving no partial output; a run killed outright leaves a partial directory that the next run on
the same OUT reports and removes. Bags are tiny (24x32 frames), the model a randomly initialised
LR-ASPP on the CPU; signals need the real command, so those tests run it as a subprocess.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from test_bag import SEMANTIC_ARGS, leftovers, read_bag, run_cli

from segmentation_ros.ros.conversions import numpy_to_compressed, numpy_to_image
from segmentation_ros.ros.messages import RosbagsFactory, make_header
from segmentation_ros.ros.node_core import SegmentationCore

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

H, W = 24, 32
T0 = 1_700_000_000 * 10**9
CAMERA = "/cam/image_raw"
REPO = Path(__file__).resolve().parents[1]


def write_camera_bag(path: Path, frames: int, storage: str = "mcap") -> list[int]:
    """One camera, ``frames`` rgb8 frames at 10 Hz; returns their receive times."""
    f = RosbagsFactory("humble")
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    pixels = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    times = [T0 + k * 100_000_000 for k in range(frames)]
    with Writer(path, version=8, storage_plugin=plugin) as w:
        conn = w.add_connection(CAMERA, "sensor_msgs/msg/Image", typestore=f.typestore)
        for t in times:
            w.write(conn, t, f.serialize(numpy_to_image(pixels, "rgb8", make_header(f, t, "cam"), f)))
    return times


def data_file(bag: Path) -> Path:
    return next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))


def one_line_error(rc: int, stderr: str, *needles: str) -> None:
    """Exit 2 and a single line on stderr naming the problem: no traceback."""
    lines = stderr.strip().splitlines()
    assert rc == 2 and len(lines) == 1, stderr
    assert lines[0].startswith("segmentation-ros: error: ") and all(n in lines[0] for n in needles), lines


# ---- bad frames ---------------------------------------------------------------------------------
def test_bad_frames_are_skipped_and_listed_in_the_final_report(tmp_path: Path) -> None:
    f = RosbagsFactory("humble")
    good = numpy_to_image(np.zeros((H, W, 3), np.uint8), "rgb8", make_header(f, T0, "cam"), f)
    short = numpy_to_image(np.zeros((H, W, 3), np.uint8), "rgb8", make_header(f, T0, "cam"), f)
    short.data = short.data[: -W * 3]  # one row short
    empty = numpy_to_image(np.zeros((0, 0, 3), np.uint8), "rgb8", make_header(f, T0, "cam"), f)
    jpeg = numpy_to_compressed(np.zeros((H, W, 3), np.uint8), "jpeg", make_header(f, T0, "rear"), f)
    broken_jpeg = numpy_to_compressed(np.zeros((H, W, 3), np.uint8), "jpeg", make_header(f, T0, "rear"), f)
    broken_jpeg.data = broken_jpeg.data[:20]
    bag = tmp_path / "in"
    with Writer(bag, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        cam = w.add_connection(CAMERA, "sensor_msgs/msg/Image", typestore=f.typestore)
        rear = w.add_connection("/rear/image/compressed", "sensor_msgs/msg/CompressedImage", typestore=f.typestore)
        frames = [
            (cam, good), (cam, short), (rear, jpeg), (cam, bytes(f.serialize(good))[:40]), (cam, empty),
            (rear, broken_jpeg), (cam, good), (rear, jpeg),
        ]  # fmt: skip
        for k, (conn, msg) in enumerate(frames):
            data = msg if isinstance(msg, bytes) else f.serialize(msg)
            w.write(conn, T0 + k, data)
    rc, stdout, stderr = run_cli(["bag", str(bag), str(tmp_path / "out"), *SEMANTIC_ARGS, "--quiet"])
    assert rc == 0, stderr
    assert "8 frames from 2 camera(s)" in stdout and "4 segmented, 4 rejected" in stdout
    # Reported at the end, after the counts: each rejected frame, its topic, time and reason.
    report = stdout[stdout.index("frames/s") :]
    assert f"{CAMERA} at {T0 + 1} ns: " in report and "expected height * step" in report
    assert f"{CAMERA} at {T0 + 3} ns: cannot deserialize sensor_msgs/msg/Image" in report
    assert f"{CAMERA} at {T0 + 4} ns: " in report and "zero-sized" in report
    assert f"/rear/image/compressed at {T0 + 5} ns: " in report
    contents = read_bag(tmp_path / "out")
    assert [t for t, _ in contents.raw["/cam/semantic/labels"]] == [T0, T0 + 6]
    assert [t for t, _ in contents.raw["/rear/semantic/labels"]] == [T0 + 2, T0 + 7]
    assert len(contents.raw[CAMERA]) == 5  # every input message copied, bad ones included


# ---- input that cannot be read ------------------------------------------------------------------
def _no_metadata(bag: Path) -> None:
    (bag / "metadata.yaml").unlink()


def _corrupt_chunk(bag: Path) -> None:
    """Every bit of the middle third of the mcap file flipped: records and their lengths garbled."""
    path = data_file(bag)
    data = bytearray(path.read_bytes())
    third = len(data) // 3
    data[third : 2 * third] = bytes(b ^ 0xFF for b in data[third : 2 * third])
    path.write_bytes(bytes(data))


def _truncated(bag: Path) -> None:
    path = data_file(bag)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("storage", "damage", "needles"),
    [
        ("mcap", _no_metadata, ("no metadata.yaml", "in.mcap")),
        ("mcap", _corrupt_chunk, ("cannot read bag",)),
        ("sqlite3", _truncated, ("cannot read bag",)),
    ],
    ids=["no-metadata", "corrupt-mcap-chunk", "truncated-db3"],
)
def test_unreadable_input_ends_with_one_line(tmp_path: Path, storage: str, damage, needles) -> None:
    bag = tmp_path / "in"
    write_camera_bag(bag, 12, storage)
    damage(bag)
    out = tmp_path / "out"
    rc, _, stderr = run_cli(["bag", str(bag), str(out), *SEMANTIC_ARGS, "--quiet"])
    one_line_error(rc, stderr, str(bag), *needles)
    assert not out.exists() and not leftovers(out)


# ---- outputs that cannot be created -------------------------------------------------------------
def test_output_under_a_file_ends_with_one_line(tmp_path: Path) -> None:
    bag = tmp_path / "in"
    write_camera_bag(bag, 1)
    (tmp_path / "file").write_text("not a directory")
    out = tmp_path / "file" / "sub" / "out"
    rc, _, stderr = run_cli(["bag", str(bag), str(out), *SEMANTIC_ARGS, "--quiet"])
    one_line_error(rc, stderr, f"cannot create output {out}", f"{tmp_path / 'file'} is not a directory")
    assert (tmp_path / "file").read_text() == "not a directory"


def test_output_in_a_read_only_directory_ends_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bag = tmp_path / "in"
    write_camera_bag(bag, 1)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:
        # Root writes through the mode bits; the refusal a user gets from the kernel is simulated.
        def refuse(*args, dir=None, **kwargs):  # noqa: A002 - tempfile.mkdtemp's own name
            raise PermissionError(errno.EACCES, "Permission denied", dir)

        monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    out = locked / "out"
    try:
        rc, _, stderr = run_cli(["bag", str(bag), str(out), *SEMANTIC_ARGS, "--quiet"])
    finally:
        locked.chmod(0o755)
    one_line_error(rc, stderr, f"cannot create output {out}")
    assert list(locked.iterdir()) == []


# ---- interrupts ---------------------------------------------------------------------------------
def _start(bag: Path, out: Path) -> subprocess.Popen:
    """The command as a user runs it, once it is writing OUT's partial directory."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "segmentation_ros.tools.cli", "bag", str(bag), str(out), *SEMANTIC_ARGS]
    proc = subprocess.Popen([*argv, "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not leftovers(out):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the command never started writing"
        time.sleep(0.01)
    return proc


@pytest.fixture(scope="module")
def long_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough frames that a run is still writing when a signal comes (a few seconds of work)."""
    bag = tmp_path_factory.mktemp("long") / "in"
    write_camera_bag(bag, 400)
    return bag


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_removes_the_partial_output(long_bag: Path, tmp_path: Path, signum: int, status: int) -> None:
    out = tmp_path / "out"
    proc = _start(long_bag, out)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == status, stderr
    assert stderr.strip().splitlines()[-1] == (
        f"segmentation-ros bag: interrupted ({signal.Signals(signum).name}); {out} not written"
    )
    assert "Traceback" not in stderr
    assert not out.exists() and not leftovers(out)


def test_killed_run_is_reported_and_cleaned_by_the_next(long_bag: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _start(long_bag, out)
    proc.kill()  # SIGKILL: no handler runs, the partial directory stays
    proc.communicate(timeout=60)
    [partial] = leftovers(out)
    assert f".partial-{proc.pid}-" in partial

    # The partial directory of a run still writing OUT holds its lock: the next run leaves it alone.
    running = tmp_path / f".out.partial-{os.getpid()}-running1"
    running.mkdir()
    lock = os.open(running, os.O_RDONLY)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    small = tmp_path / "small"
    write_camera_bag(small, 2)
    try:
        rc, stdout, stderr = run_cli(["bag", str(small), str(out), *SEMANTIC_ARGS, "--quiet"])
    finally:
        os.close(lock)
    assert rc == 0, stderr
    assert f"removed {out.parent / partial}" in stderr and f"(process {proc.pid})" in stderr
    assert leftovers(out) == [running.name] and str(running) not in stderr
    assert "2 segmented" in stdout


def test_output_killed_while_being_replaced_is_given_back(tmp_path: Path) -> None:
    """A run killed between the two renames of --overwrite left OUT's previous bag in its partial
    directory: the next run puts it back before anything else."""
    bag = tmp_path / "in"
    write_camera_bag(bag, 1)
    out = tmp_path / "out"
    partial = tmp_path / ".out.partial-4242-abcd1234"  # no process holds its lock
    (partial / "out.previous").mkdir(parents=True)
    (partial / "out.previous" / "keep.txt").write_text("previous")
    rc, _, stderr = run_cli(["bag", str(bag), str(out), *SEMANTIC_ARGS, "--quiet"])
    assert f"restored {out}" in stderr and f"removed {partial}" in stderr
    assert rc == 2 and "exists; remove it or pass --overwrite" in stderr  # it is OUT again
    assert (out / "keep.txt").read_text() == "previous" and not partial.exists()


def test_interrupt_after_the_output_is_written_says_it_is_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bag = tmp_path / "in"
    write_camera_bag(bag, 2)
    cleanup = SegmentationCore.cleanup

    def interrupted_cleanup(self: SegmentationCore) -> None:  # Ctrl-C while the model is freed
        cleanup(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(SegmentationCore, "cleanup", interrupted_cleanup)
    out = tmp_path / "out"
    rc, _, stderr = run_cli(["bag", str(bag), str(out), *SEMANTIC_ARGS, "--quiet"])
    assert rc == 130
    assert stderr.strip() == f"segmentation-ros bag: interrupted (SIGINT) after {out} was written; it is complete"
    assert len(read_bag(out).raw["/cam/semantic/labels"]) == 2 and not leftovers(out)


def test_interrupt_between_the_final_renames_waits_for_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--overwrite puts OUT in place with two renames (old OUT aside, new OUT in); Ctrl-C between
    them takes effect once both are done, and the report says so."""
    bag = tmp_path / "in"
    write_camera_bag(bag, 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous")
    replace = os.replace

    def replace_then_interrupt(src: str | os.PathLike, dst: str | os.PathLike) -> None:
        replace(src, dst)
        if Path(dst).name == "out.previous":  # the old OUT is aside, the new one not yet in place
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, "replace", replace_then_interrupt)
    rc, _, stderr = run_cli(["bag", str(bag), str(out), *SEMANTIC_ARGS, "--quiet", "--overwrite"])
    assert rc == 130
    assert stderr.strip() == f"segmentation-ros bag: interrupted (SIGINT) after {out} was written; it is complete"
    assert not (out / "keep.txt").exists() and len(read_bag(out).raw["/cam/semantic/labels"]) == 2
    assert not leftovers(out)


def test_max_image_pixels_is_the_bags_limit_too(tmp_path: Path) -> None:
    """--max-image-pixels reaches the node core: frames over it are rejected unread, with the reason."""
    from segmentation_ros.tools.synthetic import generate_sequence, write_sequence_bag

    bag = write_sequence_bag(tmp_path / "cam", generate_sequence(2, 1, 32, 24), depth=False)
    argv = ["bag", str(bag), str(tmp_path / "out"), "--task", "semantic", "--model", "lraspp_mobilenet_v3_large"]
    argv += ["--weights", "none", "--device", "cpu", "--quiet", "--max-image-pixels", "700"]
    code, out, err = run_cli(argv)
    assert code == 0, err
    assert "2 frames from 1 camera(s) (/camera/image_raw): 0 segmented, 2 rejected" in out
    assert "32x24 = 768 pixels, over the limit of 700" in out + err


def test_a_depth_frame_that_cannot_be_read_is_counted_and_costs_no_colour_frame(tmp_path: Path) -> None:
    """--depth-topic: a truncated depth message and one of another size are counted as unusable;
    every colour frame is still segmented, and the good depth frame gives its 3D outputs."""
    f = RosbagsFactory("humble")
    k = [40.0, 0.0, W / 2, 0.0, 40.0, H / 2, 0.0, 0.0, 1.0]
    bag = tmp_path / "in"
    with Writer(bag, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        cam = w.add_connection(CAMERA, "sensor_msgs/msg/Image", typestore=f.typestore)
        info = w.add_connection("/cam/camera_info", "sensor_msgs/msg/CameraInfo", typestore=f.typestore)
        depth = w.add_connection("/cam/depth/image", "sensor_msgs/msg/Image", typestore=f.typestore)
        for n, kind in enumerate(("truncated", "small", "good")):
            header = make_header(f, T0 + n * 10**8, "cam")
            w.write(info, T0 + 3 * n, f.serialize(f.new("sensor_msgs/msg/CameraInfo", header=header, height=H, width=W, k=k)))
            meters = np.full((H, W) if kind != "small" else (H // 2, W // 2), 2.0, np.float32)
            data = bytes(f.serialize(numpy_to_image(meters, "32FC1", header, f)))
            w.write(depth, T0 + 3 * n + 1, data[:40] if kind == "truncated" else data)
            w.write(cam, T0 + 3 * n + 2, f.serialize(numpy_to_image(np.zeros((H, W, 3), np.uint8), "rgb8", header, f)))
    argv = ["bag", str(bag), str(tmp_path / "out"), *SEMANTIC_ARGS, "--quiet", "--depth-topic", "/cam/depth/image"]
    rc, stdout, stderr = run_cli(argv)
    assert rc == 0, stderr
    assert "3 frames from 1 camera(s) (/cam/image_raw): 3 segmented, 0 rejected" in stdout
    # received: the two that deserialized; paired: the good one; the truncated one left its colour frame unmatched
    assert "depth: 2 frames, 1 paired, 1 colour frames without depth, 2 unusable" in stdout
    assert "unreadable /cam/depth/image" in stderr
    points = read_bag(tmp_path / "out").raw["/cam/points"]
    assert [t for t, _ in points] == [T0 + 8]  # only the good frame's
