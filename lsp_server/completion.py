"""The completion service: reuse first, then one pipeline run on the inference thread.

Order of reuse, cheapest first: type-through (the user typed the start of the current
suggestion), carrying on (the user typed what the generation in flight had already
written: it goes on, and the new request takes it over instead of starting again), the
LRU cache keyed by the plan, then the model. Speculative completions
for the state after accepting a suggestion land in the same cache. What to complete and
how (context, mode, prompt, post-processing) is ``fim.pipeline``'s business; this
module only decides whether the model must run, and keeps the counters.

Threading: ``complete`` runs on the event loop; the pipeline's ``run`` goes to the
scheduler's inference thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any

from fim.backend import CompletionStats
from fim.config import derive
from fim.context import Document, Mode
from fim.pipeline import CompletionPipeline, Generation, Plan
from fim.workspace import Workspace
from lsp_server.model_host import ModelHost
from lsp_server.scheduler import Cancelled, Job, Scheduler
from lsp_server.settings import SessionSettings

log = logging.getLogger(__name__)


@dataclass
class Suggestion:
    """The last suggestion shown for a document, for type-through."""

    uri: str
    before: str  # document text before the cursor
    after: str  # document text after the cursor
    text: str  # completion text inserted at the cursor


@dataclass
class InFlight:
    """A document's latest model generation, which a keystroke it foresaw may take over."""

    before: str  # document text before the cursor when it started
    after: str  # document text after the cursor
    job: Job
    task: asyncio.Future[Generation]
    #: What it was asked: the plan's cache key and the options then in force.
    key: tuple[Any, ...]
    config: Any
    #: Text after the cursor generated so far (written by the inference thread).
    text: str = ""
    #: A newer request took it over (so a cancel of the first one must not stop it).
    taken_over: bool = False

    def typed(self, text: str, cursor: int | None = None) -> str | None:
        """What was typed at its cursor to turn its document into ``text``; None if not just that."""
        before, after = self.before, self.after
        if len(text) < len(before) + len(after) or not text.startswith(before) or not text.endswith(after):
            return None
        end = len(text) - len(after)
        if cursor is not None and cursor != end:
            return None
        return text[len(before) : end]


@dataclass
class Outcome:
    text: str  # inserted at the cursor (after the typed word)
    cursor: int
    typed_word: str
    source: str  # model | cache | type-through | none
    reason: str = ""
    stats: CompletionStats | None = None
    #: A message for the user (a remote server failing), set once per outage.
    notice: str = ""


@dataclass
class Counters:
    requests: int = 0
    model_runs: int = 0
    cache_hits: int = 0
    type_through: int = 0
    carried_on: int = 0
    speculative_runs: int = 0
    speculative_ready: int = 0
    speculative_hits: int = 0
    cancelled: int = 0
    empty: int = 0
    suggested: int = 0
    shown: int = 0
    accepted: int = 0
    partially_accepted: int = 0


#: After the client cancels a request, how long an edit has to arrive for its generation
#: to go on (editors send the cancel and the didChange of one keystroke together).
CARRY_ON_GRACE_S = 0.05

#: Documents whose no-suggestion reason is kept (requests may name unopened documents).
MAX_REASONS = 64


