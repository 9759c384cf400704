"""The resident llama.cpp model: prompt assembly, KV-cache reuse, cancellation, early stop.

One ``Engine`` owns one model and one llama.cpp context for the life of the daemon. It is
not thread-safe: the daemon's scheduler calls it from a single worker thread.

KV cache layout (one unified cache, several sequences sharing cells):

* sequence 0 is the *work* sequence: the last request's prompt and generated tokens;
* sequences 1..n are *document streams*: ``<|fim_prefix|>`` followed by the leading part
  of one document's token stream. In PSM the prefix for any cursor is a leading part of
  that stream, so a request shares the stream's cells up to the cursor
  (``llama_memory_seq_cp`` shares, it does not copy) and evaluates only what differs.

Every prompt is matched against both the work sequence and its document's stream; the
longer common prefix is reused and only the tail is evaluated, in chunks, with a cancel
check between chunks, inside llama.cpp's graph compute (abort callback) and between
decoded tokens. Whatever was evaluated before a cancel stays in the cache.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import llama_cpp as llama

from fim.templates import Order, ResolvedTemplate, TemplateError, detect

WORK_SEQ = 0
GGUF_MAGIC = b"GGUF"

#: Tokens at the end of a prefix that may merge differently once more text follows;
#: they are never committed to a document stream.
BOUNDARY_TOKENS = 4

KV_TYPES = {"f16": llama.GGML_TYPE_F16, "q8_0": llama.GGML_TYPE_Q8_0, "q4_0": llama.GGML_TYPE_Q4_0}

StopReason = Literal[
    "eog", "max_tokens", "time_budget", "callback", "cancelled", "context_full", "error", "heal_failed"
]


class ModelLoadError(Exception):
    """The model could not be loaded; the message names the path and the reason."""


class CancelledError(Exception):
    """Raised inside the engine when the request's cancel token is set."""


def physical_cores() -> int:
    """Physical cores available to this process (hyperthreads share one core's units)."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    try:
        cores = set()
        physical = core = None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("physical id"):
                physical = line.split(":")[1].strip()
            elif line.startswith("core id"):
                core = line.split(":")[1].strip()
                cores.add((physical, core))
        if cores:
            return max(1, min(available, len(cores)))
    except OSError:
        pass
    return max(1, available)


@dataclass(frozen=True)
class EngineConfig:
    model_path: str
    n_ctx: int = 8192
    n_threads: int | None = None
    n_gpu_layers: int = 0
    flash_attn: bool = True
    kv_cache_type: str = "f16"
    #: Tokens evaluated per llama_decode call during prefill; a cancel is also noticed
    #: inside a chunk through the abort callback.
    prefill_chunk: int = 256
    #: Documents whose token streams stay in the cache.
    n_streams: int = 3
    fim_order: Order | None = None


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 0.0
    top_k: int = 40
    top_p: float = 0.9
    seed: int = 0


@dataclass
class CompletionRequest:
    prefix: str
    suffix: str
    max_tokens: int = 128
    time_budget_ms: float | None = None
    #: Key of the document whose token stream this prefix belongs to (its URI).
    stream_key: str | None = None
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    prompt_lookup: bool = True
    #: Text the user already typed of the current word. It is left out of the prompt (its
    #: token may merge differently) and the first generated tokens must spell it out; it
    #: is not part of the result.
    heal: str = ""


@dataclass
class CompletionStats:
    tokens_prompt: int = 0
    tokens_reused: int = 0
    tokens_evaluated: int = 0
    tokens_generated: int = 0
    tokens_drafted: int = 0
    tokens_draft_accepted: int = 0
    reused_from: str = "none"
    prefill_ms: float = 0.0
    first_token_ms: float = 0.0
    decode_ms: float = 0.0
    total_ms: float = 0.0
    stop_reason: StopReason = "eog"
    cancelled_in: str | None = None


@dataclass
class CompletionResult:
    text: str
    stats: CompletionStats


#: Called with the text generated so far; returning True stops generation.
StopCallback = Callable[[str], bool]


class _Utf8Stream:
    """Joins token pieces into text, holding back bytes of a split UTF-8 character."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""

    def push(self, piece: bytes) -> None:
        self.text += self._decoder.decode(piece)

    def finish(self) -> str:
        self.text += self._decoder.decode(b"", final=True)
        return self.text


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    limit = min(len(a), len(b))
    index = 0
    while index < limit and a[index] == b[index]:
        index += 1
    return index


