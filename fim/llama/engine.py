"""The resident llama.cpp model as a ``Backend``: loading, and one request end to end.

One ``LlamaEngine`` owns one model and one llama.cpp context for the life of the daemon.
It is not thread-safe: the daemon's scheduler calls it from a single worker thread.

A request's prompt is matched against the work sequence and its document's stream
(``fim.llama.kv``); the longer common prefix is reused and only the tail is evaluated, in
chunks, with a cancel check between chunks, inside llama.cpp's graph compute (the abort
callback installed here) and between decoded tokens (``fim.llama.generation``).
Whatever was evaluated before a cancel stays in the cache.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import llama_cpp as llama

from fim.backend import (
    BackendCapabilities,
    CompletionRequest,
    CompletionResult,
    CompletionStats,
    ModelLoadError,
    RepositoryContext,
    StopCallback,
)
from fim.llama.generation import Decoding, Generator, sampler_chain
from fim.llama.kv import BOUNDARY_TOKENS, WORK_SEQ, KvCache
from fim.llama.vocabulary import Vocabulary
from fim.templates import Order, TemplateError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fim.backend import Backend

GGUF_MAGIC = b"GGUF"

KV_TYPES = {"f16": llama.GGML_TYPE_F16, "q8_0": llama.GGML_TYPE_Q8_0, "q4_0": llama.GGML_TYPE_Q4_0}
#: A shortened cold prompt keeps at least this many tokens: fewer says too little.
COLD_MIN_TOKENS = 64
#: A cold cut is recognised again by this much of the text it started with.
COLD_ANCHOR_CHARS = 160
#: Prefill speed assumed before one is measured (a 2-core laptop CPU, 0.5B model), tokens/s.
ASSUMED_PREFILL_RATE = 150.0
#: Prefills shorter than this say little about the speed; they are not measured.
RATE_MIN_TOKENS = 32
#: Other files' context never takes more than this share of the context window.
MAX_CONTEXT_SHARE = 0.5


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


def other_runnable_threads() -> int | None:
    """Threads of other processes running or waiting for a CPU right now; None off Linux.

    The kernel's count of runnable threads (``/proc/loadavg``) less this process's own.
    """
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        own = 0
        for task in os.scandir("/proc/self/task"):
            with open(f"{task.path}/stat", "rb") as handle:
                raw = handle.read()
            # The state follows the command name, which may hold spaces and parentheses.
            own += raw[raw.rindex(b")") + 2 : raw.rindex(b")") + 3] == b"R"
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - own)


@dataclass(frozen=True)
class EngineConfig:
    """The engine's settings. Made from the options by ``fim.config.engine_config``, which
    holds their defaults; only what no option sets has a default here."""

    model_path: str
    n_ctx: int
    #: None means the number of physical cores.
    n_threads: int | None
    n_gpu_layers: int
    flash_attn: bool
    kv_cache_type: str
    #: Documents whose token streams stay in the cache.
    n_streams: int
    #: None means the order the model family was trained on.
    fim_order: Order | None
    #: Tokens evaluated per llama_decode call during prefill; a cancel is also noticed
    #: inside a chunk through the abort callback.
    prefill_chunk: int = 256


def check_gguf(path: Path) -> None:
    """Fail early, with a named reason, before llama.cpp sees a bad file."""
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path}: not a GGUF file (corrupt or wrong format; magic {magic!r})")


class _AbortSwitch:
    """llama.cpp's abort callback, pointed at the cancel token of the work in progress."""

    def __init__(self) -> None:
        self._cancel: threading.Event | None = None
        #: A chunk of prompt prefix is evaluating whose result the next request will
        #: reuse: a cancel waits for its end instead of throwing it away.
        self._shielded = False
        #: Work is evaluating on the model (prefill or decode), for ``describe``.
        self.active = False
        # Keep a reference: llama.cpp holds only the function pointer.
        self.callback = llama.ggml_abort_callback(self._should_abort)

    def _should_abort(self, _data: Any) -> bool:
        cancel = self._cancel
        return bool(cancel is not None and cancel.is_set() and not self._shielded)

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """Let the current llama_decode call finish even if cancelled (the caller checks after)."""
        self._shielded = True
        try:
            yield
        finally:
            self._shielded = False

    @contextlib.contextmanager
    def watching(self, cancel: threading.Event) -> Iterator[None]:
        self._cancel = cancel
        self.active = True
        try:
            yield
        finally:
            self._cancel = None
            self.active = False


