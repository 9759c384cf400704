"""``fim-lsp complete FILE LINE:COL``: one completion through a real daemon, for scripts."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from fim.positions import PositionEncoding, line_starts, position_of
from harness.client import DaemonClient, insert_text_of, language_id_for

#: One-shot commands load the model in their daemon (``sharedEngine`` off): an engine
#: process started for one completion would hold a copy of the model for its 10 idle
#: minutes after the command has exited, and a crash ends a one-shot command either way.
ONE_SHOT_OPTIONS = {"sharedEngine": False}


@dataclass
class OneShotResult:
    text: str
    ok: bool
    summary: str
    #: Set when the time budget cut the suggestion short or dropped it: why, and what helps.
    budget_note: str = ""


def _lsp_position(text: str, line: int, column: int) -> tuple[int, int]:
    """Editors' 1-based LINE:COL (COL in characters) to an LSP UTF-16 position."""
    starts = line_starts(text)
    line_index = max(0, min(line - 1, len(starts) - 1))
    offset = min(starts[line_index] + max(0, column - 1), len(text))
    end = starts[line_index + 1] if line_index + 1 < len(starts) else len(text)
    offset = min(offset, end)
    return position_of(text, offset, PositionEncoding.UTF16, starts)


async def _run(path: Path, line: int, column: int, model: str | None, show_stats: bool) -> OneShotResult:
    options = {**ONE_SHOT_OPTIONS, "model": model} if model else dict(ONE_SHOT_OPTIONS)
    client = DaemonClient(initialization_options=options)
    await client.start()
    try:
        status = await client.wait_ready()
        if status.get("state") != "ready":
            return OneShotResult("", False, f"model not ready: {status.get('error')}")
        text = path.read_text(encoding="utf-8", errors="replace")
        uri = path.resolve().as_uri()
        client.open(uri, text, language_id_for(path))
        lsp_line, lsp_char = _lsp_position(text, line, column)
        started = time.perf_counter()
        result = await client.inline(uri, lsp_line, lsp_char)
        elapsed = (time.perf_counter() - started) * 1000
        insert, item_range = insert_text_of(result)
        typed = 0
        if item_range is not None:
            typed = item_range.end.character - item_range.start.character
        status = await client.status()
        stats = status.get("lastRequest") or {}
        summary = (
            f"{elapsed:.0f} ms; reused {stats.get('tokens_reused')}, "
            f"evaluated {stats.get('tokens_evaluated')}, "
            f"generated {stats.get('tokens_generated')}; "
            f"{status.get('lastNoSuggestionReason') if not insert else 'mode ' + str(status.get('lastMode'))}"
        )
        budget_note = str(status.get("lastBudgetNote") or "")
        if insert and budget_note:
            # Shown, but cut short by the time budget: say so, and what helps.
            summary += f"\n{budget_note}"
        return OneShotResult(insert[typed:], bool(insert), summary, budget_note)
    finally:
        await client.stop()


def complete_file(
    path: Path, line: int, column: int, *, model: str | None = None, show_stats: bool = False
) -> OneShotResult:
    result = asyncio.run(_run(path, line, column, model, show_stats))
    if result.budget_note and not show_stats:
        # Without --stats a slow machine would otherwise leave the user with nothing and no hint.
        print(f"fim-lsp: {result.budget_note}", file=sys.stderr)
    return result
