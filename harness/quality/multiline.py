"""A multi-line hole set made from real code: whole statements cut out of PyPI packages.

``python -m harness.quality.multiline build --out FILE`` installs a few well-known
pure-Python packages (pinned, ``PACKAGES``) into a scratch folder with pip, walks every
function in them and cuts holes: one whole statement of 2 to 8 lines inside a function
body (a loop, an ``if``, a ``try``, a call spread over lines), at most one per function,
every ``--stride``-th candidate. Nothing from the packages is kept in the project; the
command makes the same file again from the same versions.

Each record has HumanEval's shape (``task_id``, ``prompt``, ``suffix``,
``canonical_solution``, ``test``, ``entry_point``), so any version of ``bench quality``
can read it and lay it out as an editor has it: the cursor on an empty line where the
statement was (ids start with ``MultiLineInfilling/`` for that). The field
``"scoring": "match"`` tells this harness to score by exact match and edit similarity of
the whole hole instead of running tests (the package's own tests need the package's
whole tree and test dependencies; they are not run). ``score`` re-scores any results
file by those rules, e.g. one written by an older harness that ran the tests instead.

The document is the module around the hole: from a top-level statement about
``CONTEXT_BEFORE`` lines up to about ``CONTEXT_AFTER`` lines below, cut at top-level
statements, which is more than the daemon's prefix budget takes.

``python -m harness.quality.multiline humaneval --out FILE`` makes a second set, scored
by unit tests: HumanEval's 164 solutions (rebuilt from the SingleLine records in
``../shared/data``), one hole of 2 to 7 whole lines per solution, anywhere in the body
(a loop header and the first line of its body, the last lines of a block...), as
HumanEval's MultiLine infilling cuts them. Its ids start with ``MultiLineInfilling/``,
so the cursor goes on an empty line of its own.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.quality.tasks import load_tasks, read_records, score_match, select, summarize_match
from harness.runner import QUALITY_DEFAULTS, SHARED_DATA

#: Pinned so that the same holes come back; pure Python, no dependencies of their own.
PACKAGES = (
    "toolz==1.2.0",
    "more-itertools==11.2.1",
    "boltons==26.2.0",
    "inflection==0.5.1",
    "humanize==4.17.0",
    "tabulate==0.10.0",
)
MIN_LINES = 2
MAX_LINES = 8
CONTEXT_BEFORE = 200
CONTEXT_AFTER = 60
ID_PREFIX = "MultiLineInfilling/pypi"
#: Packages that only re-export another one (toolz's ``tlz``).
ALIASES = ("tlz",)


@dataclass(frozen=True)
class Hole:
    module: str  # e.g. toolz/itertoolz.py
    function: str
    first: int  # 0-based first line of the statement
    last: int  # 0-based last line


def install(target: Path) -> None:
    """pip-install ``PACKAGES`` into ``target`` (a scratch folder), without dependencies."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target)]
    subprocess.run([*command, *PACKAGES], check=True)


def _modules(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0].endswith((".dist-info", ".data")) or "tests" in parts or "test" in parts:
            continue
        if path.name.startswith("test_") or parts[0] in ("bin", "__pycache__", *ALIASES):
            continue
        if len(parts) == 1 and (root / path.stem).is_dir():
            continue  # a module shipped beside a package of the same name (inflection)
        yield path


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement of a function body, nested ones too, not inside nested definitions."""
    for statement in body:
        yield statement
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(statement, field, None)
            if isinstance(inner, list):
                yield from _statements(inner)
        for handler in getattr(statement, "handlers", []) or []:
            yield from _statements(handler.body)
        for case in getattr(statement, "cases", []) or []:
            yield from _statements(case.body)


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def candidates(source: str, module: str) -> list[Hole]:
    """Whole-line statements of 2 to 8 lines inside functions, one of each function.

    The one is picked by a hash of the function's name among its statements that
    qualify, so holes fall at the start, middle and end of bodies alike.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    lines = source.split("\n")
    holes = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        found = []
        for statement in _statements(node.body):
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if _is_docstring(statement) or statement.end_lineno is None:
                continue
            first, last = statement.lineno - 1, statement.end_lineno - 1
            if not MIN_LINES <= last - first + 1 <= MAX_LINES:
                continue
            if lines[first][: statement.col_offset].strip():
                continue  # something else starts the line (``x = 1; y``)
            if lines[last][statement.end_col_offset or 0 :].strip():
                continue  # something else ends it (a comment, ``; y``)
            found.append(Hole(module, node.name, first, last))
        if found:
            # One hole per function keeps the set spread over many functions.
            digest = hashlib.sha256(f"{module}:{node.name}:{node.lineno}".encode()).digest()
            holes.append(found[digest[0] % len(found)])
    return sorted(holes, key=lambda hole: hole.first)


