#!/usr/bin/env bash
# Installs what the editor tests need (Neovim, Emacs, VS Code via code-server), idempotently.
# Each editor's own script skips whatever is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
for editor in nvim emacs vscode; do
  script="scripts/setup-${editor}.sh"
  if [ -f "$script" ]; then
    echo "== setting up ${editor}"
    bash "$script"
  fi
done
