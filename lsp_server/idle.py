"""Idle prefill: evaluate a document's prefix stream before the user needs it.

A document's prompt prefix (from where it starts, up to the prefix budget) is evaluated
into the document's stream on the inference thread:

* as soon as the document is opened;
* as soon as the editor says the cursor moved to another region (``fim/didMoveCursor``,
  sent by the fim-lsp editor plugins): first the prompt a request at that cursor would
  evaluate (after a jump into a long file, the shortened cold prompt), then the prefix
  from where a request there would start it;
* after a pause of ``idlePrefillMs`` in a document, from where the last prompt started.

A later request at any cursor in that text then pays no prefix prefill. Any new request
or edit cancels the warm-up at once (inside a prefill chunk); what it evaluated stays.

Threading: timers and the decision run on the event loop; the evaluation runs on the
scheduler's inference thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from fim.context import Document
from lsp_server.completion import CompletionService
from lsp_server.scheduler import Cancelled, Scheduler
from lsp_server.settings import SessionSettings

log = logging.getLogger(__name__)


class IdlePrefill:
    def __init__(
        self,
        scheduler: Scheduler,
        completions: CompletionService,
        documents: Mapping[str, Document],
        settings: SessionSettings,
    ) -> None:
        self.scheduler = scheduler
        self.completions = completions
        self.documents = documents
        self.settings = settings
        self._timers: dict[str, asyncio.TimerHandle] = {}
        #: Where the next warm-up of a document starts, from the editor's cursor.
        self._anchors: dict[str, int] = {}
        #: Where the editor's cursor went, for the next warm-up's first step.
        self._cursors: dict[str, int] = {}
        self.prefilled_tokens = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.warmed_tokens = 0
        #: ``fim/didMoveCursor`` notifications acted on (the editor plugins send them).
        self.cursor_moves = 0

    def touch(self, uri: str, *, now: bool = False) -> None:
        """Activity in ``uri``: restart its idle timer (or warm it at once)."""
        config = self.settings.config
        timer = self._timers.pop(uri, None)
        if timer is not None:
            timer.cancel()
        if not config.idle_prefill:
            return
        delay = 0.0 if now else config.idle_prefill_ms / 1000
        self._timers[uri] = asyncio.get_event_loop().call_later(delay, self._fire, uri)

    def cursor_moved(self, uri: str, offset: int) -> None:
        """The editor's cursor is at ``offset`` of ``uri``: warm the prefix a request there needs."""
        pipeline = self.completions.pipeline()
        doc = self.documents.get(uri)
        if pipeline is None or doc is None:
            return
        offset = max(0, min(offset, len(doc.text)))
        self.cursor_moves += 1
        self._anchors[uri] = pipeline.plan(doc, offset).prefix_start
        self._cursors[uri] = offset
        # The region the user just went to matters more than any warm-up in progress.
        self.scheduler.cancel_background()
        self.touch(uri, now=True)

    def forget(self, uri: str) -> None:
        timer = self._timers.pop(uri, None)
        if timer is not None:
            timer.cancel()
        self._anchors.pop(uri, None)
        self._cursors.pop(uri, None)

    def _fire(self, uri: str) -> None:
        self._timers.pop(uri, None)
        task = asyncio.ensure_future(self._warm(uri))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _warm(self, uri: str) -> None:
        pipeline = self.completions.pipeline()
        doc = self.documents.get(uri)
        if pipeline is None or doc is None:
            return
        if self.scheduler.foreground_busy:
            return  # a request is running; it will reschedule us when the user pauses again
        cursor = self._cursors.pop(uri, None)
        if cursor is not None and cursor <= len(doc.text):
            # What the first keystroke there needs, before the rest of the prefix.
            plan = pipeline.plan(doc, cursor)
            if plan.skip_reason is None:
                job = self.scheduler.new_job("idle", uri)
                try:
                    prefilled = await self.scheduler.run(job, lambda cancel: pipeline.prefill(plan, cancel))
                except (Cancelled, asyncio.CancelledError):
                    return
                self.prefilled_tokens += prefilled
                if job.cancel.is_set() or self.documents.get(uri) is not doc:
                    return
        start = self._anchors.pop(uri, None)
        if start is None:
            start = self.completions.prefix_start(uri)
        # The pause is when the workspace context may change: the warm-up then evaluates
        # the new one, and the keystrokes after it find it in the cache.
        repository = pipeline.refresh_context(doc)
        job = self.scheduler.new_job("idle", uri)
        try:
            evaluated = await self.scheduler.run(
                job, lambda cancel: pipeline.warm(doc, start, cancel, repository)
            )
        except (Cancelled, asyncio.CancelledError):
            return
        self.warmed_tokens += evaluated
        if evaluated:
            log.debug("idle prefill: %d tokens of %s", evaluated, uri)
