"""Moved here from segmentation_ros/tools/bench.py; the next commit splits it by concept."""

from segmentation_ros.tools.bench.paths import *  # noqa: F401,F403
