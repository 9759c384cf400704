"""VS Code: the packaged extension in real code-server 4.100.3, driven by Debian's Chromium.

The end-to-end test runs editors/vscode/test/e2e.mjs against the real daemon and model: it
types in a Python file, waits for the ghost text, accepts it with Tab, saves, and the file on
disk is checked here. The screenshot is kept at artifacts/vscode-ghost-text.png. The other
tests check that the extension's settings mirror the daemon's Config and that the README's
snippets are the ones the test runs. `bash scripts/setup-vscode.sh` installs what it needs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import types
import typing
from pathlib import Path

import msgspec
import pytest

from fim.config import Config

ROOT = Path(__file__).resolve().parents[2]
EXT = ROOT / "editors" / "vscode"
PACKAGE_JSON = EXT / "package.json"
README = EXT / "README.md"
SETTINGS_SNIPPET = EXT / "examples" / "settings.json"
DRIVER = EXT / "test" / "e2e.mjs"
# Given to --install-extension as written, relative to the repository root, like the README.
VSIX_ARG = "editors/vscode/fim-lsp.vsix"
INSTALL_COMMAND = f"code-server --install-extension {VSIX_ARG}"
SETUP_COMMAND = "bash scripts/setup-vscode.sh"
CODE_SERVER_VERSION = "4.100.3"
CHROMIUM = Path("/usr/lib/chromium/chromium")
SCREENSHOT = ROOT / "artifacts" / "vscode-ghost-text.png"
SUMMARY = ROOT / "artifacts" / "vscode-e2e.json"
# Mirrors e2e.mjs: the fixture, what the test types, and what the accepted text must hold.
FIXTURE = 'def is_even(number):\n    """Return True when number is divisible by two."""\n    return '
TYPED = "num"
EXPECTED = "% 2 == 0"
# Mirrors e2e.mjs: typing the last "s" finishes a loop header whose body is empty.
MULTI_LINE_FIXTURE = (
    'def count_evens(numbers):\n    """Return how many of the numbers are even."""\n    count = 0\n'
    "    for number in number\n    return count\n"
)
# Settings of the extension itself; every other `fimLsp.*` setting is one of Config's fields.
CLIENT_SETTINGS = {"fimLsp.enable", "fimLsp.serverPath", "fimLsp.serverArgs", "fimLsp.trace.server"}


def cache_dir() -> Path:
    """The same place scripts/setup-vscode.sh installs into."""
    override = os.environ.get("FIM_LSP_CACHE")
    if override:
        return Path(override)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fim-lsp"


def code_server_bin() -> Path:
    return cache_dir() / "code-server" / CODE_SERVER_VERSION / "node_modules" / ".bin" / "code-server"


def field_docs() -> dict[str, str]:
    """The ``#:`` comments above Config's fields, joined per field."""
    source = (ROOT / "fim" / "config.py").read_text()
    body = source.split("class Config", 1)[1].split("\nCONFIG_SECTION", 1)[0]
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in body.splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = re.match(r"(\w+):", stripped)
        if match and pending:
            docs[match.group(1)] = " ".join(pending)
        pending = []
    return docs


def json_schema_of(annotation: typing.Any) -> dict[str, typing.Any]:
    """What package.json must declare for one Config field's type."""
    schema: dict[str, typing.Any] = {}
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *extras = typing.get_args(annotation)
        for meta in extras:
            if meta.ge is not None:
                schema["minimum"] = meta.ge
            if meta.le is not None:
                schema["maximum"] = meta.le
            if meta.gt is not None:
                schema["exclusiveMinimum"] = meta.gt
    if isinstance(annotation, types.UnionType):
        # One URL or a list of them: VS Code takes a list of types.
        members = [json_schema_of(member) for member in typing.get_args(annotation)]
        schema["type"] = [member["type"] for member in members]
        for member in members:
            schema.update({key: value for key, value in member.items() if key != "type"})
    elif typing.get_origin(annotation) is typing.Literal:
        schema.update(type="string", enum=list(typing.get_args(annotation)))
    elif typing.get_origin(annotation) is list:
        schema.update(type="array", items={"type": "string"})
    else:
        names = {bool: "boolean", int: "integer", float: "number", str: "string"}
        schema["type"] = names[annotation]
    return schema


