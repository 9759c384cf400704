#!/usr/bin/env bash
# Installs llama-cpp-python into a venv, built from source with this machine's flags
# (scripts/llama-cmake-args.sh: this CPU's instruction sets, the GPU backend named by
# FIM_LSP_GPU=cuda|metal|vulkan|rocm, then any CMAKE_ARGS of your own), and keeps the built
# wheel for the next venv.
#
#   PYTHON=/path/to/venv/bin/python bash scripts/install-llama.sh   # build if needed, install
#   bash scripts/install-llama.sh --wheel-dir                       # build if needed, print the folder
#
# --wheel-dir is for installers that take a wheel folder, e.g.
#   PIP_FIND_LINKS="$(bash scripts/install-llama.sh --wheel-dir)" pipx install .
#
# pip's own wheel cache cannot be used for this: it keys a built wheel by the source
# archive alone, so a wheel built with other CMake flags (or llama.cpp's -march=native
# default) would be reused. The wheel is kept instead in a folder named after the
# version and a hash of the flags (GPU flags included). The first build takes about
# 8 minutes on 2 cores; a CUDA build takes longer.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
MODE=install
case "${1:-}" in
    "") ;;
    --wheel-dir) MODE="wheel-dir" ;;
    -h | --help)
        sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown option '$1' (use --wheel-dir or nothing)" ;;
esac

if [[ -n "${PYTHON:-}" ]]; then
    PY="$PYTHON"
elif [[ -x "$FIM_ROOT/.venv/bin/python" ]]; then
    PY="$FIM_ROOT/.venv/bin/python"
else
    PY="$(command -v python3)" || die "python3 is needed"
fi
ARGS="$(llama_cmake_args)"
WHEELS="$(llama_build_cache_path wheels/llama-cpp-python "$ARGS")"

if [[ "${FIM_LSP_GPU:-}" == rocm || "${FIM_LSP_GPU:-}" == hip ]] && command -v hipconfig >/dev/null; then
    # llama.cpp's HIP build compiles with ROCm's clang.
    export HIPCXX="${HIPCXX:-$(hipconfig -l)/clang}" HIP_PATH="${HIP_PATH:-$(hipconfig -R)}"
fi

# shellcheck disable=SC2012 # the wheel names are plain ASCII: ls is fine.
wheel="$(ls "$WHEELS"/llama_cpp_python-"$LLAMA_CPP_PYTHON_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
if [[ -z "$wheel" ]]; then
    say "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION: building from source (GPU: ${FIM_LSP_GPU:-none}) with: ${ARGS:-the defaults}" >&2
    rm -rf "$WHEELS.tmp"
    mkdir -p "$WHEELS.tmp"
    # Progress goes to stderr: --wheel-dir prints only the folder on stdout.
    CMAKE_ARGS="$ARGS" "$PY" -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
        --wheel-dir "$WHEELS.tmp" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >&2
    rm -rf "$WHEELS"
    mv "$WHEELS.tmp" "$WHEELS"
    # shellcheck disable=SC2012
    wheel="$(ls "$WHEELS"/llama_cpp_python-"$LLAMA_CPP_PYTHON_VERSION"-*.whl | head -n1)"
fi
printf '%s\n' "$ARGS" >"$WHEELS/cmake-args.txt"

if [[ "$MODE" == wheel-dir ]]; then
    echo "$WHEELS"
    exit 0
fi
say "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION: installing $wheel"
"$PY" -m pip install --force-reinstall --no-deps "$wheel"
# Its own dependencies (numpy, jinja2, ...) come from PyPI as usual.
"$PY" -m pip install "$wheel"
