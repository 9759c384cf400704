"""Idle prefill: evaluate a document's prefix stream while the user is not typing.

After a pause of ``idlePrefillMs`` in a document, its leading text (from where the
prompt prefix starts, up to the prefix budget) is evaluated into the document's stream
on the inference thread. A later request at any cursor in that text then pays no
prefix prefill. Any new request or edit cancels the warm-up; what it evaluated stays.

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
        self._tasks: set[asyncio.Task[None]] = set()
        self.warmed_tokens = 0

    def touch(self, uri: str) -> None:
        """Activity in ``uri``: restart its idle timer."""
        config = self.settings.config
        timer = self._timers.pop(uri, None)
        if timer is not None:
            timer.cancel()
        if not config.idle_prefill:
            return
        loop = asyncio.get_event_loop()
        self._timers[uri] = loop.call_later(config.idle_prefill_ms / 1000, self._fire, uri)

    def forget(self, uri: str) -> None:
        timer = self._timers.pop(uri, None)
        if timer is not None:
            timer.cancel()

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
        if not self.scheduler.idle:
            return  # a request is running; it will reschedule us when the user pauses again
        start = self.completions.prefix_start(uri)
        job = self.scheduler.new_job("idle", uri)
        try:
            evaluated = await self.scheduler.run(job, lambda cancel: pipeline.warm(doc, start, cancel))
        except (Cancelled, asyncio.CancelledError):
            return
        self.warmed_tokens += evaluated
        if evaluated:
            log.debug("idle prefill: %d tokens of %s", evaluated, uri)