def test_settings_mirror_the_daemon_config() -> None:
    properties = json.loads(PACKAGE_JSON.read_text())["contributes"]["configuration"]["properties"]
    defaults = msgspec.to_builtins(Config())
    docs = field_docs()
    hints = typing.get_type_hints(Config, include_extras=True)
    fields = msgspec.structs.fields(Config)
    for field in fields:
        key = f"fimLsp.{field.encode_name}"
        assert key in properties, f"package.json has no setting {key}"
        setting = properties[key]
        assert setting["default"] == defaults[field.encode_name], key
        assert "scope" not in setting, f"{key}: daemon options may be set per workspace"
        expected = json_schema_of(hints[field.name])
        declared = {name: setting[name] for name in expected if name in setting}
        assert declared == expected, key
        extra_bounds = {"minimum", "maximum", "exclusiveMinimum", "enum"} & (set(setting) - set(expected))
        assert not extra_bounds, f"{key}: bounds the daemon does not have: {extra_bounds}"
        assert setting.get("description"), f"{key} has no description"
        if field.name in docs:
            assert docs[field.name] in setting["description"], key
    daemon_keys = {f"fimLsp.{field.encode_name}" for field in fields}
    assert set(properties) - daemon_keys == CLIENT_SETTINGS
    # The extension strips its own settings before sending the section to the daemon.
    source = (EXT / "src" / "extension.ts").read_text()
    found = re.search(r"CLIENT_ONLY = new Set\(\[([^\]]*)\]\)", source)
    assert found, "CLIENT_ONLY not found in extension.ts"
    stripped = set(re.findall(r"'([\w.]+)'", found.group(1)))
    assert stripped == {key.split(".")[1] for key in CLIENT_SETTINGS}


def test_readme_snippets_are_the_ones_the_test_runs() -> None:
    readme = README.read_text()
    assert SETTINGS_SNIPPET.read_text() in readme, "README's settings.json differs from examples/"
    assert len(SETTINGS_SNIPPET.read_text().splitlines()) <= 5
    assert INSTALL_COMMAND in readme
    assert SETUP_COMMAND in readme


def preflight() -> dict[str, str]:
    """Everything the driver needs, or a failure that says what is missing and how to get it."""
    fix = f"run `{SETUP_COMMAND}` (or `make editors`)"
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not on PATH; VS Code's test needs Node 20: {fix}")
    binary = code_server_bin()
    if not os.access(binary, os.X_OK):
        pytest.fail(f"code-server {CODE_SERVER_VERSION} is not installed at {binary}: {fix}")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Debian's Chromium is not installed at {CHROMIUM}: {fix}")
    if not (EXT / "node_modules" / "playwright-core").is_dir():
        pytest.fail(f"playwright-core is not installed under {EXT}/node_modules: {fix}")
    vsix = ROOT / VSIX_ARG
    if not vsix.is_file():
        pytest.fail(f"{vsix} is not built: {fix}")
    sources = [*(EXT / "src").glob("*.ts"), PACKAGE_JSON]
    stale = [str(path.relative_to(ROOT)) for path in sources if path.stat().st_mtime > vsix.stat().st_mtime]
    if stale:
        pytest.fail(f"{vsix.name} is older than {', '.join(stale)}: {fix}")
    bin_dir = os.environ.get("FIM_E2E_BIN_DIR") or str(Path(sys.executable).parent)
    if shutil.which("fim-lsp", path=bin_dir) is None:
        pytest.fail(f"no fim-lsp executable in {bin_dir}: run `make venv`")
    return {"node": node, "code_server": str(binary), "bin_dir": bin_dir}


