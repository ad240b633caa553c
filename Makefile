# Set-up and everyday commands. Each target creates .venv on first use.
# Pick another torch build with e.g. `make test TORCH="torch==2.5.1"` (see README).
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: venv
	$(BIN)/attic demo

test: venv
	$(BIN)/ruff check memory stores tests examples benchmarks
	$(BIN)/ruff format --check memory stores tests examples benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check --fix memory stores tests examples benchmarks
	$(BIN)/ruff format memory stores tests examples benchmarks
	$(BIN)/mypy

# All benchmarks, on ../shared/data (about 30 minutes on 2 cores); results in benchmarks/results/.
bench: venv
	$(BIN)/python benchmarks/assembly_latency.py --recall-share 0
	$(BIN)/python benchmarks/assembly_latency.py --out benchmarks/results/assembly_latency_recall.md
	$(BIN)/python benchmarks/locomo.py
	$(BIN)/python benchmarks/tool_outputs.py --no-headroom
	$(BIN)/python benchmarks/vs_langchain.py
	$(BIN)/python benchmarks/cost.py
	$(BIN)/python benchmarks/policy_costs.py
	$(BIN)/python benchmarks/reliability.py

clean:
	rm -rf $(VENV) build *.egg-info
