"""Suffix-KV reuse at shifted positions: what it would save, and what it would cost.

In PSM a keystroke changes the end of the prefix, so the suffix after it is evaluated
again on every keystroke. llama.cpp's cache-reuse idea keeps the suffix's KV cells and
moves them to their new positions (``llama_memory_seq_add``) instead. That is only an
approximation: those cells attended to the old prefix tail, not the new one.

This measures both sides on real edits: at a cursor inside our fixture files, the
prompt for the text without the last typed character is evaluated, then the character
is typed. The exact path evaluates the changed prefix tail, the whole suffix and
``<|fim_middle|>``; the shifted path evaluates only the changed tail and
``<|fim_middle|>``. Both decode greedily, and the completions are compared.

The shifted path needs the new tail inserted *before* cells that already exist, which
llama.cpp refuses within one sequence (positions must stay consecutive), so the tail is
evaluated in a helper sequence that shares the common prefix and is then shared into
the work sequence.
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path
from typing import Any

import llama_cpp as llama
import numpy as np

from fim.context import Budgets, Document, build_context
from fim.llama import LlamaEngine
from fim.llama.kv import common_prefix_length

WORK, HELPER = 0, 1


class _RawContext:
    """A two-sequence unified context on the engine's model, driven without the engine."""

    def __init__(self, engine: LlamaEngine, n_ctx: int = 4096) -> None:
        self.engine = engine
        self.ctx = engine.new_raw_context(
            n_ctx=n_ctx,
            n_batch=512,
            n_ubatch=512,
            n_seq_max=2,
            kv_unified=True,
            # Plain attention: its results do not depend on how a prompt was split, so a
            # difference between the two paths is the approximation's, not kernel noise.
            flash_attn_type=llama.LLAMA_FLASH_ATTN_TYPE_DISABLED,
        )
        self.memory = llama.llama_get_memory(self.ctx)
        self.batch = llama.llama_batch_init(512, 0, 2)
        self.n_vocab = engine.vocab_size

    def close(self) -> None:
        llama.llama_batch_free(self.batch)
        llama.llama_free(self.ctx)

    def clear(self) -> None:
        llama.llama_memory_clear(self.memory, True)

    def decode(self, tokens: list[int], start: int, seq: int) -> None:
        """Evaluate ``tokens`` at positions start.. in ``seq``; the last one gets logits."""
        for offset in range(0, len(tokens), 512):
            chunk = tokens[offset : offset + 512]
            batch = self.batch
            batch.n_tokens = len(chunk)
            for index, token in enumerate(chunk):
                batch.token[index] = token
                batch.pos[index] = start + offset + index
                batch.n_seq_id[index] = 1
                batch.seq_id[index][0] = seq
                batch.logits[index] = offset + index == len(tokens) - 1
            rc = llama.llama_decode(self.ctx, batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode failed with code {rc}")

    def greedy(self, position: int, steps: int) -> list[int]:
        """Greedy tokens after the last decode, continuing the work sequence at ``position``."""
        out: list[int] = []
        for _ in range(steps):
            logits = np.ctypeslib.as_array(llama.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))
            token = int(np.argmax(logits))
            if self.engine.is_stop_token(token):
                break
            out.append(token)
            self.decode([token], position, WORK)
            position += 1
        return out


