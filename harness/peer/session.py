"""llama.vim's request discipline for keystroke replay, against one llama-server.

At most one ``/infill`` in flight, a retry every 100 ms while busy, no cancellation;
answers are cached and shown again while the typed text matches them, as llama.vim does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.peer.llamavim import (
    MAX_LINE_SUFFIX,
    RETRY_MS,
    T_MAX_PREDICT_MS,
    T_MAX_PREDICT_SPECULATIVE_MS,
    Rendered,
    buffer_lines,
    cache_key,
    infill_body,
    local_context,
    local_context_after,
    render,
)
from harness.peer.server import InfillResult, PeerClient


@dataclass
class PeerRequest:
    """One ``/infill`` sent during a replay (llama.vim never cancels them)."""

    sent_at: float
    text: str  # the document when it was sent
    line: int
    column: int
    hashes: list[str]
    answered_at: float | None = None
    result: InfillResult | None = None
    error: str | None = None


@dataclass
class Shown:
    at: float
    rendered: Rendered
    line_prefix: str


@dataclass
class LlamaVimSession:
    """llama.vim's automatic FIM for one buffer: one request in flight, retry every 100 ms.

    The replay calls ``on_edit`` after every change, with the cursor where the editor
    has it; ``shown`` is set whenever a suggestion becomes visible for the current text.
    """

    client: PeerClient
    text: str = ""
    line: int = 0
    column: int = 0
    cache: dict[str, str] = field(default_factory=dict)
    requests: list[PeerRequest] = field(default_factory=list)
    skipped_cached: int = 0
    skipped_line_suffix: int = 0
    shown: Shown | None = None
    #: llama.vim's follow-up request for the state after accepting a shown suggestion.
    speculative: bool = False
    speculative_requests: int = 0
    on_event: Callable[[], None] | None = None
    _indent_last: int = -1
    _in_flight: asyncio.Task[None] | None = None
    _timer: asyncio.TimerHandle | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def busy(self) -> bool:
        return self._in_flight is not None or self._timer is not None

    def _notify(self) -> None:
        self._changed.set()
        if self.on_event is not None:
            self.on_event()

    async def wait_change(self, timeout: float) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def on_edit(self, text: str, line: int, column: int) -> None:
        """CursorMovedI: hide the hint, show a cached one if any, then ``llama#fim``."""
        self.text, self.line, self.column = text, line, column
        self.shown = None
        self.try_hint()
        self.fim()

    def try_hint(self) -> None:
        lines = buffer_lines(self.text)
        context = local_context(lines, self.line, self.column)
        raw = self.cache.get(context.hashes()[0])
        if raw is None:
            # A cached answer for up to 128 characters back, if the typed text matches it.
            typed_context = context.prefix + context.middle
            best = 0
            for back in range(1, min(128, len(typed_context)) + 1):
                removed = typed_context[-back:]
                key = cache_key(typed_context[:-back] + "Î" + context.suffix)
                cached = self.cache.get(key)
                if not cached or not cached.startswith(removed) or len(cached) <= back:
                    continue
                rest = cached[back:]
                if raw is None or len(rest) > best:
                    raw, best = rest, len(rest)
        if raw is None:
            return
        rendered = render(raw, lines, self.line, self.column)
        self.shown = Shown(time.perf_counter(), rendered, context.line_cur_prefix)
        self._notify()
        if self.speculative:
            # What llama.vim keeps as the shown content: the rest of the line appended.
            prev = [*rendered.lines[:-1], rendered.lines[-1] + context.line_cur_suffix]
            self.fim(prev)

    def fim(self, prev: list[str] | None = None) -> None:
        if self._in_flight is not None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(RETRY_MS / 1000, self._retry, prev)
            return
        lines = buffer_lines(self.text)
        if prev:
            context = local_context_after(lines, self.line, prev, self._indent_last)
        else:
            context = local_context(lines, self.line, self.column)
        if len(context.line_cur_suffix) > MAX_LINE_SUFFIX:
            self.skipped_line_suffix += 1
            self._notify()
            return
        hashes = context.hashes()
        if any(key in self.cache for key in hashes):
            self.skipped_cached += 1
            self._notify()
            return
        self._indent_last = context.indent
        request = PeerRequest(time.perf_counter(), self.text, self.line, self.column, hashes)
        self.requests.append(request)
        limit = T_MAX_PREDICT_SPECULATIVE_MS if prev else T_MAX_PREDICT_MS
        if prev:
            self.speculative_requests += 1
        body = infill_body(context, t_max_predict_ms=limit)
        self._in_flight = asyncio.ensure_future(self._send(request, body))

    def _retry(self, prev: list[str] | None) -> None:
        self._timer = None
        self.fim(prev)

    async def _send(self, request: PeerRequest, body: dict[str, Any]) -> None:
        try:
            request.result = await asyncio.to_thread(self.client.infill, body)
        except Exception as error:  # a failed request is counted, the replay goes on
            request.error = str(error)
        if self.on_event is not None:
            # Observers see the request still unanswered, so its CPU time is still its own.
            self.on_event()
        request.answered_at = time.perf_counter()
        self._in_flight = None
        if request.result is not None:
            for key in request.hashes:
                self.cache[key] = request.result.content
            if self.shown is None or not self.shown.rendered.can_accept:
                self.try_hint()
        self._notify()

    async def drain(self) -> None:
        while self.busy:
            await self.wait_change(0.05)
