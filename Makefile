# Fresh machine:  make run   (install, train the default model on ml-latest-small, serve it on :8000)
#                 make bench (accuracy/speed and serving benchmarks into bench/results/)
#                 make test  (install, then the whole test suite, slow real-data tests included)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The shared copy of ml-latest-small when present (this workplace), else download it into data/.
DATA ?= $(firstword $(wildcard ../shared/data/ml-latest-small) data/ml-latest-small)
# bpmf: the best held-out RMSE; the top-N ranker is fitted beside any kind.
MODEL ?= bpmf
PORT ?= 8000

.PHONY: install lint format typecheck test test-fast train serve run bench clean

$(BIN)/activate: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(BIN)/activate

install: $(BIN)/activate

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install
	$(BIN)/mypy

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not container"

$(DATA):
	$(BIN)/python -m training download ml-latest-small --data-root $(dir $(DATA))

train: install $(DATA)
	$(BIN)/python -m training train --data $(DATA) --model $(MODEL) --output-dir models

serve: install
	MOVIEREC_MODEL_DIR=models/latest $(BIN)/uvicorn app.main:app --host 127.0.0.1 --port $(PORT)

run: train serve

# bench/accuracy.py takes ~35 min on two cores (3 splits, 3 timed fits on the first, notebook rows once);
# BENCH_ARGS=--skip-notebook saves ~6 min.
bench: install $(DATA)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python bench/accuracy.py --data $(DATA) $(BENCH_ARGS)
	$(BIN)/python bench/serving.py --data $(DATA)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
