#!/usr/bin/env python3
"""End-to-end latency of the live segmentation_node over DDS, measured from outside the node.

``python scripts/live_latency.py --size 320x240 --rate 5 --seconds 20`` (with the interpreter of an
environment that has rclpy, e.g. the one ``scripts/ros_env.py`` prepares):

1. starts ``segmentation_node`` as a child process (panoptic with the demo models ``shapes_lraspp``
   and ``shapes_maskrcnn``, their shipped weights, CPU unless ``--device``), in a namespace of its
   own, and waits until its lifecycle state (``<node>/get_state``) is *active*;
2. pre-renders a few synthetic scenes (``synthetic.generate_scene``) as ``sensor_msgs/Image``
   (rgb8) before any clock starts, then publishes them at ``--rate`` Hz (best effort, keep last 1,
   like a camera driver), each stamped with the current time;
3. subscribes (reliable, keep last 5, like the node's outputs) to the non-lazy outputs
   (``panoptic/ids``, ``detections``; ``--all-eager`` adds ``semantic/labels``,
   ``semantic/confidence`` and ``instances/ids``) and, with ``--lazy``, to the lazy images
   (``semantic/color``, ``panoptic/color``, ``overlay``), which the node builds only while someone
   subscribes (these are the panoptic task's; ``--task semantic|instance`` gets its own);
4. after ``--warmup`` seconds, measures for ``--seconds`` seconds, then drains late outputs.

Latency = the time the subscription callback runs minus the frame's header stamp (both the wall
clock of this machine). It is split with the sample's DDS timestamps into *node* (stamp -> the
node's write), *transport* (write -> reception by this process's DDS) and *dispatch* (reception ->
callback). Subscriptions take the serialized sample (``raw=True``) and read only the header
stamp, so the measuring side does not deserialize megabytes of pixels per frame.

Per topic: outputs received for the frames sent in the measured window, their rate, latency
p50/p95/p99/max and how many took over a second. ``no output`` counts the window's frames that never
came back on the first topic (``panoptic/ids``): replaced in the node's mailbox before inference
(its ``frames_dropped_stale``, whose change over the window is read from ``/diagnostics``: ``of
which stale``) or never seen by the node (``lost on input``: sent minus the node's
``frames_received``, +- the frames of a diagnostics period at the window's edges). The summary
row's latencies are over all subscribed topics. A Markdown table is printed; ``--json FILE`` writes
everything, with every sample's timings when ``--samples`` is given.

Every ROS process here (this one and the child) runs with ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``
and a random ``ROS_DOMAIN_ID`` (1-100, or ``--domain-id``), so no traffic leaves the machine and
concurrent runs do not see each other. ``--fastdds-profile FILE`` sets ``FASTDDS_DEFAULT_PROFILES_FILE``
for both sides (``--profile-for node|tool``: one side only); without it neither side gets one.
The child gets SIGINT, then SIGTERM, then SIGKILL, on every way out (and dies with this process:
``PR_SET_PDEATHSIG``); a watchdog ends the whole run after its planned duration plus a margin, so
the tool always stops by itself.
"""

from __future__ import annotations

