"""``fim-lsp bench latency``: replay keystroke traces against the daemon (and the peer).

Ours: every change is a ``didChange`` followed by an automatic inline request, and the
request it supersedes gets ``$/cancelRequest`` (what VS Code and Neovim do). The peer:
llama.vim's discipline (one ``/infill`` in flight, retry every 100 ms, cached answers
shown again while the typed text matches them).

Per pause: time from the last keystroke to the first suggestion shown for that state;
whether it is the real continuation (exact, first line, edit similarity); requests
sent, answered and cancelled; tokens reused, evaluated and generated since the previous
pause; CPU seconds of the serving process spent on requests that were cancelled or
superseded. CPU is attributed from /proc: between two events, the serving process's
CPU time goes to the oldest request still unanswered (both servers work one request at
a time, in order), or to "idle" when none is.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fim.positions import PositionEncoding, line_starts, position_of
from harness.client import DaemonClient, PendingRequest, as_inline_list, process_cpu_seconds
from harness.peer import LlamaVimSession, PeerClient
from harness.report import (
    cdf_plot,
    edit_similarity,
    emit_report,
    fmt_ms,
    fmt_pct,
    fmt_ratio,
    machine,
    markdown_table,
    normalize_code,
    percentile,
    rate,
)
from harness.runner import (
    ROOT,
    BenchError,
    Peer,
    add_common_options,
    init_options,
    start_daemon,
    start_peer,
    suggestion_after_cursor,
)
from harness.traces import Change, EditorState, Trace, load_trace

DEFAULT_TRACES = ROOT / "fixtures" / "traces"
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


class CpuLedger:
    """Attributes a server process's CPU time to the request it was working on."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.last = process_cpu_seconds(pid) if pid else None
        self.idle = 0.0

    def sample(self, oldest: Callable[[], Any | None]) -> None:
        if self.pid is None or self.last is None:
            return
        now = process_cpu_seconds(self.pid)
        if now is None:
            return
        delta, self.last = now - self.last, now
        owner = oldest()
        if owner is None:
            self.idle += delta
        else:
            owner.cpu_s += delta


@dataclass
class Tracked:
    request: PendingRequest
    text: str
    cursor: int
    cpu_s: float = 0.0
    answered_at: float | None = None


def _lsp(text: str, offset: int) -> tuple[int, int]:
    return position_of(text, offset, PositionEncoding.UTF16, line_starts(text))


def _lines_columns(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset)
    return line, offset - (text.rfind("\n", 0, offset) + 1)


async def _sleep_until(moment: float) -> None:
    delay = moment - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


def _finish_pause(result: PauseResult, suggestion: str, expected: str) -> None:
    result.suggestion = suggestion
    result.shown = bool(suggestion.strip())
    figures = score(suggestion, expected) if result.shown else Score(False, False, 0.0)
    result.exact_match = figures.exact_match
    result.first_line_match = figures.first_line_match
    result.edit_similarity = figures.edit_similarity