def check_gguf(path: Path) -> None:
    """Fail early, with a named reason, before llama.cpp sees a bad file."""
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path}: not a GGUF file (corrupt or wrong format; magic {magic!r})")


class Engine:
    """A resident model serving FIM completions with KV-cache reuse."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        path = Path(config.model_path)
        check_gguf(path)
        llama.llama_backend_init()
        model_params = llama.llama_model_default_params()
        model_params.n_gpu_layers = config.n_gpu_layers
        self._model = llama.llama_model_load_from_file(str(path).encode(), model_params)
        if not self._model:
            raise ModelLoadError(f"{path}: llama.cpp could not load it (corrupt or unsupported GGUF)")
        self._vocab = llama.llama_model_get_vocab(self._model)
        try:
            self.template = self._detect_template(config.fim_order)
        except TemplateError as error:
            self._release_model()
            raise ModelLoadError(f"{path}: {error}") from error

        self.n_threads = config.n_threads or physical_cores()
        self.n_seq = 1 + max(0, config.n_streams)
        ctx_params = llama.llama_context_default_params()
        ctx_params.n_ctx = config.n_ctx
        ctx_params.n_batch = max(512, config.prefill_chunk)
        ctx_params.n_ubatch = max(512, config.prefill_chunk)
        ctx_params.n_seq_max = self.n_seq
        ctx_params.kv_unified = True
        ctx_params.n_threads = self.n_threads
        ctx_params.n_threads_batch = self.n_threads
        ctx_params.no_perf = True
        ctx_params.flash_attn_type = (
            llama.LLAMA_FLASH_ATTN_TYPE_ENABLED if config.flash_attn else llama.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        if config.kv_cache_type not in KV_TYPES:
            self._release_model()
            raise ModelLoadError(
                f"kv cache type {config.kv_cache_type!r}: expected one of {sorted(KV_TYPES)}"
            )
        ctx_params.type_k = KV_TYPES[config.kv_cache_type]
        ctx_params.type_v = KV_TYPES[config.kv_cache_type]
        self._cancel: threading.Event | None = None
        # Keep a reference: llama.cpp holds only the function pointer.
        self._abort_callback = llama.ggml_abort_callback(self._should_abort)
        self._ctx = llama.llama_init_from_model(self._model, ctx_params)
        if not self._ctx:
            self._release_model()
            raise ModelLoadError(
                f"{path}: could not create a context of {config.n_ctx} tokens (not enough memory?)"
            )
        llama.llama_set_abort_callback(self._ctx, self._abort_callback, None)
        self._memory = llama.llama_get_memory(self._ctx)
        self.n_ctx = llama.llama_n_ctx(self._ctx)
        self._batch_capacity = max(512, config.prefill_chunk)
        self._batch = llama.llama_batch_init(self._batch_capacity, 0, self.n_seq)
        self._piece_buffer = ctypes.create_string_buffer(256)
        self._eog_cache: dict[int, bool] = {}
        self._pieces_index: dict[int, list[tuple[int, bytes]]] | None = None
        # What each sequence holds, position by position.
        self._held: dict[int, list[int]] = {seq: [] for seq in range(self.n_seq)}
        self._streams: OrderedDict[str, int] = OrderedDict()
        self.totals = {"requests": 0, "evaluated": 0, "reused": 0, "generated": 0, "cancelled": 0}
        self.model_path = str(path)
        self.model_description = self._model_description()

    def _release_model(self) -> None:
        if self._model:
            llama.llama_model_free(self._model)
        self._model = None

    # ------------------------------------------------------------------ vocabulary
    def _detect_template(self, order: Order | None) -> ResolvedTemplate:
        eog = frozenset(
            i for i in (llama.llama_vocab_eos(self._vocab), llama.llama_vocab_eot(self._vocab)) if i >= 0
        )
        return detect(
            self._single_token,
            vocab_fim_ids=(
                llama.llama_vocab_fim_pre(self._vocab),
                llama.llama_vocab_fim_suf(self._vocab),
                llama.llama_vocab_fim_mid(self._vocab),
            ),
            id_to_text=self.token_text,
            bos_id=llama.llama_vocab_bos(self._vocab),
            eog_ids=eog,
            order=order,
        )

    def _single_token(self, text: str) -> int | None:
        ids = self._tokenize_raw(text, parse_special=True)
        if len(ids) == 1 and self.token_text(ids[0]) == text:
            return ids[0]
        return None

    def token_text(self, token: int) -> str:
        raw = llama.llama_vocab_get_text(self._vocab, token)
        return raw.decode("utf-8", errors="replace") if raw else ""

    def _tokenize_raw(self, text: str, *, parse_special: bool) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (llama.llama_token * capacity)()
        count = llama.llama_tokenize(self._vocab, data, len(data), tokens, capacity, False, parse_special)
        if count < 0:
            capacity = -count
            tokens = (llama.llama_token * capacity)()
            count = llama.llama_tokenize(self._vocab, data, len(data), tokens, capacity, False, parse_special)
        return list(tokens[:count])

    def tokenize(self, text: str) -> list[int]:
        """Tokenize buffer text; control-token text stays plain text."""
        return self._tokenize_raw(text, parse_special=False)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def piece(self, token: int) -> bytes:
        length = llama.llama_token_to_piece(self._vocab, token, self._piece_buffer, 256, 0, False)
        if length < 0:
            buffer = ctypes.create_string_buffer(-length)
            length = llama.llama_token_to_piece(self._vocab, token, buffer, -length, 0, False)
            return bytes(buffer.raw[:length])
        return bytes(self._piece_buffer.raw[:length])

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def is_stop_token(self, token: int) -> bool:
        cached = self._eog_cache.get(token)
        if cached is None:
            cached = bool(llama.llama_vocab_is_eog(self._vocab, token)) or token in self.template.stop_ids
            self._eog_cache[token] = cached
        return cached

    def _model_description(self) -> str:
        buffer = ctypes.create_string_buffer(256)
        llama.llama_model_desc(self._model, buffer, 256)
        return buffer.value.decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ prompt
    def build_prompt(self, prefix: str, suffix: str, reserve: int = 0) -> tuple[list[int], int]:
        """Prompt ids and the length of its document-stream part, trimmed to fit n_ctx."""
        prefix_ids = self.tokenize(prefix)
        suffix_ids = self.tokenize(suffix)
        room = self.n_ctx - reserve - 4
        if len(suffix_ids) > room // 2:
            suffix_ids = suffix_ids[: room // 2]
        overflow = len(prefix_ids) + len(suffix_ids) - room
        if overflow > 0:
            # Keep the text nearest the cursor; the caller's budgets normally prevent this.
            prefix_ids = prefix_ids[overflow:]
        return self.template.build(prefix_ids, suffix_ids)

    # ------------------------------------------------------------------ cache management
    def _should_abort(self, _data: Any) -> bool:
        cancel = self._cancel
        return bool(cancel is not None and cancel.is_set())

    def _stream_seq(self, key: str) -> int:
        if key in self._streams:
            self._streams.move_to_end(key)
            return self._streams[key]
        used = set(self._streams.values())
        free = [seq for seq in range(1, self.n_seq) if seq not in used]
        if free:
            seq = free[0]
        else:
            _, seq = self._streams.popitem(last=False)
            self._truncate(seq, 0)
        self._streams[key] = seq
        return seq

    def forget(self, key: str) -> None:
        """Drop a document's stream (the document was closed)."""
        seq = self._streams.pop(key, None)
        if seq is not None:
            self._truncate(seq, 0)

    def _truncate(self, seq: int, length: int) -> None:
        if len(self._held[seq]) > length:
            llama.llama_memory_seq_rm(self._memory, seq, length, -1)
            del self._held[seq][length:]

    def _share(self, source: int, target: int, start: int, end: int) -> None:
        """Let ``target`` use ``source``'s cells for positions [start, end)."""
        self._truncate(target, start)
        if end > start:
            llama.llama_memory_seq_cp(self._memory, source, target, start, end)
            self._held[target].extend(self._held[source][start:end])

    def _evict_for_room(self) -> bool:
        """Free cells by dropping the least recently used stream; False if none is left."""
        if not self._streams:
            return False
        _, seq = self._streams.popitem(last=False)
        self._truncate(seq, 0)
        return True

    def _sync_after_failure(self) -> None:
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

    def _decode(
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

    def _evaluate(
        self, tokens: Sequence[int], stream: int | None, stream_limit: int, cancel: threading.Event
    ) -> None:
        """Extend the work sequence with ``tokens``; the last one gets logits.

        Tokens whose positions are below ``stream_limit`` also go to ``stream`` while the
        stream is exactly as long as the work sequence (they are the same prefix).
        """
        work = self._held[WORK_SEQ]
        chunk = self.config.prefill_chunk
        position = len(work)
        offset = 0
        while offset < len(tokens):
            if cancel.is_set():
                raise CancelledError
            piece = list(tokens[offset : offset + chunk])
            shared = stream is not None and len(self._held[stream]) == position
            seqs = [
                (WORK_SEQ, stream)
                if shared and stream is not None and position + i < stream_limit
                else (WORK_SEQ,)
                for i in range(len(piece))
            ]
            last = offset + len(piece) == len(tokens)
            rc = self._decode(piece, position, seqs, {len(piece) - 1} if last else set())
            if rc == 1 and self._evict_for_room():
                continue
            if rc != 0:
                self._sync_after_failure()
                if rc == 2 or cancel.is_set():
                    raise CancelledError
                raise RuntimeError(f"llama_decode failed with code {rc}")
            for i, token in enumerate(piece):
                work.append(token)
                if len(seqs[i]) == 2 and stream is not None:
                    self._held[stream].append(token)
            position += len(piece)
            offset += len(piece)

    def _prepare(
        self, prompt: list[int], stream_end: int, key: str | None, stats: CompletionStats
    ) -> int | None:
        """Reuse the longest cached prefix of ``prompt``; returns the stream's sequence."""
        work = self._held[WORK_SEQ]
        reuse_work = common_prefix_length(work, prompt)
        use_stream = key is not None and stream_end > 0 and self.n_seq > 1
        stream = self._stream_seq(key) if use_stream and key is not None else None
        reuse_stream = 0
        if stream is not None:
            held = self._held[stream]
            reuse_stream = common_prefix_length(held, prompt[:stream_end])
            if reuse_stream < len(held) and reuse_stream < stream_end - BOUNDARY_TOKENS:
                # The document changed before the cursor: the stream's tail is stale.
                self._truncate(stream, reuse_stream)
        if reuse_stream > reuse_work and stream is not None:
            self._share(stream, WORK_SEQ, 0, reuse_stream)
            self._truncate(WORK_SEQ, reuse_stream)
            reused, stats.reused_from = reuse_stream, "stream"
        else:
            self._truncate(WORK_SEQ, reuse_work)
            reused, stats.reused_from = reuse_work, "work" if reuse_work else "none"
        if reused >= len(prompt):
            # The last prompt token must be evaluated again to get its logits.
            reused = len(prompt) - 1
            self._truncate(WORK_SEQ, reused)
        if stream is not None:
            held = self._held[stream]
            limit = min(reused, stream_end - BOUNDARY_TOKENS)
            if len(held) < limit and common_prefix_length(held, prompt) == len(held):
                self._share(WORK_SEQ, stream, len(held), limit)
        stats.tokens_reused = reused
        return stream

    # ------------------------------------------------------------------ generation
    def _make_sampler(self, sampling: SamplingConfig) -> Any:
        chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
        if sampling.temperature <= 0:
            llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_greedy())
        else:
            llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_top_k(sampling.top_k))
            llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_top_p(sampling.top_p, 1))
            llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_temp(sampling.temperature))
            llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_dist(sampling.seed))
        return chain

    def complete(
        self,
        request: CompletionRequest,
        cancel: threading.Event | None = None,
        on_text: StopCallback | None = None,
    ) -> CompletionResult:
        """Fill the middle between ``request.prefix`` and ``request.suffix``."""
        cancel = cancel or threading.Event()
        stats = CompletionStats()
        started = time.perf_counter()
        self.totals["requests"] += 1
        prompt, stream_end = self.build_prompt(request.prefix, request.suffix, reserve=request.max_tokens)
        stats.tokens_prompt = len(prompt)
        text = _Utf8Stream()
        self._cancel = cancel
        sampler = self._make_sampler(request.sampling)
        try:
            stream = self._prepare(prompt, stream_end, request.stream_key, stats)
            tail = prompt[stats.tokens_reused :]
            evaluated_before = len(self._held[WORK_SEQ])
            try:
                self._evaluate(tail, stream, stream_end - BOUNDARY_TOKENS, cancel)
            except CancelledError:
                stats.cancelled_in = "prefill"
                stats.stop_reason = "cancelled"
                return CompletionResult("", stats)
            finally:
                stats.tokens_evaluated = len(self._held[WORK_SEQ]) - evaluated_before
                stats.prefill_ms = (time.perf_counter() - started) * 1000
            self._generate(request, prompt, sampler, cancel, on_text, text, stats, started)
        finally:
            llama.llama_sampler_free(sampler)
            self._cancel = None
            stats.total_ms = (time.perf_counter() - started) * 1000
            self.totals["evaluated"] += stats.tokens_evaluated
            self.totals["reused"] += stats.tokens_reused
            self.totals["generated"] += stats.tokens_generated
            if stats.stop_reason == "cancelled":
                self.totals["cancelled"] += 1
        return CompletionResult(text.finish() if stats.stop_reason != "cancelled" else "", stats)

    def _draft(
        self, history: list[int], max_draft: int = 8, min_ngram: int = 2, max_ngram: int = 4
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

    def _generate(
        self,
        request: CompletionRequest,
        prompt: list[int],
        sampler: Any,
        cancel: threading.Event,
        on_text: StopCallback | None,
        text: _Utf8Stream,
        stats: CompletionStats,
        started: float,
    ) -> None:
        work = self._held[WORK_SEQ]
        deadline = started + request.time_budget_ms / 1000 if request.time_budget_ms else None
        decode_started = time.perf_counter()
        use_lookup = request.prompt_lookup and request.sampling.temperature <= 0
        logits_index = -1
        draft: list[int] = []
        history = list(prompt)
        healing = request.heal.encode("utf-8")
        try:
            while True:
                if cancel.is_set():
                    stats.stop_reason, stats.cancelled_in = "cancelled", "decode"
                    return
                if healing:
                    # Token healing: the first tokens must spell the word the user typed.
                    token = self._heal_pick(logits_index, healing)
                    if token is None:
                        stats.stop_reason = "heal_failed"
                        return
                    accepted = [token]
                else:
                    # Accept the sampled token, then any draft tokens the model agrees with.
                    token = int(llama.llama_sampler_sample(sampler, self._ctx, logits_index))
                    accepted = [token]
                    for index, proposed in enumerate(draft):
                        if proposed != token:
                            break
                        token = int(llama.llama_sampler_sample(sampler, self._ctx, index + 1))
                        accepted.append(token)
                        stats.tokens_draft_accepted += 1
                    if draft:
                        # Cells past the last verified draft token hold rejected guesses.
                        keep = len(work) - len(draft) + len(accepted) - 1
                        self._truncate(WORK_SEQ, keep)
                for token in accepted:
                    if stats.tokens_generated == 0:
                        stats.first_token_ms = (time.perf_counter() - started) * 1000
                    if self.is_stop_token(token):
                        stats.stop_reason = "eog"
                        return
                    stats.tokens_generated += 1
                    history.append(token)
                    piece = self.piece(token)
                    if healing:
                        consumed = min(len(healing), len(piece))
                        healing, piece = healing[consumed:], piece[consumed:]
                    text.push(piece)
                    if on_text is not None and on_text(text.text):
                        stats.stop_reason = "callback"
                        return
                    if stats.tokens_generated >= request.max_tokens:
                        stats.stop_reason = "max_tokens"
                        return
                if deadline is not None and time.perf_counter() > deadline:
                    stats.stop_reason = "time_budget"
                    return
                if len(work) + 2 + 8 >= self.n_ctx:
                    stats.stop_reason = "context_full"
                    return
                last = accepted[-1]
                draft = self._draft(history) if use_lookup and not healing else []
                room = request.max_tokens - stats.tokens_generated
                draft = draft[: max(0, min(len(draft), room - 1))]
                stats.tokens_drafted += len(draft)
                batch_tokens = [last, *draft]
                position = len(work)
                rc = self._decode(
                    batch_tokens,
                    position,
                    [(WORK_SEQ,)] * len(batch_tokens),
                    set(range(len(batch_tokens))),
                )
                if rc != 0:
                    self._sync_after_failure()
                    if rc == 2 or cancel.is_set():
                        stats.stop_reason, stats.cancelled_in = "cancelled", "decode"
                        return
                    stats.stop_reason = "context_full" if rc == 1 else "error"
                    return
                work.extend(batch_tokens)
                logits_index = 0
        finally:
            stats.decode_ms = (time.perf_counter() - decode_started) * 1000

    def _pieces_by_first_byte(self) -> dict[int, list[tuple[int, bytes]]]:
        if self._pieces_index is None:
            index: dict[int, list[tuple[int, bytes]]] = {}
            for token in range(llama.llama_vocab_n_tokens(self._vocab)):
                piece = self.piece(token)
                if piece and not self.is_stop_token(token):
                    index.setdefault(piece[0], []).append((token, piece))
            self._pieces_index = index
        return self._pieces_index

    def _heal_pick(self, logits_index: int, remaining: bytes) -> int | None:
        """The most likely token that agrees with the text still to be spelled out."""
        candidates = [
            token
            for token, piece in self._pieces_by_first_byte().get(remaining[0], ())
            if remaining.startswith(piece) or piece.startswith(remaining)
        ]
        if not candidates:
            return None
        logits = llama.llama_get_logits_ith(self._ctx, logits_index)
        return max(candidates, key=lambda token: float(logits[token]))

    # ------------------------------------------------------------------ idle work
    def warm_stream(self, key: str, text: str, cancel: threading.Event, max_tokens: int | None = None) -> int:
        """Evaluate a document's leading text into its stream while the user is idle.

        Returns the number of tokens evaluated. Cancellable between and inside chunks;
        what was evaluated stays.
        """
        tokens, stream_end = self.template.build(self.tokenize(text), [])
        if stream_end == 0 or self.n_seq < 2:
            return 0
        tokens = tokens[: stream_end - BOUNDARY_TOKENS]
        if max_tokens is not None:
            tokens = tokens[:max_tokens]
        seq = self._stream_seq(key)
        held = self._held[seq]
        same = common_prefix_length(held, tokens)
        self._truncate(seq, same)
        self._cancel = cancel
        evaluated = 0
        try:
            position = same
            chunk = self.config.prefill_chunk
            while position < len(tokens):
                if cancel.is_set():
                    break
                piece = tokens[position : position + chunk]
                rc = self._decode(piece, position, [(seq,)] * len(piece), set())
                if rc != 0:
                    self._sync_after_failure()
                    break
                held.extend(piece)
                position += len(piece)
                evaluated += len(piece)
        finally:
            self._cancel = None
        return evaluated

    def held_tokens(self, seq: int = WORK_SEQ) -> int:
        return len(self._held[seq])

    def close(self) -> None:
        if getattr(self, "_ctx", None):
            llama.llama_batch_free(self._batch)
            llama.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            self._release_model()

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        with contextlib.suppress(Exception):
            self.close()
