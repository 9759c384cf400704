#!/usr/bin/env bash
# Prints the CMake flags both llama.cpp builds use: the daemon's (llama-cpp-python) and
# the benchmark peer's (llama-server), so that the two run the same kernels.
#
# 1. CPU: this CPU's instruction sets named one by one, AMX left out. Why not llama.cpp's
#    default, -march=native: on CPUs with AMX (Sapphire Rapids and later) it compiles
#    ggml's AMX matrix kernels, and in the llama.cpp that llama-cpp-python 0.3.36 vendors
#    they crash (SIGSEGV in ggml_backend_amx_mul_mat) on the virtual machines this project
#    is built on. The sets come from /proc/cpuinfo on Linux and from sysctl on an Intel
#    Mac; off x86, or when neither can be read, llama.cpp's defaults are kept.
# 2. GPU: FIM_LSP_GPU=cuda|metal|vulkan|rocm adds that backend (cpu or empty: none).
# 3. The caller's own CMAKE_ARGS come last, so they win over both.
set -euo pipefail

gpu_flags() {
    case "${FIM_LSP_GPU:-}" in
        "" | cpu | none) ;;
        cuda) printf -- '-DGGML_CUDA=ON ' ;;
        metal) printf -- '-DGGML_METAL=ON ' ;;
        vulkan) printf -- '-DGGML_VULKAN=ON ' ;;
        rocm | hip) printf -- '-DGGML_HIP=ON ' ;;
        *)
            echo "llama-cmake-args: FIM_LSP_GPU='${FIM_LSP_GPU}' is not one of cuda, metal, vulkan, rocm (or cpu)" >&2
            exit 2
            ;;
    esac
}

# This CPU's flags in Linux's spelling (lower case, "avx512_vnni"), space-separated and
# padded with spaces; empty when they cannot be read.
cpu_flags() {
    if [[ "$(uname -s)" == Darwin ]]; then
        command -v sysctl >/dev/null || return 0
        # machdep.cpu.features / leaf7_features spell them "AVX1.0 AVX2 AVX512F ...".
        local words
        words="$(sysctl -n machdep.cpu.features machdep.cpu.leaf7_features 2>/dev/null | tr '[:upper:]' '[:lower:]' | tr '\n' ' ')"
        words="${words//avx1.0/avx}"
        words="${words//sse4.2/sse4_2}"
        words="${words//avx512vnni/avx512_vnni}"
        printf ' %s ' "$words"
    elif [[ -r /proc/cpuinfo ]] && grep -q '^flags' /proc/cpuinfo; then
        printf ' %s ' "$(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2)"
    fi
}

cpu_part() {
    case "$(uname -m)" in
        x86_64 | amd64) ;;
        *) return 0 ;;
    esac
    local flags
    flags="$(cpu_flags)"
    if [[ -z "${flags// /}" ]]; then
        echo "llama-cmake-args: cannot read this CPU's instruction sets; keeping llama.cpp's defaults" >&2
        return 0
    fi
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
    printf -- '-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF'
}

cpu="$(cpu_part)"
gpu="$(gpu_flags)"
args="$cpu"
[[ -n "$gpu" ]] && args="${args:+$args }${gpu% }"
[[ -n "${CMAKE_ARGS:-}" ]] && args="${args:+$args }$CMAKE_ARGS"
printf '%s\n' "$args"
