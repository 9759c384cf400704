"""Keystroke traces: the format, an editor-state model to replay them, and the generator.

A trace is a starting file plus events, each after a delay: ``goto`` moves the cursor,
``type`` is one keystroke, ``delete`` removes the text from the cursor to a position (a
selection deleted at once), ``insert`` pastes or accepts text in one change, and
``pause`` is where the user stops and waits for a suggestion; it carries the real
continuation of the code at that point (``expected``), so a replay can score what it
was shown. Lines are 0-based and columns count code points; the replayer converts them
to LSP positions.

``make_trace`` turns any source file into a trace: it picks real lines (and some block
bodies), deletes what follows a kept start, types a few characters of the missing text
at 80–200 ms per key, pauses, then accepts the rest so the file is whole again before
the next hole. A seed makes it reproducible.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.client import language_id_for

FORMAT = "fim-lsp-trace/1"
Op = Literal["goto", "type", "delete", "insert", "pause"]
KEY_DELAY_MS = (80, 200)
PAUSE_MS = (1500, 3000)
THINK_MS = (500, 1200)
BLOCK_OPENERS = (":", "{")
COMMENT_START = ("#", "//", "/*", "*", '"""', "'''")


@dataclass
class Event:
    op: Op
    delay_ms: int = 0
    text: str = ""  # type / insert
    line: int = 0  # goto target, delete end
    column: int = 0
    ms: int = 0  # pause length
    expected: str = ""  # pause: the real continuation from the cursor
    kind: str = ""  # pause: "line" or "block"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"op": self.op, "delay_ms": self.delay_ms}
        if self.op in ("type", "insert"):
            data["text"] = self.text
        if self.op in ("goto", "delete"):
            data["line"], data["column"] = self.line, self.column
        if self.op == "pause":
            data.update(ms=self.ms, expected=self.expected, kind=self.kind)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        if data.get("op") not in ("goto", "type", "delete", "insert", "pause"):
            raise ValueError(f"unknown trace event: {data!r}")
        return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})


@dataclass
class Trace:
    name: str
    filename: str  # the document's file name; its extension picks the language
    language_id: str
    text: str  # the file when the replay starts
    events: list[Event] = field(default_factory=list)
    source: str | None = None
    seed: int | None = None

    @property
    def pauses(self) -> int:
        return sum(1 for event in self.events if event.op == "pause")

    def to_json(self) -> dict[str, Any]:
        data = {key: value for key, value in asdict(self).items() if key != "events"}
        return {"format": FORMAT, **data, "events": [event.to_json() for event in self.events]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trace:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} trace (format={data.get('format')!r})")
        return cls(
            name=data["name"],
            filename=data["filename"],
            language_id=data.get("language_id") or language_id_for(data["filename"]),
            text=data["text"],
            events=[Event.from_json(event) for event in data["events"]],
            source=data.get("source"),
            seed=data.get("seed"),
        )

    def save(self, path: Path | str) -> None:
        Path(path).write_text(
            json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )


def load_trace(path: Path | str) -> Trace:
    return Trace.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


def offset_of(text: str, line: int, column: int) -> int:
    """Code-point offset of (line, column), clamped to the line."""
    start = 0
    for _ in range(line):
        newline = text.find("\n", start)
        if newline < 0:
            return len(text)
        start = newline + 1
    end = text.find("\n", start)
    end = len(text) if end < 0 else end
    return min(start + column, end)


@dataclass
class Change:
    """One document edit in code-point offsets of the text *before* it."""

    start: int
    end: int
    text: str


