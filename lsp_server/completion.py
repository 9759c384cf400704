"""Inline and classic completion: context on the event loop, generation on the worker.

Order of reuse, cheapest first: type-through (the user typed the start of the current
suggestion), the LRU cache keyed by the prompt content, then the model. Speculative
completions for the state after accepting a suggestion land in the same cache.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any

from fim.context import Budgets, CompletionContext, Document, Mode, build_context
from fim.engine import CompletionRequest, CompletionStats, SamplingConfig
from fim.positions import PositionEncoding
from fim.postprocess import StreamFilter
from lsp_server.config import Config
from lsp_server.model_host import ModelHost
from lsp_server.scheduler import Cancelled, Scheduler

log = logging.getLogger(__name__)


@dataclass
class Suggestion:
    """The last suggestion shown for a document, for type-through."""

    uri: str
    before: str  # document text before the cursor
    after: str  # document text after the cursor
    text: str  # completion text inserted at the cursor


@dataclass
class Outcome:
    text: str  # inserted at the cursor (after the typed word)
    cursor: int
    typed_word: str
    source: str  # model | cache | type-through | none
    reason: str = ""
    stats: CompletionStats | None = None


@dataclass
class Counters:
    requests: int = 0
    model_runs: int = 0
    cache_hits: int = 0
    type_through: int = 0
    speculative_runs: int = 0
    speculative_ready: int = 0
    speculative_hits: int = 0
    cancelled: int = 0
    empty: int = 0
    suggested: int = 0
    shown: int = 0
    accepted: int = 0
    partially_accepted: int = 0


@dataclass
class CompletionService:
    scheduler: Scheduler
    host: ModelHost
    config: Config = field(default_factory=Config)
    counters: Counters = field(default_factory=Counters)
    last_stats: CompletionStats | None = None
    last_reason: str = ""
    last_mode: str = ""
    _cache: OrderedDict[tuple[Any, ...], str] = field(default_factory=OrderedDict)
    _speculative_keys: set[tuple[Any, ...]] = field(default_factory=set)
    _suggestions: dict[str, Suggestion] = field(default_factory=dict)
    _latest: dict[str, int] = field(default_factory=dict)
    _prefix_starts: dict[str, int] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine without awaiting it, keeping a reference until it ends."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ helpers
    def language_enabled(self, language_id: str) -> bool:
        if language_id in self.config.disabled_languages:
            return False
        return not self.config.enabled_languages or language_id in self.config.enabled_languages

    def _no(self, reason: str, cursor: int = 0) -> Outcome:
        self.last_reason = reason
        self.counters.empty += 1
        log.info("no suggestion: %s", reason)
        return Outcome("", cursor, "", "none", reason)

    def _count_tokens(self, text: str) -> int:
        engine = self.host.engine
        return engine.count_tokens(text) if engine is not None else len(text) // 3

    def context_for(self, doc: Document, cursor: int) -> CompletionContext:
        budgets = Budgets(prefix_tokens=self.config.prefix_tokens, suffix_tokens=self.config.suffix_tokens)
        return build_context(doc, cursor, budgets, self._count_tokens)

    def _mode(self, context: CompletionContext) -> Mode:
        if context.mode is Mode.NONE:
            return context.mode
        if self.config.multiline == "never":
            return Mode.SINGLE_LINE
        if self.config.multiline == "always":
            return Mode.MULTI_LINE
        return context.mode

    def _cache_key(self, context: CompletionContext, mode: Mode) -> tuple[Any, ...]:
        return (
            context.prefix,
            context.suffix,
            mode,
            self.config.max_tokens,
            self.config.temperature,
        )

    def _remember(self, key: tuple[Any, ...], text: str) -> None:
        if not self.config.cache:
            return
        self._cache[key] = text
        self._cache.move_to_end(key)
        while len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)

    def forget_document(self, uri: str) -> None:
        self._suggestions.pop(uri, None)
        self._latest.pop(uri, None)
        self._prefix_starts.pop(uri, None)

    def prefix_start(self, uri: str) -> int:
        """Where the last prompt's prefix started in this document (0 before any)."""
        return self._prefix_starts.get(uri, 0)

    # ------------------------------------------------------------------ type-through
    def _type_through(self, doc: Document, cursor: int) -> str | None:
        previous = self._suggestions.get(doc.uri)
        if previous is None or not self.config.type_through:
            return None
        text = doc.text
        before, after = text[:cursor], text[cursor:]
        if after != previous.after or not before.startswith(previous.before):
            return None
        typed = before[len(previous.before) :]
        if not typed or not previous.text.startswith(typed) or len(typed) >= len(previous.text):
            return None
        return previous.text[len(typed) :]

    # ------------------------------------------------------------------ main entry
    async def complete(self, doc: Document, cursor: int, *, invoked: bool = False) -> Outcome:
        """Everything between a request and its answer; never raises for bad input."""
        self.counters.requests += 1
        request_number = self._latest.get(doc.uri, 0) + 1
        self._latest[doc.uri] = request_number
        if not self.language_enabled(doc.language_id):
            return self._no(f"language {doc.language_id!r} is disabled in the settings", cursor)
        if self.host.state != "ready" or self.host.engine is None:
            state = self.host.state
            detail = f": {self.host.error}" if self.host.error else ""
            return self._no(f"model is {state}{detail}", cursor)

        context = self.context_for(doc, cursor)
        self._prefix_starts[doc.uri] = max(0, context.cursor - len(context.prefix))
        mode = self._mode(context)
        self.last_mode = str(mode)
        if mode is Mode.NONE:
            return self._no(context.reason, cursor)
        if not self.config.complete_in_comments and context.scope != "code":
            return self._no("inside a comment or string (completeInComments is off)", cursor)

        remainder = self._type_through(doc, cursor)
        if remainder is not None:
            self.counters.type_through += 1
            self._suggestions[doc.uri] = Suggestion(doc.uri, doc.text[:cursor], doc.text[cursor:], remainder)
            return Outcome(remainder, cursor, context.typed_word, "type-through", context.reason)

        key = self._cache_key(context, mode)
        cached = self._cache.get(key) if self.config.cache else None
        if cached is not None:
            self._cache.move_to_end(key)
            self.counters.cache_hits += 1
            if key in self._speculative_keys:
                self.counters.speculative_hits += 1
            return self._shown(doc, cursor, context, cached, "cache")

        if self.config.debounce_ms and not invoked:
            await asyncio.sleep(self.config.debounce_ms / 1000)
            if self._latest.get(doc.uri) != request_number:
                return self._no("superseded by a newer request during debounce", cursor)

        try:
            text, stats = await self._generate(doc.uri, context, mode, "completion")
        except Cancelled:
            # Superseded before it started: answer at once with nothing.
            self.counters.cancelled += 1
            return self._no("cancelled by a newer keystroke", cursor)
        except asyncio.CancelledError:
            # The client's $/cancelRequest: pygls answers RequestCancelled.
            self.counters.cancelled += 1
            raise
        if stats.stop_reason == "cancelled":
            self.counters.cancelled += 1
            return self._no("cancelled by a newer keystroke", cursor)
        if complete_answer(stats):
            self._remember(key, text)
        outcome = self._shown(doc, cursor, context, text, "model")
        outcome.stats = stats
        if not text:
            return self._no(
                f"the model's output was empty after post-processing ({stats.stop_reason})", cursor
            )
        return outcome

    def _shown(
        self, doc: Document, cursor: int, context: CompletionContext, text: str, source: str
    ) -> Outcome:
        if text:
            self._suggestions[doc.uri] = Suggestion(doc.uri, doc.text[:cursor], doc.text[cursor:], text)
        else:
            self._suggestions.pop(doc.uri, None)
        return Outcome(text, cursor, context.typed_word, source, context.reason)

    async def _generate(
        self, uri: str, context: CompletionContext, mode: Mode, kind: str
    ) -> tuple[str, CompletionStats]:
        engine = self.host.engine
        assert engine is not None
        config = self.config
        stream_filter = StreamFilter(context, mode=mode)
        # Token healing: the typed part of the word is generated, not prompted, so that
        # "return num" can become "number" rather than the variable "num".
        heal = context.typed_word if context.prefix.endswith(context.typed_word) else ""
        request = CompletionRequest(
            prefix=context.prefix[: len(context.prefix) - len(heal)],
            heal=heal,
            suffix=context.suffix,
            max_tokens=config.max_tokens_multiline if mode is Mode.MULTI_LINE else config.max_tokens,
            time_budget_ms=config.time_budget_ms,
            stream_key=uri,
            sampling=SamplingConfig(temperature=config.temperature, top_k=config.top_k, top_p=config.top_p),
            prompt_lookup=config.prompt_lookup,
        )
        job = self.scheduler.new_job("completion" if kind == "completion" else "speculative", uri)
        started = time.perf_counter()

        def work(cancel: Any) -> tuple[str, CompletionStats]:
            result = engine.complete(request, cancel, stream_filter.should_stop)
            if result.stats.stop_reason == "cancelled":
                return "", result.stats
            return stream_filter.finish(result.text), result.stats

        text, stats = await self.scheduler.run(job, work)
        if kind == "completion":
            self.counters.model_runs += 1
            self.last_stats = stats
        log.info(
            "%s %s: %d reused, %d evaluated, %d generated, %.0f ms, stop=%s",
            kind,
            mode,
            stats.tokens_reused,
            stats.tokens_evaluated,
            stats.tokens_generated,
            (time.perf_counter() - started) * 1000,
            stats.stop_reason,
        )
        return text, stats

    # ------------------------------------------------------------------ speculative next
    async def speculate(self, doc: Document, cursor: int, accepted: str) -> None:
        """Compute the completion for the state after ``accepted`` is inserted at ``cursor``."""
        if not self.config.speculative or self.host.engine is None or not accepted:
            return
        # A copy keeps the parse and the token estimate; only the accepted text is new.
        future = doc.copy()
        future.replace(cursor, cursor, accepted)
        future_cursor = cursor + len(accepted)
        context = self.context_for(future, future_cursor)
        mode = self._mode(context)
        key = self._cache_key(context, mode)
        if mode is Mode.NONE or key in self._cache:
            return
        self.counters.speculative_runs += 1
        try:
            text, stats = await self._generate(doc.uri, context, mode, "speculative")
        except (Cancelled, asyncio.CancelledError):
            return
        if complete_answer(stats):
            self._remember(key, text)
            self._speculative_keys.add(key)
            self.counters.speculative_ready += 1

    def status(self) -> dict[str, Any]:
        counters = asdict(self.counters)
        # Clients that do not send didShowCompletion: count what was offered instead.
        shown = self.counters.shown or self.counters.suggested
        counters["acceptance_rate"] = round(self.counters.accepted / shown, 3) if shown else None
        return {
            "counters": counters,
            "lastRequest": asdict(self.last_stats) if self.last_stats else None,
            "lastMode": self.last_mode,
            "lastNoSuggestionReason": self.last_reason,
            "cacheEntries": len(self._cache),
        }


def complete_answer(stats: CompletionStats) -> bool:
    """Whether a result is the model's whole answer and may be served again from the cache.

    A generation cut short by the time budget (a busy machine) or an error is shown once
    but not remembered: the next request at the same place asks the model again.
    """
    return stats.stop_reason in ("eog", "callback", "max_tokens")


def encoding_of(value: str | None) -> PositionEncoding:
    try:
        return PositionEncoding(str(value or "utf-16"))
    except ValueError:
        return PositionEncoding.UTF16
