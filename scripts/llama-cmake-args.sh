#!/usr/bin/env bash
# Prints the CMake flags both llama.cpp builds use: the daemon's (llama-cpp-python) and
# the benchmark peer's (llama-server), so that the two run the same kernels.
#
# Why not llama.cpp's default, -march=native: on CPUs with AMX (Sapphire Rapids and
# later) it compiles ggml's AMX matrix kernels, and in the llama.cpp that
# llama-cpp-python 0.3.36 vendors they crash (SIGSEGV in ggml_backend_amx_mul_mat) on the
# virtual machines this project is built on. So the instruction sets are named one by
# one from /proc/cpuinfo, with AMX left out. Off x86 the default is kept.
set -euo pipefail

case "$(uname -m)" in
    x86_64 | amd64) ;;
    *) exit 0 ;;
esac

flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { [[ "$flags" == *" $1 "* ]]; }
option() {
    local name=$1
    shift
    local feature
    for feature in "$@"; do
        has "$feature" || { printf -- '-D%s=OFF ' "$name"; return; }
    done
    printf -- '-D%s=ON ' "$name"
}

printf -- '-DGGML_NATIVE=OFF '
option GGML_SSE42 sse4_2
option GGML_AVX avx
option GGML_AVX2 avx2
option GGML_FMA fma
option GGML_F16C f16c
option GGML_BMI2 bmi2
option GGML_AVX_VNNI avx_vnni
option GGML_AVX512 avx512f avx512cd avx512vl avx512dq avx512bw
option GGML_AVX512_VBMI avx512vbmi
option GGML_AVX512_VNNI avx512_vnni
option GGML_AVX512_BF16 avx512_bf16
printf -- '-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF\n'
