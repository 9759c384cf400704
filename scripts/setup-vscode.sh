#!/usr/bin/env bash
# Idempotent setup for the VS Code extension and its end-to-end test:
#   1. Debian packages chromium, libkrb5-dev and ripgrep (apt runs only when one is missing);
#   2. the extension's npm packages (`npm ci` when node_modules is missing or the lock changed);
#   3. the extension type-checked with tsc, bundled with esbuild into out/extension.js and
#      packaged to editors/vscode/fim-lsp.vsix (no node_modules inside);
#   4. code-server 4.100.3 (VS Code 1.100.3, the newest that runs on Node 20) in the cache dir.
# With --vsix-only (`make vsix`) only steps 2 and 3 run: what a user needs to build the .vsix.
# Only the npm registry and Debian's archive are used: ripgrep's download from GitHub is
# replaced by a tarball of Debian's /usr/bin/rg, seeded where @vscode/ripgrep looks first.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VSIX_ONLY=""
case "${1:-}" in
    "") ;;
    --vsix-only) VSIX_ONLY=1 ;;
    *) die "unknown option '$1' (use --vsix-only or nothing)" ;;
esac

EXT="$FIM_ROOT/editors/vscode"
CACHE="${FIM_LSP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fim-lsp}"
CODE_SERVER_VERSION=4.100.3
CODE_SERVER_DIR="$CACHE/code-server/$CODE_SERVER_VERSION"
CODE_SERVER_BIN="$CODE_SERVER_DIR/node_modules/.bin/code-server"
# @vscode/ripgrep 1.15.11 (code-server 4.100.3's) looks for this file before downloading.
RIPGREP_CACHE_NAME=vscode-ripgrep-cache-1.15.11
RIPGREP_TARBALL=ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz

# --- 1. Debian packages -------------------------------------------------------------
if [ -z "$VSIX_ONLY" ]; then
    apt_install_missing chromium libkrb5-dev ripgrep
fi
command -v node >/dev/null || die "node (20 or newer) and npm are required"

# --- 2. npm packages of the extension -------------------------------------------------
# npm ci only when node_modules is missing or package-lock.json changed since the last one.
lock_sum="$(sha256_stdin <"$EXT/package-lock.json")"
stamp="$EXT/node_modules/.fim-lsp-lock.sha256"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ]; then
    say "npm packages up to date"
else
    say "npm ci in editors/vscode"
    (cd "$EXT" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_sum" >"$stamp"
fi

# --- 3. bundle and package the extension --------------------------------------------
vsix="$EXT/fim-lsp.vsix"
newest_source="$(find "$EXT/src" "$EXT/package.json" "$EXT/package-lock.json" "$EXT/tsconfig.json" \
    "$EXT/esbuild.mjs" "$EXT/README.md" "$EXT/.vscodeignore" -newer "$vsix" 2>/dev/null | head -1 || true)"
if [ -f "$vsix" ] && [ -z "$newest_source" ]; then
    say "fim-lsp.vsix is up to date"
else
    say "bundling and packaging the extension"
    # `vsce package` runs the vscode:prepublish script first: tsc --noEmit, then esbuild.
    (cd "$EXT" && npm run --silent package >/dev/null)
    say "built $vsix"
fi
if [ -n "$VSIX_ONLY" ]; then
    say "install it with: code --install-extension $vsix"
    exit 0
fi

# --- 4. code-server in the cache dir -----------------------------------------------
# The first run of code-server logs a line before the version: take the version line.
code_server_version() {
    "$CODE_SERVER_BIN" --version 2>/dev/null | grep -Eo '^[0-9]+\.[0-9]+\.[0-9]+' | head -1 || true
}
installed_version=""
# The stamp is written only after a complete install (postinstall included).
if [ -x "$CODE_SERVER_BIN" ] && [ -f "$CODE_SERVER_DIR/.installed" ]; then
    installed_version="$(code_server_version)"
fi
if [ "$installed_version" = "$CODE_SERVER_VERSION" ]; then
    say "code-server $CODE_SERVER_VERSION present in $CODE_SERVER_DIR"
else
    say "installing code-server $CODE_SERVER_VERSION into $CODE_SERVER_DIR (about two minutes on 2 cores)"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/$RIPGREP_CACHE_NAME" "$work/rg"
    cp "$(command -v rg)" "$work/rg/rg"
    tar -czf "$work/$RIPGREP_CACHE_NAME/$RIPGREP_TARBALL" -C "$work/rg" rg
    rm -rf "$CODE_SERVER_DIR"
    mkdir -p "$CODE_SERVER_DIR"
    TMPDIR="$work" npm_config_yes=true npm_config_unsafe_perm=true \
        npm install --prefix "$CODE_SERVER_DIR" --no-audit --no-fund --loglevel=error \
        "code-server@$CODE_SERVER_VERSION"
    installed_version="$(code_server_version)"
    [ "$installed_version" = "$CODE_SERVER_VERSION" ] \
        || die "code-server reports version '$installed_version'"
    touch "$CODE_SERVER_DIR/.installed"
fi
say "ready: $CODE_SERVER_BIN, /usr/lib/chromium/chromium, $vsix"
