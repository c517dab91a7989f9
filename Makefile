# The README's commands. `make test` builds its own environment, so a clean clone works.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint venv clean demo bench

venv: $(STAMP)

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check segmentation_ros test launch
	$(PY) -m pytest -q test

# Synthetic camera bag -> panoptic segmentation with the demo models -> bag, pictures, metrics.
demo: $(STAMP)
	$(PY) -m segmentation_ros.cli demo --out demo_out

# The benchmark on this machine's CPU (see BENCHMARKS.md; add DEVICE=cuda on a GPU machine).
DEVICE ?= cpu
bench: $(STAMP)
	$(PY) -m segmentation_ros.cli bench --device $(DEVICE) --json bench_$(DEVICE).json

lint: $(STAMP)
	$(PY) -m ruff check segmentation_ros test launch

clean:
	rm -rf $(VENV) build *.egg-info