def _edits(engine: LlamaEngine, samples: int, seed: int, fixtures: Path) -> list[tuple[str, str, str, str]]:
    """(prefix before the keystroke, prefix after it, suffix, language) at real cursors."""
    rng = random.Random(seed)
    sources = [p for p in sorted(fixtures.iterdir()) if p.suffix in (".py", ".ts", ".go")]
    language = {".py": "python", ".ts": "typescript", ".go": "go"}
    cases: list[tuple[str, str, str, str]] = []
    while len(cases) < samples and sources:
        path = rng.choice(sources)
        text = path.read_text()
        lines = text.split("\n")
        row = rng.randrange(len(lines) // 3, len(lines))
        line = lines[row]
        if len(line.strip()) < 8:
            continue
        # The cursor after a few characters of the line, as while typing it.
        indent = len(line) - len(line.lstrip())
        column = rng.randrange(indent + 2, len(line) + 1)
        cursor = sum(len(earlier) + 1 for earlier in lines[:row]) + column
        doc = Document(f"file:///bench/{path.name}", text, language[path.suffix])
        context = build_context(
            doc, cursor, Budgets(prefix_tokens=1536, suffix_tokens=16), engine.count_tokens
        )
        if not context.suffix.strip():
            continue
        cases.append((context.prefix[:-1], context.prefix, context.suffix, doc.language_id))
    return cases


def measure(engine: LlamaEngine, samples: int, seed: int, fixtures: Path, steps: int = 24) -> dict[str, Any]:
    raw = _RawContext(engine)
    agree_tokens = agree_lines = 0
    exact_evaluated: list[int] = []
    shifted_evaluated: list[int] = []
    exact_ms: list[float] = []
    shifted_ms: list[float] = []
    try:
        for before, after, suffix, _language in _edits(engine, samples, seed, fixtures):
            old = engine.build_prompt(before, suffix)
            new = engine.build_prompt(after, suffix)
            suffix_start_old = old.index(engine.template.suffix_id)
            suffix_start_new = new.index(engine.template.suffix_id)
            common = common_prefix_length(old[:suffix_start_old], new[:suffix_start_new])

            # Exact: the cached prompt is cut back to the common prefix.
            raw.clear()
            raw.decode(old, 0, WORK)
            llama.llama_memory_seq_rm(raw.memory, WORK, common, -1)
            started = time.perf_counter()
            raw.decode(new[common:], common, WORK)
            exact_ms.append((time.perf_counter() - started) * 1000)
            exact_evaluated.append(len(new) - common)
            exact = raw.greedy(len(new), steps)

            # Shifted: keep the suffix cells, move them, evaluate the new tail beside them.
            raw.clear()
            raw.decode(old, 0, WORK)
            delta = suffix_start_new - suffix_start_old
            started = time.perf_counter()
            llama.llama_memory_seq_rm(raw.memory, WORK, common, suffix_start_old)
            llama.llama_memory_seq_rm(raw.memory, WORK, len(old) - 1, -1)
            llama.llama_memory_seq_add(raw.memory, WORK, suffix_start_old, len(old) - 1, delta)
            tail = new[common:suffix_start_new]
            llama.llama_memory_seq_rm(raw.memory, HELPER, -1, -1)
            llama.llama_memory_seq_cp(raw.memory, WORK, HELPER, 0, common)
            if tail:
                raw.decode(tail, common, HELPER)
                llama.llama_memory_seq_cp(raw.memory, HELPER, WORK, common, suffix_start_new)
            raw.decode([new[-1]], len(new) - 1, WORK)
            shifted_ms.append((time.perf_counter() - started) * 1000)
            shifted_evaluated.append(len(tail) + 1)
            shifted = raw.greedy(len(new), steps)

            agree_tokens += exact == shifted
            first = engine.detokenize(exact).split("\n")[0]
            agree_lines += first == engine.detokenize(shifted).split("\n")[0]
    finally:
        raw.close()
    count = len(exact_evaluated)
    return {
        "suffix_reuse_cases": count,
        "suffix_reuse_same_output": agree_tokens / count if count else 0.0,
        "suffix_reuse_same_first_line": agree_lines / count if count else 0.0,
        "suffix_reuse_exact_evaluated": statistics.mean(exact_evaluated) if count else 0.0,
        "suffix_reuse_shifted_evaluated": statistics.mean(shifted_evaluated) if count else 0.0,
        "suffix_reuse_exact_ms": statistics.median(exact_ms) if count else 0.0,
        "suffix_reuse_shifted_ms": statistics.median(shifted_ms) if count else 0.0,
    }
