"""``fim-lsp bench ipc``: what the engine's own process costs a keystroke.

With ``sharedEngine`` the model runs in another process and every request crosses a Unix
socket: the request out, one verdict round trip per generated token, the answer back.
This measures that cost on the real model: the round trip of an empty message
(``--pings`` of them), and for ``--requests`` completions the daemon-side wall time minus
the time the engine itself reports (prompt, verdicts and answer together).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict
from typing import Any

from fim import models
from fim.backend import CompletionRequest
from fim.config import engine_config, parse
from fim.models import DEFAULT_MODEL
from harness.report import machine, percentile, write_json

PREFIX = 'def is_even(number):\n    """Return True when number is divisible by two."""\n    return num'


def measure(model_path: str, pings: int, requests: int) -> dict[str, Any]:
    import os

    from fim.shared.client import SharedEngine
    from fim.shared.wire import RUNTIME_DIR_ENV

    config, _problems = parse({})
    # A host of its own: an editor's host would share the engine thread with its windows.
    os.environ[RUNTIME_DIR_ENV] = tempfile.mkdtemp(prefix="fim-ipc-")
    engine = SharedEngine(asdict(engine_config(config, model_path)), idle_seconds=5)
    try:
        engine.ping()
        ping_ms = []
        for _ in range(pings):
            started = time.perf_counter()
            engine.ping()
            ping_ms.append((time.perf_counter() - started) * 1000)
        overhead_ms, tokens = [], []
        for index in range(requests):
            request = CompletionRequest(prefix=PREFIX + " " * (index % 2), suffix="", max_tokens=16)
            started = time.perf_counter()
            result = engine.complete(request, on_text=lambda _text: False)
            wall = (time.perf_counter() - started) * 1000
            overhead_ms.append(wall - result.stats.total_ms)
            tokens.append(result.stats.tokens_generated)
    finally:
        engine.close()
    return {
        "machine": machine(),
        "ping_ms": {"p50": percentile(ping_ms, 0.5), "p95": percentile(ping_ms, 0.95), "n": len(ping_ms)},
        "request_overhead_ms": {
            "p50": percentile(overhead_ms, 0.5),
            "p95": percentile(overhead_ms, 0.95),
            "n": len(overhead_ms),
            "tokens_per_request": sum(tokens) / max(1, len(tokens)),
        },
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fim-lsp bench ipc", description=__doc__)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    path = str(models.resolve(args.model, fetch=False))
    report = measure(path, args.pings, args.requests)
    ping, overhead = report["ping_ms"], report["request_overhead_ms"]
    print(f"round trip of an empty message: p50 {ping['p50']:.3f} ms, p95 {ping['p95']:.3f} ms ({ping['n']})")
    print(
        f"per request (prompt, {overhead['tokens_per_request']:.0f} verdicts, answer): "
        f"p50 {overhead['p50']:.2f} ms, p95 {overhead['p95']:.2f} ms ({overhead['n']})"
    )
    if args.json:
        write_json(args.json, report)
    return 0
