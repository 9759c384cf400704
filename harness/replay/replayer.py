"""Replaying one keystroke trace against one system, and what it showed at each pause.

One loop (``replay``) plays the trace's keystrokes at their recorded pace and, at each
pause, asks the system under test what the user saw. The two systems differ only in how
an edit reaches them and how their requests are tracked, which a ``ReplaySide`` holds:

* ``DaemonSide``, ours: every change is a ``didChange`` followed by an automatic inline
  request, and the request it supersedes gets ``$/cancelRequest`` (what VS Code and
  Neovim do);
* ``PeerSide``: llama.vim's discipline against llama-server (one ``/infill`` in flight,
  retry every 100 ms, cached answers shown again while the typed text matches them).

CPU is attributed from /proc: between two events, the serving process's CPU time goes to
the oldest request still unanswered (both servers work one request at a time, in
order), or to "idle" when none is.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fim.positions import PositionEncoding, line_starts, position_of
from harness.client import (
    DaemonClient,
    PendingRequest,
    as_inline_list,
    process_cpu_seconds,
    suggestion_after_cursor,
)
from harness.peer.server import PeerClient
from harness.peer.session import LlamaVimSession
from harness.replay.traces import Change, EditorState, Event, Trace
from harness.report import edit_similarity, normalize_code
from harness.runner import Peer

WAIT_LIMIT_S = 60.0


@dataclass
class Score:
    exact_match: bool
    first_line_match: bool
    edit_similarity: float


def score(suggestion: str, expected: str) -> Score:
    """Compare a suggestion with the real continuation (trailing spaces do not count)."""
    got, want = normalize_code(suggestion), normalize_code(expected)
    return Score(
        exact_match=bool(got) and got == want,
        first_line_match=bool(got) and got.split("\n")[0] == want.split("\n")[0],
        edit_similarity=round(edit_similarity(got, want), 4),
    )


@dataclass
class PauseResult:
    trace: str
    index: int
    kind: str
    line: int
    column: int
    expected: str
    suggestion: str = ""
    shown: bool = False
    latency_ms: float | None = None  # last keystroke -> suggestion shown
    answer_ms: float | None = None  # last keystroke -> the final state's answer, shown or not
    exact_match: bool = False
    first_line_match: bool = False
    edit_similarity: float = 0.0
    requests: int = 0
    answered: int = 0
    cancelled: int = 0  # answered with RequestCancelled
    cancel_sent: int = 0
    errors: int = 0
    skipped: int = 0  # peer: no request sent (cached, or text right of the cursor)
    tokens_reused: int = 0
    tokens_evaluated: int = 0
    tokens_generated: int = 0
    cpu_superseded_s: float | None = None
    cpu_final_s: float | None = None
    cpu_idle_s: float | None = None
    final_request: dict[str, Any] | None = None
    timed_out: bool = False


class CpuOwner(Protocol):
    """A request the serving process's CPU time can be charged to."""

    cpu_s: float


class CpuLedger:
    """Attributes a server process's CPU time to the request it was working on."""

    def __init__(self, pid: int | None, oldest: Callable[[], CpuOwner | None]) -> None:
        self.pid = pid
        self.oldest = oldest
        self.last = process_cpu_seconds(pid) if pid else None
        self.idle = 0.0

    def sample(self) -> None:
        if self.pid is None or self.last is None:
            return
        now = process_cpu_seconds(self.pid)
        if now is None:
            return
        delta, self.last = now - self.last, now
        owner = self.oldest()
        if owner is None:
            self.idle += delta
        else:
            owner.cpu_s += delta


def _lsp(text: str, offset: int) -> tuple[int, int]:
    return position_of(text, offset, PositionEncoding.UTF16, line_starts(text))


def lines_columns(text: str, offset: int) -> tuple[int, int]:
    """0-based line and code-point column of ``offset`` (how traces and llama.vim count)."""
    line = text.count("\n", 0, offset)
    return line, offset - (text.rfind("\n", 0, offset) + 1)


