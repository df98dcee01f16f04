# grtv_nb: the two commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
OUT    ?= out

.PHONY: run test bench lint docs fuzz lock warmup sysdeps clean help

# The tested set of versions (binder/constraints.txt, `make lock`) applies where the Python version is the
# lock's (elsewhere pip resolves freely).
LOCK   := binder/constraints.txt
PINS   := $(shell $(PYTHON) -c "import re,sys; t=open('$(LOCK)').read(); m=re.search(r'Python (\d+\.\d+)', t); \
            print('-c $(LOCK)' if m and m[1] == '%d.%d' % sys.version_info[:2] else '')" 2>/dev/null)

help:
	@echo "make run    - set up (.venv) and run the main job on the built-in phantom (outputs in $(OUT)/)"
	@echo "make test   - set up (.venv with all extras, Chromium) and run the whole test suite"
	@echo "make bench  - run every benchmark in benchmarks/ (prints ratio tables)"
	@echo "make lint   - ruff and mypy (the rules are in pyproject.toml); make test runs it first"
	@echo "make docs   - API reference from the docstrings (pdoc) in docs/api/"
	@echo "make fuzz   - the long seeded mutation campaign over the DICOM readers (FUZZ_CASES, FUZZ_SEED)"
	@echo "make lock   - pin the tested environment's versions into $(LOCK) (Binder and make test use it)"
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

$(VENV)/.all: pyproject.toml $(LOCK) | $(BIN)/python
	$(PIP) install -q $(PINS) -e ".[test,widgets,batch,browser,tf,notebooks]"
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

# Lint first (seconds): CI (.ci/run) runs exactly `make test`, so lint is part of it.
test: $(VENV)/.all sysdeps lint
	$(BIN)/python -m pytest -q

bench: $(VENV)/.bench
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

warmup: $(VENV)/.core
	$(BIN)/grtv-nb warmup

lint: $(VENV)/.all
	$(BIN)/ruff check grtv_nb grtv.py tests benchmarks tools docs
	$(BIN)/python -m mypy

docs: $(VENV)/.all
	$(BIN)/python docs/build_api.py docs/api

FUZZ_CASES ?= 3000
FUZZ_SEED  ?= 1
fuzz: $(VENV)/.all
	$(BIN)/python tools/fuzz_campaign.py --cases $(FUZZ_CASES) --seed $(FUZZ_SEED)

lock: $(VENV)/.all
	$(BIN)/python binder/lock.py > $(LOCK).tmp && mv $(LOCK).tmp $(LOCK)

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache test-artifacts docs/api
