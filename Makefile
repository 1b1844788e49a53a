# The README's commands (test, test-quick, lint, demo, docs). Each builds .venv first on a fresh machine.
# torch==2.13.0 goes in first so pip never resolves a CUDA build of plain `torch`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# The tests and the package's docstring examples, on two workers.
PYTEST := $(BIN)/python -m pytest -n 2 tests src/aligniform --doctest-modules

.PHONY: venv test test-quick lint demo bench docs check-wheel

$(BIN)/aligniform: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,docs,all]'
	touch $@

venv: $(BIN)/aligniform

test: venv
	$(PYTEST)

# Everything except the tests marked slow: those that spawn processes (subprocess, torchrun, multiprocessing)
# and the longest end-to-end runs.
test-quick: venv
	$(PYTEST) -m "not slow"

# Style (ruff: lint and format) on the whole tree, types (mypy) on the core listed in pyproject.toml, and the
# import contracts of pyproject.toml's [tool.importlinter] (the layers of docs/architecture.md).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

demo: venv
	$(BIN)/aligniform demo --out demo_out

# Every loss against its plain form and one GEMM (N = 256, 1024, 4096; 1 and 2 threads), peak memory and the
# training-loop ratio, into BENCH_OUT (benchmarks/run.py), then compared by ratio with the committed baseline
# (benchmarks/compare.py: exit 1 on a regression). BENCH_ARGS=--quick for a smoke run; docs/benchmarks.md.
BENCH_OUT ?= benchmarks/results.json
BENCH_ARGS ?=
bench: venv
	$(BIN)/python benchmarks/run.py --out $(BENCH_OUT) $(BENCH_ARGS)
	$(BIN)/python benchmarks/compare.py $(BENCH_OUT) benchmarks/baseline.json

# The documentation site (mkdocs.yml), built offline into site/ with every warning an error.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The packaging check: sdist and wheel built, the wheel installed into clean venvs outside the repository (no
# extras, then each extra alone) and smoke-tested in each (tools/check_wheel.sh says how; CI runs it).
check-wheel: venv
	TORCH_PYTHON=$(BIN)/python bash tools/check_wheel.sh