HUMANEVAL_ID_PREFIX = "MultiLineInfilling/HumanEvalOwn"
#: HumanEval holes: 2 to 7 whole lines, as the issue's held-out set has them.
HUMANEVAL_MAX_LINES = 7


def humaneval_records(singleline: Path) -> list[dict[str, Any]]:
    """One whole-line hole of 2 to 7 lines in each HumanEval solution, scored by its tests.

    The solution is rebuilt from the task's first SingleLine record (its prompt ends with
    one blank line too many). Length and place are picked by a hash of the task id, so
    the set is the same on every run; first and last lines of a hole are not blank.
    """
    first_records: dict[str, dict[str, Any]] = {}
    for item in read_records(singleline):
        task = item["task_id"].split("/")
        if task[-1] == "L0":
            first_records["/".join(task[1:3])] = item
    records = []
    for name, item in first_records.items():
        header = item["prompt"]
        if header.endswith("\n\n"):
            header = header[:-1]
        body = (item["canonical_solution"] + item["suffix"]).rstrip("\n").split("\n")
        digest = hashlib.sha256(name.encode()).digest()
        size = MIN_LINES + digest[0] % (HUMANEVAL_MAX_LINES - MIN_LINES + 1)
        spans = [
            (start, start + count - 1)
            for count in range(min(size, len(body)), MIN_LINES - 1, -1)
            for start in range(len(body) - count + 1)
            if body[start].strip() and body[start + count - 1].strip()
        ]
        if not spans:
            continue
        longest = [span for span in spans if span[1] - span[0] == spans[0][1] - spans[0][0]]
        first, last = longest[digest[1] % len(longest)]
        records.append(
            {
                "task_id": f"{HUMANEVAL_ID_PREFIX}/{name.split('/')[-1]}/L{first}_L{last}",
                "entry_point": item["entry_point"],
                "prompt": header + "".join(line + "\n" for line in body[:first]),
                "suffix": "\n".join(body[last + 1 :]) + "\n",
                "canonical_solution": "".join(line + "\n" for line in body[first : last + 1]),
                "test": item["test"],
                "lines": last - first + 1,
            }
        )
    return records


def _top_level_starts(tree: ast.Module) -> list[int]:
    starts = []
    for node in tree.body:
        decorators = getattr(node, "decorator_list", []) or []
        starts.append(min([node.lineno, *(d.lineno for d in decorators)]) - 1)
    return starts


def record(source: str, hole: Hole, number: int) -> dict[str, Any]:
    """One HumanEval-shaped record: the text around the hole, and the hole."""
    lines = source.split("\n")
    starts = _top_level_starts(ast.parse(source))
    begin = max([start for start in starts if start <= max(0, hole.first - CONTEXT_BEFORE)], default=0)
    after = [start for start in starts if start > hole.last + CONTEXT_AFTER]
    end = after[0] if after else len(lines)
    prompt = "\n".join(lines[begin : hole.first]) + "\n"
    canonical = "\n".join(lines[hole.first : hole.last + 1]) + "\n"
    suffix = "\n".join(lines[hole.last + 1 : end])
    return {
        "task_id": f"{ID_PREFIX}/{hole.module}/{hole.function}/{number}",
        "entry_point": "",
        "prompt": prompt,
        "suffix": suffix,
        "canonical_solution": canonical,
        "test": "",
        "scoring": "match",
        "lines": hole.last - hole.first + 1,
    }


