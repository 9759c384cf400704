"""The completion service's reuse rules, with a scripted backend in place of the model.

Cache, type-through, speculation, debounce and cancellation run in milliseconds here;
``test_daemon.py`` covers the same rules end to end with the real model.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fim.backend import Backend, CompletionRequest
from fim.context import Document
from lsp_server.completion import CompletionService, Outcome
from lsp_server.model_host import ModelHost
from lsp_server.scheduler import Scheduler
from lsp_server.settings import SessionSettings
from tests.lsp_server.scripted_backend import ScriptedBackend

SOURCE = "def is_even(number):\n    return num\n"
CURSOR = SOURCE.index("num\n") + len("num")


def answer_even(request: CompletionRequest) -> str:
    return "ber % 2 == 0\n" if request.prefix.endswith("return num") else "pass\n"


def service(backend: ScriptedBackend, **options: Any) -> CompletionService:
    scheduler = Scheduler()
    host = ModelHost(scheduler)
    host.backend, host.state = backend, "ready"
    return CompletionService(scheduler, host, SessionSettings(options))


def test_the_scripted_backend_meets_the_protocol() -> None:
    assert isinstance(ScriptedBackend(answer_even), Backend)


async def test_the_same_place_twice_runs_the_model_once() -> None:
    backend = ScriptedBackend(answer_even)
    completions = service(backend)
    doc = Document("file:///a.py", SOURCE, "python")
    first = await completions.complete(doc, CURSOR)
    second = await completions.complete(doc, CURSOR)
    assert (first.text, first.source) == ("ber % 2 == 0", "model")
    assert (second.text, second.source) == ("ber % 2 == 0", "cache")
    assert len(backend.requests) == 1 and completions.counters.cache_hits == 1


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never met")


def in_flight_text(completions: CompletionService, uri: str) -> str:
    """What the model has written so far for ``uri``'s request in flight ("" before it starts)."""
    in_flight = completions._in_flight.get(uri)
    return in_flight.text if in_flight is not None else ""


async def writing() -> tuple[ScriptedBackend, CompletionService, Document, asyncio.Future[Outcome]]:
    """A request whose model is writing its answer, slowly: "be" of "ber % 2 == 0" so far."""
    backend = ScriptedBackend(answer_even, char_delay=0.05)
    completions = service(backend)
    doc = Document("file:///a.py", SOURCE, "python")
    first = asyncio.ensure_future(completions.complete(doc, CURSOR))
    await wait_for(lambda: in_flight_text(completions, doc.uri).startswith("be"))
    return backend, completions, doc, first


async def test_typing_what_the_generation_in_flight_wrote_carries_it_on() -> None:
    backend, completions, doc, first = await writing()
    # The editor's keystroke: it types what the model already wrote, and cancels the request.
    doc.replace(CURSOR, CURSOR, "b")
    doc.version += 1
    job = completions.foreseen_job(doc.uri, doc.text)
    assert job is not None and not job.cancel.is_set()
    first.cancel()
    carried = await completions.complete(doc, CURSOR + 1)
    assert (carried.text, carried.source) == ("er % 2 == 0", "carried-on")
    assert len(backend.requests) == 1 and completions.counters.carried_on == 1


async def test_typing_something_else_than_the_generation_in_flight_stops_it() -> None:
    backend, completions, doc, first = await writing()
    doc.replace(CURSOR, CURSOR, "s")
    assert completions.foreseen_job(doc.uri, doc.text) is None
    completions.scheduler.cancel_document(doc.uri)
    assert (await first).source == "none"
    again = await completions.complete(doc, CURSOR + 1)
    assert again.source == "model" and len(backend.requests) == 2
    assert completions.counters.carried_on == 0


async def test_a_request_the_client_cancelled_without_an_edit_stops_its_generation() -> None:
    _backend, completions, doc, first = await writing()
    job = completions._in_flight[doc.uri].job
    first.cancel()
    # The cursor moved or the user pressed Escape: no edit follows, nobody wants it.
    await wait_for(job.cancel.is_set)


async def test_typing_the_suggestion_serves_its_remainder_without_the_model() -> None:
    backend = ScriptedBackend(answer_even)
    completions = service(backend)
    doc = Document("file:///a.py", SOURCE, "python")
    await completions.complete(doc, CURSOR)
    doc.replace(CURSOR, CURSOR, "ber %")
    typed = await completions.complete(doc, CURSOR + len("ber %"))
    assert (typed.text, typed.source) == (" 2 == 0", "type-through")
    assert len(backend.requests) == 1 and completions.counters.type_through == 1


