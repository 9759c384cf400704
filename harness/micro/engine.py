"""``fim-lsp bench engine``: the engine's speed beside llama.cpp's own ceiling.

Measured in one process on one model file:

* prefill and decode tokens/s through ``LlamaEngine.complete`` beside a llama-bench-style
  run of the same build (raw ``llama_decode`` calls, no Python work per token);
* a 1-character edit at the end of a ~1,000-token prefix with the default suffix budget:
  tokens evaluated and milliseconds, through the real context builder;
* cancellation latency, from setting the cancel token to the engine being idle;
* the decode speed-up from prompt-lookup drafting on our fixture files;
* suffix-KV reuse at shifted positions after a keystroke: tokens and ms saved, and how
  often the completion stays the same (``harness.micro.suffix_reuse``).

Both sides of each comparison run interleaved in the same process, and medians are
reported, because the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import llama_cpp as llama

from fim import models
from fim.backend import CompletionRequest
from fim.config import Config, engine_config
from fim.context import Budgets, Document, build_context
from fim.llama import LlamaEngine
from fim.llama.log import quiet_llama
from harness.micro import suffix_reuse

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "src"


def ceiling_prefill(engine: LlamaEngine, tokens: list[int]) -> float:
    """Tokens/s of one raw batched llama_decode over ``tokens`` (llama-bench pp)."""
    ctx = engine.new_raw_context(n_ctx=4096, n_batch=512, n_ubatch=512)
    batch = llama.llama_batch_init(512, 0, 1)
    try:
        started = time.perf_counter()
        for offset in range(0, len(tokens), 512):
            chunk = tokens[offset : offset + 512]
            batch.n_tokens = len(chunk)
            for i, token in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = offset + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = i == len(chunk) - 1
            assert llama.llama_decode(ctx, batch) == 0
        llama.llama_synchronize(ctx)
        return len(tokens) / (time.perf_counter() - started)
    finally:
        llama.llama_batch_free(batch)
        llama.llama_free(ctx)


def ceiling_decode(engine: LlamaEngine, prompt: list[int], steps: int) -> float:
    """Tokens/s of single-token llama_decode calls after a prompt (llama-bench tg)."""
    ctx = engine.new_raw_context(n_ctx=4096, n_batch=512, n_ubatch=512)
    batch = llama.llama_batch_init(512, 0, 1)
    try:
        batch.n_tokens = len(prompt)
        for i, token in enumerate(prompt):
            batch.token[i] = token
            batch.pos[i] = i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == len(prompt) - 1
        assert llama.llama_decode(ctx, batch) == 0
        position = len(prompt)
        token = prompt[-1]
        started = time.perf_counter()
        for _ in range(steps):
            batch.n_tokens = 1
            batch.token[0] = token
            batch.pos[0] = position
            batch.n_seq_id[0] = 1
            batch.seq_id[0][0] = 0
            batch.logits[0] = True
            assert llama.llama_decode(ctx, batch) == 0
            llama.llama_get_logits_ith(ctx, 0)
            position += 1
        return steps / (time.perf_counter() - started)
    finally:
        llama.llama_batch_free(batch)
        llama.llama_free(ctx)


def ours_prefill(engine: LlamaEngine, text: str, key: str) -> tuple[float, int]:
    engine.forget(key)
    engine.reset_work_sequence()
    result = engine.complete(CompletionRequest(text, "", max_tokens=1, stream_key=key, prompt_lookup=False))
    stats = result.stats
    return stats.tokens_evaluated / (stats.prefill_ms / 1000), stats.tokens_evaluated


def ours_decode(engine: LlamaEngine, prompt_text: str, steps: int) -> float:
    engine.reset_work_sequence()
    # A prompt that invites a long, free-running answer; no stop callback.
    result = engine.complete(CompletionRequest(prompt_text, "", max_tokens=steps, prompt_lookup=False))
    stats = result.stats
    generated = max(1, stats.tokens_generated - 1)  # the first token comes from prefill logits
    return generated / (stats.decode_ms / 1000)


def edit_one_character(engine: LlamaEngine, budgets: Budgets) -> dict[str, float]:
    source = (FIXTURES / "inventory.py").read_text() if (FIXTURES / "inventory.py").exists() else ""
    source = source or (FIXTURES / "stats.py").read_text() * 8
    # A cursor about 1,000 tokens into the file, at the end of a line, where the suffix
    # fills at least half its budget: the edit then pays for a real suffix, not a stub.
    ids = engine.tokenize(source)
    approx = engine.detokenize(ids[:1000])
    doc = Document("file:///bench/edit.py", source, "python")
    count = engine.count_tokens
    cursor = source.find("\n", len(approx))
    while 0 <= cursor < len(source) - 1:
        if count(build_context(doc, cursor, budgets, count).suffix) * 2 >= budgets.suffix_tokens:
            break
        cursor = source.find("\n", cursor + 1)
    cursor = len(source) if cursor < 0 else cursor
    first = build_context(doc, cursor, budgets, count)
    engine.complete(CompletionRequest(first.prefix, first.suffix, max_tokens=1, stream_key=doc.uri))
    doc.apply_change(None, source[:cursor] + " " + source[cursor:])
    second = build_context(doc, cursor + 1, budgets, count)
    result = engine.complete(
        CompletionRequest(second.prefix, second.suffix, max_tokens=1, stream_key=doc.uri)
    )
    return {
        "prefix_tokens": float(len(engine.tokenize(second.prefix))),
        "suffix_tokens": float(len(engine.tokenize(second.suffix))),
        "edit1_evaluated_tokens": float(result.stats.tokens_evaluated),
        "edit1_reused_tokens": float(result.stats.tokens_reused),
        "edit1_prefill_ms": result.stats.prefill_ms,
        "edit1_ms": result.stats.first_token_ms,
    }


def stream_benefit(with_streams: LlamaEngine, without_streams: LlamaEngine) -> dict[str, float]:
    """Cursor jumps and document switches, with and without document streams."""
    texts = [p.read_text() for p in sorted(FIXTURES.iterdir()) if p.suffix in (".py", ".ts", ".go")][:2]
    if len(texts) < 2:
        texts = [(FIXTURES / "stats.py").read_text()] * 2
    figures: dict[str, float] = {}
    for label, engine in (("streams", with_streams), ("no_streams", without_streams)):
        a, b = texts[0], texts[1] + "\n# other file\n"
        # Jump forward into a file that was evaluated while the user was idle.
        engine.warm("file:///a", a, threading.Event())
        cut = a.find("\n", len(a) * 3 // 4)
        jump = engine.complete(
            CompletionRequest(a[:cut], a[cut:][:200], max_tokens=1, stream_key="file:///a")
        )
        figures[f"jump_{label}_evaluated"] = float(jump.stats.tokens_evaluated)
        figures[f"jump_{label}_ms"] = jump.stats.first_token_ms
        # Switch to another document and back.
        cut_b = b.find("\n", len(b) // 2)
        engine.complete(CompletionRequest(b[:cut_b], b[cut_b:][:200], max_tokens=1, stream_key="file:///b"))
        back = engine.complete(
            CompletionRequest(a[:cut], a[cut:][:200], max_tokens=1, stream_key="file:///a")
        )
        figures[f"switch_{label}_evaluated"] = float(back.stats.tokens_evaluated)
        figures[f"switch_{label}_ms"] = back.stats.first_token_ms
    return figures


def cancellation(engine: LlamaEngine, text: str, samples: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    latencies: list[float] = []
    for sample in range(samples):
        engine.reset_work_sequence()
        cancel = threading.Event()
        cancelled_at: list[float] = []

        def fire(cancel: threading.Event = cancel, cancelled_at: list[float] = cancelled_at) -> None:
            cancelled_at.append(time.perf_counter())
            cancel.set()

        timer = threading.Timer(rng.uniform(0.05, 0.8), fire)
        timer.start()
        # Unique text per sample so that nothing is reused and the cancel lands mid-work.
        request = CompletionRequest(f"# sample {sample}\n" + text, "", max_tokens=64, prompt_lookup=False)
        engine.complete(request, cancel=cancel)
        done = time.perf_counter()
        timer.cancel()
        if cancelled_at:
            latencies.append((done - cancelled_at[0]) * 1000)
    return latencies


def lookup_speedup(engine: LlamaEngine) -> tuple[float, int]:
    sources = sorted(p for p in FIXTURES.iterdir() if p.suffix in (".py", ".ts", ".go"))
    plain_ms = drafted_ms = 0.0
    cases = 0
    for path in sources:
        text = path.read_text()
        lines = text.split("\n")
        for fraction in (0.5, 0.75):
            cut = sum(len(line) + 1 for line in lines[: int(len(lines) * fraction)])
            prefix, suffix = text[:cut], ""
            for lookup in (False, True):
                engine.reset_work_sequence()
                result = engine.complete(
                    CompletionRequest(prefix, suffix, max_tokens=48, prompt_lookup=lookup)
                )
                if lookup:
                    drafted_ms += result.stats.decode_ms
                else:
                    plain_ms += result.stats.decode_ms
            cases += 1
    return (plain_ms / drafted_ms if drafted_ms else 0.0), cases


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fim-lsp bench engine", description=__doc__)
    parser.add_argument("--model", default=models.DEFAULT_MODEL)
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cancel-samples", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--suffix-reuse-samples", type=int, default=24)
    args = parser.parse_args(argv)
    quiet_llama()
    defaults = Config()
    path = models.resolve(args.model, fetch=False)
    engine = LlamaEngine(engine_config(Config(n_ctx=8192), str(path)))
    print(f"model {path.name}, {engine.n_threads} threads, prefill chunk {engine.config.prefill_chunk}")

    source = "\n".join(p.read_text() for p in sorted(FIXTURES.iterdir()) if p.is_file())
    prefill_text = engine.detokenize(engine.tokenize(source)[:512])
    prefill_ids = engine.tokenize(prefill_text)
    ours_pp, ceil_pp, ours_tg, ceil_tg = [], [], [], []
    decode_prompt = "# A long list of numbered notes about the project's design decisions\n# 1."
    for repeat in range(args.repeats):
        ceil_pp.append(ceiling_prefill(engine, prefill_ids))
        ours_pp.append(ours_prefill(engine, prefill_text, f"pp{repeat}")[0])
        ceil_tg.append(ceiling_decode(engine, engine.tokenize(decode_prompt), 64))
        ours_tg.append(ours_decode(engine, decode_prompt, 65))
    figures: dict[str, Any] = {
        "prefill_tok_s": statistics.median(ours_pp),
        "prefill_ceiling_tok_s": statistics.median(ceil_pp),
        "decode_tok_s": statistics.median(ours_tg),
        "decode_ceiling_tok_s": statistics.median(ceil_tg),
    }
    figures["prefill_ratio"] = figures["prefill_tok_s"] / figures["prefill_ceiling_tok_s"]
    figures["decode_ratio"] = figures["decode_tok_s"] / figures["decode_ceiling_tok_s"]

    budgets = Budgets(prefix_tokens=defaults.prefix_tokens, suffix_tokens=defaults.suffix_tokens)
    edit = edit_one_character(engine, budgets)
    figures.update(edit)
    figures["suffix_tokens"] = edit["suffix_tokens"]
    figures["suffix_budget"] = defaults.suffix_tokens

    plain = LlamaEngine(engine_config(Config(n_ctx=8192, document_streams=0), str(path)))
    streams = stream_benefit(engine, plain)
    plain.close()
    figures.update(streams)

    latencies = cancellation(engine, source[:6000], args.cancel_samples, args.seed)
    figures["cancel_to_idle_ms_p50"] = statistics.median(latencies) if latencies else 0.0
    figures["cancel_to_idle_ms_max"] = max(latencies) if latencies else 0.0
    figures["cancel_samples"] = len(latencies)
    figures["decode_step_ms"] = 1000 / figures["decode_ceiling_tok_s"]
    figures["prefill_chunk_ms"] = engine.config.prefill_chunk * 1000 / figures["prefill_ceiling_tok_s"]

    speedup, cases = lookup_speedup(engine)
    figures["lookup_speedup"] = speedup
    figures["lookup_cases"] = cases
    if engine.template.order == "psm" and args.suffix_reuse_samples > 0:
        figures.update(suffix_reuse.measure(engine, args.suffix_reuse_samples, args.seed, FIXTURES))
    figures["load_average"] = _load_average()

    print()
    print("| figure | ours | ceiling | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| prefill tok/s | {figures['prefill_tok_s']:.1f} | {figures['prefill_ceiling_tok_s']:.1f} "
        f"| {figures['prefill_ratio']:.1%} |"
    )
    print(
        f"| decode tok/s | {figures['decode_tok_s']:.1f} | {figures['decode_ceiling_tok_s']:.1f} "
        f"| {figures['decode_ratio']:.1%} |"
    )
    print()
    print(
        f"1-char edit at the end of a {edit['prefix_tokens']:.0f}-token prefix, "
        f"suffix {edit['suffix_tokens']:.0f} tokens: {edit['edit1_evaluated_tokens']:.0f} evaluated "
        f"({edit['edit1_reused_tokens']:.0f} reused), "
        f"{edit['edit1_ms']:.0f} ms to first token"
    )
    print(
        f"cancel to idle: p50 {figures['cancel_to_idle_ms_p50']:.1f} ms, "
        f"max {figures['cancel_to_idle_ms_max']:.1f} ms over {len(latencies)} cancels "
        f"(one decode step {figures['decode_step_ms']:.0f} ms, "
        f"one prefill chunk {figures['prefill_chunk_ms']:.0f} ms)"
    )
    print(
        f"jump 3/4 into an idle-prefilled file: {streams['jump_streams_evaluated']:.0f} tokens, "
        f"{streams['jump_streams_ms']:.0f} ms with streams; "
        f"{streams['jump_no_streams_evaluated']:.0f} tokens, "
        f"{streams['jump_no_streams_ms']:.0f} ms without"
    )
    print(
        f"switch to another file and back: {streams['switch_streams_evaluated']:.0f} tokens, "
        f"{streams['switch_streams_ms']:.0f} ms with streams; "
        f"{streams['switch_no_streams_evaluated']:.0f} tokens, "
        f"{streams['switch_no_streams_ms']:.0f} ms without"
    )
    print(f"prompt-lookup decode speed-up: {speedup:.2f}x over {cases} cases")
    if "suffix_reuse_cases" in figures:
        print(
            f"suffix reuse at shifted positions after a keystroke ({figures['suffix_reuse_cases']} edits): "
            f"{figures['suffix_reuse_shifted_evaluated']:.1f} tokens / "
            f"{figures['suffix_reuse_shifted_ms']:.0f} ms evaluated instead of "
            f"{figures['suffix_reuse_exact_evaluated']:.1f} / {figures['suffix_reuse_exact_ms']:.0f} ms; "
            f"same completion {figures['suffix_reuse_same_output']:.0%}, "
            f"same first line {figures['suffix_reuse_same_first_line']:.0%}"
        )
    print(f"load average while measuring: {figures['load_average']}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(figures, indent=2))
    engine.close()
    return 0


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
