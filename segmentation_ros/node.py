"""segmentation_node: the ROS 2 managed (lifecycle) node, a thin adapter over the ROS-free
:class:`~segmentation_ros.node_core.SegmentationCore` (parameters, topics, processing all live there).

* configure: read the parameters, load the model(s) (FAILURE with the reason when they cannot be
  loaded), create the output publishers.
* activate: subscribe to each camera's image (and camera_info), start the inference thread and the
  /diagnostics timer, publish the latched label_info.
* deactivate: stop the thread and the subscriptions (the model stays loaded).
* cleanup / shutdown: release the model and its GPU memory, destroy the publishers.

With ``autostart`` (default true) the node configures and activates itself, so a plain
``ros2 run segmentation_ros segmentation_node`` serves images without a lifecycle manager.
"""

from __future__ import annotations

import threading
from typing import Any

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from rosidl_runtime_py.utilities import get_message

from .messages import RclpyFactory
from .node_core import (
    CAMERA_INFO,
    LATCHED_DEPTH,
    OUTPUT_DEPTH,
    PARAMETERS,
    Frame,
    ParameterSpec,
    SegmentationCore,
    topic_name,
    validate_parameters,
)
from .weights import WeightsError

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
OUTPUT_QOS = QoSProfile(depth=OUTPUT_DEPTH, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(
    depth=LATCHED_DEPTH, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
# Only the newest frame matters (the core drops stale ones anyway); best effort matches any publisher.
INPUT_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)
DIAGNOSTICS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
NAMES = frozenset(spec.name for spec in PARAMETERS)
TAKE_TIMEOUT_S = 0.1  # how often the inference thread looks at its stop flag


def descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """The ROS parameter descriptor of one core parameter (type, range, read-only)."""
    desc = ParameterDescriptor(
        name=spec.name,
        type=Parameter.Type.from_parameter_value(spec.default).value,
        description=spec.description,
        read_only=spec.read_only,
    )
    if spec.choices:
        desc.additional_constraints = "one of " + ", ".join(spec.choices)
    if spec.range is not None:  # rclpy's message fields want exact float / int
        lo, hi = spec.range
        if isinstance(spec.default, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi))]
        else:
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    return desc


class SegmentationNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("segmentation_node", **kwargs)
        self.core: SegmentationCore | None = None
        # rclpy's Node owns _publishers, _subscriptions, _timers...: these names must differ.
        self._output_pubs: dict[str, Any] = {}
        self._input_subs: list[Any] = []
        self._latest_camera_info: dict[str, Any] = {}
        self._diagnostics_timer: Any = None
        self._inference_thread: threading.Thread | None = None
        self._stop_inference = threading.Event()
        self._input_group = ReentrantCallbackGroup()  # image callbacks never wait for a parameter change
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, descriptor(spec))
        self.add_on_set_parameters_callback(self._check_parameter_change)

    # -- parameters --
    def _check_parameter_change(self, parameters: list[Parameter]) -> SetParametersResult:
        # Other parameters (use_sim_time, qos_overrides.*) belong to rclpy: let them through.
        changes = {p.name: p.value for p in parameters if p.name in NAMES}
        try:
            if self.core is not None:
                self.core.set_parameters(changes)
            else:
                validate_parameters(changes)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    # -- lifecycle --
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        params = {spec.name: self.get_parameter(spec.name).value for spec in PARAMETERS}
        try:
            core = SegmentationCore(params, RclpyFactory(), clock_ns=self._now_ns)
            core.configure()
        except (ValueError, WeightsError, RuntimeError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return FAILURE
        self.core = core
        for camera in core.cameras:
            for spec in core.outputs():
                topic = topic_name(camera, spec.topic)
                self._output_pubs[topic] = self.create_lifecycle_publisher(
                    get_message(spec.type),
                    topic,
                    LATCHED_QOS if spec.latched else OUTPUT_QOS,
                    qos_overriding_options=QoSOverridingOptions.with_default_policies(),
                )
        self._output_pubs["/diagnostics"] = self.create_lifecycle_publisher(
            get_message("diagnostic_msgs/msg/DiagnosticArray"), "/diagnostics", DIAGNOSTICS_QOS
        )
        self.get_logger().info(f"configured: {core.params['task']} on {core.engine.device}")  # type: ignore[union-attr]
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        core = self.core
        assert core is not None
        image_type = f"sensor_msgs/msg/{'CompressedImage' if core.params['use_compressed'] else 'Image'}"
        for camera in core.cameras:
            topics = core.input_topics(camera)
            self._subscribe(image_type, topics["image"], lambda m, c=camera: self._on_image(c, m))
            self._subscribe(CAMERA_INFO, topics["camera_info"], lambda m, c=camera: self._on_info(c, m))
        result = super().on_activate(state)  # enables the lifecycle publishers
        for camera in core.cameras:
            for output in core.latched_outputs(camera):
                self._output_pubs[output.topic].publish(output.msg)
        self._stop_inference.clear()
        self._inference_thread = threading.Thread(
            target=self._inference_loop, name="segmentation_inference", daemon=True
        )
        self._inference_thread.start()
        self._diagnostics_timer = self.create_timer(
            core.params["diagnostics_period"], self._publish_diagnostics, callback_group=self._input_group
        )
        self.get_logger().info(f"active: {image_type.rsplit('/', 1)[1]} from cameras {core.cameras}")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()  # back to unconfigured with nothing held
        return SUCCESS

    def destroy_node(self) -> None:
        self._release()  # the inference thread must not outlive the publishers it uses
        super().destroy_node()

    def _stop_processing(self) -> None:
        for subscription in self._input_subs:  # first, so that no old frame waits for the next activate
            self.destroy_subscription(subscription)
        self._input_subs.clear()
        self._latest_camera_info.clear()
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        self._stop_inference.set()
        if self.core is not None:
            self.core.frames.clear()  # drops pending frames and wakes the thread waiting in take()
        if self._inference_thread is not None:
            self._inference_thread.join()
            self._inference_thread = None

    def _release(self) -> None:
        self._stop_processing()
        for publisher in self._output_pubs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._output_pubs.clear()
        if self.core is not None:
            self.core.cleanup()  # engine.close(): frees the models and CUDA's cached memory
            self.core = None

    # -- data path --
    def _subscribe(self, type_name: str, topic: str, callback: Any) -> None:
        self._input_subs.append(
            self.create_subscription(
                get_message(type_name),
                topic,
                callback,
                INPUT_QOS,
                callback_group=self._input_group,
                qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            )
        )

    def _on_image(self, camera: str, msg: Any) -> None:
        core = self.core
        if core is not None:  # only hand over: inference runs on its own thread
            info = self._latest_camera_info.get(camera)
            core.frames.put(Frame(camera, msg, info, self._now_ns()))

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds  # ROS time: simulated time under use_sim_time

    def _on_info(self, camera: str, msg: Any) -> None:
        self._latest_camera_info[camera] = msg  # goes out with this camera's next image

    def _subscribed(self, topic: str) -> bool:
        publisher = self._output_pubs.get(topic)
        return publisher is not None and publisher.get_subscription_count() > 0

    def _inference_loop(self) -> None:
        core = self.core
        assert core is not None
        while not self._stop_inference.is_set():
            frames = core.frames.take(TAKE_TIMEOUT_S)
            if not frames or self._stop_inference.is_set():
                continue
            try:
                for output in core.process(frames, subscribed=self._subscribed):
                    self._output_pubs[output.topic].publish(output.msg)
            except Exception as exc:  # noqa: BLE001 - keep serving; the reason goes to the log
                self.get_logger().error(f"inference failed: {exc!r}", throttle_duration_sec=5.0)

    def _publish_diagnostics(self) -> None:
        core = self.core
        if core is not None:
            self._output_pubs["/diagnostics"].publish(core.diagnostics(self.get_fully_qualified_name()))


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = SegmentationNode()
    executor = MultiThreadedExecutor()  # parameter and lifecycle services stay responsive
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value and node.trigger_configure() == SUCCESS:
            node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
