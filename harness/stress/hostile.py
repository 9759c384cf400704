"""``fim-lsp bench hostile``: documents no one should have to complete in, timed.

The documents (``hostile_documents``): a 50 MB Python file, a 5 MB single-line
minified JavaScript file, a binary file opened as text (as plain text and as Python),
a file mixing CRLF and LF line ends, a file with a 100,000-character line, and 1 MB of
``(`` (Python and JavaScript); a normal source file is the yardstick.

Two measurements for each:

* over LSP, a real daemon with the real model: opening it (``didOpen`` until a
  ``fim/status`` sent after it is answered), an invoked completion at its end, middle
  and start, then ten keystrokes in the middle (each a ``didChange`` and an automatic
  inline request, 30 ms apart, the previous one cancelled) and the answer for the last;
* in process, with the model's real tokenizer: building the context for one keystroke
  at the document's full size and at a quarter of it. Four times the text costing about
  four times as much or less is linear or better; sixteen times would be quadratic.

Every request must be answered and the daemon must stay up.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.report import emit_report, machine, markdown_table, round_or_none
from harness.runner import ROOT, add_common_options, our_options
from harness.stress.wire import RawConnection

NORMAL_SOURCE = ROOT / "fixtures" / "src" / "inventory.py"
KEYSTROKES = 10
KEYSTROKE_GAP_S = 0.03
ANSWER_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class HostileDocument:
    name: str
    language_id: str
    #: Makes the text at a scale: 1.0 is the size the issue names.
    make: Callable[[float], str]

    def text(self, scale: float = 1.0) -> str:
        return self.make(scale)


def _normal(_scale: float) -> str:
    return NORMAL_SOURCE.read_text(encoding="utf-8")


def _repeat_to(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _big_python(scale: float) -> str:
    return _repeat_to(NORMAL_SOURCE.read_text(encoding="utf-8"), int(50_000_000 * scale))


def _minified_js(scale: float) -> str:
    unit = 'var a=function(b,c){return b*2+c.length},d={"k":"v\\"q",n:[1,2,3]};if(a(1,"x")>2){d.n.push(4)}'
    return _repeat_to(unit, int(5_000_000 * scale))


def _binary(scale: float) -> str:
    # What an editor shows for a binary file: invalid bytes as U+FFFD, NULs and
    # control characters as they are.
    data = random.Random(14).randbytes(int(2_000_000 * scale))
    return data.decode("utf-8", errors="replace")


def _mixed_line_ends(scale: float) -> str:
    lines = NORMAL_SOURCE.read_text(encoding="utf-8").split("\n")
    count = int(10_000 * scale)
    return "".join(lines[index % len(lines)] + ("\r\n" if index % 3 else "\n") for index in range(count))


def _long_line(scale: float) -> str:
    source = NORMAL_SOURCE.read_text(encoding="utf-8")
    table = ", ".join(f"0x{index % 256:02x}" for index in range(int(16_700 * scale)))
    return f"{source}TABLE = [{table}]\n{source}"


def _parens(scale: float) -> str:
    return "(" * int(1_000_000 * scale)


DOCUMENTS = (
    HostileDocument("normal file (yardstick)", "python", _normal),
    HostileDocument("50 MB Python file", "python", _big_python),
    HostileDocument("5 MB minified JS line", "javascript", _minified_js),
    HostileDocument("binary opened as text", "plaintext", _binary),
    HostileDocument("binary opened as Python", "python", _binary),
    HostileDocument("mixed CRLF/LF", "python", _mixed_line_ends),
    HostileDocument("100,000-char line", "python", _long_line),
    HostileDocument("1 MB of ( (Python)", "python", _parens),
    HostileDocument("1 MB of ( (JavaScript)", "javascript", _parens),
)


def hostile_documents() -> tuple[HostileDocument, ...]:
    return DOCUMENTS


# ---------------------------------------------------------------------- positions
def line_and_character(text: str, offset: int) -> tuple[int, int]:
    """The LSP position (UTF-16) of a string offset; line breaks as LSP counts them."""
    line = text.count("\n", 0, offset) + text.count("\r", 0, offset) - text.count("\r\n", 0, offset)
    start = max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
    piece = text[start:offset]
    return line, len(piece.encode("utf-16-le", "surrogatepass")) // 2


def end_of_line(text: str, offset: int) -> int:
    """The end of the line holding ``offset`` (before its line break)."""
    ends = [index for index in (text.find("\n", offset), text.find("\r", offset)) if index >= 0]
    return min(ends) if ends else len(text)


# ---------------------------------------------------------------------- over LSP
def _answer_ms(connection: RawConnection, request_id: Any) -> tuple[float | None, Any]:
    answer = connection.wait(request_id, ANSWER_TIMEOUT_S)
    sent = connection.sent_at(request_id)
    if answer is None or sent is None:
        return None, None
    return (answer.at - sent) * 1000, answer.result


def _suggestion(result: Any) -> str:
    if isinstance(result, dict):
        items = result.get("items") or []
        return str(items[0].get("insertText", "")) if items else ""
    return ""


def measure_over_lsp(
    connection: RawConnection, document: HostileDocument, index: int, scale: float = 1.0
) -> dict[str, Any]:
    text = document.text(scale)
    uri = f"file:///fim-hostile/{index}-{document.language_id}"
    row: dict[str, Any] = {"document": document.name, "chars": len(text)}
    started = time.perf_counter()
    connection.open(uri, text, document.language_id)
    ping = connection.request("fim/status", {})
    connection.wait(ping, ANSWER_TIMEOUT_S)
    row["open_ms"] = round((time.perf_counter() - started) * 1000, 1)
    unanswered = 0
    for where, offset in (
        ("end", len(text)),
        ("middle", end_of_line(text, len(text) // 2)),
        ("start", end_of_line(text, 0)),
    ):
        line, character = line_and_character(text, offset)
        latency, result = _answer_ms(connection, connection.inline(uri, line, character, invoked=True))
        unanswered += latency is None
        row[f"complete_{where}_ms"] = round_or_none(latency)
        row[f"complete_{where}_chars"] = len(_suggestion(result))
        # What the time went to: the prompt's tokens, evaluated or reused, and decoding.
        stats = connection.status().get("lastRequest") or {}
        row[f"complete_{where}_stats"] = {
            key: stats.get(key)
            for key in ("tokens_prompt", "tokens_reused", "tokens_evaluated", "prefill_ms", "decode_ms")
        }
    # Typing in the middle: as an editor, each keystroke cancels the request before it.
    offset = end_of_line(text, len(text) // 2)
    line, character = line_and_character(text, offset)
    version, previous, last = 1, None, None
    for step in range(KEYSTROKES):
        version += 1
        connection.change(uri, version, (line, character + step), (line, character + step), "x")
        if previous is not None:
            connection.cancel(previous)
        previous = last = connection.inline(uri, line, character + step + 1)
        time.sleep(KEYSTROKE_GAP_S)
    latency, _result = _answer_ms(connection, last)
    unanswered += latency is None
    row["last_keystroke_ms"] = round_or_none(latency)
    rss = connection.rss()
    row["rss_mb"] = round(rss / 2**20, 1) if rss else None
    connection.close_document(uri)
    row["unanswered"] = unanswered
    row["alive"] = connection.alive
    return row


# ---------------------------------------------------------------------- in process
def measure_context_scaling(document: HostileDocument, count_tokens: Callable[[str], int]) -> dict[str, Any]:
    """One keystroke's context at full size and at a quarter; their ratio."""
    from fim.context import Budgets, Document, build_context

    budgets = Budgets(prefix_tokens=1536, suffix_tokens=0)
    timings = {}
    for label, scale in (("quarter", 0.25), ("full", 1.0)):
        text = document.text(scale)
        doc = Document(f"file:///fim-hostile/scale-{label}", text, document.language_id)
        cursor = end_of_line(text, len(text) // 2)
        build_context(doc, cursor, budgets, count_tokens)  # the first one measures the document
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            doc.replace(cursor, cursor, "x")
            cursor += 1
            build_context(doc, cursor, budgets, count_tokens)
            samples.append((time.perf_counter() - started) * 1000)
        timings[label] = sorted(samples)[len(samples) // 2]
    ratio = timings["full"] / timings["quarter"] if timings["quarter"] > 0 else None
    return {
        "document": document.name,
        "keystroke_context_quarter_ms": round(timings["quarter"], 2),
        "keystroke_context_full_ms": round(timings["full"], 2),
        "growth_for_4x_text": round(ratio, 1) if ratio is not None else None,
    }


def hostile_session(
    options: dict[str, Any], model_path: str | None, scale: float = 1.0, scaling: bool = True
) -> dict[str, Any]:
    """The figures for every document at ``scale`` (1.0: the sizes the issue names)."""
    from fim import models
    from fim.llama.log import quiet_llama
    from fim.llama.vocabulary import open_vocabulary

    quiet_llama()

    scaled: list[dict[str, Any]] = []
    if scaling:
        path = model_path or str(
            models.resolve(str(options.get("model") or models.DEFAULT_MODEL), fetch=False)
        )
        with open_vocabulary(path) as vocabulary:
            scaled = [measure_context_scaling(document, vocabulary.count_tokens) for document in DOCUMENTS]
    connection = RawConnection()
    connection.start()
    try:
        connection.initialize_ready(options)
        rows = [
            measure_over_lsp(connection, document, index, scale) for index, document in enumerate(DOCUMENTS)
        ]
        # After all of them, a normal completion still works.
        after = measure_over_lsp(connection, DOCUMENTS[0], len(DOCUMENTS))
    finally:
        exit_code = connection.shutdown()
    return {
        "machine": machine(),
        "lsp": rows,
        "normal_after": after,
        "context_scaling": scaled,
        "crashes": 0 if exit_code == 0 else 1,
        "unanswered": sum(row["unanswered"] for row in rows) + after["unanswered"],
    }


def markdown(report: dict[str, Any]) -> str:
    scaling = {row["document"]: row for row in report["context_scaling"]}
    rows = []
    for row in report["lsp"]:
        scale = scaling.get(row["document"], {})
        rows.append(
            [
                row["document"],
                f"{row['chars']:,}",
                row["open_ms"],
                row["complete_end_ms"],
                row["complete_middle_ms"],
                row["complete_start_ms"],
                row["last_keystroke_ms"],
                scale.get("keystroke_context_full_ms"),
                scale.get("growth_for_4x_text"),
                row["unanswered"],
            ]
        )
    table = markdown_table(
        [
            "document",
            "chars",
            "open ms",
            "complete end ms",
            "middle ms",
            "start ms",
            "last of 10 keystrokes ms",
            "context per keystroke ms",
            "context growth for 4x text",
            "unanswered",
        ],
        rows,
    )
    return f"{table}\n\ncrashes: {report['crashes']}, unanswered: {report['unanswered']}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fim-lsp bench hostile", description=__doc__.split("\n\n")[0])
    add_common_options(parser)
    args = parser.parse_args(argv)
    options = {"timeBudgetMs": 4000, **our_options(args)}
    report = hostile_session(options, None)
    report["markdown"] = markdown(report)
    emit_report(args, report)
    return 0 if report["crashes"] == 0 and report["unanswered"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