async def _sleep_until(moment: float) -> None:
    delay = moment - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


class ReplaySide(Protocol):
    """One system under replay: how an edit reaches it and what it had shown at a pause."""

    ledger: CpuLedger

    async def open(self, trace: Trace) -> None:
        """The editor opens the trace's file, before the first keystroke."""

    def edit(self, before: str, change: Change) -> None:
        """The keystroke's change reaches the server (before the keystroke is timed)."""

    def request(self, state: EditorState) -> None:
        """After the keystroke: ask for a suggestion at the new cursor, as the editor would."""

    def moved(self, state: EditorState) -> None:
        """The cursor went elsewhere without an edit (a jump): what the editor tells the server."""

    async def suggestion(self, result: PauseResult, state: EditorState, last_key: float) -> str:
        """Wait for the answer to the final state; set ``answer_ms``, return the text it adds."""

    async def count(self, result: PauseResult, state: EditorState) -> None:
        """Requests, answers and tokens of the keystrokes since the previous pause."""

    def cpu_split(self) -> tuple[float, float]:
        """CPU seconds since the previous pause: on superseded requests, on the final one."""

    def next_pause(self) -> None:
        """The keystrokes after this pause count towards the next one."""

    async def close(self) -> None:
        """Let the last answers arrive, then close the file."""


async def replay(side: ReplaySide, trace: Trace) -> list[PauseResult]:
    """Type ``trace`` into ``side`` at its recorded pace; one result per pause."""
    state = EditorState(trace.text)
    await side.open(trace)
    results: list[PauseResult] = []
    # An editor opens the file a moment before the user types.
    await asyncio.sleep(1.0)
    clock = time.perf_counter()
    last_key = clock
    for event in trace.events:
        if event.op == "pause":
            results.append(await _pause(side, trace, event, state, len(results), last_key))
            # The user keeps still for the pause (longer if the answer took longer).
            await _sleep_until(last_key + event.ms / 1000)
            clock = time.perf_counter()
            continue
        clock += event.delay_ms / 1000
        await _sleep_until(clock)
        before = state.text
        change = state.apply(event)
        if change is None:
            if event.op == "goto":
                side.moved(state)
            continue
        side.edit(before, change)
        last_key = time.perf_counter()
        side.request(state)
    await side.close()
    return results


async def _pause(
    side: ReplaySide, trace: Trace, event: Event, state: EditorState, index: int, last_key: float
) -> PauseResult:
    """What the user saw at one pause, how good it was, and what the keystrokes before it cost."""
    result = PauseResult(
        trace.name, index, event.kind, *lines_columns(state.text, state.cursor), event.expected
    )
    suggestion = await side.suggestion(result, state, last_key)
    result.suggestion = suggestion
    result.shown = bool(suggestion.strip())
    figures = score(suggestion, event.expected) if result.shown else Score(False, False, 0.0)
    result.exact_match = figures.exact_match
    result.first_line_match = figures.first_line_match
    result.edit_similarity = figures.edit_similarity
    if result.shown:
        result.latency_ms = result.answer_ms
    side.ledger.sample()
    await side.count(result, state)
    if side.ledger.pid is not None:
        superseded, final = side.cpu_split()
        result.cpu_superseded_s = round(superseded, 3)
        result.cpu_final_s = round(final, 3)
        result.cpu_idle_s = round(side.ledger.idle, 3)
        side.ledger.idle = 0.0
    side.next_pause()
    return result


# ---------------------------------------------------------------------- ours
@dataclass
class Tracked:
    """One of our requests, with the document it asked about and the CPU it cost."""

    request: PendingRequest
    text: str
    cursor: int
    cpu_s: float = 0.0
    answered_at: float | None = None


