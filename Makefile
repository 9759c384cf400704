# fim-lsp: `make demo` and `make test` work on a fresh machine with python3, make and gcc.
# Every step is idempotent: the venv, pip's wheel cache, the model cache and the editor
# tools are reused on a second run.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
MODEL ?= qwen2.5-coder-0.5b

.PHONY: demo test test-fast test-editors lint typecheck model editors peer clean-venv

$(STAMP): pyproject.toml scripts/install-llama.sh scripts/llama-cmake-args.sh scripts/lib.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip wheel setuptools
	@echo "Installing fim-lsp; the first run builds llama.cpp from source (about 8 minutes on 2 cores)."
	PYTHON=$(PY) bash scripts/install-llama.sh
	$(PY) -m pip install -e '.[test]'
	@touch $@

venv: $(STAMP)

model: $(STAMP)
	$(BIN)/fim-lsp model pull $(MODEL)

editors: $(STAMP)
	bash scripts/setup-editors.sh

demo: $(STAMP) model
	$(BIN)/fim-lsp demo --model $(MODEL)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) model editors peer lint typecheck
	$(BIN)/pytest -q -ra

test-fast: $(STAMP) model
	$(BIN)/pytest -q -ra --ignore=tests/editors

test-editors: $(STAMP) model editors
	$(BIN)/pytest -q -ra tests/editors

peer: $(STAMP)
	bash scripts/build-peer.sh

clean-venv:
	rm -rf $(VENV)
