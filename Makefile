# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# `make help` lists the targets; `make test-fast` is the quick loop (unit and rehearsal tiers).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Tests run on xdist workers: many tests wait on sockets, kernels and the emulated host's deadlines, so
# more workers than cores pays (measured on a 2-core machine, whole suite: 6 workers 477 s, 4 workers 512 s).
# After the speed work (2026-12-07, quiet machine): make test 6 min 47 s, 6 min 49 s, 7 min 31 s (1,607-1,608 tests).
# `make test WORKERS=0` runs in one process. loadgroup: the tests sharing a module's renewal run on one
# worker (tests/conftest.py).
WORKERS ?= 6
FAST_WORKERS ?= 4  # the quick tiers: 4 workers 50 s for 1,180 tests (earlier: 6 workers 68 s; worker start-up dominates)
XDIST := -n $(WORKERS) --dist loadgroup

.PHONY: help test test-fast node browser demo lab lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,fleet]'
	touch $(STAMP)

help:
	@echo "make test       lint, typecheck and the whole test suite on $(WORKERS) xdist workers (6 min 47 s to 7 min 31 s measured on 2 cores)"
	@echo "make test-fast  lint, typecheck, the unit and rehearsal tiers without slow tests, on 4 xdist workers (50 s measured)"
	@echo "make demo       a full renewal against a fresh rehearsal host"
	@echo "make lab        JupyterLab on notebooks/"
	@echo "make lint       ruff check and format check"
	@echo "make typecheck  mypy"
	@echo "make bench      the benchmarks"
	@echo "make clean      remove the virtual environment and build output"

lint: $(STAMP)
	$(VENV)/bin/ruff check opslib tests benchmarks
	$(VENV)/bin/ruff format --check opslib tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The JScript helper's tests (tests/test_iis.py, tests/js/) run under Node.js: install it from the OS
# packages when it is missing and we are root; in CI (CI set) a missing node fails those tests.
node:
	@command -v node >/dev/null || [ "$$(id -u)" != 0 ] || (apt-get update && apt-get install -y nodejs)

# The report's browser test (tests/test_report.py) renders it in headless Chromium from the OS packages,
# driven by the playwright package (no `playwright install`); in CI a missing chromium fails that test.
browser:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || (apt-get update && apt-get install -y chromium fonts-ipafont-gothic)

test: lint typecheck node browser
	$(PY) -m pytest -q $(XDIST)

test-fast: lint typecheck node
	$(PY) -m pytest -m "(unit or rehearsal) and not slow" -x -q -n $(FAST_WORKERS) --dist loadgroup

demo: $(STAMP)
	$(VENV)/bin/opslib rehearse demo

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)
	$(PY) benchmarks/winrm_roundtrips.py
	$(PY) benchmarks/run_overhead.py
	$(PY) benchmarks/evidence_index.py
	$(PY) benchmarks/renewal_roundtrips.py

clean:
	rm -rf $(VENV) evidence build *.egg-info
