# grtv_nb: the two commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
OUT    ?= out

.PHONY: run test bench lint sysdeps clean help warmup

help:
	@echo "make run    - set up (.venv) and run the main job on the built-in phantom (outputs in $(OUT)/)"
	@echo "make test   - set up (.venv with all extras, Chromium) and run the whole test suite"
	@echo "make bench  - run every benchmark in benchmarks/ (prints ratio tables)"
	@echo "make lint   - ruff"
	@echo "make warmup - compile the numba kernels into their cache (done once by the install steps)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# grtv-nb warmup: compile the numba kernels into their on-disk cache once, at install, instead of
# inside the first resizeImage3D/augmentImg3D of every fresh environment (see grtv_nb/warmup.py).
$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e .
	$(BIN)/grtv-nb warmup
	touch $@

$(VENV)/.all: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e ".[test,widgets,batch,browser,tf]"
	$(BIN)/grtv-nb warmup
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

warmup: $(VENV)/.core
	$(BIN)/grtv-nb warmup

lint: $(VENV)/.all
	$(BIN)/ruff check grtv_nb grtv.py tests benchmarks

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache test-artifacts
