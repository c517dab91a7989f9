"""Helpers for the live tests: the real segmentation_node as a child process, driven over DDS.

:class:`LiveNode` starts the installed ``segmentation_node`` executable with a params file and
command-line arguments, exactly as ``ros2 run`` would; :class:`Probe` is the test's own rclpy node
(the fixture publisher and subscriber, and the client of the lifecycle and parameter services).
Both need the ``ros_context`` fixture of ``conftest.py``, which keeps DDS on the loopback interface.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

#: Nodes started and not yet killed: a failing test reports their stacks and logs (conftest.py).
RUNNING: set[LiveNode] = set()
START_TIMEOUT_S = 90.0  # importing torch and building the model while other tests use the CPU
CALL_TIMEOUT_S = 30.0


def _die_with_parent() -> None:
    """In the child: be killed when the test process dies, so no node outlives a killed run."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def ros_type(type_name: str) -> type:
    """``"lifecycle_msgs/srv/GetState"`` -> the generated class."""
    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def node_executable() -> str:
    """The installed ``segmentation_node``: beside this interpreter (pip), on PATH, or in a colcon prefix."""
    beside = Path(sys.executable).parent / "segmentation_node"
    if beside.is_file():
        return str(beside)
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidate = Path(prefix) / "lib" / "segmentation_ros" / "segmentation_node"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("segmentation_node")
    if found is None:
        raise FileNotFoundError("segmentation_node is not installed (pip install -e . or colcon build)")
    return found


class LiveNode:
    """``segmentation_node`` running as its own process.

    Args:
        workdir: where the params file and the log go.
        name, namespace: the node's name and namespace (``__node``, ``__ns`` remappings).
        parameters: written to a params file for this node (``--params-file``).
        args: more ``--ros-args`` arguments, as a user types them (``-p name:=value``).
    """

    def __init__(
        self,
        workdir: Path,
        name: str,
        namespace: str,
        parameters: dict[str, Any] | None = None,
        args: Iterable[str] = (),
    ) -> None:
        self.name, self.namespace = name, namespace.strip("/")
        self.fqn = f"/{self.namespace}/{name}" if self.namespace else f"/{name}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{name}.log"
        cmd = [node_executable(), "--ros-args", "-r", f"__node:={name}", "-r", f"__ns:=/{self.namespace}"]
        if parameters:
            params_file = workdir / f"{name}.params.yaml"
            params_file.write_text(yaml.safe_dump({self.fqn: {"ros__parameters": parameters}}))
            cmd += ["--params-file", str(params_file)]
        cmd += list(args)
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "SEGMENTATION_ROS_OFFLINE": "1",
            "RCUTILS_COLORIZED_OUTPUT": "0",
        }
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)  # the node picks its DDS profile itself
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        RUNNING.add(self)

    def topic(self, relative: str) -> str:
        return f"/{self.namespace}/{relative}" if self.namespace else f"/{relative}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit status (killed, and an error, after ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.log_path.with_suffix(".stack.txt").write_text(self.stacks())
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                raise AssertionError(
                    f"{self.fqn} did not exit within {timeout} s of {signal.Signals(sig).name}"
                ) from None
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        RUNNING.discard(self)

    def stacks(self) -> str:
        """Every thread's Python stack (py-spy), for a node that stopped answering; '' without py-spy."""
        spy = Path(sys.executable).parent / "py-spy"
        if self.process.poll() is not None or not spy.is_file():
            return ""
        dump = subprocess.run([str(spy), "dump", "--pid", str(self.process.pid)], capture_output=True, text=True)
        return dump.stdout + dump.stderr


