#!/usr/bin/env bash
# Fetch llama.cpp's vocabulary-only GGUF files (models/ggml-vocab-*.gguf) for the tests.
#
# The llama-cpp-python source distribution ships them under vendor/llama.cpp/models/:
# real tokenizers (DeepSeek-Coder, StarCoder, Qwen2, Refact, ...) without weights, a few
# MB each. The control-token injection tests load them vocab-only. They go to
# $FIM_LSP_VOCABS, else the user cache's fim-lsp/vocabs folder. The source distribution
# is the one `make peer` unpacks into .peer/src when it is there; otherwise pip fetches it
# (from its own cache when it can). Idempotent: with the files in place nothing is done.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PY="${PYTHON:-$FIM_ROOT/.venv/bin/python}"
DEST="${FIM_LSP_VOCABS:-${XDG_CACHE_HOME:-$HOME/.cache}/fim-lsp/vocabs}"
# The vocabularies the tests need; the others in the archive come along.
REQUIRED=(deepseek-coder starcoder qwen2 refact)

have_all() {
    local name
    for name in "${REQUIRED[@]}"; do
        [[ -s "$DEST/ggml-vocab-$name.gguf" ]] || return 1
    done
}

if have_all; then
    say "vocabularies already in $DEST"
    exit 0
fi
mkdir -p "$DEST"

SDIST="$FIM_ROOT/.peer/src/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
WORK=""
cleanup() { [[ -n "$WORK" ]] && rm -rf "$WORK"; }
trap cleanup EXIT
if [[ ! -s "$SDIST" ]]; then
    WORK="$(mktemp -d)"
    say "downloading the llama-cpp-python $LLAMA_CPP_PYTHON_VERSION source distribution"
    "$PY" -m pip download --quiet --no-deps --no-binary :all: --dest "$WORK" \
        "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
    SDIST="$WORK/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
fi
[[ -s "$SDIST" ]] || die "no source distribution at $SDIST"

# Only the vocabulary files, flattened into DEST; --wildcards because GNU tar matches
# member names literally otherwise.
tar -xzf "$SDIST" -C "$DEST" --wildcards --no-anchored --strip-components=4 \
    'vendor/llama.cpp/models/ggml-vocab-*.gguf'
have_all || die "the source distribution did not hold every vocabulary (${REQUIRED[*]})"
say "vocabularies in $DEST: $(cd "$DEST" && ls ggml-vocab-*.gguf | wc -l) files"
