# grtv_nb: the two commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
OUT    ?= out

.PHONY: run test bench lint sysdeps clean help

help:
	@echo "make run    - set up (.venv) and run the main job on the built-in phantom (outputs in $(OUT)/)"
	@echo "make test   - set up (.venv with all extras, Chromium) and run the whole test suite"
	@echo "make bench  - run every benchmark in benchmarks/ (prints ratio tables)"
	@echo "make lint   - ruff"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e .
	touch $@

$(VENV)/.all: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e ".[test,widgets,batch,browser,tf,notebooks]"
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

test: $(VENV)/.all sysdeps
	$(BIN)/python -m pytest -q

bench: $(VENV)/.bench
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

lint: $(VENV)/.all
	$(BIN)/ruff check grtv_nb grtv.py tests benchmarks

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache test-artifacts
