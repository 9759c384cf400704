"""KV-cache bookkeeping: what each llama.cpp sequence holds, and how prompts reuse it.

One unified cache, several sequences sharing cells:

* sequence 0 is the *work* sequence: the last request's prompt and generated tokens;
* sequences 1..n are *document streams*: ``<|fim_prefix|>`` followed by the leading part
  of one document's token stream. In PSM the prefix for any cursor is a leading part of
  that stream, so a request shares the stream's cells up to the cursor
  (``llama_memory_seq_cp`` shares, it does not copy) and evaluates only what differs.

Python keeps a list of the tokens each sequence holds, position by position, and every
change to the cache goes through here so the two never disagree. Prefill is chunked
with a cancel check between chunks; whatever was evaluated before a cancel stays.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import llama_cpp as llama

WORK_SEQ = 0

#: Tokens at the end of a prefix that may merge differently once more text follows;
#: they are never committed to a document stream.
BOUNDARY_TOKENS = 4

#: Prompt-prefix tokens per llama_decode call when a cancel waits for the call's end:
#: about 0.3 s at 2-core prefill speeds, the longest a newer request waits. Smaller calls
#: lose speed (tokens/s at 32/64/256 per call: 173/216/253 on one 2-core machine).
SHIELDED_CHUNK = 64
#: Only a prefill of at most this many tokens is shielded: the few hundred a cold cut or
#: a keystroke evaluates. A longer one (a whole prefix with nothing cached) keeps the
#: default call size and its speed, and a cancel aborts it inside a call.
SHIELDED_PREFILL_MAX = 512
#: Tokens per call for a background warm-up, which a cancel aborts midway (losing the
#: call's work): half the default call size, for 7% less speed.
WARM_CHUNK = 128

#: llama_decode's return codes that are acted on: no free cells, compute aborted.
DECODE_NO_ROOM = 1
DECODE_ABORTED = 2


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    limit = min(len(a), len(b))
    index = 0
    while index < limit and a[index] == b[index]:
        index += 1
    return index


class PromptReuse(NamedTuple):
    """How much of a prompt is already in the work sequence, and where it came from."""

    #: The document stream the prompt belongs to, or None.
    stream: int | None
    #: Leading prompt tokens that need no evaluation.
    tokens: int
    #: "stream", "work" or "none".
    source: str


@dataclass(frozen=True)
class Prefill:
    """How a chunked prefill ended."""

    end: Literal["done", "cancelled", "failed"]
    #: Tokens committed to the target sequence by this prefill.
    evaluated: int
    #: llama_decode's code when ``end`` is "failed".
    code: int = 0


class KvCache:
    """The sequences of one llama.cpp context and the tokens each of them holds."""

    def __init__(
        self,
        ctx: Any,
        n_seq: int,
        prefill_chunk: int,
        batch_capacity: int,
        shield: Callable[[], AbstractContextManager[None]] | None = None,
    ) -> None:
        self._ctx = ctx
        #: Makes llama.cpp's abort callback let the current call finish (see ``prefill``).
        self._shield = shield or contextlib.nullcontext
        self._memory = llama.llama_get_memory(ctx)
        self.n_seq = n_seq
        self.prefill_chunk = prefill_chunk
        self._batch = llama.llama_batch_init(batch_capacity, 0, n_seq)
        self._held: dict[int, list[int]] = {seq: [] for seq in range(n_seq)}
        #: Document key -> its stream's sequence, least recently used first.
        self._streams: OrderedDict[str, int] = OrderedDict()

    def close(self) -> None:
        llama.llama_batch_free(self._batch)

    def held_tokens(self, seq: int = WORK_SEQ) -> int:
        return len(self._held[seq])

    # ------------------------------------------------------------------ sequences
    def stream_seq(self, key: str) -> int:
        """The sequence of ``key``'s stream, taking the least recently used one if needed."""
        if key in self._streams:
            self._streams.move_to_end(key)
            return self._streams[key]
        used = set(self._streams.values())
        free = [seq for seq in range(1, self.n_seq) if seq not in used]
        if free:
            seq = free[0]
        else:
            _, seq = self._streams.popitem(last=False)
            self.truncate(seq, 0)
        self._streams[key] = seq
        return seq

    def forget(self, key: str) -> None:
        """Drop a document's stream (the document was closed)."""
        seq = self._streams.pop(key, None)
        if seq is not None:
            self.truncate(seq, 0)

    def truncate(self, seq: int, length: int) -> None:
        if len(self._held[seq]) > length:
            llama.llama_memory_seq_rm(self._memory, seq, length, -1)
            del self._held[seq][length:]

    def share(self, source: int, target: int, start: int, end: int) -> None:
        """Let ``target`` use ``source``'s cells for positions [start, end)."""
        self.truncate(target, start)
        if end > start:
            llama.llama_memory_seq_cp(self._memory, source, target, start, end)
            self._held[target].extend(self._held[source][start:end])

    def evict_for_room(self, keep: Sequence[int | None] = ()) -> bool:
        """Free cells by dropping the least recently used stream not in ``keep``; False if none is left."""
        for key, seq in self._streams.items():
            if seq not in keep:
                del self._streams[key]
                self.truncate(seq, 0)
                return True
        return False

    def sync_after_failure(self) -> None:
        """After a failed or aborted decode, drop its half-computed cells.

        llama.cpp rolls back a failed micro-batch for only one of the sequences a token
        belongs to, and an aborted compute leaves incomplete values, so every sequence is
        cut back to what we know was evaluated.
        """
        for seq, held in self._held.items():
            llama.llama_memory_seq_rm(self._memory, seq, len(held), -1)
            valid = llama.llama_memory_seq_pos_max(self._memory, seq) + 1
            if valid < len(held):
                del held[valid:]

    # ------------------------------------------------------------------ evaluation
    def decode(
        self,
        tokens: Sequence[int],
        start: int,
        seqs: Sequence[Sequence[int]],
        want_logits: set[int],
    ) -> int:
        """Evaluate tokens at positions start.. for the listed sequences per token."""
        batch = self._batch
        count = len(tokens)
        batch.n_tokens = count
        for index, token in enumerate(tokens):
            batch.token[index] = token
            batch.pos[index] = start + index
            token_seqs = seqs[index]
            batch.n_seq_id[index] = len(token_seqs)
            for slot, seq in enumerate(token_seqs):
                batch.seq_id[index][slot] = seq
            batch.logits[index] = index in want_logits
        return int(llama.llama_decode(self._ctx, batch))

    def decode_work(self, tokens: Sequence[int]) -> int:
        """Append ``tokens`` to the work sequence with logits for each; returns llama_decode's code.

        On failure the sequences are synced and nothing is appended.
        """
        rc = self.decode(
            tokens, len(self._held[WORK_SEQ]), [(WORK_SEQ,)] * len(tokens), set(range(len(tokens)))
        )
        if rc != 0:
            self.sync_after_failure()
            return rc
        self._held[WORK_SEQ].extend(tokens)
        return 0

    def prefill(
        self,
        seq: int,
        tokens: Sequence[int],
        cancel: threading.Event,
        *,
        stream: int | None = None,
        stream_limit: int = 0,
        logits_for_last: bool = False,
        make_room: bool = False,
        shield_below: int = 0,
        chunk: int | None = None,
    ) -> Prefill:
        """Extend ``seq`` with ``tokens`` in chunks, checking ``cancel`` before each chunk.

        Tokens whose positions are below ``stream_limit`` also go to ``stream`` while the
        stream is exactly as long as ``seq`` (they are the same prefix). With
        ``logits_for_last`` the last token gets logits; with ``make_room`` a full cache
        drops the least recently used stream and the chunk is tried again.

        Positions below ``shield_below`` are prompt prefix, which the next keystroke's
        request almost always shares: in a prefill of up to ``SHIELDED_PREFILL_MAX``
        tokens they go in calls of ``SHIELDED_CHUNK`` tokens that a cancel does not abort
        midway, so a burst of keystrokes, each cancelling the one before, still moves
        the prefill forward. Elsewhere a cancel aborts inside the call.
        """
        held = self._held[seq]
        chunk = min(chunk or self.prefill_chunk, self.prefill_chunk)
        position = len(held)
        offset = evaluated = 0
        if len(tokens) > SHIELDED_PREFILL_MAX:
            shield_below = 0
        while offset < len(tokens):
            if cancel.is_set():
                return Prefill("cancelled", evaluated)
            shielded = position < shield_below
            size = min(chunk, SHIELDED_CHUNK, shield_below - position) if shielded else chunk
            piece = list(tokens[offset : offset + size])
            shared = stream is not None and len(self._held[stream]) == position
            seqs = [
                (seq, stream) if shared and stream is not None and position + i < stream_limit else (seq,)
                for i in range(len(piece))
            ]
            last = logits_for_last and offset + len(piece) == len(tokens)
            with self._shield() if shielded else contextlib.nullcontext():
                rc = self.decode(piece, position, seqs, {len(piece) - 1} if last else set())
            # Never the sequences being filled: their bookkeeping is mid-prefill.
            if rc == DECODE_NO_ROOM and make_room and self.evict_for_room(keep=(seq, stream)):
                continue
            if rc != 0:
                self.sync_after_failure()
                if rc == DECODE_ABORTED or cancel.is_set():
                    return Prefill("cancelled", evaluated)
                return Prefill("failed", evaluated, rc)
            for i, token in enumerate(piece):
                held.append(token)
                if len(seqs[i]) == 2 and stream is not None:
                    self._held[stream].append(token)
            position += len(piece)
            offset += len(piece)
            evaluated += len(piece)
        return Prefill("done", evaluated)

    # ------------------------------------------------------------------ reuse
    def reusable(self, prompt: Sequence[int], stream_end: int, key: str | None) -> int:
        """How many leading tokens of ``prompt`` the cache already holds (nothing is changed)."""
        reuse = common_prefix_length(self._held[WORK_SEQ], prompt)
        stream = self._streams.get(key) if key is not None else None
        if stream is not None and stream_end > 0:
            reuse = max(reuse, common_prefix_length(self._held[stream], prompt[:stream_end]))
        return reuse

    def reuse_for_prompt(self, prompt: list[int], stream_end: int, key: str | None) -> PromptReuse:
        """Make the work sequence hold the longest cached prefix of ``prompt``.

        The prefix comes from the work sequence itself or from ``key``'s document stream,
        whichever shares more; the stream is caught up with the work sequence where it
        lags behind the same prefix.
        """
        work = self._held[WORK_SEQ]
        reuse_work = common_prefix_length(work, prompt)
        use_stream = key is not None and stream_end > 0 and self.n_seq > 1
        stream = self.stream_seq(key) if use_stream and key is not None else None
        reuse_stream = 0
        if stream is not None:
            held = self._held[stream]
            reuse_stream = common_prefix_length(held, prompt[:stream_end])
            if reuse_stream < len(held) and reuse_stream < stream_end - BOUNDARY_TOKENS:
                # The document changed before the cursor: the stream's tail is stale.
                self.truncate(stream, reuse_stream)
        if reuse_stream > reuse_work and stream is not None:
            self.share(stream, WORK_SEQ, 0, reuse_stream)
            self.truncate(WORK_SEQ, reuse_stream)
            reused, source = reuse_stream, "stream"
        else:
            self.truncate(WORK_SEQ, reuse_work)
            reused, source = reuse_work, "work" if reuse_work else "none"
        if reused >= len(prompt):
            # The last prompt token must be evaluated again to get its logits.
            reused = len(prompt) - 1
            self.truncate(WORK_SEQ, reused)
        if stream is not None:
            held = self._held[stream]
            limit = min(reused, stream_end - BOUNDARY_TOKENS)
            if len(held) < limit and common_prefix_length(held, prompt) == len(held):
                self.share(WORK_SEQ, stream, len(held), limit)
        return PromptReuse(stream, reused, source)

    def warm_stream(self, key: str, tokens: Sequence[int], cancel: threading.Event) -> int:
        """Make ``key``'s stream hold ``tokens``, evaluating what it lacks; returns tokens evaluated.

        A full cache drops the least recently used other streams (the warm-up is for the
        document the user is in); stops quietly when cancelled or when no other stream is
        left to drop; what was evaluated stays.
        """
        seq = self.stream_seq(key)
        same = common_prefix_length(self._held[seq], tokens)
        self.truncate(seq, same)
        # Background work: a cancel aborts it at once, and smaller calls lose less of it.
        return self.prefill(seq, tokens[same:], cancel, make_room=True, chunk=WARM_CHUNK).evaluated
