# The README's promise: `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install data test test-all demo bench lint format clean

install: $(STAMP)

# Reinstall only when the package metadata changes, so a second `make install` is instant.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,dev]'
	touch $(STAMP)

data:
	bash scripts/install-data.sh

test: install data
	$(BIN)/python -m pytest -q

test-all: install data
	$(BIN)/python -m pytest -q -m ''

# The offline benchmark end to end (CE vs LogitNorm on Fashion-MNIST, every detector, six OOD
# sets). --resume makes a second `make demo` finish an interrupted one or just re-print it.
demo: install data
	$(BIN)/oodbench bench --resume

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info
