"""Emacs end to end: editors/emacs/fim-lsp.el in a real Emacs 28, the real daemon and model,
beside a real second language server: eglot runs pylsp in the same Python buffer.

Emacs runs with HOME set to a throwaway directory laid out as the README says: the repository
at ~/fim-lsp, and ~/.emacs.d/init.el a user's config: eglot with pylsp in Python buffers (the
user's own set-up, USER_CONFIG), then editors/emacs/example/init.el (the README's snippet,
byte for byte). pylsp is python-lsp-server from the project's `test` extra, found in the
venv that runs the tests and put on PATH, where eglot's default entry for Python finds it.
The daemon runs with its default options (time budget included).

- The ERT suite (editors/emacs/test/fim-lsp-test.el) runs once in batch mode; each of its
  tests is reported here as its own pytest test.
- An interactive `emacs -nw` under tmux: type, see the ghost text on the captured screen,
  C-g hides it, `M-x fim-lsp-complete` shows it again, Tab accepts; save, and check the
  file on disk.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.editor

REPO = Path(__file__).resolve().parents[2]
SNIPPET = REPO / "editors" / "emacs" / "example" / "init.el"
KEYS = REPO / "editors" / "emacs" / "example" / "keys.el"
README = REPO / "editors" / "emacs" / "README.md"
ERT_FILE = REPO / "editors" / "emacs" / "test" / "fim-lsp-test.el"
ERT_TESTS = re.findall(r"^\(ert-deftest (\S+)", ERT_FILE.read_text(), re.MULTILINE)
INSTALL_HINT = "run scripts/setup-emacs.sh (apt-get install emacs-nox elpa-eglot tmux)"
# Debian's Emacs 28 compiles Lisp to native code in the background the first time a fresh
# home uses it: minutes of CPU beside the daemon, and a *Warnings* window. The tests' home
# turns that off in early-init.el; init.el stays the README's snippet.
EARLY_INIT = (
    ";; Test harness only: no background native compilation in this throwaway home.\n"
    "(setq native-comp-deferred-compilation nil\n"
    "      native-comp-async-report-warnings-errors 'silent)\n"
)


# What the user had before adding fim-lsp: eglot runs their language server, pylsp.
USER_CONFIG = (
    ";; The user's own language server: eglot with pylsp in Python buffers.\n"
    "(require 'eglot)\n"
    "(add-hook 'python-mode-hook #'eglot-ensure)\n\n"
)
PYLSP = Path(sys.executable).parent / "pylsp"


@dataclass
class EmacsHome:
    home: Path
    fixture: Path
    env: dict[str, str]


def emacs_home(base: Path, kit: Any) -> EmacsHome:
    home = kit.make_home(base)
    (home / ".emacs.d").mkdir(exist_ok=True)
    (home / ".emacs.d" / "init.el").write_text(USER_CONFIG + SNIPPET.read_text())
    (home / ".emacs.d" / "early-init.el").write_text(EARLY_INIT)
    fixture = kit.make_fixture(base / "project")
    if not PYLSP.is_file():
        pytest.fail(f"{PYLSP} is missing: install the test extra (`pip install -e '.[test]'`)")
    env = kit.editor_env(home, PATH=f"{PYLSP.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return EmacsHome(home, fixture, env)


def test_readme_snippet_is_the_tested_config() -> None:
    readme = README.read_text()
    snippet = SNIPPET.read_text()
    assert len(snippet.strip().splitlines()) <= 5
    assert f"```elisp\n{snippet}```" in readme, "the README's config block must be the snippet"
    # The optional keys the ERT suite loads are the README's binding lines.
    assert f"```elisp\n{KEYS.read_text()}```" in readme, "the README's key block must be keys.el"
    assert "fim-lsp-eglot-register" in readme


# ------------------------------------------------------------------------------------- ERT


@dataclass
class ErtRun:
    results: dict[str, str]
    output: str
    returncode: int


@pytest.fixture(scope="module")
def ert_run(tmp_path_factory: pytest.TempPathFactory, editors: Any) -> ErtRun:
    emacs = editors.require_executable("emacs", INSTALL_HINT)
    editors.daemon_command()
    setup = emacs_home(tmp_path_factory.mktemp("emacs-ert"), editors)
    env = {**setup.env, "FIM_LSP_TEST_FILE": str(setup.fixture)}
    command = [
        emacs, "--batch", "-l", str(setup.home / ".emacs.d" / "init.el"), "-l", str(ERT_FILE),
        "-f", "ert-run-tests-batch-and-exit",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, env=env, cwd=setup.fixture.parent, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the ERT run did not finish in 600 s; output so far:\n{error.stderr}")
    output = done.stdout + done.stderr
    (setup.home.parent / "ert-output.txt").write_text(output)  # kept for a look
    results = {
        name: status
        for status, name in re.findall(r"^\s+(passed|FAILED|skipped)\s+\d+/\d+\s+(\S+)", output, re.M)
    }
    if not results:
        pytest.fail(f"Emacs ran no ERT test (exit {done.returncode}):\n{output}")
    return ErtRun(results, output, done.returncode)


@pytest.mark.parametrize("name", ERT_TESTS)
def test_ert(ert_run: ErtRun, name: str) -> None:
    status = ert_run.results.get(name)
    assert status == "passed", f"ERT {name}: {status or 'did not run'}\n{ert_run.output}"


def test_ert_run_is_complete(ert_run: ErtRun) -> None:
    assert len(ERT_TESTS) >= 8
    assert sorted(ert_run.results) == sorted(ERT_TESTS), ert_run.output
    assert ert_run.returncode == 0, ert_run.output
    assert re.search(r"Ran \d+ tests, \d+ results as expected, 0 unexpected", ert_run.output)


# ------------------------------------------------------------------------------- tmux -nw


class Tmux:
    """One tmux server of our own (its own socket), running `emacs -nw` in a 100x30 pane."""

    def __init__(self, binary: str, env: dict[str, str]) -> None:
        self.binary = binary
        self.env = env
        self.socket = f"fim-lsp-test-{os.getpid()}"

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [self.binary, "-L", self.socket, *args],
            env=self.env, capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        return done.stdout

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "fim", *keys)

    def text(self, text: str) -> None:
        self.run("send-keys", "-t", "fim", "-l", text)

    def screen(self, escapes: bool = False) -> str:
        return self.run("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "fim")


@pytest.fixture
def tmux_emacs(tmp_path: Path, editors: Any) -> Iterator[tuple[Tmux, EmacsHome]]:
    emacs = editors.require_executable("emacs", INSTALL_HINT)
    tmux_binary = editors.require_executable("tmux", INSTALL_HINT)
    editors.daemon_command()
    setup = emacs_home(tmp_path, editors)
    tmux = Tmux(tmux_binary, setup.env)
    command = f"{emacs} -nw {setup.fixture.name}"
    tmux.run(
        "new-session", "-d", "-s", "fim", "-x", "100", "-y", "30", "-c", str(setup.fixture.parent), command
    )
    try:
        yield tmux, setup
    finally:
        screen = tmux.screen(escapes=True) if tmux_alive(tmux) else "(tmux gone)"
        (tmp_path / "emacs-screen.txt").write_text(screen)
        with contextlib.suppress(Exception):
            tmux.run("kill-server")


def tmux_alive(tmux: Tmux) -> bool:
    try:
        tmux.run("has-session", "-t", "fim")
    except subprocess.CalledProcessError:
        return False
    return True


def screen_line(screen: str, start: str) -> str | None:
    for line in screen.splitlines():
        if line.startswith(start):
            return line.rstrip()
    return None


def face_changes_at(screen: str, buffer_line: str) -> bool:
    """On a `capture-pane -e` screen: is there an SGR escape right where `buffer_line` ends?"""
    for line in screen.splitlines():
        visible, escape_before = 0, False
        for token in re.findall(r"\x1b\[[0-9;]*m|.", line):
            if token.startswith("\x1b"):
                escape_before = True
                continue
            if visible == len(buffer_line):
                break
            visible += 1
            escape_before = False
        if re.sub(r"\x1b\[[0-9;]*m", "", line).startswith(buffer_line) and visible == len(buffer_line):
            return escape_before
    return False


def test_ghost_text_visible_in_emacs_nw(tmux_emacs: tuple[Tmux, EmacsHome], editors: Any) -> None:
    tmux, setup = tmux_emacs

    def ready() -> bool:
        # What a user would do: M-x fim-lsp-status until it says the model is ready.
        tmux.keys("M-x")
        tmux.text("fim-lsp-status")
        tmux.keys("Enter")
        time.sleep(0.5)
        return "ready; model qwen2.5-coder-0.5b" in tmux.screen()

    editors.wait_until(ready, "`M-x fim-lsp-status` to report the model ready", 300, 1.0, tmux.screen)
    assert "*Warnings*" not in tmux.screen()
    tmux.keys("M-<", "C-n", "C-n", "C-e")
    for char in editors.TYPED:
        tmux.text(char)
        time.sleep(0.05)

    buffer_line = editors.TYPED_LINE
    on_disk = setup.fixture.read_text()
    for attempt in range(6):
        # The ghost text: the screen line goes on past what the buffer holds.
        def ghost_shown(typed: str = buffer_line) -> str | None:
            line = screen_line(tmux.screen(), typed)
            return line if line and len(line) > len(typed) else None

        shown = editors.wait_until(ghost_shown, "ghost text on the screen", timeout=120, describe=tmux.screen)
        if attempt == 0:
            # C-g (keyboard-quit, not rebound) hides it; M-x fim-lsp-complete asks again.
            tmux.keys("C-g")
            editors.wait_until(
                lambda line=buffer_line: screen_line(tmux.screen(), line) == line,
                "C-g to hide the ghost text",
                timeout=10,
                describe=tmux.screen,
            )
            tmux.keys("M-x")
            tmux.text("fim-lsp-complete")
            tmux.keys("Enter")
            shown = editors.wait_until(
                ghost_shown, "ghost text after M-x fim-lsp-complete", timeout=120, describe=tmux.screen
            )
        screen = tmux.screen(escapes=True)
        if not (setup.home.parent / "emacs-ghost-screen.txt").exists():
            (setup.home.parent / "emacs-ghost-screen.txt").write_text(screen)  # kept for a look
        assert face_changes_at(screen, buffer_line), "the ghost text needs its own face"
        tmux.keys("Tab")
        tmux.keys("C-x", "C-s")
        on_disk = editors.wait_until(
            lambda previous=on_disk: (text := setup.fixture.read_text()) != previous and text,
            "Tab and C-x C-s to write the accepted text",
            timeout=60,
            describe=tmux.screen,
        )
        buffer_line = on_disk.splitlines()[editors.FIXTURE_LINE]
        assert buffer_line == shown, "the file must get exactly the text that was shown"
        if editors.EXPECTED_FRAGMENT in buffer_line:
            break
    lines = on_disk.splitlines()
    assert lines[editors.FIXTURE_LINE].startswith("    return number"), on_disk
    assert editors.EXPECTED_FRAGMENT in lines[editors.FIXTURE_LINE], on_disk
    assert lines[: editors.FIXTURE_LINE] == editors.FIXTURE_TEXT.splitlines()[: editors.FIXTURE_LINE]