import argparse
import array
import json
import math
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Outputs per task: subscribed by default / with --all-eager / with --lazy (built only while subscribed).
EAGER_MAIN = {
    "panoptic": ("panoptic/ids", "detections"),
    "instance": ("instances/ids", "detections"),
    "semantic": ("semantic/labels",),
}
EAGER_MORE = {
    "panoptic": ("semantic/labels", "semantic/confidence", "instances/ids"),
    "instance": (),
    "semantic": ("semantic/confidence",),
}
LAZY = {
    "panoptic": ("semantic/color", "panoptic/color", "overlay"),
    "instance": ("overlay",),
    "semantic": ("semantic/color", "overlay"),
}
ACTIVE = 3  # lifecycle_msgs/msg/State.PRIMARY_STATE_ACTIVE


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if w < 32 or h < 32:
        raise argparse.ArgumentTypeError(f"size too small: {text}")
    return w, h


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="End-to-end latency of the live segmentation_node over DDS (synthetic frames in, outputs timed).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--size", type=parse_size, default=(320, 240), help="frame size WIDTHxHEIGHT")
    p.add_argument("--rate", type=float, default=5.0, help="input frames per second")
    p.add_argument("--seconds", type=float, default=20.0, help="measured window [s]")
    p.add_argument(
        "--warmup", type=float, default=5.0, help="publishing before the window [s] (after the first output)"
    )
    p.add_argument(
        "--drain",
        type=float,
        default=15.0,
        help="at most this long to wait for late outputs after the window [s]",
    )
    p.add_argument(
        "--lazy", action="store_true", help="also subscribe to semantic/color, panoptic/color and overlay"
    )
    p.add_argument(
        "--all-eager",
        action="store_true",
        help="also subscribe to semantic/labels, semantic/confidence, instances/ids",
    )
    p.add_argument("--scenes", type=int, default=8, help="pre-rendered scenes, published in turn")
    p.add_argument("--seed", type=int, default=0, help="scene seed")
    p.add_argument("--device", default="cpu", help="node parameter 'device'")
    p.add_argument("--task", default="panoptic", choices=("semantic", "instance", "panoptic"))
    p.add_argument("--semantic-model", default="shapes_lraspp")
    p.add_argument("--instance-model", default="shapes_maskrcnn")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="extra node parameter (repeatable)",
    )
    p.add_argument(
        "--node-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra ROS argument for the node, after --ros-args (repeatable; e.g. --node-arg=--log-level --node-arg=warn)",
    )
    p.add_argument(
        "--node", default=str(Path(sys.executable).with_name("segmentation_node")), help="node executable"
    )
    p.add_argument(
        "--namespace", default="/live_latency", help="the node's namespace (its topics are under it)"
    )
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: random 1-100)")
    p.add_argument(
        "--fastdds-profile", default=None, help="Fast DDS XML profiles file (FASTDDS_DEFAULT_PROFILES_FILE)"
    )
    p.add_argument(
        "--profile-for",
        choices=("both", "node", "tool"),
        default="both",
        help="who gets --fastdds-profile: both processes, only the node (its outputs' writer) or only this tool (the camera)",
    )
    p.add_argument("--sub-depth", type=int, default=5, help="depth of the output subscriptions (keep last)")
    p.add_argument(
        "--sub-best-effort", action="store_true", help="best-effort output subscriptions (default reliable)"
    )
    p.add_argument(
        "--startup-timeout", type=float, default=180.0, help="for the node to become active and answer [s]"
    )
    p.add_argument(
        "--node-log", default=None, help="write the node's stdout/stderr here (default: a temp file)"
    )
    p.add_argument("--json", default=None, help="write the results as JSON to this file")
    p.add_argument("--samples", action="store_true", help="with --json: include every sample's timings")
    p.add_argument("--label", default="", help="text for the first column of the Markdown row")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.warmup < 0 or args.drain < 0 or args.scenes < 1:
        p.error("--rate, --seconds and --scenes must be positive; --warmup and --drain not negative")
    if args.sub_depth < 1:
        p.error("--sub-depth must be >= 1")
    if not args.namespace.startswith("/"):
        args.namespace = "/" + args.namespace
    args.namespace = args.namespace.rstrip("/") or ""
    return args


def ros_environment(args: argparse.Namespace) -> dict[str, str]:
    """Variables every ROS process of this run gets: localhost-only discovery, one random domain."""
    domain = args.domain_id if args.domain_id is not None else random.SystemRandom().randint(1, 100)
    env = {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_STATIC_PEERS": "",
        "ROS_DOMAIN_ID": str(domain),
    }
    if args.fastdds_profile:
        path = str(Path(args.fastdds_profile).resolve())
        if not Path(path).is_file():
            raise SystemExit(f"--fastdds-profile: no such file: {path}")
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = path
    return env


