"""``fim-lsp bench SUBCOMMAND ...``: the dispatcher for every benchmark.

Subcommands are imported only when chosen, so a broken or heavy benchmark module does
not stop the others from running. Every subcommand takes ``--json PATH``.
"""

from __future__ import annotations

import importlib
import signal
import sys

#: subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "latency": (
        "harness.replay.latency",
        "replay keystroke traces; time to suggestion, p50/p90 (--peer to compare)",
    ),
    "quality": (
        "harness.quality.bench",
        "HumanEval-infilling pass@1, SantaCoder-FIM exact match (--peer to compare)",
    ),
    "jumps": (
        "harness.replay.jumps",
        "cold jumps into real package sources: open, jump, type 4 characters, pause (--peer to compare)",
    ),
    "make-trace": ("harness.replay.traces", "turn a source file into a keystroke trace (--seed)"),
    "context": ("harness.micro.context", "context-building benchmark"),
    "fuzz": ("harness.stress.fuzz", "hypothesis-generated LSP traffic; every request must be answered"),
    "soak": ("harness.stress.soak", "keystroke replay over many documents; memory and file descriptors"),
    "storm": ("harness.stress.storm", "1,000 keystrokes/s on one document; hung requests, time to idle"),
    "hostile": ("harness.stress.hostile", "huge, minified, binary and pathological documents, timed"),
    "crash": ("harness.stress.crash", "the engine process killed mid-request; recovery times"),
    "engine": ("harness.micro.engine", "engine benchmark (prefill, decode, reuse)"),
    "ipc": ("harness.micro.ipc", "the engine's own process (sharedEngine): round trip and cost per request"),
    "kv": ("cli.kv_bench", "KV cache types (f16, q8_0, q4_0) side by side: memory and speed"),
}


def usage() -> str:
    lines = ["usage: fim-lsp bench SUBCOMMAND [options]   (fim-lsp bench SUBCOMMAND -h for its options)", ""]
    for name, (_module, text) in SUBCOMMANDS.items():
        lines.append(f"  {name:11} {text}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"fim-lsp bench: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    # A benchmark that is stopped (kill, a CI timeout) must still run its cleanup: the
    # daemons and llama-server peers it started would otherwise outlive it.
    signal.signal(signal.SIGTERM, lambda _signal, _frame: sys.exit(128 + signal.SIGTERM))
    module_name = SUBCOMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        print(f"fim-lsp bench {name}: {module_name} is not available in this checkout", file=sys.stderr)
        return 2
    return int(module.main(rest) or 0)
