"""Idle prefill: evaluate a document's prefix stream while the user is not typing.

After a pause of ``idlePrefillMs`` in a document, its leading text (from where the
prompt prefix starts, up to the prefix budget) is evaluated into the document's stream
on the inference thread. A later request at any cursor in that text then pays no
prefix prefill. Any new request or edit cancels the warm-up; what it evaluated stays.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from lsp_server.scheduler import Cancelled

if TYPE_CHECKING:
    from lsp_server.server import FimServer

log = logging.getLogger(__name__)


class IdlePrefill:
    def __init__(self, server: FimServer) -> None:
        self.server = server
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.warmed_tokens = 0

    def touch(self, uri: str) -> None:
        """Activity in ``uri``: restart its idle timer."""
        config = self.server.config
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
        server = self.server
        engine = server.host.engine
        doc = server.documents.get(uri)
        if engine is None or doc is None or server.host.state != "ready":
            return
        if not server.scheduler.idle:
            return  # a request is running; it will reschedule us when the user pauses again
        start = server.completions.prefix_start(uri)
        # Characters are a cheap upper bound here; the engine cuts at the token budget.
        budget = server.config.prefix_tokens
        text = doc.text[start : start + budget * 6]
        job = server.scheduler.new_job("idle", uri)
        try:
            evaluated = await server.scheduler.run(
                job, lambda cancel: engine.warm_stream(uri, text, cancel, max_tokens=budget)
            )
        except (Cancelled, asyncio.CancelledError):
            return
        self.warmed_tokens += evaluated
        if evaluated:
            log.debug("idle prefill: %d tokens of %s", evaluated, uri)
