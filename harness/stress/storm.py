"""``fim-lsp bench storm``: 1,000 keystrokes a second on one document, for ten seconds.

Each keystroke is what an editor sends without debouncing: a ``didChange`` (one
character typed, or one deleted), an automatic inline request, and ``$/cancelRequest``
for the request before it. The text typed is a line of real code, typed and deleted
again and again, and the storm ends half-way through typing it, where the model has
something to complete.

Figures: keystrokes sent and the rate reached; requests answered, with a result or a
RequestCancelled error, and hung (no answer within ``--answer-timeout`` seconds after
the last keystroke); whether the last request, for the last state, got a suggestion;
how long after the last keystroke the engine started on it (the stale work it had to
stop first), against one decode step plus one prefill chunk at this run's own speeds;
and whether the engine is idle once it answered.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from harness.report import emit_report, machine, markdown_table, percentile, round_or_none
from harness.runner import ROOT, add_common_options, our_options
from harness.stress.wire import RawConnection

SOURCE = ROOT / "fixtures" / "src" / "inventory.py"
#: Typed again and again under the last line of the document; the storm ends inside it.
TYPED_LINE = "    total = sum(item.quantity * item.price for item in "
#: Tokens per prefill chunk (the engine's default), for the idle bound.
PREFILL_CHUNK = 256


def keystroke_plan(count: int) -> tuple[str, list[tuple[str, int]]]:
    """The line's text before the storm, and ("type" or "delete", column) per keystroke.

    The line is typed, deleted, typed again...; the plan is built back from its end, the
    line typed in full, so that the last state asks for a completion after ``in ``.
    """
    backwards: list[tuple[str, int]] = []
    length = len(TYPED_LINE)
    typing = True  # going back in time, the last run of keystrokes is typing
    column = length - 1
    while len(backwards) < count:
        backwards.append(("type" if typing else "delete", column))
        if typing:
            column -= 1
            if column < 0:
                typing, column = False, 0
        else:
            column += 1
            if column == length:
                typing, column = True, length - 1
    plan = backwards[::-1]
    action, first = plan[0]
    initial = TYPED_LINE[:first] if action == "type" else TYPED_LINE[: first + 1]
    return initial, plan


def storm_session(
    options: dict[str, Any], rate: float, seconds: float, answer_timeout: float
) -> dict[str, Any]:
    initial, plan = keystroke_plan(int(rate * seconds))
    text = SOURCE.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text += "\n"
    line = text.count("\n")  # the line after the last one, where the typing happens
    text += initial
    uri = "file:///fim-storm/inventory.py"
    connection = RawConnection()
    connection.start()
    try:
        connection.initialize_ready(options)
        connection.open(uri, text)
        # Warm the document, as an editor that has been open a while would have.
        warm = connection.inline(uri, line, len(initial), invoked=True)
        connection.wait(warm, answer_timeout)
        request_ids: list[Any] = []
        version = 1
        previous = None
        started = time.perf_counter()
        for index, (action, column) in enumerate(plan):
            target = started + index / rate
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            version += 1
            if action == "type":
                connection.change(uri, version, (line, column), (line, column), TYPED_LINE[column])
                cursor = column + 1
            else:
                connection.change(uri, version, (line, column), (line, column + 1), "")
                cursor = column
            request_id = connection.inline(uri, line, cursor)
            if previous is not None:
                connection.cancel(previous)
            previous = request_id
            request_ids.append(request_id)
        last_keystroke = time.perf_counter()
        sent_seconds = last_keystroke - started
        unanswered = connection.wait_all(request_ids, answer_timeout)
        last_answer = connection.answer(request_ids[-1])
        engine_busy_after = connection.status().get("engineBusy")
        final_status = connection.status()
    finally:
        exit_code = connection.shutdown()

    cancelled = results = with_text = 0
    latencies = []
    for request_id in request_ids:
        answer = connection.answer(request_id)
        if answer is None:
            continue
        sent = connection.sent_at(request_id)
        if sent is not None:
            latencies.append((answer.at - sent) * 1000)
        if answer.error is not None:
            cancelled += answer.error.get("code") == -32800
            continue
        results += 1
        items = (answer.result or {}).get("items") if isinstance(answer.result, dict) else None
        with_text += bool(items)
    last_text = ""
    if last_answer is not None and isinstance(last_answer.result, dict):
        items = last_answer.result.get("items") or []
        last_text = str(items[0].get("insertText", "")) if items else ""
    stats = final_status.get("lastRequest") or {}
    last_latency = (last_answer.at - last_keystroke) * 1000 if last_answer is not None else None
    engine_ms = float(stats.get("total_ms") or 0.0)
    # The engine's own time for the last request is not waiting: the rest of the time from
    # the last keystroke to its answer went to stopping stale work and to the event loop.
    waited = last_latency - engine_ms if last_latency is not None else None
    generated = int(stats.get("tokens_generated") or 0)
    evaluated = int(stats.get("tokens_evaluated") or 0)
    decode_step = float(stats.get("decode_ms") or 0.0) / generated if generated else None
    prefill_ms = float(stats.get("prefill_ms") or 0.0)
    chunk = prefill_ms / evaluated * PREFILL_CHUNK if evaluated else None
    bound = decode_step + chunk if decode_step is not None and chunk is not None else None
    return {
        "machine": machine(),
        "keystrokes": len(request_ids),
        "seconds_sending": round(sent_seconds, 2),
        "keystrokes_per_second": round(len(request_ids) / sent_seconds, 1) if sent_seconds else None,
        "requests": len(request_ids),
        "answered": len(request_ids) - len(unanswered),
        "hung": len(unanswered),
        "answered_cancelled": cancelled,
        "answered_with_result": results,
        "results_with_a_suggestion": with_text,
        "answer_p50_ms": round_or_none(percentile(latencies, 0.5)),
        "answer_max_ms": round_or_none(max(latencies) if latencies else None),
        "last_state_completed": bool(last_text),
        "last_suggestion": last_text,
        "last_answer_after_last_keystroke_ms": round_or_none(last_latency),
        "last_request_engine_ms": round(engine_ms, 1),
        "waited_for_stale_work_ms": round_or_none(waited),
        "one_decode_step_ms": round_or_none(decode_step),
        "one_prefill_chunk_ms": round_or_none(chunk),
        "idle_bound_ms": round_or_none(bound),
        "engine_busy_after_last_answer": engine_busy_after,
        "engine_cancelled_total": (final_status.get("engineTotals") or {}).get("cancelled"),
        "crashes": 0 if exit_code == 0 else 1,
    }


def markdown(report: dict[str, Any]) -> str:
    rows = [
        ("keystrokes (per second)", f"{report['keystrokes']} ({report['keystrokes_per_second']})"),
        ("requests answered / hung", f"{report['answered']} / {report['hung']}"),
        (
            "answered RequestCancelled / with a result",
            f"{report['answered_cancelled']} / {report['answered_with_result']}",
        ),
        ("last state completed", f"{report['last_state_completed']} ({report['last_suggestion']!r})"),
        ("last answer after the last keystroke, ms", report["last_answer_after_last_keystroke_ms"]),
        ("of which the engine's own work on it, ms", report["last_request_engine_ms"]),
        ("waited for stale work, ms", report["waited_for_stale_work_ms"]),
        ("bound: one decode step + one prefill chunk, ms", report["idle_bound_ms"]),
        ("engine busy after the last answer", report["engine_busy_after_last_answer"]),
        ("crashes", report["crashes"]),
    ]
    return markdown_table(["storm figure", "value"], rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fim-lsp bench storm", description=__doc__.split("\n\n")[0])
    add_common_options(parser)
    parser.add_argument("--rate", type=float, default=1000.0, help="keystrokes per second (default 1000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the storm lasts (default 10)")
    parser.add_argument(
        "--answer-timeout", type=float, default=60.0, help="seconds after which a request hangs"
    )
    args = parser.parse_args(argv)
    options = {"timeBudgetMs": 4000, **our_options(args)}
    report = storm_session(options, args.rate, args.seconds, args.answer_timeout)
    report["markdown"] = markdown(report)
    emit_report(args, report)
    ok = report["hung"] == 0 and report["crashes"] == 0 and report["last_state_completed"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
