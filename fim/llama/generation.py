"""The decode loop: sample, verify drafted tokens, heal the typed word, stop on time.

The time budget (``CompletionRequest.time_budget_ms``) starts when decoding does.

After the prompt is evaluated the work sequence's last token has logits. Each step
accepts one sampled token plus any prompt-lookup draft tokens the model agrees with
(greedy only, so the text is the same with or without drafting), turns them into text,
checks the stop rules, and evaluates the accepted token together with the next draft.
The cancel token is checked before every step.
"""

from __future__ import annotations

import codecs
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import llama_cpp as llama

from fim.backend import CompletionRequest, CompletionStats, SamplingConfig, StopCallback, StopReason
from fim.llama.kv import DECODE_ABORTED, DECODE_NO_ROOM, WORK_SEQ, KvCache
from fim.llama.vocabulary import Vocabulary

#: Room kept free at the end of the context: the next batch (one token plus a draft) must fit.
_CONTEXT_MARGIN = 2 + 8


class Utf8Stream:
    """Joins token pieces into text, holding back bytes of a split UTF-8 character."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""

    def push(self, piece: bytes) -> None:
        self.text += self._decoder.decode(piece)

    def finish(self) -> str:
        self.text += self._decoder.decode(b"", final=True)
        return self.text


@contextlib.contextmanager
def sampler_chain(sampling: SamplingConfig) -> Iterator[Any]:
    """A llama.cpp sampler chain for ``sampling``, freed on exit."""
    chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
    if sampling.temperature <= 0:
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_greedy())
    else:
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_top_k(sampling.top_k))
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_top_p(sampling.top_p, 1))
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_temp(sampling.temperature))
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_dist(sampling.seed))
    try:
        yield chain
    finally:
        llama.llama_sampler_free(chain)


def prompt_lookup_draft(
    history: list[int], max_draft: int = 8, min_ngram: int = 2, max_ngram: int = 4
) -> list[int]:
    """Prompt lookup: the tokens that followed the latest earlier match of the last n-gram."""
    length = len(history)
    for n in range(max_ngram, min_ngram - 1, -1):
        if length <= n:
            continue
        tail = history[-n:]
        # Search backwards so the nearest repetition wins.
        for start in range(length - n - 1, -1, -1):
            if history[start : start + n] == tail:
                follow = history[start + n : start + n + max_draft]
                if follow:
                    return follow
                break
    return []


@dataclass
class Decoding:
    """One request's decode loop: what it was asked for and what it has produced so far."""

    request: CompletionRequest
    cancel: threading.Event
    on_text: StopCallback | None
    stats: CompletionStats
    #: When the request started (perf_counter), for first-token time and the time budget.
    started: float
    #: Prompt and generated tokens, searched by prompt lookup.
    history: list[int]
    text: Utf8Stream = field(default_factory=Utf8Stream)
    #: Bytes of the typed word the generated tokens still have to spell out.
    healing: bytes = field(init=False)
    #: Drafted tokens evaluated after the last accepted one, awaiting verification.
    draft: list[int] = field(default_factory=list)
    #: Batch index of the logits to sample from next.
    logits_index: int = -1

    def __post_init__(self) -> None:
        self.healing = self.request.heal.encode("utf-8")

    def stop(self, reason: StopReason, cancelled_in: str | None = None) -> None:
        self.stats.stop_reason = reason
        if cancelled_in is not None:
            self.stats.cancelled_in = cancelled_in


