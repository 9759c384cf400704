#!/usr/bin/env bash
# Installs llama-cpp-python into the venv, built from source with this CPU's flags
# (scripts/llama-cmake-args.sh), and keeps the built wheel for the next venv.
#
# pip's own wheel cache cannot be used for this: it keys a built wheel by the source
# archive alone, so a wheel built with other CMake flags (or llama.cpp's -march=native
# default) would be reused. The wheel is kept instead in a folder named after the
# version and the flags. The first build takes about 8 minutes on 2 cores.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
ARGS="$(bash "$ROOT/scripts/llama-cmake-args.sh")"
KEY="$(printf '%s %s' "$VERSION" "$ARGS" | sha256sum | cut -c1-16)"
WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/fim-lsp/wheels/llama-cpp-python-$VERSION-$KEY"

wheel="$(ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -n1 || true)"
if [[ -z "$wheel" ]]; then
    echo "llama-cpp-python $VERSION: building from source with: ${ARGS:-the defaults}"
    mkdir -p "$WHEELS.tmp"
    CMAKE_ARGS="$ARGS" "$PY" -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
        --wheel-dir "$WHEELS.tmp" "llama-cpp-python==$VERSION"
    rm -rf "$WHEELS"
    mv "$WHEELS.tmp" "$WHEELS"
    wheel="$(ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl | head -n1)"
fi
echo "llama-cpp-python $VERSION: installing $wheel"
"$PY" -m pip install --force-reinstall --no-deps "$wheel"
# Its own dependencies (numpy, jinja2, ...) come from PyPI as usual.
"$PY" -m pip install "$wheel"
