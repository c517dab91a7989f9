"""The ROS 2 interface: messages in, the engine, messages out.

* :mod:`.conversions` (sensor_msgs Image / CompressedImage <-> numpy) and :mod:`.messages`
  (message factories over rosbags' classes; CDR): no rclpy.
* :mod:`.node_core`: the node without ROS: parameters with descriptors, the message contract, the
  newest-frame mailbox, per-frame processing, diagnostics.
* :mod:`.node` (the rclpy lifecycle node, a thin adapter over the core) and :mod:`.rclpy_messages`
  (its message factory over rclpy's classes): the only modules that import rclpy.
* :mod:`.bag`: the same core over rosbag2 files (rosbags, no ROS install).
* :mod:`.launch_helpers`: what the launch files share (launch is imported only inside functions).

May import: the engine (:mod:`segmentation_ros.engine`). Never :mod:`segmentation_ros.tools`
(checked by import-linter, ``setup.cfg``).
"""
