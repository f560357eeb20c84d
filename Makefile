# Two commands for users: `make run` and `make test`. Everything else is a helper of those two.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
export QUANTSTRIP_HOME ?= $(CURDIR)/var

.PHONY: run test install install-test system-deps lint format bench clean

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
	$(PY) -m pytest -q -p no:cacheprovider

lint:
	$(VENV)/bin/ruff check quantstrip tests bench clients
	$(VENV)/bin/ruff format --check quantstrip tests bench clients

format:
	$(VENV)/bin/ruff format quantstrip tests bench clients
	$(VENV)/bin/ruff check --fix quantstrip tests bench clients

bench: install
	for f in bench/*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) var build *.egg-info
