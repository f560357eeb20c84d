# Two commands for users: `make run` and `make test`. Everything else is a helper of those two.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench
export QUANTSTRIP_HOME ?= $(CURDIR)/var

# pytest-xdist workers: `make test PYTEST_WORKERS=4` runs the suite on four workers (most test
# time is spent waiting on other processes, so two per core keep a 2-core machine busy). The
# default stays one process until the tests that depend on what ran before them in the same
# process (event loop, logging, umask; see tests/README.md) are fixed.
PYTEST_WORKERS ?= 0
PYTEST_XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadgroup)
# The moments `make test-travel` runs the in-process tests at (tests/support/time_travel.py).
TRAVEL_MOMENTS := saturday-noon year-end spring-forward nyse-holiday leap-day

.PHONY: run test test-travel install install-test system-deps lint format bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	$(PY) -m ipykernel install --sys-prefix --name quantstrip --display-name "Quantstrip (Python 3)" >/dev/null
	touch $@

$(TEST_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	touch $@

install: $(STAMP)

install-test: $(TEST_STAMP) system-deps

# Browser and ODBC tests need Debian packages; as root we install them, otherwise we say what is missing.
system-deps:
	@bash scripts/system_deps.sh

run: install
	$(VENV)/bin/quantstrip init
	$(VENV)/bin/quantstrip demo --if-empty
	$(VENV)/bin/quantstrip up

test: install-test
	$(VENV)/bin/ruff check quantstrip tests bench clients
	$(VENV)/bin/ruff format --check quantstrip tests bench clients
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_XDIST)

# The whole session with its clock moved to each acceptance moment (tests marked real_clock,
# which compare with another process's or OpenSSL's clock, are left out while travelling).
test-travel: install-test
	for moment in $(TRAVEL_MOMENTS); do \
		echo "== time travel: $$moment"; \
		QUANTSTRIP_TEST_TRAVEL=$$moment $(PY) -m pytest -q -p no:cacheprovider $(PYTEST_XDIST) || exit 1; \
	done

lint:
	$(VENV)/bin/ruff check quantstrip tests bench clients
	$(VENV)/bin/ruff format --check quantstrip tests bench clients

format:
	$(VENV)/bin/ruff format quantstrip tests bench clients
	$(VENV)/bin/ruff check --fix quantstrip tests bench clients

# Benchmarks need Playwright (bench extra) and Debian's chromium (system-deps), like the tests.
bench: $(BENCH_STAMP) system-deps
	for f in bench/*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) var build *.egg-info
