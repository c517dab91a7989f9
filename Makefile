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

lint: $(STAMP)
	$(PY) -m ruff check segmentation_ros test launch

clean:
	rm -rf $(VENV) build *.egg-info
