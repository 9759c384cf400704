#!/usr/bin/env bash
# Build llama.cpp's `llama-server` for the benchmark peer (`fim-lsp bench ... --peer auto`).
#
# The peer must run the same llama.cpp as the daemon, so the sources come from the
# llama-cpp-python 0.3.36 source distribution (its vendor/llama.cpp), not from a
# llama.cpp checkout. CPU only, no curl, no extras. The result is .peer/bin/llama-server
# (git-ignored). Idempotent: if the binary is already there and runs, nothing is done.
# A built binary is also kept in the user's cache, named after the version and the CMake
# flags, so that a fresh clone on the same machine does not build it again. The first
# build takes several minutes on 2 cores.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PEER="$FIM_ROOT/.peer"
BIN="$PEER/bin/llama-server"
PY="${PYTHON:-$FIM_ROOT/.venv/bin/python}"
JOBS="${JOBS:-$(cpu_count)}"

# The same instruction sets as the daemon's llama-cpp-python build.
ARCH_ARGS="$(llama_cmake_args)"
if [[ -x "$BIN" ]] && "$BIN" --version >/dev/null 2>&1 \
    && [[ "$(cat "$BIN.cmake-args" 2>/dev/null)" == "$ARCH_ARGS" ]]; then
    echo "peer: $BIN already built"
    exit 0
fi
CACHED="$(llama_build_cache_path peer/llama-server "$ARCH_ARGS")"
install_binary() {
    mkdir -p "$PEER/bin"
    cp "$1" "$BIN.tmp"
    mv "$BIN.tmp" "$BIN"
    printf '%s' "$ARCH_ARGS" > "$BIN.cmake-args"
}
if [[ -x "$CACHED" ]] && "$CACHED" --version >/dev/null 2>&1; then
    install_binary "$CACHED"
    echo "peer: $BIN from $CACHED"
    exit 0
fi

mkdir -p "$PEER/src" "$PEER/bin"
cd "$PEER/src"

SDIST="$(ls llama_cpp_python-"$LLAMA_CPP_PYTHON_VERSION".tar.gz 2>/dev/null || true)"
if [[ -z "$SDIST" ]]; then
    echo "peer: downloading the llama-cpp-python $LLAMA_CPP_PYTHON_VERSION source distribution"
    # --no-binary for this package only: build dependencies may come as wheels (with
    # :all: pip would compile cmake and friends from source just to read metadata).
    "$PY" -m pip download --no-deps --no-binary llama-cpp-python --dest . \
        "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
    SDIST="llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
fi

SRC="$PEER/src/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION"
if [[ ! -d "$SRC/vendor/llama.cpp" ]]; then
    tar -xzf "$SDIST"
fi
LLAMA="$SRC/vendor/llama.cpp"
test -f "$LLAMA/CMakeLists.txt" || { echo "peer: no vendored llama.cpp in $SDIST" >&2; exit 1; }

GENERATOR=()
if command -v ninja >/dev/null 2>&1; then
    GENERATOR=(-G Ninja)
fi

# Static, CPU only, no network client: the peer only ever serves on loopback.
# shellcheck disable=SC2086 # ARCH_ARGS is a list of flags, split into words on purpose.
cmake -S "$LLAMA" -B "$PEER/build" "${GENERATOR[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_TOOLS=ON \
    -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_OPENMP=ON \
    $ARCH_ARGS

cmake --build "$PEER/build" --target llama-server -j "$JOBS"

mkdir -p "$(dirname "$CACHED")"
cp "$PEER/build/bin/llama-server" "$CACHED.tmp"
mv "$CACHED.tmp" "$CACHED"
install_binary "$CACHED"
"$BIN" --version
echo "peer: built $BIN"
