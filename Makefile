# Two commands do everything on a fresh machine (Python 3.11+ and make):
#   make run    create .venv from the lock, install, segment the default customers
#   make test   create .venv from the lock, install, run the whole test suite
#   make test-fast  the unit tests only: no Prefect server, no flow call, no process
#   make check  lint, format, types and the import contract (CI runs it before the tests)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast install lock sample-data bench bench-scale lint check clean server

install: $(STAMP)

# Re-install only when the lock or the project metadata change (idempotent).
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/segment run $(ARGS)

# The whole suite on 2 pytest-xdist workers. Tests sharing the live Prefect server, or a module's
# fixture, run on one worker (xdist_group, set in tests/conftest.py); each worker has its own
# test-harness server. TEST_WORKERS=0 runs everything in this one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(ARGS)

# Every test not marked flow, process or slow (tests/conftest.py fails a test that starts a
# process or calls a flow unmarked), property tests on a fifth of their examples; one OpenMP/BLAS
# thread per worker (two workers on two cores: K-Means threads would only wait for each other).
test-fast: $(STAMP)
	PROPERTY_EXAMPLES_SCALE=0.2 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
		$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup \
		-m "not flow and not process and not slow" $(ARGS)

sample-data: $(STAMP)
	$(BIN)/segment sample-data

bench: $(STAMP)
	$(BIN)/python benchmarks/compare.py $(ARGS)

# The scale table of benchmarks/RESULTS.md: plain script vs segment run at 200 (and the Mall
# file), 100k, 1M and 10M customers, medians of 3, plus the 10M Lloyd section (~30 minutes).
BENCH_DIR ?= /tmp/segmentation-scale-bench
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/scale.py --sizes 200,100000,1000000,10000000 --mall --repeat 3 \
		--workdir $(BENCH_DIR) $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# Everything CI checks before the tests (configured in pyproject.toml): ruff's rules (with the
# banned APIs: no pickle, no pyplot in product code; at most 8 parameters a product function),
# ruff's formatting, mypy over segment/, flows/, tasks/ and schemas/, and the import contract
# (tasks/, schemas/, the settings and the plan never import Prefect; no import cycle).
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_import_contract.py

# A Prefect server for scheduled runs (`segment serve`, prefect.yaml + `prefect worker`): the
# temporary server of a single `segment run` cannot schedule. Stop it with Ctrl-C.
SERVER_HOST ?= 127.0.0.1
SERVER_PORT ?= 4200
server: $(STAMP)
	@echo "In the shell where you run segment or prefect:"
	@echo "export PREFECT_API_URL=http://$(SERVER_HOST):$(SERVER_PORT)/api"
	$(BIN)/prefect server start --host $(SERVER_HOST) --port $(SERVER_PORT)

# Regenerate the lock after changing dependencies in pyproject.toml.
lock:
	$(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile pyproject.toml --extra dev --extra dask --extra postgres --universal --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) outputs/runs outputs/latest .pytest_cache