def build(target: Path, out: Path, per_package: int) -> int:
    """Install the packages into ``target``, cut the holes, write them to ``out``; their number.

    At most ``per_package`` holes from each package, evenly spaced over its candidates,
    so that no one package's style dominates the set.
    """
    install(target)
    by_package: dict[str, list[tuple[str, Hole]]] = {}
    for path in _modules(target):
        source = path.read_text(encoding="utf-8")
        module = path.relative_to(target).as_posix()
        package = module.split("/", 1)[0].removesuffix(".py")
        by_package.setdefault(package, []).extend((source, hole) for hole in candidates(source, module))
    records: list[dict[str, Any]] = []
    for package in sorted(by_package):
        found = by_package[package]
        step = max(1.0, len(found) / per_package)
        for index in range(min(per_package, len(found))):
            source, hole = found[int(index * step)]
            records.append(record(source, hole, len(records)))
    opener = gzip.open if out.suffix == ".gz" else open
    with opener(out, "wt", encoding="utf-8") as handle:
        for item in records:
            handle.write(json.dumps(item) + "\n")
    return len(records)


# ---------------------------------------------------------------------- scoring
def rescore(results: Path, dataset: Path, system: str) -> dict[str, Any]:
    """Score a ``bench quality`` results file's completions against ``dataset`` by match."""
    opener = gzip.open if dataset.suffix == ".gz" else open
    with opener(dataset, "rt", encoding="utf-8") as handle:
        canonical = {r["task_id"]: r["canonical_solution"] for r in map(json.loads, handle) if r}
    scored = []
    with open(results, encoding="utf-8") as handle:
        for line in handle:
            item = json.loads(line)
            if item.get("system") != system or item.get("task_id") not in canonical:
                continue
            scored.append(score_match(item["completion"], canonical[item["task_id"]]))
    return summarize_match(scored)


