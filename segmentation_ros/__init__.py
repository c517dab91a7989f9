"""segmentation_ros: GPU semantic, instance and panoptic segmentation for ROS 2.

The engine, registry, label sets and message conversions import no ROS; the lifecycle node
(:mod:`segmentation_ros.node`) is a thin rclpy adapter over :mod:`segmentation_ros.node_core`.
"""

__version__ = "0.1.0"