class DaemonSide:
    """Our daemon over LSP: a request per change, the superseded one cancelled."""

    def __init__(self, client: DaemonClient, run: int = 0, cursor_moves: bool = False) -> None:
        self.client = client
        self.run = run
        #: Send ``fim/didMoveCursor`` on a jump, as the editor plugins do (pure LSP clients don't).
        self.cursor_moves = cursor_moves
        self.uri = ""
        self.outstanding: list[Tracked] = []
        self.segment: list[Tracked] = []
        self.totals_before: dict[str, int] = {}
        self.ledger = CpuLedger(client.server_pid, self._oldest)

    def _oldest(self) -> Tracked | None:
        return next((item for item in self.outstanding if item.answered_at is None), None)

    def _answered(self, item: Tracked) -> Callable[[asyncio.Future[Any]], None]:
        def done(_future: asyncio.Future[Any]) -> None:
            self.ledger.sample()
            item.answered_at = time.perf_counter()
            if item in self.outstanding:
                self.outstanding.remove(item)

        return done

    async def open(self, trace: Trace) -> None:
        self.uri = f"file:///fim-bench/latency/{self.run}/{trace.filename}"
        self.client.open(self.uri, trace.text, trace.language_id)
        status = await self.client.status()
        self.totals_before = dict(status.get("engineTotals") or {})

    def edit(self, before: str, change: Change) -> None:
        self.client.change(self.uri, _lsp(before, change.start), _lsp(before, change.end), change.text)

    def moved(self, state: EditorState) -> None:
        if self.cursor_moves:
            self.client.move_cursor(self.uri, *_lsp(state.text, state.cursor))

    def request(self, state: EditorState) -> None:
        for item in self.outstanding:
            if item.answered_at is None:
                self.client.cancel(item.request)
        self.ledger.sample()
        line, character = _lsp(state.text, state.cursor)
        pending = self.client.send_inline(self.uri, line, character, invoked=False)
        tracked = Tracked(pending, state.text, state.cursor)
        pending.future.add_done_callback(self._answered(tracked))
        self.outstanding.append(tracked)
        self.segment.append(tracked)

    async def suggestion(self, result: PauseResult, state: EditorState, last_key: float) -> str:
        final = self.segment[-1] if self.segment else None
        if final is None:
            return ""
        suggestion = ""
        try:
            response = await asyncio.wait_for(asyncio.shield(final.request.future), WAIT_LIMIT_S)
            suggestion = suggestion_after_cursor(final.text, final.cursor, as_inline_list(response))
        except TimeoutError:
            result.timed_out = True
        except Exception:
            result.errors += 1
        if final.answered_at is not None:
            result.answer_ms = (final.answered_at - last_key) * 1000
        return suggestion

    async def count(self, result: PauseResult, state: EditorState) -> None:
        status = await self.client.status()
        totals = dict(status.get("engineTotals") or {})
        before = self.totals_before
        result.tokens_reused = totals.get("reused", 0) - before.get("reused", 0)
        result.tokens_evaluated = totals.get("evaluated", 0) - before.get("evaluated", 0)
        result.tokens_generated = totals.get("generated", 0) - before.get("generated", 0)
        self.totals_before = totals
        result.final_request = status.get("lastRequest")
        segment = self.segment
        result.requests = len(segment)
        result.answered = sum(1 for item in segment if item.request.future.done())
        result.cancelled = sum(1 for item in segment if item.request.was_cancelled)
        result.cancel_sent = sum(1 for item in segment if item.request.cancel_sent)
        result.errors += sum(
            1
            for item in segment
            if item.request.future.done()
            and not item.request.future.cancelled()
            and item.request.future.exception() is not None
            and not item.request.was_cancelled
        )

    def cpu_split(self) -> tuple[float, float]:
        final = self.segment[-1] if self.segment else None
        superseded = sum(item.cpu_s for item in self.segment if item is not final)
        return superseded, final.cpu_s if final is not None else 0.0

    def next_pause(self) -> None:
        self.segment = []

    async def close(self) -> None:
        for item in list(self.outstanding):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(item.request.future), WAIT_LIMIT_S)
        self.client.close(self.uri)


