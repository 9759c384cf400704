"""``fim-lsp bench crash``: the engine process killed in the middle of a request.

The daemon runs with its default engine process (``sharedEngine``). A request that
decodes a block body is sent, and the engine process is killed with SIGSEGV (what a
crash in llama.cpp's kernels sends) or SIGKILL (an out-of-memory kill) while it works.
Per kill: how long the request in flight took to be answered, when the user was told
(``window/showMessage``), when a new engine process was there, and when a completion the
model had to make itself (a document never seen) was right again. The LSP session must
live through every kill.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from typing import Any

from harness.report import emit_report, machine, markdown_table, percentile, round_or_none
from harness.runner import add_common_options, our_options
from harness.stress.wire import RawConnection

BLOCK = 'def fibonacci_table(count):\n    """Return the first count Fibonacci numbers, one per line."""\n'
CHECK = 'def is_{name}(number):\n    """Return True when number is divisible by {divisor}."""\n    return num'
SIGNALS = {"SIGSEGV": signal.SIGSEGV, "SIGKILL": signal.SIGKILL}
WAIT_S = 180.0


def _shown(connection: RawConnection) -> int:
    return sum(1 for note in connection.notifications if note.get("method") == "window/showMessage")


def _until(condition: Any, timeout: float = WAIT_S) -> float | None:
    """Seconds until ``condition()`` holds, polled; None if it never did."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def one_kill(connection: RawConnection, kill_with: signal.Signals, index: int) -> dict[str, Any]:
    host = connection.status().get("sharedEnginePid")
    if not isinstance(host, int):
        raise SystemExit("the daemon has no engine process: is sharedEngine off?")
    told_before = _shown(connection)
    uri = f"file:///fim-crash/{index}/fib.py"
    connection.open(uri, BLOCK)
    request = connection.inline(uri, 2, 0, invoked=True)
    time.sleep(0.5)  # the engine is decoding the block's body
    killed = time.monotonic()
    os.kill(host, kill_with)
    answer = connection.wait(request, WAIT_S)
    answered = time.monotonic() - killed if answer is not None else None
    told = _until(lambda: _shown(connection) > told_before)
    restarted = _until(lambda: connection.status().get("sharedEnginePid") not in (None, host))
    # A document never seen: neither the cache nor type-through can answer.
    check = f"file:///fim-crash/{index}/check.py"
    connection.open(check, CHECK.format(name=f"multiple_{index}", divisor=f"{index + 2}"))
    right = None
    started = time.monotonic()
    while time.monotonic() - started < WAIT_S:
        result = connection.wait(connection.inline(check, 2, 14, invoked=True), WAIT_S)
        items = ((result.result or {}).get("items") or []) if result is not None else []
        if items and "%" in str(items[0].get("insertText", "")):
            right = time.monotonic() - killed
            break
        time.sleep(0.2)
    connection.close_document(uri)
    connection.close_document(check)
    return {
        "signal": kill_with.name,
        "request_answered_s": round_or_none(answered),
        "user_told_s": round_or_none(None if told is None else told + (answered or 0)),
        "new_engine_s": round_or_none(None if restarted is None else restarted + (answered or 0)),
        "right_again_s": round_or_none(right),
        "session_alive": connection.alive,
    }


def crash_session(options: dict[str, Any], kills: int) -> dict[str, Any]:
    connection = RawConnection()
    connection.start()
    rows: list[dict[str, Any]] = []
    try:
        connection.initialize_ready({**options, "sharedEngine": True})
        for index in range(kills):
            name = "SIGSEGV" if index % 2 == 0 else "SIGKILL"
            rows.append(one_kill(connection, SIGNALS[name], index))
        alive = connection.alive
        told = _shown(connection)
    finally:
        host = connection.status().get("sharedEnginePid") if connection.alive else None
        connection.shutdown()
        if isinstance(host, int):
            with contextlib.suppress(ProcessLookupError):
                os.kill(host, signal.SIGKILL)
    right = [row["right_again_s"] for row in rows if row["right_again_s"] is not None]
    return {
        "machine": machine(),
        "kills": rows,
        "session_alive": alive,
        "messages_shown": told,
        "right_again_p50_s": round_or_none(percentile(right, 0.5)),
        "right_again_max_s": round_or_none(max(right) if right else None),
        "never_right_again": len(rows) - len(right),
    }


def markdown(report: dict[str, Any]) -> str:
    keys = ["signal", "request_answered_s", "user_told_s", "new_engine_s", "right_again_s", "session_alive"]
    table = markdown_table(keys, [[row[key] for key in keys] for row in report["kills"]])
    return (
        f"{table}\n\nsession alive: {report['session_alive']}; messages shown: {report['messages_shown']}; "
        f"right again p50 {report['right_again_p50_s']} s, max {report['right_again_max_s']} s"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fim-lsp bench crash", description=__doc__.split("\n\n")[0])
    add_common_options(parser)
    parser.add_argument("--kills", type=int, default=6, help="kills, SIGSEGV and SIGKILL in turn (default 6)")
    args = parser.parse_args(argv)
    report = crash_session(our_options(args), args.kills)
    report["markdown"] = markdown(report)
    emit_report(args, report)
    ok = report["session_alive"] and report["never_right_again"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