def log(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(f"[live_latency {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ---- the child --------------------------------------------------------------------------------------
def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()  # its own process group: signals go to the node and nothing else
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Child:
    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGINT (the node shuts down cleanly), then SIGTERM, then SIGKILL; at most about 20 s."""
        proc = self.proc
        for sig, wait in ((signal.SIGINT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        self._log.close()
        return proc.poll()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# ---- measurement ------------------------------------------------------------------------------------
@dataclass
class Sample:
    stamp_ns: int
    source_ns: int  # the node's write (DDS source timestamp)
    received_ns: int  # reception by this process's DDS
    callback_ns: int
    size: int


@dataclass
class TopicLog:
    name: str
    samples: list[Sample] = field(default_factory=list)
    last_ns: int = 0


def read_stamp(data: bytes) -> int:
    """Header stamp [ns] of a serialized message whose first member is std_msgs/Header (CDR)."""
    little = data[1] & 1  # encapsulation id: odd = little endian (CDR_LE, PL_CDR_LE, CDR2_LE, ...)
    sec, nsec = struct.unpack_from("<iI" if little else ">iI", data, 4)
    return sec * 1_000_000_000 + nsec


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]); nan for no values."""
    if not values:
        return math.nan
    v = sorted(values)
    k = max(0, min(len(v) - 1, math.ceil(q / 100.0 * len(v)) - 1))
    return v[k]


def stats_ms(values_ns: list[int]) -> dict[str, float]:
    ms = [v / 1e6 for v in values_ns]
    return {
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "max": max(ms) if ms else math.nan,
        "mean": sum(ms) / len(ms) if ms else math.nan,
    }


def render_frames(args: argparse.Namespace, image_cls) -> list:
    from segmentation_ros.tools.synthetic import generate_scene

    w, h = args.size
    frames = []
    for i in range(args.scenes):
        rgb = generate_scene(args.seed + i, w, h).image
        msg = image_cls()
        msg.header.frame_id = "camera"
        msg.height, msg.width = h, w
        msg.encoding = "rgb8"
        msg.is_bigendian = 0
        msg.step = 3 * w
        msg.data = array.array("B", rgb.tobytes())
        frames.append(msg)
    return frames


def run(args: argparse.Namespace) -> dict:
    ros_env = ros_environment(args)
    profile = ros_env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    for var in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        os.environ.pop(var, None)  # only what --fastdds-profile says
    os.environ.update(ros_env)  # before rclpy creates its context
    if profile and args.profile_for in ("both", "tool"):
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = profile

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from lifecycle_msgs.srv import GetState
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    task = args.task
    topics = [
        *EAGER_MAIN[task],
        *(EAGER_MORE[task] if args.all_eager else ()),
        *(LAZY[task] if args.lazy else ()),
    ]
    ns = args.namespace
    node_name = "segmentation_node"
    params = [
        f"task:={args.task}",
        f"semantic_model:={args.semantic_model}",
        f"instance_model:={args.instance_model}",
        "semantic_weights:=DEFAULT",
        "instance_weights:=DEFAULT",
        f"device:={args.device}",
        *args.param,
    ]
    cmd = [args.node, "--ros-args", "-r", f"__ns:={ns or '/'}", "-r", f"__node:={node_name}"]
    for prm in params:
        cmd += ["-p", prm]
    cmd += args.node_arg
    child_env = dict(os.environ)
    child_env.update(ros_env)
    child_env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if profile and args.profile_for in ("both", "node"):
        child_env["FASTDDS_DEFAULT_PROFILES_FILE"] = profile
    child_env["PYTHONUNBUFFERED"] = "1"
    child_env.setdefault("SEGMENTATION_ROS_OFFLINE", "1")

    log(args, f"rendering {args.scenes} scenes at {args.size[0]}x{args.size[1]}")
    frames = render_frames(args, Image)

    tmpdir = None
    if args.node_log:
        log_path = Path(args.node_log)
    else:
        tmpdir = tempfile.mkdtemp(prefix="live_latency_")
        log_path = Path(tmpdir) / "node.log"

    planned = args.startup_timeout + args.warmup + args.seconds + args.drain + 60.0
    log(args, f"ROS_DOMAIN_ID={ros_env['ROS_DOMAIN_ID']}, starting: {' '.join(cmd)}")
    child = Child(cmd, child_env, log_path)
    done = threading.Event()

    def watchdog() -> None:
        if not done.wait(planned):
            print(
                f"[live_latency] watchdog: still running after {planned:.0f} s, stopping",
                file=sys.stderr,
                flush=True,
            )
            child.stop()
            os._exit(3)

    threading.Thread(target=watchdog, name="watchdog", daemon=True).start()

    context = rclpy.Context()
    executor = node = None
    spin_thread = None
    try:
        rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
        node = rclpy.create_node("live_latency", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)

        lock = threading.Lock()
        logs = {t: TopicLog(t) for t in topics}
        diag: list[tuple[int, dict[str, str]]] = []
        full_name = f"{ns}/{node_name}"

        def make_callback(tlog: TopicLog):
            def callback(data: bytes, info) -> None:
                now = time.time_ns()
                s = Sample(
                    read_stamp(data), info["source_timestamp"], info["received_timestamp"], now, len(data)
                )
                with lock:
                    tlog.samples.append(s)
                    tlog.last_ns = now

            return callback

        sub_qos = QoSProfile(
            depth=args.sub_depth,
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.BEST_EFFORT if args.sub_best_effort else ReliabilityPolicy.RELIABLE,
        )
        subs = []
        for t in topics:
            msg_type = Detection2DArray if t == "detections" else Image
            qos = QoSProfile(depth=sub_qos.depth, history=sub_qos.history, reliability=sub_qos.reliability)
            subs.append(
                node.create_subscription(msg_type, f"{ns}/{t}", make_callback(logs[t]), qos, raw=True)
            )

        def on_diag(msg) -> None:
            for st in msg.status:
                if st.name == full_name:
                    with lock:
                        diag.append((time.time_ns(), {kv.key: kv.value for kv in st.values}))

        node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, QoSProfile(depth=10))
        pub = node.create_publisher(
            Image,
            f"{ns}/image",
            QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT),
        )
        get_state = node.create_client(GetState, f"{full_name}/get_state")

        spin_thread = threading.Thread(target=executor.spin, name="spin", daemon=True)
        spin_thread.start()

        # -- wait for the node: lifecycle active, publisher and subscriptions matched --
        t0 = time.monotonic()
        deadline = t0 + args.startup_timeout

        def check_child() -> None:
            if not child.alive():
                raise RuntimeError(f"segmentation_node exited ({child.proc.returncode}):\n{child.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"segmentation_node not ready after {args.startup_timeout:.0f} s:\n{child.tail()}"
                )

        state = None
        while state != ACTIVE:
            check_child()
            if not get_state.service_is_ready():
                time.sleep(0.2)
                continue
            fut = get_state.call_async(GetState.Request())
            end = time.monotonic() + 5.0
            while not fut.done() and time.monotonic() < end:
                time.sleep(0.05)
            if fut.done() and fut.result() is not None:
                state = fut.result().current_state.id
            if state != ACTIVE:
                time.sleep(0.3)
        while pub.get_subscription_count() < 1 or any(s.get_publisher_count() < 1 for s in subs):
            check_child()
            time.sleep(0.1)
        log(args, f"node active after {time.monotonic() - t0:.1f} s; publishing {args.rate:g} Hz")

        # -- publishing --
        period = 1.0 / args.rate
        sent: list[int] = []  # stamps, in order
        sent_lock = threading.Lock()
        stop_pub = threading.Event()
        late_ticks = [0]

        def publisher_loop() -> None:
            i = 0
            next_t = time.monotonic()
            while not stop_pub.is_set():
                msg = frames[i % len(frames)]
                now_ns = time.time_ns()
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
                pub.publish(msg)
                with sent_lock:
                    sent.append(now_ns)
                i += 1
                next_t += period
                delay = next_t - time.monotonic()
                if delay < -period:  # fell behind by more than a period: do not burst, restart the grid
                    late_ticks[0] += 1
                    next_t = time.monotonic()
                    delay = 0.0
                if delay > 0:
                    stop_pub.wait(delay)

        pub_thread = threading.Thread(target=publisher_loop, name="publisher", daemon=True)
        pub_thread.start()

        first_topic = logs[topics[0]]
        while True:  # the first output (first inference is slow) ...
            check_child()
            with lock:
                if first_topic.samples:
                    break
            time.sleep(0.05)
        log(args, f"first output after {time.monotonic() - t0:.1f} s; warming up {args.warmup:g} s")
        time.sleep(args.warmup)  # ... then the warm-up proper

        # -- the measured window --
        with sent_lock:
            window_start = len(sent)
        win_t0 = time.time_ns()
        diag_start = diag[-1][1] if diag else None
        log(args, f"measuring {args.seconds:g} s")
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            if not child.alive():
                check_child()
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))
        with sent_lock:
            window = sent[window_start:]
        win_t1 = time.time_ns()
        stop_pub.set()
        pub_thread.join(5.0)
        window_set = set(window)

        # -- drain: until every topic has as many window outputs as the first and nothing came for 3 s --
        log(args, f"sent {len(window)} frames; draining (at most {args.drain:g} s)")
        drain_end = time.monotonic() + args.drain
        while time.monotonic() < drain_end:
            with lock:
                counts = [sum(1 for s in tl.samples if s.stamp_ns in window_set) for tl in logs.values()]
                quiet = time.time_ns() - max(tl.last_ns for tl in logs.values()) > 3e9
            if quiet and len(set(counts)) == 1:
                break
            time.sleep(0.2)
        time.sleep(min(1.5, max(0.0, drain_end - time.monotonic())))  # one more diagnostics message
        with lock:
            diag_end = diag[-1][1] if diag else None
            per_topic = {t: [s for s in tl.samples if s.stamp_ns in window_set] for t, tl in logs.items()}
    finally:
        done.set()
        rc = child.stop()
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
        if spin_thread is not None:
            spin_thread.join(2.0)
        if node is not None:
            node.destroy_node()  # releases the DDS participant (and its shared-memory segment)
        try:
            rclpy.shutdown(context=context)
        except Exception:
            pass
        if tmpdir and (rc in (0, None, -signal.SIGINT, 130) or args.quiet):
            shutil.rmtree(tmpdir, ignore_errors=True)
        elif tmpdir:
            log(args, f"node exit code {rc}; its log: {log_path}")

    seconds = (win_t1 - win_t0) / 1e9
    result_topics = {}
    for t, samples in per_topic.items():
        lat = [s.callback_ns - s.stamp_ns for s in samples]
        result_topics[t] = {
            "received": len(samples),
            "fps": len(samples) / seconds,
            "bytes": samples[0].size if samples else 0,
            "latency_ms": stats_ms(lat),
            "over_1s": sum(1 for v in lat if v > 1e9),
            "node_ms": stats_ms([s.source_ns - s.stamp_ns for s in samples]),
            "transport_ms": stats_ms([s.received_ns - s.source_ns for s in samples]),
            "dispatch_ms": stats_ms([s.callback_ns - s.received_ns for s in samples]),
        }
        if args.samples:
            result_topics[t]["samples"] = [
                [
                    s.stamp_ns - win_t0,
                    s.source_ns - s.stamp_ns,
                    s.received_ns - s.source_ns,
                    s.callback_ns - s.received_ns,
                ]
                for s in samples
            ]
    answered = {s.stamp_ns for s in per_topic[topics[0]]}

    def counter(d: dict | None, key: str) -> int | None:
        try:
            return int(d[key]) if d is not None else None
        except (KeyError, ValueError):
            return None

    def delta(key: str) -> int | None:
        a, b = counter(diag_start, key), counter(diag_end, key)
        return b - a if a is not None and b is not None else None

    all_lat = [s.callback_ns - s.stamp_ns for samples in per_topic.values() for s in samples]
    return {
        "label": args.label,
        "size": f"{args.size[0]}x{args.size[1]}",
        "rate_hz": args.rate,
        "lazy": args.lazy,
        "topics": topics,
        "window_s": seconds,
        "sent": len(window),
        "sent_hz": len(window) / seconds,
        "publisher_fell_behind": late_ticks[0],
        "publisher_max_gap_ms": max(np.diff(window)) / 1e6 if len(window) > 1 else math.nan,
        "no_output": len(window_set - answered),
        "no_output_topic": topics[0],
        "node_diagnostics_delta": {
            k: delta(k)
            for k in ("frames_received", "frames_processed", "frames_dropped_stale", "frames_rejected")
        },
        # frames the node never saw (best-effort input lost in DDS, or overwritten in its reader's
        # keep-last-1 history), from /diagnostics (1 Hz, so +- a second's frames at the window's
        # edges). Whether frames_received counts the stale frames too or not, max() covers both.
        "node_input_lost_approx": input_lost(len(window), delta),
        "node_diagnostics_end": diag_end,
        "latency_all_topics_ms": stats_ms(all_lat),
        "over_1s_all_topics": sum(1 for v in all_lat if v > 1e9),
        "per_topic": result_topics,
        "ros_domain_id": int(ros_env["ROS_DOMAIN_ID"]),
        "fastdds_profile": profile,
        "profile_for": args.profile_for if profile else None,
        "subscription_qos": {
            "depth": args.sub_depth,
            "reliability": "best_effort" if args.sub_best_effort else "reliable",
        },
        "node_command": cmd,
        "node_exit_code": rc,
        "machine": machine(),
        "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(win_t0 / 1e9)),
        "definitions": {
            "latency_ms": "subscription callback time - header stamp (set at publish), wall clock of this machine",
            "node_ms": "DDS source timestamp (the node's write) - header stamp: input transport, mailbox wait, inference",
            "transport_ms": "DDS reception timestamp in this process - source timestamp",
            "dispatch_ms": "callback time - DDS reception timestamp (executor wait in this process)",
            "fps": "outputs received for the frames sent in the window / window seconds",
            "no_output": "frames sent in the window never answered on no_output_topic",
            "samples": "[stamp - window start, node, transport, dispatch] in ns",
        },
    }


