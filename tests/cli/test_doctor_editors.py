"""The doctor's editor checks, with a throwaway home laid out as the READMEs say.

The editors are the real ones installed here (the venv's Neovim, Debian's Emacs,
code-server from scripts/setup-vscode.sh); only HOME and PATH are the test's. Each
problem must come with the lines that fix it, and with those lines in place the check
must pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli.doctor_editors import Environment, check_daemon_on_path, check_emacs, check_neovim, check_vscode
from cli.doctor_report import Section

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
NVIM_EXAMPLE = ROOT / "editors" / "nvim" / "example" / "init.lua"
EMACS_EXAMPLE = ROOT / "editors" / "emacs" / "example" / "init.el"


@pytest.fixture(autouse=True)
def _no_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)


def tool_dir(tmp_path: Path, *names: str) -> Path:
    """A PATH folder with links to the given programs only (fim-lsp left out unless named)."""
    folder = tmp_path / "tools"
    folder.mkdir(exist_ok=True)
    for name in names:
        found = shutil.which(name, path=f"{VENV_BIN}:{os.environ['PATH']}")
        if found is None:
            pytest.fail(f"{name} is not installed: run `make editors`")
        (folder / name).symlink_to(found)
    return folder


def environment(tmp_path: Path, *tools: str, daemon: Path | None = VENV_BIN / "fim-lsp") -> Environment:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return Environment(home, str(tool_dir(tmp_path, *tools)), daemon, ROOT)


def test_neovim_plugin_missing_then_set_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = environment(tmp_path, "nvim")
    monkeypatch.setattr(Path, "home", lambda: env.home)
    section = Section("editors", "Editors")
    check_neovim(env, section)
    (finding,) = section.findings
    assert finding.status == "warn" and "not in ~/.config/nvim" in finding.text
    assert finding.fix and f'vim.opt.runtimepath:append(vim.fn.expand("{ROOT}/editors/nvim"))' in finding.fix
    # The README's layout: the clone at ~/fim-lsp and the example config.
    (env.home / "fim-lsp").symlink_to(ROOT)
    (env.home / ".config" / "nvim").mkdir(parents=True)
    shutil.copyfile(NVIM_EXAMPLE, env.home / ".config" / "nvim" / "init.lua")
    section = Section("editors", "Editors")
    check_neovim(env, section)
    (finding,) = section.findings
    assert finding.status == "ok", finding
    assert str(ROOT / ".venv" / "bin" / "fim-lsp") in finding.text


def test_neovim_plugin_that_cannot_find_the_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = environment(tmp_path, "nvim")
    monkeypatch.setattr(Path, "home", lambda: env.home)
    # A copy of the plugin outside any clone with a .venv, and no fim-lsp on PATH.
    plugin = env.home / "plugins" / "fim-lsp" / "editors" / "nvim"
    shutil.copytree(ROOT / "editors" / "nvim", plugin)
    config = env.home / ".config" / "nvim"
    config.mkdir(parents=True)
    (config / "init.lua").write_text(
        f'vim.opt.runtimepath:append("{plugin}")\nrequire("fim_lsp").setup({{}})\n'
    )
    section = Section("editors", "Editors")
    check_neovim(env, section)
    (finding,) = section.findings
    assert finding.status == "fail" and "will not find the daemon" in finding.text
    assert finding.fix and f'cmd = {{ "{VENV_BIN / "fim-lsp"}", "serve" }}' in finding.fix


def test_emacs_init_missing_then_set_up(tmp_path: Path) -> None:
    env = environment(tmp_path, "emacs")
    section = Section("editors", "Editors")
    check_emacs(env, section)
    assert section.findings[-1].status == "warn"
    assert (
        section.findings[-1].fix
        and f'(add-to-list \'load-path "{ROOT}/editors/emacs")' in section.findings[-1].fix
    )
    (env.home / "fim-lsp").symlink_to(ROOT)
    (env.home / ".emacs.d").mkdir()
    shutil.copyfile(EMACS_EXAMPLE, env.home / ".emacs.d" / "init.el")
    section = Section("editors", "Editors")
    check_emacs(env, section)
    assert [f.status for f in section.findings] == ["ok"], section.findings
    assert str(ROOT / ".venv" / "bin" / "fim-lsp") in section.findings[0].text


def test_daemon_on_path(tmp_path: Path) -> None:
    section = Section("editors", "Editors")
    check_daemon_on_path(environment(tmp_path), section)
    assert section.findings[0].status == "warn" and "make install" in (section.findings[0].fix or "")
    env = environment(tmp_path, "fim-lsp")
    section = Section("editors", "Editors")
    check_daemon_on_path(env, section)
    assert section.findings[0].status == "ok"


def code_server() -> Path:
    cache = Path(
        os.environ.get("FIM_LSP_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fim-lsp"
    )
    binary = cache / "code-server" / "4.100.3" / "node_modules" / ".bin" / "code-server"
    if not binary.exists():
        pytest.fail(f"code-server is not installed at {binary}: run `make editors`")
    return binary


def test_code_server_extension_missing_then_installed(tmp_path: Path) -> None:
    env = environment(tmp_path)
    (Path(env.path) / "code-server").symlink_to(code_server())
    section = Section("editors", "Editors")
    check_vscode(env, section)
    assert [f.status for f in section.findings] == ["info", "warn"]
    assert "code-server --install-extension" in (section.findings[1].fix or "")
    vsix = ROOT / "editors" / "vscode" / "fim-lsp.vsix"
    if not vsix.is_file():
        pytest.fail(f"{vsix} is not built: run `make vsix`")
    installed = subprocess.run(
        [str(code_server()), "--install-extension", str(vsix)],
        env={**os.environ, "HOME": str(env.home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    # Installed, but no fim-lsp on PATH, in ~/.local/bin or in ~/fim-lsp/.venv.
    section = Section("editors", "Editors")
    check_vscode(env, section)
    assert section.findings[1].status == "fail"
    assert f'"fimLsp.serverPath": "{VENV_BIN / "fim-lsp"}"' in (section.findings[1].fix or "")
    # `make install` puts the daemon in ~/.local/bin: the extension looks there by itself.
    (env.home / ".local" / "bin").mkdir(parents=True)
    (env.home / ".local" / "bin" / "fim-lsp").symlink_to(VENV_BIN / "fim-lsp")
    section = Section("editors", "Editors")
    check_vscode(env, section)
    assert section.findings[1].status == "ok" and ".local/bin/fim-lsp" in section.findings[1].text
