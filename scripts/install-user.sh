#!/usr/bin/env bash
# `make install` / `make uninstall`: fim-lsp for one user, from a clone, the way pipx does it.
#
#   bash scripts/install-user.sh              # install (or upgrade) and fetch the default model
#   bash scripts/install-user.sh --uninstall  # remove what install wrote; caches are kept
#   bash scripts/install-user.sh --purge      # remove that and the caches (models included)
#
# Install writes:
#   $FIM_LSP_HOME/venv (default ~/.local/share/fim-lsp/venv): a venv with fim-lsp and its
#     runtime dependencies only (no pytest, mypy, ruff or Neovim), llama-cpp-python built by
#     scripts/install-llama.sh with this CPU's flags and FIM_LSP_GPU's backend;
#   $FIM_LSP_BIN_DIR/fim-lsp (default ~/.local/bin/fim-lsp): a link to the venv's fim-lsp;
#   the default model in the cache (~/.cache/fim-lsp/models), unless FIM_LSP_NO_MODEL=1.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
INSTALL_HOME="${FIM_LSP_HOME:-$DATA_HOME/fim-lsp}"
VENV="$INSTALL_HOME/venv"
BIN_DIR="${FIM_LSP_BIN_DIR:-$HOME/.local/bin}"
LINK="$BIN_DIR/fim-lsp"
MARKER="$VENV/.fim-lsp-user-install"
CACHE="${FIM_LSP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fim-lsp}"
PYTHON_FOR_VENV="${PYTHON:-python3}"

install() {
    command -v "$PYTHON_FOR_VENV" >/dev/null || die "$PYTHON_FOR_VENV is needed (Python 3.11 or newer)"
    "$PYTHON_FOR_VENV" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$PYTHON_FOR_VENV is $("$PYTHON_FOR_VENV" --version 2>&1); fim-lsp needs Python 3.11 or newer"
    if [[ -e "$VENV" && ! -f "$MARKER" ]]; then
        die "$VENV exists and was not made by this script; move it away first"
    fi
    say "installing into $VENV"
    [[ -x "$VENV/bin/python" ]] || "$PYTHON_FOR_VENV" -m venv "$VENV"
    touch "$MARKER"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    PYTHON="$VENV/bin/python" bash "$FIM_ROOT/scripts/install-llama.sh"
    # Not editable: the install keeps working when the clone moves or changes.
    "$VENV/bin/python" -m pip install --quiet "$FIM_ROOT"
    mkdir -p "$BIN_DIR"
    ln -sfn "$VENV/bin/fim-lsp" "$LINK"
    "$LINK" --version
    if [[ "${FIM_LSP_NO_MODEL:-}" != 1 ]]; then
        "$LINK" model pull "${MODEL:-qwen2.5-coder-0.5b}"
    fi
    say "installed: $LINK -> $VENV/bin/fim-lsp"
    case ":$PATH:" in
        *":$BIN_DIR:"*) ;;
        *) say "add $BIN_DIR to PATH in your shell profile: export PATH=\"$BIN_DIR:\$PATH\"" ;;
    esac
    say "next: fim-lsp doctor (checks the machine, the model and your editors)"
}

uninstall() {
    local purge=$1
    if [[ -L "$LINK" && "$(readlink "$LINK")" == "$VENV/bin/fim-lsp" ]]; then
        rm -f "$LINK"
        say "removed $LINK"
    elif [[ -e "$LINK" ]]; then
        say "left $LINK alone: it is not this install's link"
    fi
    if [[ -f "$MARKER" ]]; then
        rm -rf "$VENV"
        rmdir "$INSTALL_HOME" 2>/dev/null || true
        say "removed $VENV"
    elif [[ -e "$VENV" ]]; then
        say "left $VENV alone: it was not made by this script"
    else
        say "no install at $VENV"
    fi
    if [[ "$purge" == 1 ]]; then
        rm -rf "$CACHE"
        say "removed the cache $CACHE (models, built llama.cpp wheels, editor test tools)"
    elif [[ -d "$CACHE" ]]; then
        say "kept the cache $CACHE ($(du -sh "$CACHE" 2>/dev/null | cut -f1)): models, built wheels;" \
            "remove it with: rm -rf $CACHE   (or: make uninstall PURGE=1)"
    fi
    say "editor pieces, if you added them: the fim_lsp lines in ~/.config/nvim/init.lua, the fim-lsp" \
        "lines in ~/.emacs.d/init.el, and: code --uninstall-extension fim-lsp.fim-lsp"
}

case "${1:-}" in
    "") install ;;
    --uninstall) uninstall 0 ;;
    --purge) uninstall 1 ;;
    -h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown option '$1' (use --uninstall, --purge or nothing)" ;;
esac