async def test_a_generation_cut_by_the_time_budget_is_not_cached() -> None:
    # No line break in the answer, so the stop rules never end it: the budget does.
    backend = ScriptedBackend(lambda request: "ber % 2 == 0", stop_reason="time_budget")
    completions = service(backend)
    doc = Document("file:///a.py", SOURCE, "python")
    first = await completions.complete(doc, CURSOR)
    completions.forget_document(doc.uri)  # no type-through from the first suggestion
    second = await completions.complete(doc, CURSOR)
    # Cut by the budget: the unfinished last word goes, and then what does not parse.
    assert first.text == second.text == "ber % 2"
    assert second.source == "model" and len(backend.requests) == 2


async def test_debounce_drops_a_request_that_a_newer_one_supersedes() -> None:
    backend = ScriptedBackend(answer_even)
    completions = service(backend, debounceMs=100)
    doc = Document("file:///a.py", SOURCE, "python")
    older = asyncio.ensure_future(completions.complete(doc, CURSOR))
    await asyncio.sleep(0.01)
    newer = await completions.complete(doc, CURSOR)
    stale = await older
    assert stale.text == "" and "superseded" in stale.reason
    assert newer.text == "ber % 2 == 0" and len(backend.requests) == 1


async def test_a_newer_request_cancels_the_generation_in_flight() -> None:
    backend = ScriptedBackend(answer_even, delay=5.0)
    completions = service(backend)
    doc = Document("file:///a.py", SOURCE, "python")
    older = asyncio.ensure_future(completions.complete(doc, CURSOR))
    await asyncio.get_running_loop().run_in_executor(None, backend.started.wait, 5)
    backend.delay = 0.0
    other = Document("file:///b.py", SOURCE, "python")
    newer = await completions.complete(other, CURSOR)
    stale = await asyncio.wait_for(older, 5)
    assert stale.text == "" and stale.reason == "cancelled by a newer keystroke"
    assert newer.source == "model" and completions.counters.cancelled == 1


async def test_speculation_fills_the_cache_for_the_state_after_accepting() -> None:
    def answer(request: CompletionRequest) -> str:
        return "\n    return number % 2 == 1\n" if request.prefix.endswith("== 0") else answer_even(request)

    backend = ScriptedBackend(answer)
    completions = service(backend, speculative=True)
    doc = Document("file:///a.py", SOURCE, "python")
    shown = await completions.complete(doc, CURSOR)
    await completions.speculate(doc, CURSOR, shown.text)
    assert completions.counters.speculative_ready == 1
    doc.replace(CURSOR, CURSOR, shown.text)
    after = await completions.complete(doc, CURSOR + len(shown.text))
    assert after.source == "cache" and completions.counters.speculative_hits == 1
    assert len(backend.requests) == 2


async def test_no_model_means_an_empty_answer_with_the_reason() -> None:
    scheduler = Scheduler()
    host = ModelHost(scheduler)
    host.state, host.error = "error", "model.gguf: not a GGUF file"
    completions = CompletionService(scheduler, host, SessionSettings())
    outcome = await completions.complete(Document("file:///a.py", SOURCE, "python"), CURSOR)
    assert outcome.text == "" and outcome.reason == "model is error: model.gguf: not a GGUF file"


async def test_no_suggestion_reasons_are_per_document_and_cleared_by_a_suggestion() -> None:
    completions = service(ScriptedBackend(answer_even), disabledLanguages=["go"])
    python = Document("file:///a.py", SOURCE, "python")
    go = Document("file:///b.go", "package b\n", "go")
    assert (await completions.complete(go, 3)).text == ""
    assert "disabled" in completions.status()["noSuggestionReasons"]["file:///b.go"]
    # Another document's suggestion does not hide why this one got nothing.
    assert (await completions.complete(python, CURSOR)).text
    status = completions.status()
    assert status["lastNoSuggestionReason"] == ""
    assert list(status["noSuggestionReasons"]) == ["file:///b.go"]
    # Closing the document forgets its reason.
    completions.forget_document("file:///b.go")
    assert completions.status()["noSuggestionReasons"] == {}
