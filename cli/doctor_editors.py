"""The doctor's editor checks: is each editor here, is the plugin installed, will it find the daemon?

The checks read files; they never start an editor with the user's configuration (a
plugin manager could install things, a language server could start). For each editor:

* Neovim: ``nvim`` on PATH (0.10+), a config under ``~/.config/nvim`` that loads
  ``fim_lsp`` or the plugin in a plugin manager's folder, and the daemon the plugin will
  run: setup's ``cmd``, else ``<plugin>/../../.venv/bin/fim-lsp``, else ``fim-lsp`` on PATH.
* Emacs: ``emacs`` (28+), an init file that loads ``fim-lsp``
  or the package under ``~/.emacs.d/elpa``, and the daemon: ``fim-lsp-program``, else the
  ``.venv`` beside ``fim-lsp.el``'s repository, else ``fim-lsp`` on ``exec-path``.
* VS Code and code-server: the ``fim-lsp.fim-lsp`` extension in their extension folders,
  and the daemon the extension finds: ``fimLsp.serverPath``, else ``fim-lsp`` on PATH,
  ``~/.local/bin/fim-lsp``, ``~/fim-lsp/.venv/bin/fim-lsp``.

Every problem comes with the exact lines or commands that fix it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cli.doctor_report import Section

EXTENSION_ID = "fim-lsp.fim-lsp"
#: Where plugin managers (lazy.nvim, packer and Neovim's own packages) put the plugin.
NVIM_PLUGIN_PATTERNS = (
    "lazy/*/lua/fim_lsp/init.lua",
    "lazy/*/editors/nvim/lua/fim_lsp/init.lua",
    "site/pack/*/*/*/lua/fim_lsp/init.lua",
    "site/pack/*/*/*/editors/nvim/lua/fim_lsp/init.lua",
)


@dataclass
class Environment:
    home: Path
    path: str
    #: The fim-lsp executable of the installation running this doctor.
    daemon: Path | None
    #: The repository this doctor runs from (an editable install or a clone's .venv), if any.
    clone: Path | None

    @staticmethod
    def current() -> Environment:
        bin_dir = Path(sys.executable).parent
        names = ("fim-lsp", "fim-lsp.exe")
        daemon = next((bin_dir / name for name in names if (bin_dir / name).exists()), None)
        root = Path(__file__).resolve().parents[1]
        clone = root if (root / "editors" / "nvim").is_dir() else None
        return Environment(Path.home(), os.environ.get("PATH", ""), daemon, clone)

    def which(self, name: str) -> str | None:
        return shutil.which(name, path=self.path)

    def config_home(self) -> Path:
        return Path(os.environ.get("XDG_CONFIG_HOME") or self.home / ".config")

    def data_home(self) -> Path:
        return Path(os.environ.get("XDG_DATA_HOME") or self.home / ".local" / "share")

    def expand(self, text: str) -> Path:
        """``~/x`` in a config file: relative to this home."""
        if text == "~" or text.startswith("~/"):
            return self.home / text[2:]
        return Path(text)

    def show(self, path: Path) -> str:
        """A path as the user would type it (``~/...``)."""
        try:
            return "~/" + str(path.relative_to(self.home))
        except ValueError:
            return str(path)

    def plugin_source(self, sub: str) -> str:
        return self.show(self.clone / sub) if self.clone else f"~/fim-lsp/{sub}"


def _version(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0] if first else None


def _version_tuple(text: str | None) -> tuple[int, ...]:
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(part) for part in found.groups() if part is not None) if found else ()


def _read_texts(paths: list[Path]) -> dict[Path, str]:
    texts = {}
    for path in paths:
        try:
            texts[path] = path.read_text(errors="replace")
        except OSError:
            continue
    return texts


def _same_file(a: str | Path | None, b: str | Path | None) -> bool:
    if a is None or b is None:
        return False
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def check_daemon_on_path(env: Environment, section: Section) -> None:
    found = env.which("fim-lsp")
    section.data["daemon"] = str(env.daemon) if env.daemon else None
    section.data["on_path"] = found
    link = env.home / ".local" / "bin" / "fim-lsp"
    if found and (env.daemon is None or _same_file(found, env.daemon)):
        section.add("ok", f"fim-lsp on PATH: {found}")
    elif found:
        section.add(
            "warn",
            f"fim-lsp on PATH is {found}, not this one ({env.daemon})",
            "editors that look on PATH will run the other one; remove it, or run `make install` "
            "from the clone you want to use",
        )
    elif link.exists():
        section.add(
            "warn",
            f"{env.show(link)} exists but ~/.local/bin is not on PATH",
            'add it to PATH in your shell profile: export PATH="$HOME/.local/bin:$PATH"',
        )
    else:
        fix = "from a clone: `make install` (puts fim-lsp in ~/.local/bin), or `pipx install .`"
        section.add("warn", "fim-lsp is not on PATH: editors will not find it by name", fix)


# ------------------------------------------------------------------------------ Neovim


def check_neovim(env: Environment, section: Section) -> None:
    nvim = env.which("nvim")
    data: dict[str, object] = {"found": nvim}
    section.data["neovim"] = data
    if not nvim:
        section.add("info", "Neovim: not found (skipped)")
        return
    version = _version([nvim, "--version"])
    data["version"] = version
    if _version_tuple(version) < (0, 10):
        section.add("warn", f"Neovim: {version}: the plugin needs 0.10 or newer", "install Neovim 0.10+")
        return
    config_dir = env.config_home() / "nvim"
    configs = _read_texts(
        [config_dir / "init.lua", config_dir / "init.vim", *sorted(config_dir.glob("lua/**/*.lua"))]
    )
    using = {path: text for path, text in configs.items() if "fim_lsp" in text}
    plugin_dirs = [
        env.expand(found).resolve()
        for text in using.values()
        for found in re.findall(r"[\"']([^\"']*editors/nvim)/?[\"']", text)
    ]
    data_dir = env.data_home() / "nvim"
    for pattern in NVIM_PLUGIN_PATTERNS:
        plugin_dirs += [found.parents[2] for found in data_dir.glob(pattern)]
    plugin_dirs = [path for path in dict.fromkeys(plugin_dirs) if (path / "lua" / "fim_lsp").is_dir()]
    data["config_files"] = [str(path) for path in using]
    data["plugin_dirs"] = [str(path) for path in plugin_dirs]
    snippet = (
        f'vim.opt.runtimepath:append(vim.fn.expand("{env.plugin_source("editors/nvim")}"))\n'
        'require("fim_lsp").setup({})'
    )
    if not using:
        section.add(
            "warn",
            f"Neovim {_version_tuple(version)[:2]}: the fim-lsp plugin is not in {env.show(config_dir)}",
            f"add to {env.show(config_dir / 'init.lua')}:\n{snippet}",
        )
        return
    where = ", ".join(env.show(path) for path in using)
    if any(re.search(r"\bcmd\s*=", text) for text in using.values()):
        section.add("ok", f"Neovim: fim_lsp set up in {where} with its own `cmd`")
        return
    venvs = [path.parents[1] / ".venv" / "bin" / "fim-lsp" for path in plugin_dirs]
    daemon = next((venv for venv in venvs if os.access(venv, os.X_OK)), None) or env.which("fim-lsp")
    data["daemon"] = str(daemon) if daemon else None
    if daemon:
        section.add("ok", f"Neovim: fim_lsp set up in {where}; it will run {daemon}")
    else:
        section.add(
            "fail",
            f"Neovim: fim_lsp is set up in {where} but will not find the daemon",
            "run `make install` in the clone (fim-lsp on PATH), or give the plugin its path:\n"
            f'require("fim_lsp").setup({{ cmd = {{ "{env.daemon or "/path/to/fim-lsp"}", "serve" }} }})',
        )


# ------------------------------------------------------------------------------- Emacs


def check_emacs(env: Environment, section: Section) -> None:
    emacs = env.which("emacs")
    data: dict[str, object] = {"found": emacs}
    section.data["emacs"] = data
    if not emacs:
        section.add("info", "Emacs: not found (skipped)")
        return
    version = _version([emacs, "--version"])
    data["version"] = version
    numbers = _version_tuple(version)
    if numbers < (28,):
        section.add("warn", f"Emacs: {version}: fim-lsp.el needs 28.1 or newer", "install Emacs 28.1+")
        return
    init_files = [
        env.home / ".emacs",
        env.home / ".emacs.el",
        env.home / ".emacs.d" / "init.el",
        env.config_home() / "emacs" / "init.el",
    ]
    using = {path: text for path, text in _read_texts(init_files).items() if "fim-lsp" in text}
    packages = sorted((env.home / ".emacs.d" / "elpa").glob("fim-lsp-*/fim-lsp.el"))
    load_dirs = [
        env.expand(found).resolve()
        for text in using.values()
        for found in re.findall(r"load-path\s+\"([^\"]+)\"", text)
    ]
    data["init_files"] = [str(path) for path in using]
    data["packages"] = [str(path) for path in packages]
    snippet = (
        f'(add-to-list \'load-path "{env.plugin_source("editors/emacs")}")\n'
        "(require 'fim-lsp)\n(add-hook 'python-mode-hook #'fim-lsp-mode)"
    )
    if not using and not packages:
        section.add(
            "warn",
            f"Emacs {'.'.join(map(str, numbers[:2]))}: fim-lsp.el is not loaded by your init file",
            f"add to ~/.emacs.d/init.el:\n{snippet}",
        )
        return
    where = ", ".join(env.show(path) for path in [*using, *packages])
    if any("fim-lsp-program" in text for text in using.values()):
        section.add("ok", f"Emacs: fim-lsp set up in {where} with its own fim-lsp-program")
        return
    venvs = [path.parents[1] / ".venv" / "bin" / "fim-lsp" for path in load_dirs if len(path.parents) > 1]
    daemon = next((venv for venv in venvs if os.access(venv, os.X_OK)), None) or env.which("fim-lsp")
    data["daemon"] = str(daemon) if daemon else None
    if daemon:
        section.add("ok", f"Emacs: fim-lsp set up in {where}; fim-lsp-mode will run {daemon}")
    else:
        section.add(
            "fail",
            f"Emacs: fim-lsp is set up in {where} but will not find the daemon",
            "run `make install` in the clone (fim-lsp on PATH), or set it in your init file:\n"
            f'(setq fim-lsp-program "{env.daemon or "/path/to/fim-lsp"}")',
        )


# ----------------------------------------------------------------------------- VS Code


def _jsonc(text: str) -> dict[str, object]:
    """settings.json allows comments and trailing commas."""
    text = re.sub(r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/', lambda m: m.group(1) or "", text, flags=re.S)
    text = re.sub(r",(\s*[}\]])", r"\1", text)
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def extension_daemon(env: Environment, server_path: str | None) -> str | None:
    """The daemon the VS Code extension will run: the same search as src/extension.ts."""
    if server_path and server_path != "fim-lsp":
        configured = env.expand(server_path)
        return str(configured) if os.access(configured, os.X_OK) else env.which(server_path)
    candidates: list[str | Path | None] = [
        env.which("fim-lsp"),
        env.home / ".local" / "bin" / "fim-lsp",
        env.home / "fim-lsp" / ".venv" / "bin" / "fim-lsp",
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def check_vscode(env: Environment, section: Section) -> None:
    flavours = [
        (
            "VS Code",
            "code",
            [".vscode/extensions", ".vscode-server/extensions"],
            [".config/Code/User/settings.json", "Library/Application Support/Code/User/settings.json"],
        ),
        (
            "code-server",
            "code-server",
            [".local/share/code-server/extensions"],
            [".local/share/code-server/User/settings.json"],
        ),
    ]
    vsix = env.plugin_source("editors/vscode/fim-lsp.vsix")
    for label, command, extension_dirs, settings_files in flavours:
        binary = env.which(command)
        data: dict[str, object] = {"found": binary}
        section.data[command] = data
        if not binary:
            section.add("info", f"{label}: not found (skipped)")
            continue
        installed = [
            path
            for folder in extension_dirs
            for path in sorted((env.home / folder).glob(f"{EXTENSION_ID}-*"))
        ]
        data["extension"] = [str(path) for path in installed]
        if not installed:
            build = f"cd {env.show(env.clone)} && make vsix" if env.clone else "in a clone: make vsix"
            section.add(
                "warn",
                f"{label}: the fim-lsp extension is not installed",
                f"{build}\n{command} --install-extension {vsix}",
            )
            continue
        settings: dict[str, object] = {}
        for name in settings_files:
            settings.update(_jsonc(_read_texts([env.home / name]).get(env.home / name, "")))
        server_path = settings.get("fimLsp.serverPath")
        data["serverPath"] = server_path
        daemon = extension_daemon(env, server_path if isinstance(server_path, str) else None)
        data["daemon"] = daemon
        if daemon:
            section.add("ok", f"{label}: extension {installed[-1].name}; it will run {daemon}")
        else:
            section.add(
                "fail",
                f"{label}: the extension is installed but will not find the daemon",
                "run `make install` in the clone (puts fim-lsp in ~/.local/bin), or set in settings.json:\n"
                f'"fimLsp.serverPath": "{env.daemon or "/path/to/fim-lsp"}"',
            )


def check_editors(section: Section, env: Environment | None = None) -> None:
    env = env or Environment.current()
    check_daemon_on_path(env, section)
    check_neovim(env, section)
    check_emacs(env, section)
    check_vscode(env, section)