def input_lost(sent: int, delta) -> int | None:
    received, processed, stale = (
        delta("frames_received"),
        delta("frames_processed"),
        delta("frames_dropped_stale"),
    )
    if received is None or processed is None or stale is None:
        return None
    return max(0, sent - max(received, processed + stale))


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"cpu": cpu, "cores": os.cpu_count(), "loadavg": load, "python": sys.version.split()[0]}


def fmt(v: float | None, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}"


def markdown(res: dict) -> str:
    """The summary row (with its header) and a per-topic table."""
    first = res["per_topic"][res["no_output_topic"]]
    lat = res["latency_all_topics_ms"]
    stale = res["node_diagnostics_delta"]["frames_dropped_stale"]
    profile = "default"
    if res["fastdds_profile"]:
        profile = Path(res["fastdds_profile"]).name
        if res["profile_for"] != "both":
            profile += f" ({res['profile_for']} only)"
    head = (
        "| run | size | rate [Hz] | lazy | DDS profile | sent | out fps | no output | of which stale"
        " | lost on input | p50 [ms] | p95 [ms] | max [ms] | > 1 s |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    row = (
        f"| {res['label']} | {res['size']} | {res['rate_hz']:g} | {'yes' if res['lazy'] else 'no'}"
        f" | {profile} | {res['sent']} | {fmt(first['fps'], 2)}"
        f" | {res['no_output']} | {fmt(stale)} | {fmt(res['node_input_lost_approx'])} | {fmt(lat['p50'])}"
        f" | {fmt(lat['p95'])} | {fmt(lat['max'])} | {res['over_1s_all_topics']} |"
    )
    lines = [
        head,
        row,
        "",
        "| topic | bytes | received | fps | p50 | p95 | p99 | max | > 1 s | transport max |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t, d in res["per_topic"].items():
        L = d["latency_ms"]
        lines.append(
            f"| {t} | {d['bytes']} | {d['received']} | {fmt(d['fps'], 2)} | {fmt(L['p50'])} | {fmt(L['p95'])}"
            f" | {fmt(L['p99'])} | {fmt(L['max'])} | {d['over_1s']} | {fmt(d['transport_ms']['max'], 1)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_term(signum, frame):  # SIGTERM: leave through the finally blocks (the child is stopped there)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        res = run(args)
    except KeyboardInterrupt:
        print("[live_latency] interrupted", file=sys.stderr)
        return 130
    except RuntimeError as e:
        print(f"[live_latency] {e}", file=sys.stderr)
        return 2
    print(markdown(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