def log_tails(work: Path, lines: int = 40) -> str:
    """The last lines of code-server's log and the extension's output channel, for failures."""
    parts = []
    for pattern in ("code-server.log", "user-data/logs/*/exthost*/fim-lsp.fim-lsp/fim-lsp.log"):
        for path in sorted(work.glob(pattern)):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.relative_to(work)} (last {lines} lines)\n" + "\n".join(text))
    return "\n".join(parts) or "(no logs were written)"


@pytest.mark.editor
@pytest.mark.timeout(900)
def test_ghost_text_accept_and_save_in_code_server(tmp_path: Path) -> None:
    tools = preflight()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    env = {
        **os.environ,
        "FIM_E2E_CODE_SERVER": tools["code_server"],
        "FIM_E2E_CHROMIUM": str(CHROMIUM),
        "FIM_E2E_VSIX": VSIX_ARG,
        "FIM_E2E_SETTINGS": str(SETTINGS_SNIPPET),
        "FIM_E2E_BIN_DIR": tools["bin_dir"],
        "FIM_E2E_WORK": str(tmp_path),
        "FIM_E2E_SCREENSHOT": str(SCREENSHOT),
    }
    started = time.monotonic()
    try:
        run = subprocess.run(
            [tools["node"], str(DRIVER)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=840,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the VS Code driver did not finish in {error.timeout}s\n{log_tails(tmp_path)}")
    seconds = time.monotonic() - started
    lines = run.stdout.strip().splitlines()
    try:
        summary = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        summary = {}
    summary["wallSeconds"] = round(seconds, 1)
    SUMMARY.write_text(json.dumps(summary, indent=2) + "\n")
    context = f"driver stderr:\n{run.stderr[-4000:]}\n{log_tails(tmp_path)}"
    assert run.returncode == 0, (
        f"the VS Code driver failed ({run.returncode}): {summary.get('error')}\n{context}"
    )

    saved = (tmp_path / "project" / "is_even.py").read_text()
    assert saved.startswith(FIXTURE + TYPED), f"the typed word is not in the saved file: {saved!r}"
    assert EXPECTED in saved, f"the accepted completion is not in the saved file: {saved!r}"
    assert TYPED + TYPED not in saved, f"the typed word was inserted twice: {saved!r}"
    # What was shown as ghost text is exactly what Tab inserted.
    assert saved == FIXTURE + TYPED + summary["ghostText"], (saved, summary["ghostText"])
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"no screenshot at {SCREENSHOT}"
    assert summary["readyLabel"].startswith("fim-lsp: ready, on")
    assert not summary["problems"], "\n".join(summary["problems"]) + f"\n{context}"
    assert re.search(r"accepted [1-9]\d* of \d+", summary["acceptedLabel"])
    assert "state: ready · model: qwen2.5-coder-0.5b" in summary["statusText"]
    assert summary["channels"] == ["fim-lsp status", "fim-lsp"]
    assert re.search(r"\[(info|warning|error)\] ", summary["logsText"]), summary["logsText"]
    assert '"fimLsp.enable": false' in summary["userSettingsAfterToggle"]
    assert ", off," in summary["toggledOffLabel"] and ", on," in summary["toggledOnLabel"]
    # No warning about a setting, no failure: fim-lsp put nothing in the notification center.
    assert not [text for text in summary["notifications"] if "fim-lsp" in text], summary["notifications"]
    # A multi-line suggestion: its first line accepted alone, then the rest with Tab.
    header = "    for number in numbers"
    after_line = summary["multiLineAfterLine"].split("\n")
    assert after_line[:3] == MULTI_LINE_FIXTURE.split("\n")[:3], summary["multiLineAfterLine"]
    assert after_line[3] == header + ":", summary["multiLineAfterLine"]
    saved_lines = summary["multiLineSaved"].split("\n")
    assert saved_lines[3] == header + ":", summary["multiLineSaved"]
    body = saved_lines[4 : saved_lines.index("    return count")]
    assert body and all(line.startswith("        ") for line in body), summary["multiLineSaved"]
    assert summary["multiLineSaved"].endswith("    return count\n"), summary["multiLineSaved"]
