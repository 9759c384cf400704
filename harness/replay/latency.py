"""``fim-lsp bench latency``: replay keystroke traces against the daemon (and the peer).

Ours: every change is a ``didChange`` followed by an automatic inline request, and the
request it supersedes gets ``$/cancelRequest`` (what VS Code and Neovim do). The peer:
llama.vim's discipline (one ``/infill`` in flight, retry every 100 ms, cached answers
shown again while the typed text matches them). The replay itself is
``harness.replay.replayer``; this module runs it over the traces and reports.

Per pause: time from the last keystroke to the first suggestion shown for that state;
whether it is the real continuation (exact, first line, edit similarity); requests
sent, answered and cancelled; tokens reused, evaluated and generated since the previous
pause; CPU seconds of the serving process spent on requests that were cancelled or
superseded.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness import runner
from harness.replay.replayer import DaemonSide, PauseResult, PeerSide, replay
from harness.replay.traces import load_trace
from harness.report import (
    cdf_plot,
    fmt_ms,
    fmt_pct,
    fmt_ratio,
    machine,
    markdown_table,
    percentile,
    rate,
    round_or_none,
)
from harness.stress.hog import CpuHog, add_hog_option

DEFAULT_TRACES = runner.ROOT / "fixtures" / "traces"


# ---------------------------------------------------------------------- summary
def summarize(results: list[PauseResult]) -> dict[str, Any]:
    shown = [r.latency_ms for r in results if r.latency_ms is not None]
    answers = [r.answer_ms for r in results if r.answer_ms is not None]
    cpu = [r.cpu_superseded_s for r in results if r.cpu_superseded_s is not None]
    pauses = len(results)
    return {
        "pauses": pauses,
        "shown": len(shown),
        "p50_ms": round_or_none(percentile(shown, 0.5)),
        "p90_ms": round_or_none(percentile(shown, 0.9)),
        "max_ms": round_or_none(max(shown) if shown else None),
        "answer_p50_ms": round_or_none(percentile(answers, 0.5)),
        "answer_p90_ms": round_or_none(percentile(answers, 0.9)),
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
        raise runner.BenchError("no traces given and none in fixtures/traces")
    traces = [load_trace(path) for path in paths]
    if args.no_ours and not args.peer:
        raise runner.BenchError("--no-ours needs --peer")
    report: dict[str, Any] = {
        "benchmark": "latency",
        "machine": machine(),
        "traces": [t.name for t in traces],
    }
    cursor_moves = bool(getattr(args, "cursor_moves", False))
    report["cursor_moves"] = cursor_moves
    client, status = await runner.start_daemon(runner.our_options(args))
    peer: runner.Peer | None = None
    ours: list[PauseResult] = []
    theirs: list[PauseResult] | None = None
    try:
        report["model"] = status.get("modelPath")
        report["threads"] = status.get("threads")
        if args.peer:
            peer = runner.start_peer_for(args, status)
            theirs = []
        for repeat in range(args.repeat):
            for trace in traces:
                # Ours and the peer take turns on each trace, so drifting load hits both.
                if not args.no_ours:
                    print(f"[ours] {trace.name} ({trace.pauses} pauses) …", file=sys.stderr, flush=True)
                    ours += await replay(DaemonSide(client, repeat, cursor_moves), trace)
                if peer is not None and theirs is not None:
                    print(f"[peer] {trace.name} ({trace.pauses} pauses) …", file=sys.stderr, flush=True)
                    theirs += await replay(PeerSide(peer, args.peer_speculative), trace)
        final_status = await client.status()
        report["daemon_counters"] = final_status.get("counters")
        report["daemon_cursor_moves"] = final_status.get("cursorMoves")
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
    parser.add_argument(
        "--cursor-moves",
        action="store_true",
        help="send fim/didMoveCursor on each jump, as the editor plugins do (a pure LSP client does not)",
    )
    add_hog_option(parser)
    runner.add_common_options(parser)
    args = parser.parse_args(argv)

    async def run_beside_hog(args: argparse.Namespace) -> dict[str, Any]:
        report = await run(args)
        report["cpu_hog"] = args.cpu_hog
        return report

    with CpuHog(args.cpu_hog):
        return runner.run_command(parser.prog, args, run_beside_hog)
