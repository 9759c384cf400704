"""``fim-lsp bench quality``: HumanEval-infilling pass@1 and SantaCoder-FIM exact match.

Each task (``harness.quality.tasks``) is opened in the daemon as a document (prompt +
suffix) with the cursor at the hole, and gets one invoked inline completion, as a user
pressing the trigger key would. The suggestion is applied as the editor applies it and
scored: HumanEval-infilling by running its tests in the sandbox (pass@1, and for the
first line alone), SantaCoder-FIM by exact match of the first line.

With ``--peer`` every task also goes to llama-server ``/infill`` with llama.vim's
manual-trigger request. Results are appended per task to a JSON-lines file keyed by
system and task id, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from fim.positions import PositionEncoding, position_of
from harness.client import (
    DaemonClient,
    apply_suggestion,
    as_inline_list,
    language_id_for,
    suggestion_after_cursor,
)
from harness.peer.llamavim import Rendered, buffer_lines, infill_body, local_context, render
from harness.quality.tasks import (
    Answer,
    Task,
    first_line_only,
    load_tasks,
    score_task,
    select,
    summarize_match,
)
from harness.report import (
    fmt_ms,
    fmt_pct,
    machine,
    markdown_table,
    percentile,
    rate,
    round_or_none,
)
from harness.runner import (
    QUALITY_DEFAULTS,
    ROOT,
    SHARED_DATA,
    BenchError,
    Peer,
    add_common_options,
    init_options,
    our_options,
    run_command,
    start_daemon,
    start_peer_for,
)
from harness.stress.hog import CpuHog, add_hog_option

DEFAULT_DATASET = SHARED_DATA / "HumanEval-SingleLineInfilling.jsonl.gz"


# ---------------------------------------------------------------------- the two systems
async def complete_ours(client: DaemonClient, task: Task, qwen_layout: bool = False) -> Answer:
    text, cursor = task.document(qwen_layout)
    uri = f"file:///fim-bench/quality/{task.filename}"
    client.open(uri, text, language_id_for(task.filename))
    line, character = position_of(text, cursor, PositionEncoding.UTF16)
    started = time.perf_counter()
    pending = client.send_inline(uri, line, character, invoked=True)
    try:
        result = await pending.future
    finally:
        client.close(uri)
    elapsed = (time.perf_counter() - started) * 1000
    inline = as_inline_list(result)
    completion = suggestion_after_cursor(text, cursor, inline)
    status = await client.status()
    stats = dict(status.get("lastRequest") or {})
    line_prefix = text[text.rfind("\n", 0, cursor) + 1 : cursor]
    single = first_line_only(completion, line_prefix)
    return Answer(
        completion=completion,
        document=apply_suggestion(text, cursor, inline),
        first_line_document=text[:cursor] + single + text[cursor:],
        elapsed_ms=elapsed,
        stats=stats,
    )


async def complete_peer(peer: Peer, task: Task, qwen_layout: bool = False) -> Answer:
    text, cursor = task.document(qwen_layout)
    lines = buffer_lines(text)
    line = text.count("\n", 0, cursor)
    column = cursor - (text.rfind("\n", 0, cursor) + 1)
    context = local_context(lines, line, column)
    started = time.perf_counter()
    result = await asyncio.to_thread(peer.client.infill, infill_body(context))
    elapsed = (time.perf_counter() - started) * 1000
    shown = render(result.content, lines, line, column)
    first = Rendered(shown.lines[:1], bool(shown.lines[0].strip()) and shown.can_accept, shown.lead)
    return Answer(
        completion=shown.completion_after(text[cursor - column : cursor]),
        document=shown.apply(text, cursor),
        first_line_document=first.apply(text, cursor),
        elapsed_ms=elapsed,
        stats={
            "tokens_reused": result.reused,
            "tokens_evaluated": result.prompt_n,
            "tokens_generated": result.predicted_n,
            "stop_reason": result.stop_type,
            "raw": result.content,
        },
    )


# ---------------------------------------------------------------------- results file
class ResultsFile:
    """Append-only per-task results; the first line records what run they belong to."""

    def __init__(self, path: Path, meta: dict[str, Any], fresh: bool) -> None:
        self.path = path
        self.done: dict[tuple[str, str], dict[str, Any]] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        if fresh and path.exists():
            path.unlink()
        if path.exists():
            with open(path, encoding="utf-8") as handle:
                lines = [json.loads(line) for line in handle if line.strip()]
            if not lines or lines[0].get("meta") != meta:
                raise BenchError(
                    f"{path} holds results of another run ({lines[0].get('meta') if lines else 'empty'}); "
                    "pass --fresh or another --results path"
                )
            for record in lines[1:]:
                self.done[(record["system"], record["task_id"])] = record
        else:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(json.dumps({"meta": meta}) + "\n")

    def add(self, record: dict[str, Any]) -> None:
        self.done[(record["system"], record["task_id"])] = record
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()


# ---------------------------------------------------------------------- summary
def summarize(records: list[dict[str, Any]], suite: str) -> dict[str, Any]:
    times = [record["elapsed_ms"] for record in records]
    figures: dict[str, Any] = {
        "tasks": len(records),
        "p50_ms": round_or_none(percentile(times, 0.5)),
        "p90_ms": round_or_none(percentile(times, 0.9)),
        "empty": sum(1 for record in records if not record["completion"].strip()),
    }
    if suite == "lines":
        figures.update(summarize_match(records))
    elif suite == "santacoder":
        figures["exact_match"] = rate(sum(r["exact_match"] for r in records), len(records))
        figures["edit_similarity"] = (
            round(sum(r["edit_similarity"] for r in records) / len(records), 4) if records else None
        )
        languages = sorted({r["language"] for r in records})
        figures["by_language"] = {
            language: {
                "tasks": len(subset),
                "exact_match": rate(sum(r["exact_match"] for r in subset), len(subset)),
            }
            for language in languages
            for subset in [[r for r in records if r["language"] == language]]
        }
    else:
        figures["passed"] = sum(r["passed"] for r in records)
        figures["pass_at_1"] = rate(figures["passed"], len(records))
        figures["passed_first_line"] = sum(r["first_line_passed"] for r in records)
        figures["pass_at_1_first_line"] = rate(figures["passed_first_line"], len(records))
        figures["timeouts"] = sum(1 for r in records if r.get("status") == "timeout")
    return figures


def markdown(report: dict[str, Any]) -> str:
    suite = report["suite"]
    rows = []
    systems = [("ours", report.get("ours_figures"))]
    if "peer" in report:
        systems.append(("llama.vim → llama-server", report["peer"]))
    for label, figures in systems:
        if not figures or not figures.get("tasks"):
            continue
        if suite == "lines":
            rows.append(
                [
                    report["dataset_name"],
                    label,
                    figures["tasks"],
                    fmt_pct(figures["exact_match"]),
                    f"{figures['edit_similarity']:.3f}",
                    fmt_pct(figures["first_line_match"]),
                    figures["fewer_lines"],
                    fmt_ms(figures["p50_ms"]),
                    fmt_ms(figures["p90_ms"]),
                ]
            )
        elif suite == "santacoder":
            by_language = ", ".join(
                f"{language} {fmt_pct(value['exact_match'])}"
                for language, value in figures["by_language"].items()
            )
            rows.append(
                [
                    report["dataset_name"],
                    label,
                    figures["tasks"],
                    fmt_pct(figures["exact_match"]),
                    by_language,
                    fmt_ms(figures["p50_ms"]),
                    fmt_ms(figures["p90_ms"]),
                ]
            )
        else:
            rows.append(
                [
                    report["dataset_name"],
                    label,
                    figures["tasks"],
                    fmt_pct(figures["pass_at_1"]),
                    fmt_pct(figures["pass_at_1_first_line"]),
                    fmt_ms(figures["p50_ms"]),
                    fmt_ms(figures["p90_ms"]),
                ]
            )
    if suite == "lines":
        headers = [
            "dataset",
            "system",
            "tasks",
            "exact match",
            "edit similarity",
            "first line match",
            "fewer lines than the hole",
            "p50 ms",
            "p90 ms",
        ]
    elif suite == "santacoder":
        headers = [
            "dataset",
            "system",
            "tasks",
            "exact match (first line)",
            "by language",
            "p50 ms",
            "p90 ms",
        ]
    else:
        headers = ["dataset", "system", "tasks", "pass@1", "pass@1 first line only", "p50 ms", "p90 ms"]
    text = markdown_table(headers, rows)
    load = f"load average before / after: {report['machine'].get('loadavg')} / {report.get('loadavg_after')}"
    return f"{text}\n\n{load}"


# ---------------------------------------------------------------------- command
async def run(args: argparse.Namespace) -> dict[str, Any]:
    dataset: Path = args.dataset
    if not dataset.is_file():
        raise BenchError(f"no dataset at {dataset} (the data lives in ../shared/data)")
    languages = [part for value in (args.lang or []) for part in value.split(",") if part]
    tasks = select(load_tasks(dataset), languages=languages, every=args.every, limit=args.limit)
    if not tasks:
        raise BenchError("no tasks selected")
    suite = tasks[0].suite
    options = {**QUALITY_DEFAULTS, **our_options(args)}
    dataset_name = dataset.name.removesuffix(".gz").removesuffix(".jsonl")
    if args.qwen_layout and suite == "santacoder":
        dataset_name += "-qwen-layout"
    results_path = args.results or (
        args.json.with_suffix(".tasks.jsonl")
        if args.json
        else ROOT / "bench-results" / f"quality-{dataset_name}.tasks.jsonl"
    )
    meta = {
        "dataset": dataset.name,
        "options": options,
        "peer_protocol": "llama.vim/infill",
        "santacoder_layout": "qwen" if args.qwen_layout else "line",
    }
    results = ResultsFile(results_path, meta, args.fresh)
    systems = ([] if args.no_ours else ["ours"]) + (["peer"] if args.peer else [])
    if not systems:
        raise BenchError("nothing to run: --no-ours needs --peer")
    report: dict[str, Any] = {
        "benchmark": "quality",
        "suite": suite,
        "dataset": str(dataset),
        "dataset_name": dataset_name,
        "selection": {"every": args.every, "limit": args.limit, "languages": languages or None},
        "santacoder_layout": "qwen" if args.qwen_layout else "line",
        "results_file": str(results_path),
        "machine": machine(),
    }
    todo = [task for task in tasks if any((system, task.id) not in results.done for system in systems)]
    report["resumed"] = len(tasks) - len(todo)
    client: DaemonClient | None = None
    peer: Peer | None = None
    try:
        if todo:
            client, status = await start_daemon(options)
            report["model"] = status.get("modelPath")
            report["threads"] = status.get("threads")
            if args.peer and todo:
                peer = start_peer_for(args, status)
                report["peer_server"] = peer.describe()
        for number, task in enumerate(todo, 1):
            for system in systems:
                if (system, task.id) in results.done:
                    continue
                if system == "ours":
                    assert client is not None
                    answer = await complete_ours(client, task, args.qwen_layout)
                else:
                    assert peer is not None
                    answer = await complete_peer(peer, task, args.qwen_layout)
                scored = await asyncio.to_thread(score_task, task, answer, args.timeout)
                stats = answer.stats
                results.add(
                    {
                        "system": system,
                        "task_id": task.id,
                        "language": task.language,
                        "completion": answer.completion,
                        "elapsed_ms": round(answer.elapsed_ms, 1),
                        **scored,
                        "stats": {
                            key: stats.get(key)
                            for key in (
                                "tokens_reused",
                                "tokens_evaluated",
                                "tokens_generated",
                                "stop_reason",
                                "raw",
                                "note",
                            )
                            if key in stats
                        },
                    }
                )
            if number % 25 == 0 or number == len(todo):
                print(f"  {number}/{len(todo)} tasks", file=sys.stderr, flush=True)
    finally:
        if client is not None:
            await client.stop()
        if peer is not None:
            peer.stop()
    ids = [task.id for task in tasks]
    ours_records = [results.done[("ours", i)] for i in ids if ("ours", i) in results.done]
    figures = summarize(ours_records, suite) if not args.no_ours else {"tasks": 0}
    report["ours_figures"] = figures
    report.update({key: value for key, value in figures.items()})
    if args.peer:
        peer_records = [results.done[("peer", i)] for i in ids if ("peer", i) in results.done]
        report["peer"] = {"url": args.peer, **summarize(peer_records, suite)}
    report["loadavg_after"] = machine()["loadavg"]
    report["markdown"] = markdown(report)
    return report


def parse_sweep(raw: str) -> tuple[str, list[Any]]:
    """``suffixTokens=0,16,32`` -> ("suffixTokens", [0, 16, 32]); values are JSON or plain strings."""
    name, equals, values = raw.partition("=")
    if not equals or not name.strip() or not values.strip():
        raise BenchError(f"--sweep {raw!r}: expected OPTION=VALUE,VALUE,... (e.g. suffixTokens=0,16,32)")
    parsed: list[Any] = []
    for value in values.split(","):
        try:
            parsed.append(json.loads(value))
        except json.JSONDecodeError:
            parsed.append(value.strip())
    return name.strip(), parsed


async def run_sweep(args: argparse.Namespace) -> dict[str, Any]:
    """One run per value of one daemon option, each resumable on its own results file."""
    name, values = parse_sweep(args.sweep)
    base = init_options(None, args.init_options)
    stem = args.json.with_suffix("") if args.json else ROOT / "bench-results" / f"sweep-{args.dataset.name}"
    points = []
    suite = "humaneval"
    for value in values:
        point_args = argparse.Namespace(**vars(args))
        point_args.init_options = json.dumps({**base, name: value})
        point_args.results = Path(f"{stem}.{name}-{value}.tasks.jsonl")
        point_args.json = None
        print(f"{name} = {value}", file=sys.stderr, flush=True)
        report = await run(point_args)
        suite = report["suite"]
        points.append({"value": value, **report["ours_figures"], "results_file": report["results_file"]})
    score = "exact_match" if suite in ("santacoder", "lines") else "pass_at_1"
    rows = [
        [point["value"], point["tasks"], fmt_pct(point[score]), fmt_ms(point["p50_ms"])] for point in points
    ]
    table = markdown_table([name, "tasks", score.replace("_at_", "@"), "p50 ms"], rows)
    return {
        "benchmark": "quality-sweep",
        "dataset": str(args.dataset),
        "option": name,
        "points": points,
        "machine": machine(),
        "markdown": table,
    }


async def run_chosen(args: argparse.Namespace) -> dict[str, Any]:
    """A sweep of our daemon's option values, or one run of each system asked for."""
    if args.sweep and args.peer:
        raise BenchError("--sweep varies our daemon's options only; run the peer without it")
    return await (run_sweep(args) if args.sweep else run(args))


