"""The quality datasets as editor documents, and how an answer to one is scored.

HumanEval-infilling and SantaCoder-FIM (Qwen's hm_fim) records become ``Task`` s: a
document (prompt + suffix) with the cursor at the hole. Where the benchmark's hole is
whole lines (SingleLine, MultiLine) the document gets an empty line there, as the user
would open one before typing; random spans are cut mid-line and stay as they are.

* HumanEval-infilling: ``prompt + completion + suffix + test + check(entry_point)`` runs
  in the sandbox (``harness.quality.sandbox``): pass@1, and the same for the
  suggestion's first line alone.
* SantaCoder-FIM: the first generated line (after one leading newline) must equal the
  canonical solution's first line, both stripped, as Qwen's ``humaneval_fim.py`` scores it.
* Whole-line holes scored by match (records with ``"scoring": "match"``, such as the
  PyPI multi-line set of ``harness.quality.multiline``): exact match and edit similarity
  of the whole suggestion against the hole, and of its first line.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.quality.sandbox import run_program
from harness.report import edit_similarity, normalize_code
from harness.runner import BenchError

EXTENSIONS = {"py": ".py", "python": ".py", "java": ".java", "js": ".js", "javascript": ".js"}
LINE_HOLES = ("SingleLineInfilling", "MultiLineInfilling")


@dataclass(frozen=True)
class Task:
    id: str
    suite: str  # humaneval | santacoder | lines (whole-line holes scored by match)
    language: str  # py | java | js
    prompt: str
    suffix: str
    canonical: str
    test: str = ""
    entry_point: str = ""

    @property
    def opens_line(self) -> bool:
        return (
            self.suite in ("humaneval", "lines")
            and self.id.startswith(LINE_HOLES)
            and self.prompt.endswith("\n")
        )

    def document(self, qwen_layout: bool = False) -> tuple[str, int]:
        """The editor's text and cursor offset for this task.

        SantaCoder-FIM holes are whole lines, but the data drops the line breaks around
        them ("...if x:" + "        y = 1" + "        z = 2"). An editor has the line:
        the cursor goes on an empty line between the prompt's last line and the
        suffix's first. ``qwen_layout`` instead joins prompt and suffix as they are,
        with the cursor between them, as Qwen's evaluation script feeds the model.
        """
        if self.opens_line:
            return self.prompt + "\n" + self.suffix, len(self.prompt)
        if self.suite == "santacoder" and not qwen_layout:
            before = self.prompt if self.prompt.endswith("\n") else self.prompt + "\n"
            after = self.suffix if self.suffix.startswith("\n") else "\n" + self.suffix
            return before + after, len(before)
        return self.prompt + self.suffix, len(self.prompt)

    @property
    def filename(self) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.id).strip("_")
        return safe + EXTENSIONS.get(self.language, ".txt")


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def load_tasks(path: Path) -> list[Task]:
    tasks = []
    for record in read_records(path):
        if "task_id" in record and "entry_point" in record:
            tasks.append(
                Task(
                    id=record["task_id"],
                    suite="lines" if record.get("scoring") == "match" else "humaneval",
                    language="py",
                    prompt=record["prompt"],
                    suffix=record["suffix"],
                    canonical=record["canonical_solution"],
                    test=record["test"],
                    entry_point=record["entry_point"],
                )
            )
        elif "name" in record and "language" in record:
            tasks.append(
                Task(
                    id=f"{record['language']}/{record['name']}",
                    suite="santacoder",
                    language=record["language"],
                    prompt=record["prompt"],
                    suffix=record["suffix"],
                    canonical=record["canonical_solution"],
                )
            )
        else:
            raise BenchError(f"{path}: unknown record shape (keys {sorted(record)[:8]})")
    # SantaCoder-FIM repeats some names with different holes: keep ids unique.
    seen: dict[str, int] = {}
    unique = []
    for task in tasks:
        count = seen.get(task.id, 0)
        seen[task.id] = count + 1
        unique.append(task if count == 0 else Task(**{**task.__dict__, "id": f"{task.id}#{count}"}))
    return unique


def select(tasks: list[Task], *, languages: list[str] | None, every: int, limit: int | None) -> list[Task]:
    chosen = [task for task in tasks if not languages or task.language in languages]
    chosen = chosen[:: max(1, every)]
    return chosen[:limit] if limit else chosen


def first_line_santacoder(completion: str) -> str:
    """Qwen's rule: skip one leading newline (or space-newline), keep the next line."""
    if completion.startswith("\n") or completion.startswith(" \n"):
        parts = completion.split("\n")
        return parts[1] if len(parts) > 1 else ""
    return completion.split("\n")[0]


def first_line_only(completion: str, line_prefix: str) -> str:
    """The completion cut to one line; at a line start a leading newline is skipped."""
    if not line_prefix.strip():
        completion = completion.lstrip("\n")
    return completion.split("\n")[0]


def humaneval_program(document: str, task: Task) -> str:
    return f"{document}\n{task.test}\n\ncheck({task.entry_point})\n"


@dataclass(frozen=True)
class Answer:
    """One system's answer to a task, as the editor would apply it."""

    completion: str  # the text added after the cursor
    document: str  # the document after accepting all of it
    first_line_document: str  # ... after accepting its first line only
    elapsed_ms: float
    stats: dict[str, Any]


def score_task(task: Task, answer: Answer, timeout: float) -> dict[str, Any]:
    """Scores one answer; pure apart from running the sandbox."""
    if task.suite == "lines":
        return score_match(answer.completion, task.canonical)
    if task.suite == "santacoder":
        line = first_line_santacoder(answer.completion).strip()
        want = task.canonical.split("\n")[0].strip()
        return {
            "exact_match": bool(line) and line == want,
            "edit_similarity": round(edit_similarity(line, want), 4),
            "first_line": line,
        }
    outcome = run_program(humaneval_program(answer.document, task), timeout=timeout)
    if answer.first_line_document == answer.document:
        first = outcome
    else:
        first = run_program(humaneval_program(answer.first_line_document, task), timeout=timeout)
    return {
        "passed": outcome.passed,
        "status": outcome.status,
        "detail": outcome.detail,
        "first_line_passed": first.passed,
    }


def score_match(completion: str, canonical: str) -> dict[str, Any]:
    """Exact match and edit similarity of the whole hole, and of its first line."""
    got = normalize_code(completion.lstrip("\n"))
    want = normalize_code(canonical)
    got_first = got.split("\n", 1)[0].strip()
    want_first = want.split("\n", 1)[0].strip()
    return {
        "exact_match": bool(got) and got == want,
        "edit_similarity": round(edit_similarity(got, want), 4),
        "first_line_match": bool(got_first) and got_first == want_first,
        "lines_shown": got.count("\n") + 1 if got else 0,
        "lines_wanted": want.count("\n") + 1,
    }


def summarize_match(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Rates over scored records: exact match, mean edit similarity, first-line match, line counts."""
    count = len(records)
    if not count:
        return {"tasks": 0}

    def mean(key: str) -> float:
        return round(sum(float(r[key]) for r in records) / count, 4)

    return {
        "tasks": count,
        "exact_match": round(sum(r["exact_match"] for r in records) / count, 4),
        "edit_similarity": mean("edit_similarity"),
        "first_line_match": round(sum(r["first_line_match"] for r in records) / count, 4),
        "fewer_lines": sum(1 for r in records if r["lines_shown"] < r["lines_wanted"]),
        "mean_lines_shown": mean("lines_shown"),
        "mean_lines_wanted": mean("lines_wanted"),
    }