# ---------------------------------------------------------------------- ours
async def replay_ours(client: DaemonClient, trace: Trace, run: int = 0) -> list[PauseResult]:
    uri = f"file:///fim-bench/latency/{run}/{trace.filename}"
    state = EditorState(trace.text)
    client.open(uri, trace.text, trace.language_id)
    ledger = CpuLedger(client.server_pid)
    outstanding: list[Tracked] = []
    segment: list[Tracked] = []
    results: list[PauseResult] = []

    def oldest() -> Tracked | None:
        return next((item for item in outstanding if item.answered_at is None), None)

    def answered(item: Tracked) -> Callable[[asyncio.Future[Any]], None]:
        def done(_future: asyncio.Future[Any]) -> None:
            ledger.sample(oldest)
            item.answered_at = time.perf_counter()
            if item in outstanding:
                outstanding.remove(item)

        return done

    status = await client.status()
    totals_before = dict(status.get("engineTotals") or {})
    # An editor opens the file a moment before the user types.
    await asyncio.sleep(1.0)
    clock = time.perf_counter()
    last_key = clock
    for event in trace.events:
        if event.op == "pause":
            result = PauseResult(
                trace.name,
                len(results),
                event.kind,
                *_lines_columns(state.text, state.cursor),
                event.expected,
            )
            final = segment[-1] if segment else None
            suggestion = ""
            if final is not None:
                try:
                    response = await asyncio.wait_for(asyncio.shield(final.request.future), WAIT_LIMIT_S)
                    suggestion = suggestion_after_cursor(final.text, final.cursor, as_inline_list(response))
                except TimeoutError:
                    result.timed_out = True
                except Exception:
                    result.errors += 1
                if final.answered_at is not None:
                    result.answer_ms = (final.answered_at - last_key) * 1000
            _finish_pause(result, suggestion, event.expected)
            if result.shown:
                result.latency_ms = result.answer_ms
            ledger.sample(oldest)
            status = await client.status()
            totals = dict(status.get("engineTotals") or {})
            result.tokens_reused = totals.get("reused", 0) - totals_before.get("reused", 0)
            result.tokens_evaluated = totals.get("evaluated", 0) - totals_before.get("evaluated", 0)
            result.tokens_generated = totals.get("generated", 0) - totals_before.get("generated", 0)
            totals_before = totals
            result.final_request = status.get("lastRequest")
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
            if ledger.pid is not None:
                result.cpu_superseded_s = round(sum(item.cpu_s for item in segment if item is not final), 3)
                result.cpu_final_s = round(final.cpu_s, 3) if final is not None else 0.0
                result.cpu_idle_s = round(ledger.idle, 3)
                ledger.idle = 0.0
            results.append(result)
            segment = []
            # The user keeps still for the pause (longer if the answer took longer).
            await _sleep_until(last_key + event.ms / 1000)
            clock = time.perf_counter()
            continue
        clock += event.delay_ms / 1000
        await _sleep_until(clock)
        before = state.text
        change: Change | None = state.apply(event)
        if change is None:
            continue
        client.change(uri, _lsp(before, change.start), _lsp(before, change.end), change.text)
        last_key = time.perf_counter()
        for item in outstanding:
            if item.answered_at is None:
                client.cancel(item.request)
        ledger.sample(oldest)
        line, character = _lsp(state.text, state.cursor)
        pending = client.send_inline(uri, line, character, invoked=False)
        tracked = Tracked(pending, state.text, state.cursor)
        pending.future.add_done_callback(answered(tracked))
        outstanding.append(tracked)
        segment.append(tracked)
    # Let the last answers arrive before the document goes away.
    for item in list(outstanding):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(item.request.future), WAIT_LIMIT_S)
    client.close(uri)
    return results


# ---------------------------------------------------------------------- peer
async def replay_peer(peer: Peer, trace: Trace, speculative: bool = False) -> list[PauseResult]:
    state = EditorState(trace.text)
    session = LlamaVimSession(PeerClient(peer.url), speculative=speculative)
    ledger = CpuLedger(peer.pid)

    class Work:
        def __init__(self) -> None:
            self.cpu_s = 0.0

    work: dict[int, Work] = {}

    def oldest() -> Work | None:
        for index, request in enumerate(session.requests):
            if request.answered_at is None:
                return work.setdefault(index, Work())
        return None

    session.on_event = lambda: ledger.sample(oldest)
    results: list[PauseResult] = []
    first_request = 0
    await asyncio.sleep(1.0)
    clock = time.perf_counter()
    last_key = clock
    for event in trace.events:
        if event.op == "pause":
            result = PauseResult(
                trace.name,
                len(results),
                event.kind,
                *_lines_columns(state.text, state.cursor),
                event.expected,
            )
            deadline = time.perf_counter() + WAIT_LIMIT_S
            while True:
                shown = session.shown
                if shown is not None and shown.rendered.can_accept:
                    result.answer_ms = (shown.at - last_key) * 1000
                    break
                if not session.busy:
                    answered = [r.answered_at for r in session.requests[first_request:] if r.answered_at]
                    result.answer_ms = (max([last_key, *answered]) - last_key) * 1000
                    break
                if time.perf_counter() > deadline:
                    result.timed_out = True
                    break
                await session.wait_change(0.05)
            shown = session.shown
            line_prefix = state.line_prefix
            suggestion = shown.rendered.completion_after(line_prefix) if shown is not None else ""
            _finish_pause(result, suggestion, event.expected)
            if result.shown:
                result.latency_ms = result.answer_ms
            segment = session.requests[first_request:]
            ledger.sample(oldest)
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
            final_index = len(session.requests) - 1
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
                    and final.column == _lines_columns(state.text, state.cursor)[1],
                }
            if ledger.pid is not None:
                superseded = [
                    work[index].cpu_s for index in range(first_request, final_index) if index in work
                ]
                result.cpu_superseded_s = round(sum(superseded), 3)
                result.cpu_final_s = round(work[final_index].cpu_s, 3) if final_index in work else 0.0
                result.cpu_idle_s = round(ledger.idle, 3)
                ledger.idle = 0.0
            results.append(result)
            first_request = len(session.requests)
            await _sleep_until(last_key + event.ms / 1000)
            clock = time.perf_counter()
            continue
        clock += event.delay_ms / 1000
        await _sleep_until(clock)
        change = state.apply(event)
        if change is None:
            continue
        last_key = time.perf_counter()
        ledger.sample(oldest)
        line, column = _lines_columns(state.text, state.cursor)
        session.on_edit(state.text, line, column)
    await session.drain()
    return results


