"""The VS Code extension as a package: bundled by esbuild, packaged by vsce without a warning,
and finding the daemon by itself.

The daemon search runs from the bundle itself (out/extension.js) in Node, with the
`vscode` module replaced by an object that answers `getConfiguration` (the only VS Code
API the search uses) and empty stand-ins for the rest; PATH and HOME are the test's.
Starting the extension in a real VS Code is tests/editors/test_vscode.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXT = ROOT / "editors" / "vscode"
BUNDLE = EXT / "out" / "extension.js"


def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is not installed (Node 20): run `make vsix`")
    if not (EXT / "node_modules" / "esbuild").is_dir():
        pytest.fail("the extension's npm packages are not installed: run `make vsix`")
    return found


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A fresh `vsce package` (which bundles first) and everything it printed."""
    out = tmp_path_factory.mktemp("vsix") / "fim-lsp.vsix"
    npx = shutil.which("npx") or "npx"
    node()
    done = subprocess.run(
        [npx, "--no-install", "vsce", "package", "--no-dependencies", "--skip-license",
         "--allow-missing-repository", "-o", str(out)],
        cwd=EXT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done.stdout + done.stderr


def test_vsce_packages_the_bundle_without_a_warning(packaged: tuple[Path, str]) -> None:
    vsix, output = packaged
    assert "WARNING" not in output, output
    assert "tsc -p . --noEmit && node esbuild.mjs" in output, "vsce must bundle through vscode:prepublish"
    names = zipfile.ZipFile(vsix).namelist()
    assert "extension/out/extension.js" in names
    assert not [name for name in names if "node_modules" in name], "the bundle replaces node_modules"
    bundle = zipfile.ZipFile(vsix).read("extension/out/extension.js").decode()
    # vscode-languageclient is inside; only VS Code's own module is left to require.
    assert 'require("vscode-languageclient' not in bundle and "LanguageClient" in bundle
    assert 'require("vscode")' in bundle
    manifest = json.loads(zipfile.ZipFile(vsix).read("extension/package.json"))
    assert manifest["main"] == "./out/extension.js"


def test_make_vsix_is_the_documented_command() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "\nvsix:\n\tbash scripts/setup-vscode.sh --vsix-only\n" in makefile
    assert "make vsix" in (ROOT / "README.md").read_text()


FIND = """
const Module = require('module');
const settings = JSON.parse(process.env.SETTINGS);
const get = (key, fallback) => (key in settings ? settings[key] : fallback);
// Anything the bundle touches at load (classes it extends, enums) is an empty stand-in.
function stub(base = {}) {
  const target = Object.assign(function () {}, base);
  return new Proxy(target, { get: (t, p) => (p in t ? t[p] : (t[p] = stub())) });
}
const vscode = stub({ workspace: stub({ getConfiguration: () => ({ get }) }) });
const load = Module._load;
Module._load = function (request, ...rest) {
  return request === 'vscode' ? vscode : load.call(this, request, ...rest);
};
process.stdout.write(JSON.stringify(require(process.env.BUNDLE).findDaemon()));
"""


def find_daemon(home: Path, path: str, settings: dict[str, str] | None = None) -> dict[str, str]:
    env = {"HOME": str(home), "PATH": path, "BUNDLE": str(BUNDLE), "SETTINGS": json.dumps(settings or {})}
    done = subprocess.run([node(), "-e", FIND], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, str] = json.loads(done.stdout)
    return result


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_the_extension_finds_the_daemon_by_itself(tmp_path: Path) -> None:
    if not BUNDLE.is_file():
        pytest.fail(f"{BUNDLE} is not built: run `make vsix`")
    home, empty = tmp_path / "home", tmp_path / "empty-bin"
    home.mkdir()
    empty.mkdir()
    missing = find_daemon(home, str(empty))
    assert "was not found" in missing["missing"]
    assert str(home / ".local/bin/fim-lsp") in missing["missing"] and "PATH" in missing["missing"]
    # A clone where the README puts it.
    clone = executable(home / "fim-lsp" / ".venv" / "bin" / "fim-lsp")
    assert find_daemon(home, str(empty)) == {"command": str(clone)}
    # `make install` and pipx put it in ~/.local/bin, which wins over the clone.
    local = executable(home / ".local" / "bin" / "fim-lsp")
    assert find_daemon(home, str(empty)) == {"command": str(local)}
    # PATH wins over both.
    on_path = executable(tmp_path / "bin" / "fim-lsp")
    assert find_daemon(home, f"{empty}{os.pathsep}{on_path.parent}") == {"command": str(on_path)}
    # A setting with a path is used as it is, `~` being the home directory.
    mine = executable(home / "tools" / "fim-lsp")
    assert find_daemon(home, str(empty), {"serverPath": "~/tools/fim-lsp"}) == {"command": str(mine)}
    wrong = find_daemon(home, str(empty), {"serverPath": "~/nowhere/fim-lsp"})
    assert "fimLsp.serverPath is ~/nowhere/fim-lsp" in wrong["missing"]


def test_not_found_message_says_how_to_install() -> None:
    source = (EXT / "src" / "extension.ts").read_text()
    assert "make install" in source and "pipx install ." in source and "fimLsp.serverPath" in source