@dataclass
class CompletionService:
    scheduler: Scheduler
    host: ModelHost
    settings: SessionSettings
    #: Other files' context; None or switched off by ``workspaceContext``: the file alone.
    workspace: Workspace | None = None
    counters: Counters = field(default_factory=Counters)
    last_stats: CompletionStats | None = None
    #: Why the last request of each document got nothing; a suggestion clears it.
    no_suggestion: dict[str, str] = field(default_factory=dict)
    #: The document of the latest request, whose reason ``lastNoSuggestionReason`` shows.
    last_uri: str = ""
    #: Set when the last model run was cut by the time budget: what happened and what helps.
    last_budget_note: str = ""
    last_mode: str = ""
    _cache: OrderedDict[tuple[Any, ...], str] = field(default_factory=OrderedDict)
    _speculative_keys: set[tuple[Any, ...]] = field(default_factory=set)
    _suggestions: dict[str, Suggestion] = field(default_factory=dict)
    _latest: dict[str, int] = field(default_factory=dict)
    _prefix_starts: dict[str, int] = field(default_factory=dict)
    _in_flight: dict[str, InFlight] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    #: Whether the user was told that the model failed since its last good answer.
    _failure_told: bool = False

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine without awaiting it, keeping a reference until it ends."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ helpers
    def pipeline(self) -> CompletionPipeline | None:
        """The pipeline for the current backend and settings; None while no model is ready."""
        backend = self.host.ready_backend
        if backend is None:
            return None
        config = self.settings.config
        workspace = self.workspace if config.workspace_context and config.workspace_tokens > 0 else None
        return CompletionPipeline(backend, derive(config), workspace)

    def language_enabled(self, language_id: str) -> bool:
        config = self.settings.config
        if language_id in config.disabled_languages:
            return False
        return not config.enabled_languages or language_id in config.enabled_languages

    @property
    def last_reason(self) -> str:
        """Why the latest request got nothing; empty when it got a suggestion."""
        return self.no_suggestion.get(self.last_uri, "")

    def no_suggestion_for(self, uri: str, reason: str) -> None:
        """Record why ``uri``'s request got nothing (it need not be open)."""
        self.last_uri = uri
        self.no_suggestion[uri] = reason
        # Requests for documents that were never opened must not grow this without end.
        while len(self.no_suggestion) > MAX_REASONS:
            del self.no_suggestion[next(iter(self.no_suggestion))]

    def _no(self, uri: str, reason: str, cursor: int = 0) -> Outcome:
        self.no_suggestion_for(uri, reason)
        self.counters.empty += 1
        log.info("no suggestion: %s", reason)
        return Outcome("", cursor, "", "none", reason)

    def _remember(self, key: tuple[Any, ...], text: str) -> None:
        config = self.settings.config
        if not config.cache:
            return
        self._cache[key] = text
        self._cache.move_to_end(key)
        while len(self._cache) > config.cache_size:
            evicted, _text = self._cache.popitem(last=False)
            # Kept only to count hits of cached speculative answers: it must not outgrow the cache.
            self._speculative_keys.discard(evicted)

    def forget_document(self, uri: str) -> None:
        self._suggestions.pop(uri, None)
        self.no_suggestion.pop(uri, None)
        self._latest.pop(uri, None)
        self._prefix_starts.pop(uri, None)
        self._in_flight.pop(uri, None)

    def prefix_start(self, uri: str) -> int:
        """Where the last prompt's prefix started in this document (0 before any)."""
        return self._prefix_starts.get(uri, 0)

    # ------------------------------------------------------------------ type-through
    def _type_through(self, doc: Document, cursor: int) -> str | None:
        previous = self._suggestions.get(doc.uri)
        if previous is None or not self.settings.config.type_through:
            return None
        text = doc.text
        before, after = text[:cursor], text[cursor:]
        if after != previous.after or not before.startswith(previous.before):
            return None
        typed = before[len(previous.before) :]
        if not typed or not previous.text.startswith(typed) or len(typed) >= len(previous.text):
            return None
        return previous.text[len(typed) :]

    # ------------------------------------------------------------------ carrying on
    def foreseen_job(self, uri: str, text: str) -> Job | None:
        """The generation in flight for ``uri`` if the edit that made ``text`` only typed
        what it had generated already; the edit then leaves it running (event loop)."""
        in_flight = self._in_flight.get(uri)
        if in_flight is None or in_flight.task.done() or in_flight.config is not self.settings.config:
            return None
        if not self.settings.config.type_through:
            return None
        typed = in_flight.typed(text)
        if not typed or not in_flight.text.startswith(typed):
            return None
        return in_flight.job

    async def _carry_on(self, doc: Document, cursor: int, key: tuple[Any, ...]) -> str | None:
        """The rest of the in-flight (or finished, never shown) generation the user typed into."""
        in_flight = self._in_flight.get(doc.uri)
        if (
            in_flight is None
            or in_flight.config is not self.settings.config
            or not self.settings.config.type_through
        ):
            return None
        typed = in_flight.typed(doc.text, cursor)
        if typed is None or (not typed and key != in_flight.key):
            return None
        if not in_flight.task.done():
            if in_flight.job.cancel.is_set() or not in_flight.text.startswith(typed):
                return None
            in_flight.taken_over = True
            try:
                # The client cancelling this request must not stop the generation: the
                # next keystroke may take it over in turn.
                await asyncio.shield(in_flight.task)
            except (Cancelled, asyncio.CancelledError):
                if in_flight.task.cancelled() or not in_flight.task.done():
                    raise
        if in_flight.task.cancelled() or in_flight.task.exception() is not None:
            return None
        generation = in_flight.task.result()
        if (
            generation.stats.stop_reason in ("cancelled", "error")
            or in_flight.typed(doc.text, cursor) != typed
        ):
            return None
        if not generation.text.startswith(typed) or len(generation.text) <= len(typed):
            return None
        return generation.text[len(typed) :]

    # ------------------------------------------------------------------ main entry
    async def complete(self, doc: Document, cursor: int, *, invoked: bool = False) -> Outcome:
        """Everything between a request and its answer; never raises for bad input."""
        self.counters.requests += 1
        self.last_uri = doc.uri
        request_number = self._latest.get(doc.uri, 0) + 1
        self._latest[doc.uri] = request_number
        config = self.settings.config
        if not self.language_enabled(doc.language_id):
            return self._no(doc.uri, f"language {doc.language_id!r} is disabled in the settings", cursor)
        pipeline = self.pipeline()
        if pipeline is None:
            detail = f": {self.host.error}" if self.host.error else ""
            return self._no(doc.uri, f"model is {self.host.state}{detail}", cursor)

        plan = pipeline.plan(doc, cursor, invoked=invoked)
        self._prefix_starts[doc.uri] = plan.prefix_start
        self.last_mode = str(plan.mode)
        if plan.skip_reason is not None:
            return self._no(doc.uri, plan.skip_reason, cursor)
        context = plan.context

        remainder = self._type_through(doc, cursor)
        if remainder is not None:
            self.counters.type_through += 1
            self.no_suggestion.pop(doc.uri, None)
            self._suggestions[doc.uri] = Suggestion(doc.uri, doc.text[:cursor], doc.text[cursor:], remainder)
            return Outcome(remainder, cursor, context.typed_word, "type-through", context.reason)

        cached = self._cache.get(plan.key) if config.cache else None
        if cached is not None:
            self._cache.move_to_end(plan.key)
            self.counters.cache_hits += 1
            if plan.key in self._speculative_keys:
                self.counters.speculative_hits += 1
            return self._shown(doc, cursor, plan, cached, "cache")

        carried = await self._carry_on(doc, cursor, plan.key)
        if carried is not None:
            self.counters.carried_on += 1
            self.no_suggestion.pop(doc.uri, None)
            self._suggestions[doc.uri] = Suggestion(doc.uri, doc.text[:cursor], doc.text[cursor:], carried)
            return Outcome(carried, cursor, context.typed_word, "carried-on", context.reason)

        if config.debounce_ms and not invoked:
            await asyncio.sleep(config.debounce_ms / 1000)
            if self._latest.get(doc.uri) != request_number:
                return self._no(doc.uri, "superseded by a newer request during debounce", cursor)

        try:
            generation = await self._generate(doc.uri, pipeline, plan, "completion", doc, cursor)
        except Cancelled:
            # Superseded before it started: answer at once with nothing.
            self.counters.cancelled += 1
            return self._no(doc.uri, "cancelled by a newer keystroke", cursor)
        except asyncio.CancelledError:
            # The client's $/cancelRequest: pygls answers RequestCancelled.
            self.counters.cancelled += 1
            raise
        stats = generation.stats
        if stats.stop_reason == "cancelled":
            self.counters.cancelled += 1
            return self._no(doc.uri, "cancelled by a newer keystroke", cursor)
        if stats.stop_reason == "error":
            return self._failed(doc.uri, stats.error or "the model failed", cursor)
        self._failure_told = False
        if generation.complete:
            self._remember(plan.key, generation.text)
        outcome = self._shown(doc, cursor, plan, generation.text, "model")
        outcome.stats = stats
        cut = stats.stop_reason == "time_budget"
        self.last_budget_note = self.slow_machine_note(stats, shown=bool(generation.text)) if cut else ""
        if not generation.text:
            if cut:
                return self._no(doc.uri, self.last_budget_note, cursor)
            return self._no(
                doc.uri, f"the model's output was empty after post-processing ({stats.stop_reason})", cursor
            )
        return outcome

    def _failed(self, uri: str, error: str, cursor: int) -> Outcome:
        """No suggestion because the model failed: say so to the user once per outage.

        A remote server that is down fails every keystroke; the first failure after a
        good answer is shown, the rest only logged, until an answer comes back.
        """
        outcome = self._no(uri, f"the model failed: {error}", cursor)
        if not self._failure_told:
            self._failure_told = True
            outcome.notice = f"fim-lsp: {error}; suggestions resume when the server answers again"
        return outcome

    def slow_machine_note(self, stats: CompletionStats, *, shown: bool) -> str:
        """Why a suggestion was cut short or dropped by the time budget, and what helps."""
        config = self.settings.config
        decode_s = stats.decode_ms / 1000
        speed = f"{stats.tokens_generated / decode_s:.1f} tokens/s" if decode_s > 0 else "no token in time"
        busy = ""
        cores = os.cpu_count() or 1
        with contextlib.suppress(OSError):
            load = os.getloadavg()[0]
            if load > cores:
                busy = f"; the CPU is busy: load {load:.1f} on {cores} cores"
        backend = self.host.backend
        threads = backend.describe().get("threads_now") if backend is not None else None
        ran_on = f"; this request ran on {threads}" if isinstance(threads, int) else ""
        what = "was cut short" if shown else "was dropped"
        return (
            f"the suggestion {what}: the machine is too slow for the {config.time_budget_ms} ms time budget "
            f"({stats.tokens_generated} tokens generated, {speed}{busy}). "
            f"A smaller model than {config.model}, fewer threads (the `threads` option{ran_on}) "
            "or a larger `timeBudgetMs` helps."
        )

    def _shown(self, doc: Document, cursor: int, plan: Plan, text: str, source: str) -> Outcome:
        if text:
            self.no_suggestion.pop(doc.uri, None)
        # A document closed while its request ran keeps no state here (``forget_document``).
        if text and doc.uri in self._latest:
            self._suggestions[doc.uri] = Suggestion(doc.uri, doc.text[:cursor], doc.text[cursor:], text)
        else:
            self._suggestions.pop(doc.uri, None)
        return Outcome(text, cursor, plan.context.typed_word, source, plan.context.reason)

    async def _generate(
        self,
        uri: str,
        pipeline: CompletionPipeline,
        plan: Plan,
        kind: str,
        doc: Document | None = None,
        cursor: int = 0,
    ) -> Generation:
        """Run ``plan`` on the inference thread; a completion's run may be carried on.

        A completion's generation is a task of its own that the request awaits: when the
        client cancels the request because the user typed on, the generation goes on if
        what was typed agrees with it, and the next request takes it over.
        """
        job = self.scheduler.new_job("completion" if kind == "completion" else "speculative", uri)
        if kind != "completion" or doc is None:
            return await self.scheduler.run(job, self._work(job, pipeline, plan, kind, None))
        loop = asyncio.get_running_loop()
        in_flight = InFlight(
            doc.text[:cursor], doc.text[cursor:], job, loop.create_future(), plan.key, self.settings.config
        )
        work = self._work(job, pipeline, plan, kind, in_flight)
        task = in_flight.task = asyncio.ensure_future(self.scheduler.run(job, work))
        self._in_flight[uri] = in_flight
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # Cancelled by the client. An edit that typed on agreeing with the generation
            # keeps it; without an edit (the cursor moved, Escape) nobody will want it.
            loop.call_later(CARRY_ON_GRACE_S, self._drop_unless_edited, doc, doc.version, in_flight)
            raise

    def _drop_unless_edited(self, doc: Document, version: int, in_flight: InFlight) -> None:
        if doc.version == version and not in_flight.taken_over:
            self.scheduler.cancel_job(in_flight.job)

    def _work(
        self, job: Job, pipeline: CompletionPipeline, plan: Plan, kind: str, in_flight: InFlight | None
    ) -> Callable[[threading.Event], Generation]:
        started = time.perf_counter()

        def progress(text: str) -> None:
            if in_flight is not None:
                in_flight.text = text

        def run(cancel: threading.Event) -> Generation:
            # A model reload queued before this job closes the backend the pipeline was
            # made with; a closed llama.cpp model must never be touched. Loads run on the
            # same thread, so a backend that is current here stays open until we return.
            if self.host.backend is not pipeline.backend:
                raise Cancelled
            generation = pipeline.run(plan, cancel, progress)
            self._ran(generation, plan, kind, started)
            return generation

        return run

    def _ran(self, generation: Generation, plan: Plan, kind: str, started: float) -> None:
        """Count and log a model run (inference thread: plain counters only)."""
        stats = generation.stats
        if kind == "completion":
            self.counters.model_runs += 1
            self.last_stats = stats
        log.info(
            "%s %s: %d reused, %d evaluated, %d generated, %.0f ms, stop=%s",
            kind,
            plan.mode,
            stats.tokens_reused,
            stats.tokens_evaluated,
            stats.tokens_generated,
            (time.perf_counter() - started) * 1000,
            stats.stop_reason,
        )

    # ------------------------------------------------------------------ speculative next
    async def speculate(self, doc: Document, cursor: int, accepted: str) -> None:
        """Compute the completion for the state after ``accepted`` is inserted at ``cursor``."""
        pipeline = self.pipeline()
        if not self.settings.config.speculative or pipeline is None or not accepted:
            return
        # A copy keeps the parse and the token estimate; only the accepted text is new.
        future = doc.copy()
        future.replace(cursor, cursor, accepted)
        plan = pipeline.plan(future, cursor + len(accepted))
        if plan.mode is Mode.NONE or plan.key in self._cache:
            return
        self.counters.speculative_runs += 1
        try:
            generation = await self._generate(doc.uri, pipeline, plan, "speculative")
        except (Cancelled, asyncio.CancelledError):
            return
        if generation.complete:
            self._remember(plan.key, generation.text)
            if plan.key in self._cache:
                self._speculative_keys.add(plan.key)
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
            "noSuggestionReasons": dict(self.no_suggestion),
            "lastBudgetNote": self.last_budget_note,
            "cacheEntries": len(self._cache),
            # Each document's latest generation: how far it got, whether it still runs.
            # (A list: the status's dict keys must be names, not URIs, on the wire.)
            "generations": [
                {"uri": uri, "generatedChars": len(in_flight.text), "running": not in_flight.task.done()}
                for uri, in_flight in self._in_flight.items()
            ],
            # Per-document state, which closing a document must free.
            "documentState": {
                "suggestions": len(self._suggestions),
                "requestNumbers": len(self._latest),
                "prefixStarts": len(self._prefix_starts),
            },
        }
