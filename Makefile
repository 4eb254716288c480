# The README's promise: `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install data data-core test test-slow test-all demo bench gpu-check lint format clean test-data

install: $(STAMP)

# Reinstall only when the package metadata changes, so a second `make install` is instant.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,dev,cluster]'
	touch $(STAMP)

# Every setting's packages (Fashion-MNIST, icons-ctx8, alnum-fonts); data-core: Fashion-MNIST
# and its OOD sets only, which is what the tests and the demo read.
data:
	bash scripts/install-data.sh

data-core:
	bash scripts/install-data.sh core

# -n auto: one pytest-xdist worker per core (tests/conftest.py gives each worker one thread);
# --dist loadscope keeps a module on one worker, so its module fixtures are built once.
test: install data-core
	$(BIN)/python -m pytest -q -n auto --dist loadscope --durations=10

# Every slow test (kills and resumes, the local pool, whole benches, DDP, the benchmarks' tiny
# modes, the browser): what CI runs after `make test`. The one `heavy` test, the 30-minute full
# data build, skips itself here unless OODBENCH_FULL_DATA=1 (`make test-data`).
test-slow: install data-core
	$(BIN)/python -m pytest -q -n auto --dist loadscope -m slow --durations=25

test-all: install data-core
	$(BIN)/python -m pytest -q -m ''

# The offline benchmark end to end: CE and LogitNorm on 10,000 Fashion-MNIST images for 10
# epochs, every detector tuned on validation data, four test OOD sets and the covariate-shifted
# track (the far-OOD recipe of docs/results.md, smaller, so that a fresh clone finishes in under
# 20 minutes on a 2-core CPU; README.md). --resume makes a second `make demo` finish an
# interrupted one or re-print it.
DEMO_FLAGS ?= --losses ce,logitnorm --subset 10000 --epochs 10
demo: install data-core
	$(BIN)/oodbench bench $(DEMO_FLAGS) --resume

# Throughput against the textbook loop, scoring cost, and scaling tables (docs/performance.md).
bench: install data-core
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/score_throughput.py
	$(BIN)/python benchmarks/scaling.py

# On a machine with a CUDA GPU: wrn_40_2 on CIFAR-shaped data, oodbench vs textbook loop.
gpu-check: install
	bash benchmarks/gpu_check.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info

# The full builds of the offline settings against their recorded checksums (~30 min on 2 cores).
test-data: install data
	OODBENCH_FULL_DATA=1 $(BIN)/python -m pytest -q -m slow tests/test_data_newsets.py -k full_build
