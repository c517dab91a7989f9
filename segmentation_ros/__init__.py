"""segmentation_ros: GPU semantic, instance and panoptic segmentation for ROS 2.

Three layers, each a subpackage, each importing only the ones below it (checked by import-linter
from ``make test``; see ``docs/architecture.md``):

* :mod:`segmentation_ros.engine`: models, weights, labels, inference, results. No ROS.
* :mod:`segmentation_ros.ros`: messages, the node core, the rclpy lifecycle node (the only rclpy
  user), the rosbag2 processor.
* :mod:`segmentation_ros.tools`: the ``segmentation-ros`` command, synthetic data, training,
  evaluation, the benchmark, the demo.
"""

__version__ = "0.1.0"