class Generator:
    """Runs decode loops on the work sequence of one context."""

    def __init__(self, ctx: Any, kv: KvCache, vocabulary: Vocabulary, n_ctx: int) -> None:
        self._ctx = ctx
        self._kv = kv
        self._vocabulary = vocabulary
        self._n_ctx = n_ctx

    def run(self, decoding: Decoding, sampler: Any) -> None:
        """Generate until a stop rule fires; the reason is left in ``decoding.stats``."""
        request, stats = decoding.request, decoding.stats
        decode_started = time.perf_counter()
        # The budget counts decoding only. Prefill is not wasted when it runs long: what it
        # evaluated stays in the cache for the next request, and a keystroke cancels it at
        # once. Counting it turned slow but useful generations into nothing on a busy CPU
        # (a 4.3 s prefill left one token).
        deadline = decode_started + request.time_budget_ms / 1000 if request.time_budget_ms else None
        use_lookup = request.prompt_lookup and request.sampling.temperature <= 0
        try:
            while True:
                if decoding.cancel.is_set():
                    decoding.stop("cancelled", "decode")
                    return
                accepted = self._accept(decoding, sampler)
                if accepted is None or self._emit(decoding, accepted):
                    return
                if deadline is not None and time.perf_counter() > deadline:
                    decoding.stop("time_budget")
                    return
                if self._kv.held_tokens(WORK_SEQ) + _CONTEXT_MARGIN >= self._n_ctx:
                    decoding.stop("context_full")
                    return
                if not self._evaluate_next(decoding, accepted[-1], use_lookup):
                    return
        finally:
            stats.decode_ms = (time.perf_counter() - decode_started) * 1000

    def _accept(self, decoding: Decoding, sampler: Any) -> list[int] | None:
        """The tokens this step adds: one chosen token, then any verified draft tokens."""
        if decoding.healing:
            # Token healing: the first tokens must spell the word the user typed.
            token = self._heal_pick(decoding.logits_index, decoding.healing)
            if token is None:
                decoding.stop("heal_failed")
                return None
            return [token]
        token = int(llama.llama_sampler_sample(sampler, self._ctx, decoding.logits_index))
        accepted = [token]
        draft = decoding.draft
        for index, proposed in enumerate(draft):
            if proposed != token:
                break
            token = int(llama.llama_sampler_sample(sampler, self._ctx, index + 1))
            accepted.append(token)
            decoding.stats.tokens_draft_accepted += 1
        if draft:
            # Cells past the last verified draft token hold rejected guesses.
            keep = self._kv.held_tokens(WORK_SEQ) - len(draft) + len(accepted) - 1
            self._kv.truncate(WORK_SEQ, keep)
        return accepted

    def _emit(self, decoding: Decoding, accepted: list[int]) -> bool:
        """Turn accepted tokens into text; True when a stop rule fired."""
        stats = decoding.stats
        for token in accepted:
            if stats.tokens_generated == 0:
                stats.first_token_ms = (time.perf_counter() - decoding.started) * 1000
            if self._vocabulary.is_stop_token(token):
                decoding.stop("eog")
                return True
            stats.tokens_generated += 1
            decoding.history.append(token)
            piece = self._vocabulary.piece(token)
            if decoding.healing:
                consumed = min(len(decoding.healing), len(piece))
                decoding.healing, piece = decoding.healing[consumed:], piece[consumed:]
            decoding.text.push(piece)
            if decoding.on_text is not None and decoding.on_text(decoding.text.text):
                decoding.stop("callback")
                return True
            if stats.tokens_generated >= decoding.request.max_tokens:
                decoding.stop("max_tokens")
                return True
        return False

    def _evaluate_next(self, decoding: Decoding, last: int, use_lookup: bool) -> bool:
        """Evaluate the last accepted token and a fresh draft; False when decoding must stop."""
        stats = decoding.stats
        draft = prompt_lookup_draft(decoding.history) if use_lookup and not decoding.healing else []
        room = decoding.request.max_tokens - stats.tokens_generated
        draft = draft[: max(0, min(len(draft), room - 1))]
        stats.tokens_drafted += len(draft)
        decoding.draft = draft
        rc = self._kv.decode_work([last, *draft])
        if rc != 0:
            if rc == DECODE_ABORTED or decoding.cancel.is_set():
                decoding.stop("cancelled", "decode")
            else:
                decoding.stop("context_full" if rc == DECODE_NO_ROOM else "error")
            return False
        decoding.logits_index = 0
        return True

    def _heal_pick(self, logits_index: int, remaining: bytes) -> int | None:
        """The most likely token that agrees with the text still to be spelled out."""
        candidates = [
            token
            for token, piece in self._vocabulary.pieces_by_first_byte().get(remaining[0], ())
            if remaining.startswith(piece) or piece.startswith(remaining)
        ]
        if not candidates:
            return None
        logits = llama.llama_get_logits_ith(self._ctx, logits_index)
        return max(candidates, key=lambda token: float(logits[token]))
