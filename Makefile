# aimcflow: `make demo` and `make test` are the two commands a user types.
# Every target that runs Python first runs `setup`, which is idempotent: it
# rebuilds the venv only when pyproject.toml changed since the last install.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.aimcflow-installed
# torch first and pinned: 2.13.0 is a CPU build; an unpinned torch pulls CUDA.
TORCH  := torch==2.13.0
JOBS   ?= 2

.PHONY: setup test demo bench soak lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23" "setuptools>=68" wheel
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet --no-build-isolation -e '.[test]'
	@touch $(STAMP)

test: setup
	$(PY) -m pytest -n $(JOBS) -m "not slow" tests

demo: setup
	$(VENV)/bin/aimcflow run

bench: setup
	$(PY) -m aimcflow.flows.bench

soak: setup
	AIMCFLOW_SOAK=1 $(PY) -m pytest -n $(JOBS) -m slow tests

lint: setup
	$(VENV)/bin/ruff check rtl models cosim flows tests
	$(VENV)/bin/ruff format --check rtl models cosim flows tests

clean:
	rm -rf out .cache sim_build .pytest_cache
