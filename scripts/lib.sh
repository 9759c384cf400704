# shellcheck shell=bash
# Helpers shared by the setup and build scripts in this folder. Source it, do not run it:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   - say / die: a message prefixed with the calling script's name ("setup-emacs: ...");
#   - apt_install_missing PACKAGE...: apt-get installs only the packages that are missing;
#   - llama_cmake_args, llama_build_cache_path: the CMake flags and the cache place shared by
#     the two llama.cpp builds (the daemon's llama-cpp-python and the benchmark peer);
#   - sha256_stdin, cpu_count: portable stand-ins for sha256sum and nproc, which a Mac lacks.

# Both llama.cpp builds come from this llama-cpp-python release (pyproject.toml pins the same).
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"

# The repository's root folder.
FIM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() {
    local script=${0##*/}
    echo "${script%.sh}: $*"
}

die() {
    say "$@" >&2
    exit 1
}

# Set once `apt-get update` has run, so that a second apt_install_missing in the same script
# does not fetch the package lists again.
APT_LISTS_UPDATED=""

# Installs those of the given Debian packages that are not installed yet. When all of them
# are, apt-get does not run at all (not even `update`), so a warm machine needs no root.
apt_install_missing() {
    local package missing=()
    for package in "$@"; do
        # grep-like match rather than equality: a multi-arch package reports one status per
        # architecture.
        if [[ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" != *"install ok installed"* ]]; then
            missing+=("$package")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "apt packages present: $*"
        return 0
    fi
    local as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
        as_root=(sudo)
    fi
    say "installing ${missing[*]}"
    # `env` rather than an export: sudo drops the caller's environment. The lock timeout makes
    # apt wait for another setup script (or the system's unattended upgrades) instead of failing.
    local apt_get=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
    if [ -z "$APT_LISTS_UPDATED" ]; then
        "${apt_get[@]}" update -q
        APT_LISTS_UPDATED=1
    fi
    "${apt_get[@]}" install -y -q --no-install-recommends "${missing[@]}"
}

# The SHA-256 of standard input, as 64 hex digits: sha256sum on Linux, shasum on macOS,
# else openssl or Python.
sha256_stdin() {
    if command -v sha256sum >/dev/null; then
        sha256sum | cut -d' ' -f1
    elif command -v shasum >/dev/null; then
        shasum -a 256 | cut -d' ' -f1
    elif command -v openssl >/dev/null; then
        openssl dgst -sha256 -r | cut -d' ' -f1
    else
        python3 -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
    fi
}

# Online CPUs: nproc on Linux, sysctl on macOS, else 1.
cpu_count() {
    nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 1
}

# The CMake flags of both llama.cpp builds: this CPU's instruction sets (AMX left out), the
# GPU backend named by FIM_LSP_GPU (cuda, metal, vulkan, rocm), then the caller's CMAKE_ARGS.
llama_cmake_args() {
    bash "$FIM_ROOT/scripts/llama-cmake-args.sh"
}

# Where a llama.cpp build is kept across clones: NAME (a path under the user cache's fim-lsp
# folder, e.g. peer/llama-server) followed by the llama-cpp-python version and a hash of the
# version and the CMake flags (GPU flags included), so that a build is reused only for the
# same sources and flags.
llama_build_cache_path() {
    local name=$1 cmake_args=$2 key
    key="$(printf '%s %s' "$LLAMA_CPP_PYTHON_VERSION" "$cmake_args" | sha256_stdin | cut -c1-16)"
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/fim-lsp/$name-$LLAMA_CPP_PYTHON_VERSION-$key"
}
