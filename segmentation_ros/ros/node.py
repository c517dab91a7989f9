"""segmentation_node: the ROS 2 managed (lifecycle) node, a thin adapter over the ROS-free
:class:`~segmentation_ros.ros.node_core.SegmentationCore` (parameters, topics, processing all live there).

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

import os
import threading
from typing import Any

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions

from segmentation_ros.engine.weights import WeightsError
from segmentation_ros.ros.node_core import (
    CAMERA_INFO,
    FASTDDS_PROFILE_VARIABLES,
    LATCHED_DEPTH,
    OUTPUT_DEPTH,
    PARAMETERS,
    Frame,
    ParameterSpec,
    SegmentationCore,
    large_images_profile,
    topic_name,
    validate_parameters,
)
from segmentation_ros.ros.rclpy_messages import RclpyFactory, rclpy_message_class

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
NAMES = frozenset(spec.name for spec in PARAMETERS)
TAKE_TIMEOUT_S = 0.1  # how often the inference thread looks at its stop flag
READ_ONLY_NOTE = "read-only while configured: set it while the node is unconfigured, then configure"


def qos(depth: int, *, best_effort: bool = False, latched: bool = False) -> QoSProfile:
    """A new QoS profile for one publisher or subscription, never a shared one: rclpy applies the
    ``qos_overrides.*`` parameters by writing into the profile it is handed, so a shared profile
    would carry one topic's override into every other topic."""
    return QoSProfile(
        depth=depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """The ROS parameter descriptor of one core parameter (type, range, constraints).

    ROS's ``read_only`` is never set: rclpy refuses every later change of such a parameter, in any
    lifecycle state, so a bad model name or device could not be corrected before configuring
    again. The node enforces "read-only while configured" itself and says so in
    ``additional_constraints``.
    """
    desc = ParameterDescriptor(
        name=spec.name,
        type=Parameter.Type.from_parameter_value(spec.default).value,
        description=spec.description,
    )
    constraints = []
    if spec.choices:
        constraints.append("one of " + ", ".join(spec.choices))
    if spec.read_only:
        constraints.append(READ_ONLY_NOTE)
    desc.additional_constraints = "; ".join(constraints)
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
        self._diagnostics_timer: Any = None
        self._inference_thread: threading.Thread | None = None
        self._stop_inference = threading.Event()
        self._input_group = ReentrantCallbackGroup()  # image callbacks never wait for a parameter change
        # Values given at start that were refused: the node stays up, unconfigured, and configure
        # fails with these reasons until each parameter is set to a valid value.
        self._start_errors: dict[str, str] = {}
        self.add_on_set_parameters_callback(self._check_parameter_change)
        for spec in PARAMETERS:
            self._declare(spec)

    # -- parameters --
    def _declare(self, spec: ParameterSpec) -> None:
        given = self._parameter_overrides.get(spec.name)
        # ``classes:=[]`` (or ``[]`` in a params file) reaches rclpy untyped, and rclpy can only
        # declare a typed empty list by setting it after declaration.
        empty_list = isinstance(spec.default, list) and given is not None and given.type_ == Parameter.Type.NOT_SET
        if empty_list:
            del self._parameter_overrides[spec.name]
        elif given is not None and isinstance(spec.default, float) and given.type_ == Parameter.Type.INTEGER:
            # ``score_threshold:=1`` is an integer to ROS; it means 1.0
            self._parameter_overrides[spec.name] = Parameter(spec.name, Parameter.Type.DOUBLE, float(given.value))
        try:
            self.declare_parameter(spec.name, spec.default, descriptor(spec))
        except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
            self.declare_parameter(spec.name, spec.default, descriptor(spec), ignore_override=True)
            self._start_errors[spec.name] = f"parameter {spec.name}: start value {given.value!r} refused ({exc})"  # type: ignore[union-attr]
            self.get_logger().error(self._start_errors[spec.name] + "; the node stays unconfigured until it is set")
        if empty_list:
            self.set_parameters([Parameter(spec.name, Parameter.Type.from_parameter_value(spec.default), [])])

    def _check_parameter_change(self, parameters: list[Parameter]) -> SetParametersResult:
        # Other parameters (use_sim_time, qos_overrides.*) belong to rclpy: let them through.
        changes = {p.name: p.value for p in parameters if p.name in NAMES}
        try:
            if self.core is not None:
                self.core.set_parameters(changes)
            else:  # declared one at a time: the rules between them are checked at configure
                validate_parameters(changes, between=False)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        for name in changes:
            self._start_errors.pop(name, None)
        return SetParametersResult(successful=True)

    # -- lifecycle --
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._start_errors:
            self.get_logger().error("configure failed: " + "; ".join(self._start_errors.values()))
            return FAILURE
        params = {spec.name: self.get_parameter(spec.name).value for spec in PARAMETERS}
        try:
            core = SegmentationCore(params, RclpyFactory(), clock_ns=self._now_ns)
            core.configure()
        except Exception as exc:  # noqa: BLE001 - any reason must reach the log, and the node stay up
            reason = str(exc) if isinstance(exc, (ValueError, WeightsError)) else repr(exc)
            self.get_logger().error(f"configure failed: {reason}")
            return FAILURE
        self.core = core
        for camera in core.cameras:
            for spec in core.outputs():
                topic = topic_name(camera, spec.topic)
                self._output_pubs[topic] = self.create_lifecycle_publisher(
                    rclpy_message_class(spec.type),
                    topic,
                    qos(LATCHED_DEPTH if spec.latched else OUTPUT_DEPTH, latched=spec.latched),
                    qos_overriding_options=QoSOverridingOptions.with_default_policies(),
                )
        self._output_pubs["/diagnostics"] = self.create_lifecycle_publisher(
            rclpy_message_class("diagnostic_msgs/msg/DiagnosticArray"), "/diagnostics", qos(10)
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
            self._subscribe(CAMERA_INFO, topics["camera_info"], lambda m, c=camera: core.receive_camera_info(c, m))
            if "depth" in topics:  # kept by the core until its colour frame is processed
                self._subscribe("sensor_msgs/msg/Image", topics["depth"], lambda m, c=camera: core.receive_depth(c, m))
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
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        self._stop_inference.set()
        if self.core is not None:
            self.core.pause()  # drops pending frames and tracks, wakes the thread waiting in take()
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
                rclpy_message_class(type_name),
                topic,
                callback,
                qos(1, best_effort=True),  # only the newest frame matters; best effort matches any publisher
                callback_group=self._input_group,
                qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            )
        )

    def _on_image(self, camera: str, msg: Any) -> None:
        core = self.core
        if core is not None:  # only hand over: inference runs on its own thread
            core.receive(Frame(camera, msg, None, self._now_ns()))  # with the camera's latest camera_info

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds  # ROS time: simulated time under use_sim_time

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
    profile = large_images_profile(dict(os.environ))
    if profile is not None:
        os.environ[FASTDDS_PROFILE_VARIABLES[0]] = profile
    rclpy.init(args=args)
    node = SegmentationNode()
    # Parameter and lifecycle services stay responsive, and a parameter change waiting for the batch in
    # progress leaves threads for the image callbacks even on a 2-core machine (default: one per core).
    executor = MultiThreadedExecutor(num_threads=max(4, os.cpu_count() or 1))
    executor.add_node(node)
    if profile is not None:
        node.get_logger().info(f"Fast DDS profile for large images: {profile}")
    try:
        if node.get_parameter("autostart").value and node.trigger_configure() == SUCCESS:
            node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # SIGINT or SIGTERM shut the context down while the executor was setting up its next wait
        # (rclpy raises RCLError "the given context is not valid" then): a normal shutdown.
    finally:
        if not executor.shutdown(timeout_sec=5.0):  # bounded: a stuck callback must not keep the process alive
            node.get_logger().warning("shutdown: callbacks still running after 5 s; exiting anyway")
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
