#!/usr/bin/env bash
# Idempotent setup for the Emacs editor tests: emacs-nox, Debian's eglot and tmux.
# apt-get runs (with an update first) only when one of them is missing.
set -euo pipefail

packages=(emacs-nox elpa-eglot tmux)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "setup-emacs: emacs-nox, elpa-eglot and tmux are installed"
else
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || {
            echo "setup-emacs: need root (or sudo) to install: ${missing[*]}" >&2
            exit 1
        }
        SUDO="sudo"
    fi
    echo "setup-emacs: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

emacs --version | head -1
