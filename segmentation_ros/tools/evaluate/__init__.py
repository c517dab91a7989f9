"""Moved here from segmentation_ros/tools/evaluate.py; the next commit splits it by concept."""

from segmentation_ros.tools.evaluate.metrics import *  # noqa: F401,F403