class EditorState:
    """The text and cursor of the replayed editor; ``apply`` says what changed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.cursor = 0

    def apply(self, event: Event) -> Change | None:
        if event.op == "goto":
            self.cursor = offset_of(self.text, event.line, event.column)
            return None
        if event.op in ("type", "insert"):
            change = Change(self.cursor, self.cursor, event.text)
        elif event.op == "delete":
            end = offset_of(self.text, event.line, event.column)
            start, end = min(self.cursor, end), max(self.cursor, end)
            change = Change(start, end, "")
        else:
            return None
        self.text = self.text[: change.start] + change.text + self.text[change.end :]
        self.cursor = change.start + len(change.text)
        return change

    @property
    def line_prefix(self) -> str:
        return self.text[self.text.rfind("\n", 0, self.cursor) + 1 : self.cursor]


# ---------------------------------------------------------------------- generator
@dataclass(frozen=True)
class Hole:
    line: int  # first line of the hole
    column: int  # where the missing text starts on that line
    end_line: int
    end_column: int
    kind: str  # "line" or "block"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _is_code(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith(COMMENT_START) and bool(re.search(r"\w", stripped))


def line_holes(lines: list[str], rng: random.Random) -> list[Hole]:
    holes = []
    for number, line in enumerate(lines):
        if number == 0 or not _is_code(line) or len(line.strip()) < 8:
            continue
        start = _indent(line)
        content = line[start:]
        # Keep a word-aligned start of the line some of the time, as when a user fixes
        # the end of a statement; otherwise the whole line (after the indentation) goes.
        keep = 0
        if rng.random() < 0.5:
            bounds = [match.end() for match in re.finditer(r"\W", content[: len(content) // 2])]
            if bounds:
                keep = rng.choice(bounds)
        if len(content[keep:].strip()) < 4:
            keep = 0
        holes.append(Hole(number, start + keep, number, len(line), "line"))
    return holes


def block_holes(lines: list[str]) -> list[Hole]:
    holes = []
    for number, line in enumerate(lines):
        if not _is_code(line) or not line.rstrip().endswith(BLOCK_OPENERS):
            continue
        opener_indent = _indent(line)
        body: list[int] = []
        for follower in range(number + 1, len(lines)):
            text = lines[follower]
            if text.strip() and _indent(text) <= opener_indent:
                break
            body.append(follower)
        while body and not lines[body[-1]].strip():
            body.pop()
        code_lines = [index for index in body if lines[index].strip()]
        if not (2 <= len(code_lines) <= 6) or not lines[body[0]].strip():
            continue
        first, last = body[0], body[-1]
        holes.append(Hole(first, _indent(lines[first]), last, len(lines[last]), "block"))
    return holes


def choose_holes(text: str, count: int, rng: random.Random, block_share: float = 0.3) -> list[Hole]:
    """Up to ``count`` non-overlapping holes, spread over the file, in file order."""
    lines = text.split("\n")
    blocks = block_holes(lines)
    singles = line_holes(lines, rng)
    want_blocks = min(len(blocks), round(count * block_share))
    picked: list[Hole] = []

    def free(hole: Hole) -> bool:
        # Two lines of untouched code between holes: each hole is its own little edit.
        return all(hole.end_line + 2 < other.line or other.end_line + 2 < hole.line for other in picked)

    for pool, limit in ((blocks, want_blocks), (singles, count)):
        candidates = list(pool)
        rng.shuffle(candidates)
        for hole in candidates:
            if len(picked) >= count or limit <= 0:
                break
            if free(hole):
                picked.append(hole)
                limit -= 1
    return sorted(picked, key=lambda hole: hole.line)


def make_trace(
    text: str,
    filename: str,
    *,
    seed: int,
    holes: int = 8,
    name: str | None = None,
    source: str | None = None,
) -> Trace:
    """A replayable trace of someone re-typing parts of ``text``; the same seed, the same trace."""
    rng = random.Random(seed)
    trace = Trace(
        name=name or Path(filename).stem,
        filename=Path(filename).name,
        language_id=language_id_for(filename),
        text=text,
        source=source,
        seed=seed,
    )
    for hole in choose_holes(text, holes, rng):
        start = offset_of(text, hole.line, hole.column)
        end = offset_of(text, hole.end_line, hole.end_column)
        missing = text[start:end]
        # Type a few characters of the missing text, always leaving some to predict.
        most = max(1, min(6, len(missing.split("\n", 1)[0]) - 3))
        typed = missing[: rng.randint(1, most)]
        events = trace.events
        events.append(Event("goto", delay_ms=rng.randint(*THINK_MS), line=hole.line, column=hole.column))
        events.append(
            Event("delete", delay_ms=rng.randint(300, 600), line=hole.end_line, column=hole.end_column)
        )
        for index, char in enumerate(typed):
            delay = rng.randint(*THINK_MS) if index == 0 else rng.randint(*KEY_DELAY_MS)
            events.append(Event("type", delay_ms=delay, text=char))
        events.append(
            Event(
                "pause",
                ms=rng.randint(*PAUSE_MS),
                expected=missing[len(typed) :],
                kind=hole.kind,
            )
        )
        # Accepting (or pasting) the rest restores the real file for the next hole.
        events.append(Event("insert", delay_ms=rng.randint(150, 400), text=missing[len(typed) :]))
    return trace


def final_text(trace: Trace) -> str:
    state = EditorState(trace.text)
    for event in trace.events:
        state.apply(event)
    return state.text


def main(argv: list[str]) -> int:
    """``fim-lsp bench make-trace SOURCE --seed N -o TRACE``."""
    parser = argparse.ArgumentParser(
        prog="fim-lsp bench make-trace",
        description="Turn a source file into a keystroke trace for `fim-lsp bench latency`.",
    )
    parser.add_argument("source", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holes", type=int, default=8, help="how many places to re-type (default 8)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--name", default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write a summary of the trace here")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        print(f"make-trace: no such file: {args.source}", file=sys.stderr)
        return 2
    text = args.source.read_text(encoding="utf-8")
    trace = make_trace(
        text, args.source.name, seed=args.seed, holes=args.holes, name=args.name, source=str(args.source)
    )
    if final_text(trace) != text:
        print("make-trace: internal error: the trace does not restore the file", file=sys.stderr)
        return 1
    trace.save(args.output)
    summary = {
        "trace": str(args.output),
        "source": str(args.source),
        "seed": args.seed,
        "pauses": trace.pauses,
        "events": len(trace.events),
        "keystrokes": sum(1 for event in trace.events if event.op == "type"),
        "kinds": [event.kind for event in trace.events if event.op == "pause"],
    }
    if args.json:
        from harness.report import write_json

        write_json(args.json, summary)
    print(
        f"{args.output}: {summary['pauses']} pauses, {summary['keystrokes']} keystrokes "
        f"({', '.join(summary['kinds'])})"
    )
    return 0
