"""ament_python / pip setup for segmentation_ros.

The same file serves ``colcon build`` in a ROS 2 workspace and ``pip install -e .[test]`` on a
machine without ROS. ``config/`` and ``launch/`` are installed under ``share/segmentation_ros`` in
both cases, which is where :mod:`segmentation_ros.engine.paths` looks for them.
"""
import os
from glob import glob

from setuptools import find_packages, setup

package_name = "segmentation_ros"

# Off ROS, pip installs everything. In a ROS workspace (colcon, AMENT_PREFIX_PATH set) rosdep provides
# numpy/OpenCV/yaml/tqdm from apt and torch comes from pip by hand; declaring them here would make
# older setuptools' console-script wrappers (pkg_resources) refuse to start when, say, OpenCV is
# apt's python3-opencv rather than the opencv-python-headless distribution.
requirements = [
    "numpy>=1.23",
    "torch>=2.1",
    "torchvision>=0.16",
    "opencv-python-headless>=4.8",
    "pillow>=9",  # image headers read before decoding (engine/imageio.py)
    "pyyaml>=6",
    "rosbags>=0.10",
    "tqdm>=4.60",
    "pycocotools>=2.0.7",
    "torchmetrics>=1.2",
    "threadpoolctl>=3.1",
    "scipy>=1.10",
    "motmetrics>=1.4",
]
install_requires = ["setuptools"] if os.environ.get("AMENT_PREFIX_PATH") else requirements
ONNX_REQUIREMENTS = ["onnxruntime>=1.17", "onnx>=1.16", "onnxscript>=0.3"]

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml")),
        ("share/" + package_name + "/config/labels", glob("config/labels/*.yaml")),
        ("share/" + package_name + "/models", glob("models/*.pt") + glob("models/*.md")),
        ("share/" + package_name + "/worlds", glob("worlds/*.sdf")),
    ],
    python_requires=">=3.10",
    install_requires=install_requires,
    extras_require={
        # runtime "onnxruntime" (engine/runtimes/onnx.py): the session, and torch's exporter's own needs.
        # For the CUDA and TensorRT providers install onnxruntime-gpu instead of onnxruntime.
        "onnx": ONNX_REQUIREMENTS,
        "test": [
            "pytest>=7",
            "catkin_pkg>=1.0",
            "ruff>=0.4",
            "import-linter>=2.0",
            "py-spy>=0.3",
            "hypothesis>=6",
            *ONNX_REQUIREMENTS,  # CI runs the ONNX Runtime tests (test/test_runtimes.py)
        ],
    },
    zip_safe=True,
    maintainer="segmentation_ros developers",
    maintainer_email="segmentation-ros@example.org",
    description="GPU semantic, instance and panoptic segmentation for ROS 2, with an offline rosbag2 processor.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "segmentation-ros = segmentation_ros.tools.cli:main",
            "segmentation_node = segmentation_ros.ros.node:main",
        ],
        # Model plugins: modules that register models when imported (engine/registry.py).
        "segmentation_ros.models": [
            "shapes = segmentation_ros.engine.models.shapes",
        ],
    },
)