class LlamaEngine:
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
        try:
            self.vocabulary = Vocabulary(llama.llama_model_get_vocab(self._model), config.fim_order)
        except TemplateError as error:
            self._release_model()
            raise ModelLoadError(f"{path}: {error}") from error
        self.template = self.vocabulary.template
        self.layers_offloaded = self._layers_offloaded()

        self.n_threads = config.n_threads or physical_cores()
        #: Threads the current request runs on; with ``n_threads`` not set, fewer than
        #: ``n_threads`` while other processes keep the cores busy (``_fit_threads``).
        self.threads_now = self.n_threads
        self._others_at_end: int | None = None
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
        self._abort = _AbortSwitch()
        self._ctx = llama.llama_init_from_model(self._model, ctx_params)
        if not self._ctx:
            self._release_model()
            raise ModelLoadError(
                f"{path}: could not create a context of {config.n_ctx} tokens (not enough memory?)"
            )
        llama.llama_set_abort_callback(self._ctx, self._abort.callback, None)
        self.n_ctx = llama.llama_n_ctx(self._ctx)
        self.kv = KvCache(
            self._ctx,
            self.n_seq,
            config.prefill_chunk,
            batch_capacity=max(512, config.prefill_chunk),
            shield=self._abort.shielded,
        )
        self._generator = Generator(self._ctx, self.kv, self.vocabulary, self.n_ctx)
        self.totals = {"requests": 0, "evaluated": 0, "reused": 0, "generated": 0, "cancelled": 0}
        #: Measured prefill speed, tokens/s (a moving average over requests).
        self._prefill_rate = ASSUMED_PREFILL_RATE
        #: Per document: the text its last cold cut started with. The keystrokes after a
        #: jump cut at the same place, so each one reuses what the one before evaluated.
        self._cold_anchors: dict[str, str] = {}
        self.model_path = str(path)
        self.model_description = self._model_description()
        #: The last repository context and its ids: the same one comes back keystroke
        #: after keystroke (the workspace pins it), and is tokenized once.
        self._context_ids: tuple[RepositoryContext, list[int]] | None = None

    def _release_model(self) -> None:
        if self._model:
            llama.llama_model_free(self._model)
        self._model = None

    def _model_description(self) -> str:
        buffer = ctypes.create_string_buffer(256)
        llama.llama_model_desc(self._model, buffer, 256)
        return buffer.value.decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ Backend: description
    @property
    def capabilities(self) -> BackendCapabilities:
        return BackendCapabilities(
            document_streams=self.n_seq > 1, token_healing=True, exact_token_counts=True
        )

    def _layers_offloaded(self) -> int:
        """How many layers llama.cpp puts on a GPU: none on a build without a GPU backend."""
        requested = self.config.n_gpu_layers
        if requested == 0:
            return 0
        if not llama.llama_supports_gpu_offload():
            if requested > 0:
                log.warning(
                    "gpuLayers is %d but this llama.cpp has no GPU backend: every layer runs on the CPU",
                    requested,
                )
            return 0
        # llama.cpp counts the output layer as one more.
        layers = int(llama.llama_model_n_layer(self._model)) + 1
        return layers if requested < 0 else min(requested, layers)

    def describe(self) -> dict[str, Any]:
        """Model, template, settings and running totals, for logs and ``fim/status``."""
        return {
            "backend": "llama.cpp",
            "model_path": self.model_path,
            "model_description": self.model_description,
            "template": self.template.template.name,
            "order": self.template.order,
            "n_threads": self.n_threads,
            "threads_now": self.threads_now,
            "n_ctx": self.n_ctx,
            "n_streams": self.n_seq - 1,
            "prefill_chunk": self.config.prefill_chunk,
            "flash_attn": self.config.flash_attn,
            "kv_cache_type": self.config.kv_cache_type,
            "n_gpu_layers": self.config.n_gpu_layers,
            "layers_offloaded": self.layers_offloaded,
            "totals": dict(self.totals),
            # Read from the event loop while the inference thread works: both are plain
            # values, so the answer is at worst one step old.
            "busy": self._abort.active,
            "streams_held": sum(1 for seq in range(1, self.n_seq) if self.kv.held_tokens(seq)),
            "prefill_rate": round(self._prefill_rate, 1),
        }

    # ------------------------------------------------------------------ vocabulary
    def tokenize(self, text: str) -> list[int]:
        """Tokenize buffer text; control-token text stays plain text."""
        return self.vocabulary.tokenize(text)

    def count_tokens(self, text: str) -> int:
        return self.vocabulary.count_tokens(text)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.vocabulary.detokenize(tokens)

    def piece(self, token: int) -> bytes:
        return self.vocabulary.piece(token)

    def token_text(self, token: int) -> str:
        return self.vocabulary.token_text(token)

    def single_token(self, text: str) -> int | None:
        """The id of the token whose text is exactly ``text`` (control tokens included), if any."""
        return self.vocabulary.single_token(text)

    def is_stop_token(self, token: int) -> bool:
        return self.vocabulary.is_stop_token(token)

    # ------------------------------------------------------------------ prompt
    def build_prompt(self, prefix: str, suffix: str) -> list[int]:
        """The prompt ids for this prefix and suffix, trimmed to fit n_ctx."""
        return self.build_prompt_with_stream_end(prefix, suffix)[0]

    def context_ids(self, repository: RepositoryContext | None) -> list[int]:
        """Other files' ids in the model family's repository format ([] for None)."""
        if repository is None:
            return []
        cached = self._context_ids
        if cached is not None and cached[0] == repository:
            return cached[1]
        ids = self.template.repository_ids(repository, self.tokenize)
        if len(ids) > self.n_ctx * MAX_CONTEXT_SHARE:
            ids = []  # the settings' budgets normally prevent this
        self._context_ids = (repository, ids)
        return ids

    def build_prompt_with_stream_end(
        self, prefix: str, suffix: str, reserve: int = 0, repository: RepositoryContext | None = None
    ) -> tuple[list[int], int]:
        """Prompt ids and the length of its document-stream part, trimmed to fit n_ctx.

        ``reserve`` tokens are left free for generation; ``repository``'s files go first.
        """
        context_ids = self.context_ids(repository)
        prefix_ids = self.tokenize(prefix)
        suffix_ids = self.tokenize(suffix)
        room = self.n_ctx - reserve - 4 - len(context_ids)
        if len(suffix_ids) > room // 2:
            suffix_ids = suffix_ids[: room // 2]
        overflow = len(prefix_ids) + len(suffix_ids) - room
        if overflow > 0:
            # Keep the text nearest the cursor; the caller's budgets normally prevent this.
            prefix_ids = prefix_ids[overflow:]
        return self.template.build(prefix_ids, suffix_ids, context_ids)

    # ------------------------------------------------------------------ requests
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
        prompt, stream_end, stream_key = self._request_prompt(request, stats)
        self._fit_threads()
        decoding = Decoding(request, cancel, on_text, stats, started, history=list(prompt))
        try:
            with self._abort.watching(cancel), sampler_chain(request.sampling) as sampler:
                if not self._prefill(prompt, stream_end, stream_key, decoding):
                    return CompletionResult("", stats)
                self._generator.run(decoding, sampler)
        finally:
            self._note_others()
            stats.total_ms = (time.perf_counter() - started) * 1000
            self.totals["evaluated"] += stats.tokens_evaluated
            self.totals["reused"] += stats.tokens_reused
            self.totals["generated"] += stats.tokens_generated
            if stats.stop_reason == "cancelled":
                self.totals["cancelled"] += 1
        return CompletionResult(decoding.text.finish() if stats.stop_reason != "cancelled" else "", stats)

    def prefill(self, request: CompletionRequest, cancel: threading.Event) -> int:
        """Evaluate what ``request`` needs, as ``complete`` would, and generate nothing.

        For the place the editor's cursor just moved to: the first keystroke there then
        finds its prompt evaluated (or as much of it as the time before it allowed).
        Returns the tokens evaluated.
        """
        stats = CompletionStats()
        prompt, stream_end, stream_key = self._request_prompt(request, stats)
        self._fit_threads()
        decoding = Decoding(request, cancel, None, stats, time.perf_counter(), history=list(prompt))
        try:
            with self._abort.watching(cancel):
                self._prefill(prompt, stream_end, stream_key, decoding)
        finally:
            self._note_others()
            self.totals["evaluated"] += stats.tokens_evaluated
        return stats.tokens_evaluated

    def _request_prompt(
        self, request: CompletionRequest, stats: CompletionStats
    ) -> tuple[list[int], int, str | None]:
        """The prompt ids, where its document-stream part ends, and the stream to use.

        A prompt whose prefix was cut for a cold jump starts elsewhere than the document's
        stream: it lives in the work sequence only, so that it never truncates the
        stream's (whole-prefix) warm-up that later requests will use.
        """
        prompt, stream_end = self.build_prompt_with_stream_end(
            request.prefix, request.suffix, reserve=request.max_tokens, repository=request.repository
        )
        stream_key = request.stream_key
        if request.cold_prefill_ms is not None:
            prompt, stream_end, stats.prefix_cut_tokens = self._fit_cold_prompt(request, prompt, stream_end)
            if stats.prefix_cut_tokens:
                stream_key = None
        stats.tokens_prompt = len(prompt)
        return prompt, stream_end, stream_key

    def _measure_prefill(self, tokens: int, milliseconds: float) -> None:
        if tokens >= RATE_MIN_TOKENS and milliseconds > 0:
            rate = tokens * 1000 / milliseconds
            self._prefill_rate = 0.7 * self._prefill_rate + 0.3 * rate

    def _fit_cold_prompt(
        self, request: CompletionRequest, prompt: list[int], stream_end: int
    ) -> tuple[list[int], int, int]:
        """A shorter prefix when evaluating what the cache lacks would exceed the cold budget.

        After a jump into a long file nothing of its prompt is cached, and a whole prefix
        costs seconds. The first suggestion then gets the lines nearest the cursor that fit
        the budget (at the measured prefill speed); the full prefix is warmed afterwards,
        so the next request has it. Returns the prompt, its stream end and the prefix
        tokens left out.
        """
        assert request.cold_prefill_ms is not None
        missing = len(prompt) - self.kv.reusable(prompt, stream_end, request.stream_key)
        budget = max(COLD_MIN_TOKENS, int(self._prefill_rate * request.cold_prefill_ms / 1000))
        if missing <= budget:
            return prompt, stream_end, 0
        if request.repository is not None:
            # Cold: this answer goes without the other files; the idle warm-up evaluates
            # them with the prefix for the next request. Never cached (a cut is counted).
            plain = dataclasses.replace(request, repository=None)
            prompt, stream_end = self.build_prompt_with_stream_end(
                plain.prefix, plain.suffix, reserve=plain.max_tokens
            )
            shorter, shorter_end, cut = self._fit_cold_prompt(plain, prompt, stream_end)
            return shorter, shorter_end, max(1, cut)
        prefix_tokens = max(1, stream_end - 1)
        others = len(prompt) - prefix_tokens
        keep = max(COLD_MIN_TOKENS // 2, budget - others)
        # Cut at a line start, estimated from this prefix's characters per token.
        chars = int(keep * len(request.prefix) / prefix_tokens)
        start = self._sticky_cold_start(request, chars)
        if start is None:
            cut_from = max(0, len(request.prefix) - chars)
            line_start = request.prefix.find("\n", cut_from)
            # A prefix without a line break there (minified code, a 100,000-character line)
            # is cut inside its line: a partial first line beats minutes of prefill.
            start = line_start + 1 if line_start >= 0 else cut_from
        if start <= 0:
            return prompt, stream_end, 0
        if request.stream_key is not None:
            self._cold_anchors[request.stream_key] = request.prefix[start : start + COLD_ANCHOR_CHARS]
        shorter, shorter_end = self.build_prompt_with_stream_end(
            request.prefix[start:], request.suffix, reserve=request.max_tokens
        )
        return shorter, shorter_end, max(0, len(prompt) - len(shorter))

    def _sticky_cold_start(self, request: CompletionRequest, chars: int) -> int | None:
        """Where the document's last cold cut started, if this prefix still has it nearby.

        The cut is estimated from a measured speed that moves between requests; cutting
        a line earlier or later than the keystroke before would throw away all it
        evaluated. Kept while the prefix from there stays within half to twice the budget.
        """
        anchor = self._cold_anchors.get(request.stream_key) if request.stream_key is not None else None
        if not anchor:
            return None
        start = request.prefix.rfind(anchor)
        kept = len(request.prefix) - start
        # Too near the cursor (the anchor's text repeats there): it would say too little.
        if start <= 0 or not chars // 2 <= kept <= 2 * chars:
            return None
        return start

    def _fit_threads(self) -> None:
        """Run on fewer threads while other processes keep the cores busy.

        llama.cpp's threads meet at a barrier after every operation; when one of them
        shares its core with a busy process the others wait for it. On this 2-core
        machine beside busy processes (load 15), one thread decoded at 3.5-3.9 tokens/s
        and two at 0.4-0.8; prefill 30-32 against 16-21 tokens/s. Only when the thread
        count is left to the engine (the ``threads`` option at 0).
        """
        if self.config.n_threads is not None or self.n_threads < 2:
            return
        now = other_runnable_threads()
        # The editor is busy too at the moment of a keystroke; a count taken then and one
        # taken when the last request ended must both say so (busy processes stay busy).
        seen = [count for count in (now, self._others_at_end) if count is not None]
        others = min(seen) if seen else 0
        wanted = max(1, min(self.n_threads, self.n_threads - others))
        if wanted != self.threads_now:
            llama.llama_set_n_threads(self._ctx, wanted, wanted)
            self.threads_now = wanted

    def _note_others(self) -> None:
        if self.config.n_threads is None:
            self._others_at_end = other_runnable_threads()

    def _prefill(self, prompt: list[int], stream_end: int, key: str | None, decoding: Decoding) -> bool:
        """Reuse what the cache holds of ``prompt`` and evaluate the rest; False if cancelled."""
        stats = decoding.stats
        reuse = self.kv.reuse_for_prompt(prompt, stream_end, key)
        stats.tokens_reused, stats.reused_from = reuse.tokens, reuse.source
        evaluated_before = self.kv.held_tokens(WORK_SEQ)
        try:
            prefill = self.kv.prefill(
                WORK_SEQ,
                prompt[reuse.tokens :],
                decoding.cancel,
                stream=reuse.stream,
                stream_limit=stream_end - BOUNDARY_TOKENS,
                logits_for_last=True,
                make_room=True,
                shield_below=stream_end,
            )
        finally:
            stats.tokens_evaluated = self.kv.held_tokens(WORK_SEQ) - evaluated_before
            stats.prefill_ms = (time.perf_counter() - decoding.started) * 1000
            self._measure_prefill(stats.tokens_evaluated, stats.prefill_ms)
        if prefill.end == "cancelled":
            decoding.stop("cancelled", "prefill")
            return False
        if prefill.end == "failed":
            raise RuntimeError(f"llama_decode failed with code {prefill.code}")
        return True

    # ------------------------------------------------------------------ documents
    def warm(
        self,
        key: str,
        text: str,
        cancel: threading.Event,
        max_tokens: int | None = None,
        repository: RepositoryContext | None = None,
    ) -> int:
        """Evaluate a document's leading text (after ``repository``) into its stream while idle.

        Returns the number of tokens evaluated. Cancellable between and inside chunks;
        what was evaluated stays.
        """
        context_ids = self.context_ids(repository)
        tokens, stream_end = self.template.build(self.tokenize(text), [], context_ids)
        if stream_end == 0 or self.n_seq < 2:
            return 0
        tokens = tokens[: stream_end - BOUNDARY_TOKENS]
        if max_tokens is not None:
            tokens = tokens[: max_tokens + len(context_ids) + 2]
        self._fit_threads()
        with self._abort.watching(cancel):
            evaluated = self.kv.warm_stream(key, tokens, cancel)
        self._note_others()
        return evaluated

    def forget(self, key: str) -> None:
        """Drop a document's stream (the document was closed)."""
        self.kv.forget(key)
        self._cold_anchors.pop(key, None)

    def held_tokens(self, seq: int = WORK_SEQ) -> int:
        """Tokens sequence ``seq`` holds (the work sequence by default)."""
        return self.kv.held_tokens(seq)

    # ------------------------------------------------------------------ micro-benchmark hooks
    @property
    def vocab_size(self) -> int:
        """Number of token ids (the length of a logits row). For micro-benchmarks."""
        return self.vocabulary.size

    def reset_work_sequence(self) -> None:
        """Empty the work sequence so the next request reuses nothing from the last one.

        Document streams are kept. For micro-benchmarks that time cold prefill and decode.
        """
        self.kv.truncate(WORK_SEQ, 0)

    def new_raw_context(self, **param_overrides: Any) -> Any:
        """A new llama.cpp context on this engine's model, outside the engine's bookkeeping.

        For micro-benchmarks that measure llama.cpp itself beside the engine. It starts
        from llama.cpp's default context parameters with this engine's thread count and
        ``no_perf``; ``param_overrides`` set further ``llama_context_params`` fields by
        name (``n_ctx=4096, n_batch=512``...). The caller frees it with
        ``llama_cpp.llama_free`` before closing the engine.
        """
        params = llama.llama_context_default_params()
        params.n_threads = self.n_threads
        params.n_threads_batch = self.n_threads
        params.no_perf = True
        fields = {name for name, *_ in params._fields_}
        for name, value in param_overrides.items():
            if name not in fields:
                raise ValueError(f"llama_context_params has no field {name!r}")
            setattr(params, name, value)
        ctx = llama.llama_init_from_model(self._model, params)
        if not ctx:
            raise RuntimeError("llama.cpp could not create a context (not enough memory?)")
        return ctx

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        if getattr(self, "_ctx", None):
            self.kv.close()
            llama.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            self._release_model()

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        with contextlib.suppress(Exception):
            self.close()


if TYPE_CHECKING:
    _implements_backend: type[Backend] = LlamaEngine
