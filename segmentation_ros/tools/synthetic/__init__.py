"""Moved here from segmentation_ros/tools/synthetic.py; the next commit splits it by concept."""

from segmentation_ros.tools.synthetic.sampling import *  # noqa: F401,F403
