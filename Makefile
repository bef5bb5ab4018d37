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

.PHONY: setup test demo bench soak mutate lint clean

setup: $(STAMP) $(VENV)/.aimcflow-waves $(VENV)/.aimcflow-eda

# Icarus Verilog (second simulator), the OSU 0.18 um library with its Verilog cell models
# (qflow-tech-osu018) and OpenSTA: Debian packages, installed when we may (root with
# apt-get); otherwise the tests that need them are deselected and the test run says why.
EDA_DEBS := iverilog qflow-tech-osu018 opensta
$(VENV)/.aimcflow-eda: | $(STAMP)
	@if command -v iverilog >/dev/null && command -v sta >/dev/null && \
	    [ -f /usr/share/qflow/tech/osu018/osu018_stdcells.lib ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get install -y -qq --no-install-recommends $(EDA_DEBS) >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && \
	    apt-get install -y -qq --no-install-recommends $(EDA_DEBS) >/dev/null 2>&1)) \
	  || echo "note: could not install $(EDA_DEBS); Icarus, timing and gate-level tests will be deselected"; \
	else echo "note: not root: $(EDA_DEBS) not installed; Icarus, timing and gate-level tests will be deselected"; fi
	@touch $@

# Verilator's FST wave writer needs lz4.h (Debian's liblz4-dev). Installed when we may
# (root with apt-get, as on CI); otherwise failing benches dump VCD instead, and say so.
$(VENV)/.aimcflow-waves: | $(STAMP)
	@if [ -f /usr/include/lz4.h ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get install -y -qq liblz4-dev >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq liblz4-dev >/dev/null 2>&1)) \
	  || echo "note: could not install liblz4-dev; failure waves will be VCD, not FST"; \
	else echo "note: no lz4.h (Debian liblz4-dev); failure waves will be VCD, not FST"; fi
	@touch $@

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23" "setuptools>=77" wheel
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
	$(PY) -m pytest -n $(JOBS) -m slow tests

# Mutation testing of the test suite (not part of `make test`; ~45 min on 2 cores):
# out/mutate/results.json.  See flows/mutate.py and the catalogue in flows/mutants.py.
mutate: setup
	$(PY) -m aimcflow.flows.mutate --jobs $(JOBS)

lint: setup
	$(VENV)/bin/ruff check rtl models cosim flows tests
	$(VENV)/bin/ruff format --check rtl models cosim flows tests

clean:
	rm -rf out .cache sim_build .pytest_cache
