"""Tools on top of the engine and the ROS interface: the ``segmentation-ros`` command and what it runs.

* :mod:`.cli`: the command (``segment``, ``models``, and the subcommands of the modules below).
* :mod:`.bag_command`: ``segmentation-ros bag`` over :mod:`segmentation_ros.ros.bag`.
* :mod:`.synthetic`: the synthetic Gazebo-style scene generator (scenes, rendering, datasets,
  camera bags).
* :mod:`.train`, :mod:`.evaluate` (metrics, data, reports), :mod:`.bench` (the benchmark),
  :mod:`.demo` (``make demo``).

May import: the engine and the ROS interface (never rclpy: the live node is the only rclpy user).
"""
