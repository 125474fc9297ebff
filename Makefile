# Set-up and the two main commands. Everything installs into .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
SYSTEM_PYTHON ?= python3

.PHONY: install demo demo-zh test bench bench-env clean

install: $(VENV)/.installed

# torch 2.13.0 is installed first and pinned: on the project's machines it is the
# local CPU build; any other version would download gigabytes of CUDA packages.
$(VENV)/.installed: pyproject.toml
	$(SYSTEM_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

## The main job, end to end on the shipped sample data (more flags: make demo DEMO_ARGS="--steps 100").
DEMO_ARGS ?=
demo: install
	$(VENV)/bin/kept demo --data kg_data --out runs/demo $(DEMO_ARGS)

## The Chinese run of the main job (kept demo --lang zh; flags the same way: make demo-zh DEMO_ARGS="--zh-texts 200").
demo-zh: install
	$(VENV)/bin/kept demo --lang zh --data kg_data --out runs/demo-zh $(DEMO_ARGS)

## The test suite.
test: install
	$(PY) -m pytest

bench: install
	$(PY) bench/kg_build.py

## The extra environment of bench/transe.py: PyKEEN 1.11.1 in bench/.venv-pykeen (never in .venv).
PYKEEN_VENV := bench/.venv-pykeen
bench-env: $(PYKEEN_VENV)/.installed

$(PYKEEN_VENV)/.installed:
	$(SYSTEM_PYTHON) -m venv $(PYKEEN_VENV)
	$(PYKEEN_VENV)/bin/python -m pip install -q --upgrade pip
	$(PYKEEN_VENV)/bin/python -m pip install -q torch==2.13.0
	$(PYKEEN_VENV)/bin/python -m pip install -q pykeen==1.11.1
	$(PYKEEN_VENV)/bin/python -c "import pykeen, torch; print('pykeen', pykeen.get_version(), 'torch', torch.__version__)"
	touch $@

clean:
	rm -rf $(VENV) runs .pytest_cache
