"""Several daemons, one model: the shared engine host, with the real model, over real LSP.

Two ``fim-lsp serve`` processes with ``sharedEngine`` on (as two editor windows start
them) find one host process and both get right completions from it. When the host dies
(a crash in llama.cpp), at most the request in flight goes unanswered with text and the
next ones are served by a new host. A host that stops answering (SIGSTOP, as a hang in a
native call would) is killed by the daemon whose cancel it ignored, and replaced. New
engine settings move a daemon to another host, and the one it leaves exits at once. A
model only the host finds broken is named at once, and ``fim/status`` through a host
says what it says with the model in the daemon.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fim.shared.client import IDLE_SECONDS_ENV
from fim.shared.wire import LOAD_FAILED, live_hosts
from harness.stress.wire import RawConnection

SOURCE = 'def is_even(number):\n    """Return True when number is divisible by two."""\n    return num'
OPTIONS = {"sharedEngine": True, "timeBudgetMs": 60000}


def suggestion(connection: RawConnection, uri: str, character: int = 14) -> str:
    answer = connection.wait(connection.inline(uri, 2, character, invoked=True), 180)
    assert answer is not None, "no answer"
    items = (answer.result or {}).get("items") or []
    return str(items[0]["insertText"]) if items else ""


def test_two_daemons_share_one_model_and_outlive_its_crash(model_path: Path) -> None:
    windows = [RawConnection() for _ in range(2)]
    hosts: set[Any] = set()
    try:
        for window in windows:
            window.start()
            window.initialize(OPTIONS)
        assert all(window.wait_ready()["state"] == "ready" for window in windows)
        hosts = {window.status()["sharedEnginePid"] for window in windows}
        assert len(hosts) == 1 and None not in hosts, hosts
        (host,) = hosts
        assert host not in {window.pid for window in windows}
        for index, window in enumerate(windows):
            uri = f"file:///window{index}/is_even.py"
            window.open(uri, SOURCE)
            assert "% 2 == 0" in suggestion(window, uri)

        os.kill(host, signal.SIGKILL)
        # The daemons answer empty while a new host starts; then the new host serves them.
        window = windows[0]
        deadline = time.monotonic() + 120
        while window.status()["sharedEnginePid"] in (None, host):
            assert time.monotonic() < deadline, "no new host"
            time.sleep(0.2)
        # A document never seen: no cache or type-through can answer, the model must.
        uri = "file:///window0/is_odd.py"
        window.open(uri, SOURCE.replace("is_even", "is_odd").replace("divisible", "not divisible"))
        texts = [suggestion(window, uri) for _ in range(2)]
        assert any("% 2" in text for text in texts), texts
        new_host = window.status()["sharedEnginePid"]
        hosts.add(new_host)
        assert new_host not in (None, host)
        assert all(window.alive for window in windows)
    finally:
        for window in windows:
            window.shutdown()
        for pid in hosts:
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


LONG_BODY = 'def fibonacci_table(count):\n    """Return the first count Fibonacci numbers, one per line."""\n'


@contextlib.contextmanager
def one_window() -> Iterator[tuple[RawConnection, set[Any]]]:
    """A daemon whose model is ready, and the hosts it used, all killed at the end."""
    window = RawConnection()
    hosts: set[Any] = set()
    try:
        window.start()
        window.initialize(OPTIONS)
        assert window.wait_ready()["state"] == "ready"
        hosts.add(window.status()["sharedEnginePid"])
        yield window, hosts
    finally:
        window.shutdown()
        for pid in hosts:
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(pid, signal.SIGKILL)


def first_message(window: RawConnection) -> str:
    """The first ``window/showMessage`` the daemon sent, waited for."""
    deadline = time.monotonic() + 30
    while not (shown := [n for n in window.notifications if n.get("method") == "window/showMessage"]):
        assert time.monotonic() < deadline, window.notifications
        time.sleep(0.1)
    return str(shown[0]["params"]["message"])


def replacement(window: RawConnection, host: Any) -> Any:
    """The pid of the host that took over from ``host``, waited for."""
    deadline = time.monotonic() + 120
    while (new_host := window.status()["sharedEnginePid"]) in (None, host):
        assert time.monotonic() < deadline, "the model process was not replaced"
        time.sleep(0.2)
    return new_host


@pytest.mark.parametrize("kill_with", [signal.SIGSEGV, signal.SIGKILL])
def test_a_model_process_killed_mid_request_costs_one_answer(
    model_path: Path, kill_with: signal.Signals
) -> None:
    with one_window() as (window, hosts):
        (host,) = hosts
        uri = "file:///window/fib.py"
        window.open(uri, LONG_BODY)
        request = window.inline(uri, 2, 0, invoked=True)  # a block body: many tokens to decode
        time.sleep(0.5)
        os.kill(host, kill_with)
        answer = window.wait(request, 120)
        assert answer is not None, "the request in flight was never answered"
        # The user is told once, with the reason and where the log is.
        message = first_message(window)
        assert "model process stopped" in message and f"killed by {kill_with.name}" in message, message
        assert ".log" in message
        # A new host comes up by itself; then completions are right again.
        hosts.add(replacement(window, host))
        other = "file:///window/is_even.py"
        window.open(other, SOURCE)
        assert "% 2 == 0" in suggestion(window, other)
        assert len([n for n in window.notifications if n.get("method") == "window/showMessage"]) == 1
        assert window.alive


def generating(window: RawConnection, uri: str, chars: int) -> None:
    """Wait until the generation for ``uri`` has written ``chars`` characters."""
    deadline = time.monotonic() + 120
    while not any(
        entry["uri"] == uri and entry["generatedChars"] >= chars for entry in window.status()["generations"]
    ):
        assert time.monotonic() < deadline, window.status()["generations"]
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        # A keystroke against the suggestion cancels it; the stopped host never ends it
        # (its silence since the last piece is as long, and may be named instead).
        ("    zq", "hung, killed"),
        # A keystroke along the suggestion carries it on: nothing cancels, yet the host
        # stopped streaming it.
        ("    ", "sent nothing for 20 s in the middle of a suggestion"),
    ],
    ids=["cancelled", "carried-on"],
)
def test_a_hung_model_process_is_killed_and_replaced(model_path: Path, typed: str, why: str) -> None:
    """SIGSTOP stands for a hang in a native call: the host answers nothing, not even a cancel."""
    with one_window() as (window, hosts):
        (host,) = hosts
        uri = "file:///window/fib.py"
        window.open(uri, LONG_BODY)
        first = window.inline(uri, 2, 0, invoked=True)  # a block body: many tokens to decode
        generating(window, uri, len(typed))  # the body's indent is written
        os.kill(host, signal.SIGSTOP)
        window.change(uri, 2, (2, 0), (2, 0), typed)
        second = window.inline(uri, 2, len(typed), invoked=True)
        assert window.wait_all([first, second], 120) == [], "a request was never answered"
        message = first_message(window)
        assert "model process stopped" in message and "hung, killed" in message and ".log" in message, message
        assert why in message, message
        hosts.add(replacement(window, host))
        other = "file:///window/is_even.py"
        window.open(other, SOURCE)
        assert "% 2 == 0" in suggestion(window, other)
        assert window.alive


def test_a_settings_change_moves_to_another_host_and_frees_the_old_one(
    model_path: Path, engine_folder: Path
) -> None:
    # The users' idle time: only the daemon's release can make the old host exit early.
    window = RawConnection(env={IDLE_SECONDS_ENV: "600"})
    try:
        window.start()
        window.initialize(OPTIONS)
        assert window.wait_ready()["state"] == "ready"
        old = window.status()["sharedEnginePid"]
        assert [pid for _socket, pid in live_hosts(engine_folder)] == [old]
        window.notify("workspace/didChangeConfiguration", {"settings": {"fimLsp": {"nCtx": 4096}}})
        deadline = time.monotonic() + 120
        while (current := window.status())["state"] != "ready" or current["sharedEnginePid"] in (None, old):
            assert time.monotonic() < deadline, current
            time.sleep(0.2)
        new = current["sharedEnginePid"]
        # No other daemon used the old settings: that host exits now, not in 10 minutes.
        deadline = time.monotonic() + 60
        while (running := [pid for _socket, pid in live_hosts(engine_folder)]) != [new]:
            assert time.monotonic() < deadline, running
            time.sleep(0.2)
        uri = "file:///window/is_even.py"
        window.open(uri, SOURCE)
        assert "% 2 == 0" in suggestion(window, uri)
    finally:
        window.shutdown()


def test_a_model_only_the_engine_process_finds_broken_is_named_at_once(
    model_path: Path, tmp_path: Path, engine_folder: Path
) -> None:
    # A tensor renamed: the daemon's vocabulary-only check passes, the full load does not.
    data = bytearray(model_path.read_bytes())
    found = data.find(b"output_norm.weight")
    data[found : found + 18] = b"outpux_norm.weight"
    broken = tmp_path / "missing-tensor.gguf"
    broken.write_bytes(bytes(data))
    window = RawConnection()
    try:
        window.start()
        window.initialize({**OPTIONS, "model": str(broken)})
        current = window.wait_ready()
        assert current["state"] == "error", current
        assert str(broken) in current["error"] and "could not load" in current["error"], current
        notes = window.notifications
        shown = [n["params"]["message"] for n in notes if n.get("method") == "window/showMessage"]
        assert len(shown) == 1 and str(broken) in shown[0], shown
        # The host that failed is gone; its log says why, last.
        assert live_hosts(engine_folder) == []
        (log,) = engine_folder.glob("engine-*.sock.log")
        assert log.read_text().strip().splitlines()[-1] == LOAD_FAILED + current["error"]
        assert window.alive
    finally:
        window.shutdown()


def test_status_through_the_engine_process_says_what_the_daemon_in_process_says(model_path: Path) -> None:
    fields = ("modelPath", "template", "fimOrder", "threads", "gpuLayersOffloaded", "backend", "engineBusy")
    seen: dict[bool, dict[str, Any]] = {}
    for shared in (True, False):
        window = RawConnection()
        try:
            window.start()
            window.initialize({**OPTIONS, "sharedEngine": shared, "threads": 1})
            assert window.wait_ready()["state"] == "ready"
            uri = "file:///window/is_even.py"
            window.open(uri, SOURCE)
            assert "% 2 == 0" in suggestion(window, uri)
            status = window.status()
            assert (status["sharedEnginePid"] is not None) == shared, status
            last = status["lastRequest"]
            seen[shared] = {
                **{name: status[name] for name in fields},
                "totals": sorted(status["engineTotals"]),
                "prompt": last["tokens_prompt"],
                "generated": last["tokens_generated"],
            }
        finally:
            window.shutdown()
    assert seen[True] == seen[False]
    assert seen[True]["threads"] == 1 and seen[True]["engineBusy"] is False and seen[True]["prompt"] > 0
