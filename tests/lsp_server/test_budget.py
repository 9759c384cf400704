"""A busy machine: what the time budget cuts is shown when it can be, and said plainly.

The budget counts decoding, not prefill. A generation it cuts short keeps its whole
words (or, for a block, its whole lines) and post-processing cuts it back to where it
parses; ``fim/status`` says that the suggestion was cut or dropped, why, and what helps.
The scripted backend runs the rules in milliseconds; the last test checks the budget
against the real model.
"""

from __future__ import annotations

import asyncio
import threading

from lsprotocol import types
from pytest_lsp import LanguageClient

from fim.context import Document
from tests.lsp_server.conftest import start, status, wait_state
from tests.lsp_server.scripted_backend import ScriptedBackend
from tests.lsp_server.test_completion_service import CURSOR, SOURCE, service
from tests.lsp_server.test_daemon import CURSOR as DAEMON_CURSOR
from tests.lsp_server.test_daemon import inline_params, open_doc


async def test_a_cut_generation_is_shown_up_to_where_it_parses() -> None:
    # The budget ran out after "== 0": the "0" may be the start of "0x10", so it goes,
    # and "number % 2 ==" does not parse, so the syntax check cuts back to "% 2".
    backend = ScriptedBackend(lambda request: "ber % 2 == 0", stop_reason="time_budget")
    completions = service(backend)
    outcome = await completions.complete(Document("file:///a.py", SOURCE, "python"), CURSOR)
    assert (outcome.text, outcome.source) == ("ber % 2", "model")
    note = completions.status()["lastBudgetNote"]
    assert "cut short" in note and "time budget" in note
    assert "smaller model" in note and "threads" in note and "timeBudgetMs" in note


async def test_a_cut_generation_with_nothing_whole_is_dropped_and_says_why() -> None:
    backend = ScriptedBackend(lambda request: "ber", stop_reason="time_budget")
    completions = service(backend)
    outcome = await completions.complete(Document("file:///a.py", SOURCE, "python"), CURSOR)
    assert outcome.text == ""
    current = completions.status()
    assert "was dropped" in current["lastNoSuggestionReason"]
    assert current["lastBudgetNote"] == current["lastNoSuggestionReason"]


async def test_a_whole_generation_leaves_no_budget_note() -> None:
    backend = ScriptedBackend(lambda request: "ber % 2 == 0\n")
    completions = service(backend)
    outcome = await completions.complete(Document("file:///a.py", SOURCE, "python"), CURSOR)
    assert outcome.text == "ber % 2 == 0"
    assert completions.status()["lastBudgetNote"] == ""


async def test_a_model_reload_in_between_never_runs_the_old_backend() -> None:
    old = ScriptedBackend(lambda request: "ber % 2 == 0\n")
    completions = service(old)
    # Hold the inference thread, as a model load queued ahead of the request would.
    release = threading.Event()
    completions.scheduler.maintain(lambda: release.wait(10))
    pending = asyncio.ensure_future(completions.complete(Document("file:///a.py", SOURCE, "python"), CURSOR))
    await asyncio.sleep(0.05)  # planned with the old backend, waiting for the thread
    new = ScriptedBackend(lambda request: "ber\n")
    completions.host.backend = new  # the reload closed the old one and put this one in
    release.set()
    outcome = await pending
    assert outcome.text == "" and not old.requests and not new.requests


async def test_the_budget_counts_decoding_not_prefill(raw_client: LanguageClient) -> None:
    # 50 ms is less than this prompt's prefill takes: counting prefill left no time to decode.
    raw_client.set_configuration({"timeBudgetMs": 50}, section="fimLsp")
    await start(raw_client, {"timeBudgetMs": 50, "cache": False})
    await wait_state(raw_client)
    open_doc(raw_client)
    await raw_client.text_document_inline_completion_async(inline_params(DAEMON_CURSOR, invoked=True))
    current = await status(raw_client)
    stats = current["lastRequest"]
    assert stats["stop_reason"] == "time_budget"
    assert stats["tokens_generated"] >= 1
    assert stats["decode_ms"] >= 50
    note = current["lastBudgetNote"]
    assert ("cut short" in note or "dropped" in note) and "smaller model" in note
    # With room to decode, the same place gets the whole line again.
    raw_client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"fimLsp": {"timeBudgetMs": 60000}})
    )
    result = await raw_client.text_document_inline_completion_async(
        inline_params(DAEMON_CURSOR, invoked=True)
    )
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    assert items and "% 2 == 0" in str(items[0].insert_text)
    assert (await status(raw_client))["lastBudgetNote"] == ""
