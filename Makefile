# Fresh machine:  make run   (install, train the default model on ml-latest-small, serve it on :8000)
#                 make bench (accuracy/speed and serving benchmarks into bench/results/)
#                 make test  (install, then the whole test suite, slow real-data tests included)
# Trainer flags:  make train TRAIN_ARGS="--epochs 20 --factors 64"   (any `python -m training train` flag;
#                 MODEL=bias picks the kind, DATA=/path/to/ml-latest-small the data)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The shared copy of ml-latest-small when present (this workplace), else download it into data/. A DATA you
# set must exist: only the default is ever downloaded.
DOWNLOADED_DATA := data/ml-latest-small
DATA ?= $(firstword $(wildcard ../shared/data/ml-latest-small) $(DOWNLOADED_DATA))
# Where `make serve` looks for the model; set MOVIEREC_MODEL_DIR to serve another artifact.
MOVIEREC_MODEL_DIR ?= models/latest
# bpmf: the best held-out RMSE; the top-N ranker is fitted beside any kind.
MODEL ?= bpmf
PORT ?= 8000

.PHONY: install lint format typecheck test test-fast train serve run bench clean data-exists

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
	$(BIN)/python -m pytest -q -m "not slow"

$(DOWNLOADED_DATA):
	$(BIN)/python -m training download ml-latest-small --data-root $(dir $(DOWNLOADED_DATA))

# A DATA that names a missing directory (a typo) is an error, never a download into somewhere else.
data-exists: $(if $(filter $(DOWNLOADED_DATA),$(DATA)),$(DOWNLOADED_DATA))
	@test -d "$(DATA)" || { echo "DATA=$(DATA) is not a directory: point DATA at a MovieLens directory" >&2; exit 2; }

train: install data-exists
	$(BIN)/python -m training train --data $(DATA) --model $(MODEL) --output-dir models $(TRAIN_ARGS)

serve: install
	MOVIEREC_MODEL_DIR=$(MOVIEREC_MODEL_DIR) $(BIN)/uvicorn app.main:app --host 127.0.0.1 --port $(PORT)

run: train serve

# bench/accuracy.py takes ~35 min on two cores (3 splits, 3 timed fits on the first, notebook rows once);
# BENCH_ARGS=--skip-notebook saves ~6 min.
bench: install data-exists
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python bench/accuracy.py --data $(DATA) $(BENCH_ARGS)
	$(BIN)/python bench/serving.py --data $(DATA)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