def main(argv: list[str]) -> int:
    if "--cross-file" in argv:
        from harness.quality import crossfile

        return crossfile.main([arg for arg in argv if arg != "--cross-file"])
    parser = argparse.ArgumentParser(
        prog="fim-lsp bench quality",
        description="HumanEval-infilling pass@1 and SantaCoder-FIM exact match through the daemon.",
        epilog="--cross-file: holes that need a definition from another file, with and without "
        "workspace context (fim-lsp bench quality --cross-file -h).",
    )
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET, help="a .jsonl or .jsonl.gz file")
    parser.add_argument("--limit", type=int, default=None, help="at most this many tasks (after --every)")
    parser.add_argument("--every", type=int, default=1, help="every Nth task (a deterministic subset)")
    parser.add_argument("--lang", action="append", default=None, help="py, java, js (SantaCoder-FIM)")
    parser.add_argument(
        "--qwen-layout",
        action="store_true",
        help="SantaCoder-FIM: prompt and suffix joined as they are (no line for the hole), as Qwen does",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per test program")
    parser.add_argument("--results", type=Path, default=None, help="per-task results file (resumable)")
    parser.add_argument("--fresh", action="store_true", help="discard earlier per-task results")
    parser.add_argument(
        "--sweep",
        metavar="OPTION=V1,V2,...",
        default=None,
        help="one run per value of a daemon option (e.g. suffixTokens=0,16,32,64,128,256), then the curve",
    )
    add_hog_option(parser)
    add_common_options(parser)
    args = parser.parse_args(argv)

    async def run_beside_hog(args: argparse.Namespace) -> dict[str, Any]:
        report = await run_chosen(args)
        report["cpu_hog"] = args.cpu_hog
        return report

    with CpuHog(args.cpu_hog):
        return run_command(parser.prog, args, run_beside_hog)
