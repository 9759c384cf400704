"""``fim-lsp bench kv``: the KV cache types (f16, q8_0, q4_0) side by side, memory and speed.

For each type, in interleaved rounds (the machine is shared), through ``fim``'s public
API with the daemon's other defaults:

* memory: the KV cache's size by the arithmetic (``fim.gguf_info``, equal to what
  llama.cpp allocates) and the process's resident memory after the load and after a
  prompt of ``--prompt-tokens`` tokens;
* speed: cold prefill tok/s over that prompt, the latency of a keystroke after it (one
  character typed, 10 tokens generated), and decode tok/s over 64 tokens.

Medians over the rounds are printed as a Markdown table (and written with ``--json``).
Quality is measured by ``fim-lsp bench quality --sweep kvCacheType=f16,q8_0,q4_0``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from cli.doctor_measure import SAMPLE_SOURCE
from fim import models
from fim.backend import CompletionRequest
from fim.config import Config, engine_config, parse
from fim.gguf_info import mib, model_facts


def _rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _prompt(engine: Any, tokens: int) -> str:
    """About ``tokens`` tokens of real code: fim's own sources, joined."""
    sources = sorted(SAMPLE_SOURCE.parent.rglob("*.py"))
    text = "\n".join(path.read_text() for path in sources)
    return str(engine.detokenize(engine.tokenize(text)[:tokens]))


def one_round(model_path: Path, kv_type: str, prompt_tokens: int, tag: str, threads: int) -> dict[str, float]:
    from fim.llama import LlamaEngine

    before = _rss()
    config, problems = parse({"kvCacheType": kv_type, "threads": threads})
    if problems:
        raise SystemExit(f"kv_bench: {problems[0]}")
    engine = LlamaEngine(engine_config(config, str(model_path)))
    try:
        loaded = _rss()
        text = _prompt(engine, prompt_tokens)
        key = f"kv-bench://{tag}"
        cold = engine.complete(CompletionRequest(text, "", max_tokens=1, stream_key=key, prompt_lookup=False))
        keystroke = engine.complete(
            CompletionRequest(text + "x", "", max_tokens=10, stream_key=key, prompt_lookup=False)
        )
        decode = engine.complete(
            CompletionRequest(
                text + "\n\n# A long list of notes about this module\n# 1.",
                "",
                max_tokens=64,
                prompt_lookup=False,
            )
        )
        after_prompt = _rss()
    finally:
        engine.close()
    return {
        "rss_load_mib": (loaded - before) / 2**20,
        "rss_after_prompt_mib": (after_prompt - before) / 2**20,
        "prefill_tok_s": cold.stats.tokens_evaluated / (cold.stats.prefill_ms / 1000),
        "keystroke_ms": keystroke.stats.total_ms,
        "decode_tok_s": max(1, decode.stats.tokens_generated - 1) / (decode.stats.decode_ms / 1000),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fim-lsp bench kv", description=__doc__)
    parser.add_argument("--model", default=models.DEFAULT_MODEL)
    parser.add_argument("--types", default="f16,q8_0,q4_0")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=1536)
    parser.add_argument("--threads", type=int, default=0, help="0: the physical cores, as the daemon")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args(argv)
    from fim.llama.log import quiet_llama

    quiet_llama()
    path = models.resolve(args.model, fetch=False)
    facts = model_facts(path)
    types = args.types.split(",")
    samples: dict[str, list[dict[str, float]]] = {kind: [] for kind in types}
    started = time.time()
    for round_index in range(args.rounds):
        for kind in types:
            tag = f"{round_index}-{kind}"
            samples[kind].append(one_round(path, kind, args.prompt_tokens, tag, args.threads))
    config = Config()
    rows = {}
    for kind in types:
        medians = {name: statistics.median(s[name] for s in samples[kind]) for name in samples[kind][0]}
        medians["kv_cache_mib"] = facts.kv_cache_bytes(config.n_ctx, kind) / 2**20
        rows[kind] = medians
    load = os.getloadavg()[0]
    elapsed = time.time() - started
    print(f"{path.name}, nCtx {config.n_ctx}, {args.prompt_tokens}-token prompt, ", end="")
    threads = args.threads or "auto"
    print(f"{threads} threads, median of {args.rounds} rounds, {elapsed:.0f} s, load {load:.1f}")
    print(
        "| kvCacheType | KV cache | RSS after load | RSS after prompt | prefill tok/s | keystroke ms ", end=""
    )
    print("| decode tok/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, row in rows.items():
        memory = f"{mib(row['kv_cache_mib'] * 2**20)} | {row['rss_load_mib']:.0f} MiB"
        memory += f" | {row['rss_after_prompt_mib']:.0f} MiB"
        speed = f"{row['prefill_tok_s']:.1f} | {row['keystroke_ms']:.0f} | {row['decode_tok_s']:.1f}"
        print(f"| {kind} | {memory} | {speed} |")
    if args.json_path:
        Path(args.json_path).write_text(
            json.dumps({"rows": rows, "samples": samples, "load": load}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