class Probe:
    """The test's rclpy node: publishes fixtures, records what it receives, calls services.

    Callbacks run on a background executor; :meth:`wait_for` polls a condition over what was
    received. Messages are recorded per topic as ``(receive time [s], message)``.
    """

    def __init__(self, context: Any, name: str = "live_test_probe") -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        self.node = rclpy.create_node(name, context=context)
        self.received: dict[str, list[tuple[float, Any]]] = defaultdict(list)
        self._cond = threading.Condition()
        self._executor = MultiThreadedExecutor(num_threads=2, context=context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, name="probe", daemon=True)
        self._thread.start()
        self._subscriptions: dict[str, Any] = {}

    def close(self) -> None:
        self._executor.shutdown()
        self.node.destroy_node()
        self._thread.join(5.0)

    # -- topics --
    def subscribe(self, topic: str, type_name: str, qos: Any = None) -> Any:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        qos = qos if qos is not None else QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)

        def record(msg: Any) -> None:
            with self._cond:
                self.received[topic].append((time.time(), msg))
                self._cond.notify_all()

        sub = self.node.create_subscription(ros_type(type_name), topic, record, qos)
        self._subscriptions[topic] = sub
        return sub

    def unsubscribe(self, topic: str) -> None:
        self.node.destroy_subscription(self._subscriptions.pop(topic))

    def publisher(self, topic: str, type_name: str, qos: Any = None) -> Any:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        qos = qos if qos is not None else QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        return self.node.create_publisher(ros_type(type_name), topic, qos)

    def messages(self, topic: str) -> list[Any]:
        with self._cond:
            return [msg for _, msg in self.received[topic]]

    def clear(self) -> None:
        with self._cond:
            self.received.clear()

    def wait_for(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        """Wait until ``condition()`` is truthy (re-checked on every message and every 50 ms)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = condition()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
                self._cond.wait(min(left, 0.05))

    def wait_matched(self, publisher: Any, timeout: float = 30.0) -> None:
        self.wait_for(
            lambda: publisher.get_subscription_count() > 0, timeout, f"a subscriber on {publisher.topic_name}"
        )

    # -- services --
    def call(self, type_name: str, service: str, request: Any = None, timeout: float = CALL_TIMEOUT_S) -> Any:
        srv = ros_type(type_name)
        client = self.node.create_client(srv, service)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise AssertionError(f"service {service} did not appear within {timeout} s")
            future = client.call_async(request if request is not None else srv.Request())
            done = threading.Event()
            future.add_done_callback(lambda _: done.set())
            if not done.wait(timeout):
                raise AssertionError(f"{service} did not answer within {timeout} s")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def lifecycle_state(self, node: LiveNode, timeout: float = CALL_TIMEOUT_S) -> str:
        return self.call(
            "lifecycle_msgs/srv/GetState", f"{node.fqn}/get_state", timeout=timeout
        ).current_state.label

    def change_state(self, node: LiveNode, transition: str) -> bool:
        """Trigger ``transition`` ("configure", "activate", ...) through the node's change_state service."""
        msgs = importlib.import_module("lifecycle_msgs.msg")
        srv = ros_type("lifecycle_msgs/srv/ChangeState")
        request = srv.Request()
        request.transition.id = getattr(msgs.Transition, f"TRANSITION_{transition.upper()}")
        return bool(
            self.call(
                "lifecycle_msgs/srv/ChangeState", f"{node.fqn}/change_state", request, timeout=120
            ).success
        )

    def wait_state(self, node: LiveNode, label: str, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            if not node.alive():
                raise AssertionError(f"{node.fqn} exited ({node.process.returncode}):\n{node.log()[-3000:]}")
            try:
                state = self.lifecycle_state(node, timeout=max(1.0, min(5.0, deadline - time.monotonic())))
            except AssertionError:
                continue
            if state == label:
                return
            time.sleep(0.1)
        raise AssertionError(
            f"{node.fqn} is {state or 'unreachable'}, not {label}, after {timeout} s:\n{node.log()[-3000:]}"
        )

    def set_parameters(self, node: LiveNode, **values: Any) -> list[Any]:
        """Set parameters through the node's parameter service; returns one SetParametersResult each."""
        from rclpy.parameter import Parameter

        srv = ros_type("rcl_interfaces/srv/SetParameters")
        request = srv.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        )
        return list(
            self.call("rcl_interfaces/srv/SetParameters", f"{node.fqn}/set_parameters", request).results
        )

    def get_parameters(self, node: LiveNode, *names: str) -> dict[str, Any]:
        from rclpy.parameter import parameter_value_to_python

        srv = ros_type("rcl_interfaces/srv/GetParameters")
        answer = self.call(
            "rcl_interfaces/srv/GetParameters", f"{node.fqn}/get_parameters", srv.Request(names=list(names))
        )
        return {n: parameter_value_to_python(v) for n, v in zip(names, answer.values, strict=True)}

    def describe_parameters(self, node: LiveNode, *names: str) -> dict[str, Any]:
        srv = ros_type("rcl_interfaces/srv/DescribeParameters")
        answer = self.call(
            "rcl_interfaces/srv/DescribeParameters",
            f"{node.fqn}/describe_parameters",
            srv.Request(names=list(names)),
        )
        return {d.name: d for d in answer.descriptors}
