"""Where the package's installed data lives (``config/``, ``models/``), with or without ROS.

``colcon build`` and ``pip install`` both put ``config/`` and ``models/`` under
``<prefix>/share/segmentation_ros``; a source checkout (``pip install -e .``) has them at the repo
root. ``SEGMENTATION_ROS_SHARE`` overrides both.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

PACKAGE = "segmentation_ros"


@cache
def share_dir() -> Path:
    """The package's share directory (holds ``config/``, ``launch/``, ``models/``)."""
    env = os.environ.get("SEGMENTATION_ROS_SHARE")
    if env:
        return Path(env)
    source_root = Path(__file__).resolve().parents[2]  # <root>/segmentation_ros/engine/paths.py
    if (source_root / "config").is_dir() and (source_root / "package.xml").is_file():
        return source_root
    try:  # a ROS install: ament_index knows the prefix
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # not a ROS environment, or the package is not in the ament index
        pass
    return Path(sys.prefix) / "share" / PACKAGE


def config_dir() -> Path:
    return share_dir() / "config"


def models_dir() -> Path:
    return share_dir() / "models"