# ---------------------------------------------------------------------- latency
def first_line_latency(
    dataset: Path, every: int, options: dict[str, Any], model: str | None
) -> dict[str, Any]:
    """When the first line of a multi-line answer is ready, against the whole answer.

    In process, through ``fim``'s public API (the engine and the completion pipeline):
    each hole's document is planned as the daemon plans it and generated under the same
    stop rules; the time from the request to the first complete non-blank line, and to
    the end, is taken for every answer that shows more than one line. An editor that
    showed the first line as soon as it is complete would wait the first figure. There is
    no time budget, so the ratio of the two holds on a busy machine too.
    """
    import threading
    import time

    from fim import models
    from fim.config import derive, engine_config
    from fim.context import Document
    from fim.llama import LlamaEngine
    from fim.llama.log import quiet_llama
    from fim.pipeline import CompletionPipeline
    from fim.postprocess import StreamFilter

    quiet_llama()
    config = msgspec_convert(options)
    engine = LlamaEngine(engine_config(config, str(models.resolve(model or config.model, fetch=False))))
    pipeline = CompletionPipeline(engine, derive(config))
    samples: list[dict[str, Any]] = []
    for task in select(load_tasks(dataset), languages=None, every=every, limit=None):
        text, cursor = task.document()
        plan = pipeline.plan(
            Document(f"file:///latency/{task.filename}", text, "python"), cursor, invoked=True
        )
        if plan.skip_reason is not None:
            continue
        plan.request.time_budget_ms = None  # the whole answer, however busy the machine is
        stream = StreamFilter(plan.context, mode=plan.mode)
        lead = plan.lead
        started = time.perf_counter()
        first_line_ms: list[float] = []

        def on_text(
            raw: str,
            stream: StreamFilter = stream,
            marks: list[float] = first_line_ms,
            since: float = started,
            lead: str = lead,
        ) -> bool:
            if not marks and "\n" in raw.lstrip():
                marks.append((time.perf_counter() - since) * 1000)
            return stream.should_stop(lead + raw)

        result = engine.complete(plan.request, threading.Event(), on_text)
        total_ms = (time.perf_counter() - started) * 1000
        shown = stream.finish(lead + result.text)
        if shown.strip().count("\n") >= 1 and first_line_ms:
            samples.append(
                {
                    "task_id": task.id,
                    "first_line_ms": round(first_line_ms[0], 1),
                    "total_ms": round(total_ms, 1),
                    "prefill_ms": round(result.stats.prefill_ms, 1),
                    "lines": shown.strip().count("\n") + 1,
                    "tokens": result.stats.tokens_generated,
                }
            )
    engine.close()

    def median(key: str) -> float | None:
        values = sorted(float(sample[key]) for sample in samples)
        return values[len(values) // 2] if values else None

    return {
        "multi_line_answers": len(samples),
        "median_first_line_ms": median("first_line_ms"),
        "median_total_ms": median("total_ms"),
        "median_prefill_ms": median("prefill_ms"),
        "median_lines": median("lines"),
        "samples": samples,
    }


@dataclass(frozen=True)
class Suite:
    """One dataset of an ``evaluate`` run: every ``every``-th task, its results file."""

    dataset: Path
    every: int
    languages: list[str] | None
    results: Path

    @classmethod
    def parse(cls, spec: str, results_dir: Path) -> Suite:
        """``FILE[:EVERY[:LANG]]``; results go to ``results_dir/<file stem>[-every][-lang].jsonl``."""
        path, _, rest = spec.partition(":")
        every, _, language = rest.partition(":")
        stem = Path(path).name.split(".")[0]
        name = "-".join(part for part in (stem, f"every{every}" if every else "", language) if part)
        return cls(
            Path(path), int(every or 1), [language] if language else None, results_dir / f"{name}.jsonl"
        )


def _resume(suite: Suite, options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The results ``suite.results`` holds already (a new file starts with the run's meta)."""
    meta = {"dataset": suite.dataset.name, "options": options, "every": suite.every, "time_budget": None}
    if not suite.results.exists():
        suite.results.write_text(json.dumps({"meta": meta}) + "\n")
        return {}
    lines = [json.loads(line) for line in suite.results.read_text().splitlines() if line.strip()]
    if not lines or lines[0].get("meta") != meta:
        raise SystemExit(f"{suite.results} holds results of another run; remove it or pick another path")
    return {record["task_id"]: record for record in lines[1:]}


def _interleaved(queues: list[list[Any]]) -> Iterator[tuple[int, Any]]:
    """The items of all queues, each queue's in order, the queues advancing at the same pace.

    A run stopped at any point has done the same share of every suite: the figures of
    a run cut short by the clock are still before/after comparable, suite by suite.
    """
    positions = sorted(
        ((index + 0.5) / len(queue), number, index)
        for number, queue in enumerate(queues)
        for index in range(len(queue))
    )
    for _, number, index in positions:
        yield number, queues[number][index]


def evaluate(
    suites: list[Suite],
    options: dict[str, Any],
    model: str | None,
    timeout: float = 10.0,
) -> list[dict[str, Any]]:
    """Quality in process, without a time budget: the same figures as ``bench quality``.

    Each task is planned and generated through ``fim``'s completion pipeline as the
    daemon does it, but the request has no time budget, so a busy machine slows the run
    down without cutting answers short. Scores are ``bench quality``'s. The suites'
    tasks are interleaved (``_interleaved``); per-task results go to each suite's
    results file (JSON lines, resumed by task id when the options are the same).
    """
    import threading
    import time

    from fim import models
    from fim.config import derive, engine_config
    from fim.context import Document
    from fim.llama import LlamaEngine
    from fim.llama.log import quiet_llama
    from fim.pipeline import CompletionPipeline
    from harness.client import language_id_for
    from harness.quality.bench import summarize
    from harness.quality.tasks import Answer, first_line_only, score_task

    done = [_resume(suite, options) for suite in suites]
    queues = [select(load_tasks(s.dataset), languages=s.languages, every=s.every, limit=None) for s in suites]
    quiet_llama()
    config = msgspec_convert(options)
    engine = LlamaEngine(engine_config(config, str(models.resolve(model or config.model, fetch=False))))
    pipeline = CompletionPipeline(engine, derive(config))
    total = sum(map(len, queues))
    for count, (number, task) in enumerate(_interleaved(queues), 1):
        if task.id in done[number]:
            continue
        text, cursor = task.document()
        plan = pipeline.plan(
            Document(f"file:///evaluate/{task.filename}", text, language_id_for(task.filename)),
            cursor,
            invoked=True,
        )
        started = time.perf_counter()
        completion, stats = "", {}
        if plan.skip_reason is None:
            plan.request.time_budget_ms = None
            generation = pipeline.run(plan, threading.Event())
            completion = generation.text
            stats = {
                "tokens_evaluated": generation.stats.tokens_evaluated,
                "tokens_generated": generation.stats.tokens_generated,
                "stop_reason": generation.stats.stop_reason,
                "mode": plan.mode.value,
            }
        elapsed = (time.perf_counter() - started) * 1000
        line_prefix = text[text.rfind("\n", 0, cursor) + 1 : cursor]
        single = first_line_only(completion, line_prefix)
        answer = Answer(
            completion=completion,
            document=text[:cursor] + completion + text[cursor:],
            first_line_document=text[:cursor] + single + text[cursor:],
            elapsed_ms=elapsed,
            stats=stats,
        )
        record = {
            "system": "ours",
            "task_id": task.id,
            "language": task.language,
            "completion": completion,
            "elapsed_ms": round(elapsed, 1),
            **score_task(task, answer, timeout),
            "stats": stats,
        }
        done[number][task.id] = record
        with open(suites[number].results, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if count % 10 == 0:
            print(f"  {count}/{total} tasks", file=sys.stderr, flush=True)
    engine.close()
    return [
        {
            "dataset": str(suite.dataset),
            "every": suite.every,
            "options": options,
            **summarize(records, queue[0].suite),
        }
        for suite, queue, finished in zip(suites, queues, done, strict=True)
        for records in [[finished[task.id] for task in queue if task.id in finished]]
    ]


def msgspec_convert(options: dict[str, Any]) -> Any:
    """A ``Config`` from wire options (camelCase), as the daemon reads them."""
    from fim.config import parse

    config, problems = parse({**QUALITY_DEFAULTS, **options})
    if problems:
        raise SystemExit("; ".join(str(problem) for problem in problems))
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.quality.multiline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="install the packages into a scratch folder and cut the holes")
    make.add_argument("--out", type=Path, required=True, help="the .jsonl(.gz) file to write")
    make.add_argument("--packages", type=Path, default=None, help="scratch folder (default: a temporary one)")
    make.add_argument("--per-package", type=int, default=40, help="at most this many holes per package")
    human = commands.add_parser("humaneval", help="whole-line holes of 2-7 lines in HumanEval's solutions")
    human.add_argument("--out", type=Path, required=True, help="the .jsonl(.gz) file to write")
    human.add_argument(
        "--singleline",
        type=Path,
        default=SHARED_DATA / "HumanEval-SingleLineInfilling.jsonl.gz",
        help="HumanEval-SingleLineInfilling.jsonl.gz",
    )
    again = commands.add_parser("score", help="re-score a bench quality results file by match")
    again.add_argument("results", type=Path)
    again.add_argument("--dataset", type=Path, required=True)
    again.add_argument("--system", default="ours", help="ours or peer")
    timing = commands.add_parser("latency", help="first line against the whole answer, in process")
    timing.add_argument("--dataset", type=Path, required=True)
    timing.add_argument("--every", type=int, default=8)
    timing.add_argument("--model", default=None)
    timing.add_argument("--options", default="{}", help="daemon options as JSON (camelCase)")
    run = commands.add_parser("evaluate", help="bench quality's figures in process, without a time budget")
    run.add_argument(
        "--suite",
        action="append",
        required=True,
        help="FILE[:EVERY[:LANG]] (repeat it: the suites' tasks are interleaved); LANG: py, java, js",
    )
    run.add_argument("--model", default=None)
    run.add_argument("--options", default="{}", help="daemon options as JSON (camelCase)")
    run.add_argument("--results", type=Path, required=True, help="folder of per-suite results (resumable)")
    args = parser.parse_args(argv)
    if args.command == "evaluate":
        args.results.mkdir(parents=True, exist_ok=True)
        suites = [Suite.parse(spec, args.results) for spec in args.suite]
        print(json.dumps(evaluate(suites, json.loads(args.options), args.model), indent=2))
        return 0
    if args.command == "latency":
        figures = first_line_latency(args.dataset, args.every, json.loads(args.options), args.model)
        print(json.dumps(figures, indent=2))
        return 0
    if args.command == "humaneval":
        made = humaneval_records(args.singleline)
        opener = gzip.open if args.out.suffix == ".gz" else open
        with opener(args.out, "wt", encoding="utf-8") as handle:
            for item in made:
                handle.write(json.dumps(item) + "\n")
        print(f"{len(made)} holes written to {args.out}")
        return 0
    if args.command == "build":
        if args.packages is not None:
            count = build(args.packages, args.out, args.per_package)
        else:
            with tempfile.TemporaryDirectory(prefix="fim-multiline-") as scratch:
                count = build(Path(scratch), args.out, args.per_package)
        print(f"{count} holes written to {args.out}")
        return 0
    print(json.dumps(rescore(args.results, args.dataset, args.system), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