# ---------------------------------------------------------------------- summary
def summarize(results: list[PauseResult]) -> dict[str, Any]:
    shown = [r.latency_ms for r in results if r.latency_ms is not None]
    answers = [r.answer_ms for r in results if r.answer_ms is not None]
    cpu = [r.cpu_superseded_s for r in results if r.cpu_superseded_s is not None]
    pauses = len(results)
    return {
        "pauses": pauses,
        "shown": len(shown),
        "p50_ms": _round(percentile(shown, 0.5)),
        "p90_ms": _round(percentile(shown, 0.9)),
        "max_ms": _round(max(shown) if shown else None),
        "answer_p50_ms": _round(percentile(answers, 0.5)),
        "answer_p90_ms": _round(percentile(answers, 0.9)),
        "exact_match": rate(sum(r.exact_match for r in results), pauses),
        "first_line_match": rate(sum(r.first_line_match for r in results), pauses),
        "edit_similarity": round(sum(r.edit_similarity for r in results) / pauses, 4) if pauses else None,
        "requests": sum(r.requests for r in results),
        "answered": sum(r.answered for r in results),
        "cancelled": sum(r.cancelled for r in results),
        "cancel_sent": sum(r.cancel_sent for r in results),
        "skipped": sum(r.skipped for r in results),
        "errors": sum(r.errors for r in results),
        "timed_out": sum(r.timed_out for r in results),
        "tokens_reused": sum(r.tokens_reused for r in results),
        "tokens_evaluated": sum(r.tokens_evaluated for r in results),
        "tokens_generated": sum(r.tokens_generated for r in results),
        "cpu_superseded_s": round(sum(cpu), 2) if cpu else None,
        "latencies_ms": [round(value, 1) for value in shown],
        "per_pause": [asdict(r) for r in results],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def per_trace_rows(label: str, results: list[PauseResult], traces: list[str]) -> list[list[str]]:
    rows = []
    for name in [*traces, "all"]:
        subset = [r for r in results if name == "all" or r.trace == name]
        if not subset:
            continue
        figures = summarize(subset)
        rows.append(
            [
                name,
                label,
                str(figures["pauses"]),
                str(figures["shown"]),
                fmt_ms(figures["p50_ms"]),
                fmt_ms(figures["p90_ms"]),
                fmt_ms(figures["max_ms"]),
                fmt_pct(figures["exact_match"]),
                fmt_pct(figures["first_line_match"]),
                f"{figures['edit_similarity']:.2f}" if figures["edit_similarity"] is not None else "-",
                f"{figures['requests']}/{figures['answered']}/{figures['cancelled']}",
                f"{figures['tokens_reused']}/{figures['tokens_evaluated']}/{figures['tokens_generated']}",
                "-" if figures["cpu_superseded_s"] is None else f"{figures['cpu_superseded_s']:.1f}",
            ]
        )
    return rows


HEADERS = [
    "trace",
    "system",
    "pauses",
    "shown",
    "p50 ms",
    "p90 ms",
    "max ms",
    "exact",
    "first line",
    "edit sim",
    "req/ans/canc",
    "tok reused/eval/gen",
    "CPU s superseded",
]


def markdown(report: dict[str, Any], ours: list[PauseResult], peer: list[PauseResult] | None) -> str:
    traces = report["traces"]
    rows = per_trace_rows("ours", ours, traces) if ours else []
    if peer is not None:
        rows += per_trace_rows("llama.vim → llama-server", peer, traces)
    lines = [markdown_table(HEADERS, rows)]
    if ours and peer is not None:
        lines.append("")
        lines.append(
            f"p50 {fmt_ms(report['p50_ms'])} ms vs {fmt_ms(report['peer']['p50_ms'])} ms "
            f"(peer/ours {fmt_ratio(report['p50_ms'], report['peer']['p50_ms'])}); "
            f"p90 {fmt_ms(report['p90_ms'])} ms vs {fmt_ms(report['peer']['p90_ms'])} ms "
            f"(peer/ours {fmt_ratio(report['p90_ms'], report['peer']['p90_ms'])})"
        )
    load = report["machine"].get("loadavg")
    lines.append(f"\nload average before / after: {load} / {report.get('loadavg_after')}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- command
def _trace_paths(given: list[Path] | None) -> list[Path]:
    if given:
        return given
    return sorted(DEFAULT_TRACES.glob("*.json"))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    paths = _trace_paths(args.trace)
    if not paths:
        raise BenchError("no traces given and none in fixtures/traces")
    traces = [load_trace(path) for path in paths]
    if args.no_ours and not args.peer:
        raise BenchError("--no-ours needs --peer")
    report: dict[str, Any] = {
        "benchmark": "latency",
        "machine": machine(),
        "traces": [t.name for t in traces],
    }
    client, status = await start_daemon(init_options(args.model, args.init_options))
    peer: Peer | None = None
    ours: list[PauseResult] = []
    theirs: list[PauseResult] | None = None
    try:
        report["model"] = status.get("modelPath")
        report["threads"] = status.get("threads")
        if args.peer:
            n_ctx = int(json.loads(args.init_options).get("nCtx", 8192)) if args.init_options else 8192
            peer = start_peer(
                args.peer, str(status.get("modelPath")), int(status.get("threads") or 2), n_ctx, args.peer_bin
            )
            theirs = []
        for repeat in range(args.repeat):
            for trace in traces:
                # Ours and the peer take turns on each trace, so drifting load hits both.
                if not args.no_ours:
                    print(f"[ours] {trace.name} ({trace.pauses} pauses) …", file=sys.stderr, flush=True)
                    ours += await replay_ours(client, trace, repeat)
                if peer is not None and theirs is not None:
                    print(f"[peer] {trace.name} ({trace.pauses} pauses) …", file=sys.stderr, flush=True)
                    theirs += await replay_peer(peer, trace, args.peer_speculative)
        final_status = await client.status()
        report["daemon_counters"] = final_status.get("counters")
    finally:
        await client.stop()
        if peer is not None:
            peer.stop()
    report.update({key: value for key, value in summarize(ours).items()})
    if peer is not None and theirs is not None:
        report["peer"] = {**peer.describe(), "speculative": args.peer_speculative, **summarize(theirs)}
        report["ratio"] = {
            "p50": _ratio(report["peer"]["p50_ms"], report["p50_ms"]),
            "p90": _ratio(report["peer"]["p90_ms"], report["p90_ms"]),
        }
    report["loadavg_after"] = machine()["loadavg"]
    report["markdown"] = markdown(report, ours, theirs)
    curves = {"fim-lsp": report.get("latencies_ms") or []}
    totals = {"fim-lsp": report.get("pauses") or 0}
    if "peer" in report:
        curves["llama.vim → llama-server"] = report["peer"]["latencies_ms"]
        totals["llama.vim → llama-server"] = report["peer"]["pauses"]
    if args.plot:
        drawn = cdf_plot(curves, args.plot, "Keystroke replay: time to suggestion", totals)
        report["plot"] = str(drawn) if drawn else None
    return report


def _ratio(peer: float | None, ours: float | None) -> float | None:
    return round(peer / ours, 2) if peer is not None and ours else None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="fim-lsp bench latency", description="Replay keystroke traces against the daemon (and a peer)."
    )
    parser.add_argument(
        "--trace", type=Path, nargs="+", default=None, help="trace files (default: fixtures/traces/*.json)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="replay every trace this many times")
    parser.add_argument(
        "--peer-speculative",
        action="store_true",
        help="also send llama.vim's follow-up request after each shown suggestion (off by default)",
    )
    parser.add_argument("--plot", type=Path, default=None, help="latency CDF as PNG (needs matplotlib)")
    add_common_options(parser)
    args = parser.parse_args(argv)
    try:
        report = asyncio.run(run(args))
    except BenchError as error:
        print(f"fim-lsp bench latency: {error}", file=sys.stderr)
        return 2
    emit_report(args, report)
    return 0
