# grtv_nb: the two commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
OUT    ?= out

.PHONY: run test bench lint docs fuzz sysdeps clean help

help:
	@echo "make run    - set up (.venv) and run the main job on the built-in phantom (outputs in $(OUT)/)"
	@echo "make test   - set up (.venv with all extras, Chromium) and run the whole test suite"
	@echo "make bench  - run every benchmark in benchmarks/ (prints ratio tables)"
	@echo "make lint   - ruff and mypy (the rules are in pyproject.toml); make test runs it first"
	@echo "make docs   - API reference from the docstrings (pdoc) in docs/api/"
	@echo "make fuzz   - the long seeded mutation campaign over the DICOM readers (FUZZ_CASES, FUZZ_SEED)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e .
	touch $@

$(VENV)/.all: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e ".[test,widgets,batch,browser,tf]"
	touch $@

$(VENV)/.bench: $(VENV)/.all
	$(PIP) install -q -e ".[bench]"
	touch $@

# System packages for the browser test (Chromium) and DICOM conformance (dciodvfy).
sysdeps:
	@if command -v chromium >/dev/null && command -v dciodvfy >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium dicom3tools >/dev/null; \
	else echo "sysdeps: chromium/dicom3tools missing and not root: browser and dciodvfy tests will skip"; fi

run: $(VENV)/.core
	$(BIN)/grtv-nb phantom --out $(OUT)

# Lint first (seconds): CI (.ci/run) runs exactly `make test`, so lint is part of it.
test: $(VENV)/.all sysdeps lint
	$(BIN)/python -m pytest -q

bench: $(VENV)/.bench
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

lint: $(VENV)/.all
	$(BIN)/ruff check grtv_nb grtv.py tests benchmarks tools docs
	$(BIN)/python -m mypy

docs: $(VENV)/.all
	$(BIN)/python docs/build_api.py docs/api

FUZZ_CASES ?= 3000
FUZZ_SEED  ?= 1
fuzz: $(VENV)/.all
	$(BIN)/python tools/fuzz_campaign.py --cases $(FUZZ_CASES) --seed $(FUZZ_SEED)

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache test-artifacts docs/api
