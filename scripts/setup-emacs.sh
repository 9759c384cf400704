#!/usr/bin/env bash
# Idempotent setup for the Emacs editor tests: emacs-nox, tmux, and Debian's eglot (the tests
# run a real pylsp under eglot in the buffer where fim-lsp-mode shows ghost text).
# apt-get runs (with an update first) only when one of them is missing.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

apt_install_missing emacs-nox elpa-eglot tmux
emacs --version | head -1