# ---------------------------------------------------------------------- peer
@dataclass
class RequestCpu:
    """The CPU one peer request cost (llama.vim's requests carry no such field)."""

    cpu_s: float = 0.0


class PeerSide:
    """llama-server driven by llama.vim's session: one request in flight, never cancelled."""

    def __init__(self, peer: Peer, speculative: bool = False) -> None:
        self.session = LlamaVimSession(PeerClient(peer.url), speculative=speculative)
        self.work: dict[int, RequestCpu] = {}
        self.first_request = 0
        self.ledger = CpuLedger(peer.pid, self._oldest)
        self.session.on_event = self.ledger.sample

    def _oldest(self) -> RequestCpu | None:
        for index, request in enumerate(self.session.requests):
            if request.answered_at is None:
                return self.work.setdefault(index, RequestCpu())
        return None

    async def open(self, trace: Trace) -> None:
        """Nothing to send: llama.vim reads the buffer itself when it builds a request."""

    def edit(self, before: str, change: Change) -> None:
        """Nothing to send: the next request carries the text around the cursor."""

    def moved(self, state: EditorState) -> None:
        """llama.vim asks nothing when the cursor moves without an edit."""

    def request(self, state: EditorState) -> None:
        self.ledger.sample()
        line, column = lines_columns(state.text, state.cursor)
        self.session.on_edit(state.text, line, column)

    async def suggestion(self, result: PauseResult, state: EditorState, last_key: float) -> str:
        session = self.session
        deadline = time.perf_counter() + WAIT_LIMIT_S
        while True:
            shown = session.shown
            if shown is not None and shown.rendered.can_accept:
                result.answer_ms = (shown.at - last_key) * 1000
                break
            if not session.busy:
                answered = [r.answered_at for r in session.requests[self.first_request :] if r.answered_at]
                result.answer_ms = (max([last_key, *answered]) - last_key) * 1000
                break
            if time.perf_counter() > deadline:
                result.timed_out = True
                break
            await session.wait_change(0.05)
        shown = session.shown
        return shown.rendered.completion_after(state.line_prefix) if shown is not None else ""

    async def count(self, result: PauseResult, state: EditorState) -> None:
        session = self.session
        segment = session.requests[self.first_request :]
        result.requests = len(segment)
        result.answered = sum(1 for r in segment if r.answered_at is not None)
        result.errors = sum(1 for r in segment if r.error)
        result.skipped = session.skipped_cached + session.skipped_line_suffix
        session.skipped_cached = session.skipped_line_suffix = 0
        for r in segment:
            if r.result is not None:
                result.tokens_reused += r.result.reused
                result.tokens_evaluated += r.result.prompt_n
                result.tokens_generated += r.result.predicted_n
        final = segment[-1] if segment else None
        if final is not None and final.result is not None:
            result.final_request = {
                "tokens_reused": final.result.reused,
                "tokens_evaluated": final.result.prompt_n,
                "tokens_generated": final.result.predicted_n,
                "prefill_ms": final.result.prompt_ms,
                "decode_ms": final.result.predicted_ms,
                "stop_reason": final.result.stop_type,
                "for_final_state": final.text == state.text
                and final.column == lines_columns(state.text, state.cursor)[1],
            }

    def cpu_split(self) -> tuple[float, float]:
        # The last request sent so far counts as the final one, even when it was sent
        # before the previous pause (no request since).
        final_index = len(self.session.requests) - 1
        superseded = [
            self.work[index].cpu_s for index in range(self.first_request, final_index) if index in self.work
        ]
        return sum(superseded), self.work[final_index].cpu_s if final_index in self.work else 0.0

    def next_pause(self) -> None:
        self.first_request = len(self.session.requests)

    async def close(self) -> None:
        await self.session.drain()
