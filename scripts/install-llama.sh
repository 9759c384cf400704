#!/usr/bin/env bash
# Installs llama-cpp-python into the venv, built from source with this CPU's flags
# (scripts/llama-cmake-args.sh), and keeps the built wheel for the next venv.
#
# pip's own wheel cache cannot be used for this: it keys a built wheel by the source
# archive alone, so a wheel built with other CMake flags (or llama.cpp's -march=native
# default) would be reused. The wheel is kept instead in a folder named after the
# version and the flags. The first build takes about 8 minutes on 2 cores.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PY="${PYTHON:-$FIM_ROOT/.venv/bin/python}"
ARGS="$(llama_cmake_args)"
WHEELS="$(llama_build_cache_path wheels/llama-cpp-python "$ARGS")"

# shellcheck disable=SC2012 # the wheel names are plain ASCII: ls is fine.
wheel="$(ls "$WHEELS"/llama_cpp_python-"$LLAMA_CPP_PYTHON_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
if [[ -z "$wheel" ]]; then
    echo "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION: building from source with: ${ARGS:-the defaults}"
    mkdir -p "$WHEELS.tmp"
    CMAKE_ARGS="$ARGS" "$PY" -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
        --wheel-dir "$WHEELS.tmp" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
    rm -rf "$WHEELS"
    mv "$WHEELS.tmp" "$WHEELS"
    # shellcheck disable=SC2012
    wheel="$(ls "$WHEELS"/llama_cpp_python-"$LLAMA_CPP_PYTHON_VERSION"-*.whl | head -n1)"
fi
echo "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION: installing $wheel"
"$PY" -m pip install --force-reinstall --no-deps "$wheel"
# Its own dependencies (numpy, jinja2, ...) come from PyPI as usual.
"$PY" -m pip install "$wheel"
