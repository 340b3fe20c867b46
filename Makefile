# recnotes: two commands do everything.
#   make book   set up, fetch the pinned assets, execute every chapter, build _build/html
#   make test   set up, fetch the pinned assets, run the unit tests and the notebook tests
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch for the local environment (Colab brings its own torch).
TORCH_SPEC ?= torch==2.13.0
PROFILE ?= full
# Chapters executed at once (one lane per core; each chapter uses one PyTorch thread).
JOBS ?= 2
# The exact versions that produced the published book (pip constraints; empty: unpinned, newest).
LOCK ?= constraints.txt
LOCK_FLAG := $(if $(LOCK),-c $(LOCK),)
# Filter pip's noise about unreachable extra indexes, keep its errors.
PIPQ := 2>&1 | { grep -v 'is ignored: it is neither' || true; }

STAMP := $(VENV)/.recnotes-installed
ASSETS_STAMP := $(VENV)/.recnotes-assets

.PHONY: help setup assets execute html book test unit nbtest unit-run unit-slow-run unit-quick-run nbtest-run clean lock

help:
	@echo "make book   # set up, execute every chapter (profile=$(PROFILE)), build _build/html"
	@echo "make test   # set up, unit tests + notebook tests (profile ci)"
	@echo "make execute [CHAPTERS='01_background'] [PROFILE=ci] [JOBS=2]   # only execute chapters into book/"
	@echo "make html   # only build the HTML from the executed notebooks in book/"
	@echo "make lock   # upgrade the pinned versions of constraints.txt (then re-execute the book)"

$(STAMP): pyproject.toml Makefile $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip $(PIPQ)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH_SPEC) $(PIPQ)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[book,test,llm]" $(LOCK_FLAG) $(PIPQ)
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

setup: $(STAMP)

# Upgrade the pinned versions deliberately: a fresh venv, the newest releases the package admits,
# frozen into $(LOCK) (torch stays TORCH_SPEC's). Re-execute the book after it.
lock:
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv" && \
	"$$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip $(PIPQ) && \
	"$$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check $(TORCH_SPEC) $(PIPQ) && \
	"$$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check ".[book,test,llm]" $(PIPQ) && \
	{ head -3 $(LOCK); "$$tmp/venv/bin/python" -m pip freeze --exclude-editable | grep -v '^torch==\|^recnotes[ =@]'; } > "$$tmp/lock" && \
	mv "$$tmp/lock" $(LOCK) && echo "$(LOCK): $$(grep -c '==' $(LOCK)) pinned versions; now re-execute the book (make book)"

# Always run: verification is cheap; a missing file is fetched again, a corrupted
# one is deleted and reported (the next run fetches it).
assets: setup
	$(BIN)/python -m recnotes.assets fetch

execute: assets
	$(BIN)/python scripts/execute.py --profile $(PROFILE) --jobs $(JOBS) $(CHAPTERS)

# The site serves its own MathJax (pinned, from the npm registry): fetched once into the cache.
html: setup
	$(BIN)/python -m recnotes.assets fetch mathjax
	rm -rf _build/html
	$(BIN)/jupyter-book build . --path-output . -W --keep-going

book: execute html
	@echo "book: $(CURDIR)/_build/html/index.html"

# One PyTorch thread per process, as make book runs: with two threads and another process
# on the other core, a training step was measured about 30 times slower.
ONE_THREAD := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

unit: assets
	@$(MAKE) --no-print-directory unit-run

unit-run:
	$(ONE_THREAD) $(BIN)/python -m pytest -q tests

# make test's two lanes: one runs the slowest unit test files (a minute or more each on a 2-core
# CPU: chapters run again with another LLM and dataset and as on Colab, the LLM's fine-tuning and
# scoring), the other the notebook tests and then the quick unit tests, so that the two end at
# about the same time. Each pytest session has a temporary folder of its own.
UNIT_SLOW := tests/test_rerun.py tests/test_gpu_check.py tests/test_served.py tests/test_finetune.py \
             tests/test_itemhead.py tests/test_llm.py tests/test_longrun.py tests/test_colab.py

unit-slow-run:
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(ONE_THREAD) $(BIN)/python -m pytest -q --basetemp="$$tmp/pytest" $(UNIT_SLOW)

unit-quick-run:
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(ONE_THREAD) $(BIN)/python -m pytest -q --basetemp="$$tmp/pytest" tests $(addprefix --ignore=,$(UNIT_SLOW))

# Re-run the executed chapters in book/ in the quick profile; cells tagged
# nbval-check-output (dataset statistics, checksums) must reproduce their output.
# Results go to a temporary folder so the committed book/results stay as published.
nbtest: assets
	@$(MAKE) --no-print-directory nbtest-run

nbtest-run:
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(ONE_THREAD) RECNOTES_PROFILE=ci RECNOTES_RESULTS=$$tmp $(BIN)/python -m pytest -q --nbval-lax --nbval-current-env -p no:cacheprovider book/*.ipynb

# The unit tests (in two parts, above) and the notebook tests side by side, one core and one
# PyTorch thread each
# (each one's output comes when it ends, where make can hold it back: GNU make 4+).
SYNC := $(if $(filter output-sync,$(.FEATURES)),--output-sync=target,)
test: assets
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null \
	  || echo "WARNING: no Chromium here: the page tests (layout at 1280 px) will be SKIPPED (apt-get install chromium)"
	@echo "unit tests and notebook tests, side by side (JOBS=$(JOBS))"
	@$(MAKE) --no-print-directory -j$(JOBS) $(SYNC) unit-slow-run nbtest-run unit-quick-run

clean:
	rm -rf _build
