"""The remote backend against a real llama-server with the real 0.5B model.

Each dialect that llama-server speaks (``/infill``, ``/completion`` and the OpenAI
``/v1/completions``) completes the same code; a cancel and an early stop close the
connection and free the server's slot; token counts come from the server's tokenizer.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from fim.backend import CompletionRequest
from fim.config import Config, derive
from fim.context import Document
from fim.llama.vocabulary import open_vocabulary
from fim.pipeline import CompletionPipeline
from fim.remote import RemoteBackend
from harness.peer.server import PeerServer
from tests.remote.conftest import settings, slots, wait_until_idle

PREFIX = "def fibonacci(n):\n    "
SUFFIX = "\n\nprint(fibonacci(10))\n"
#: Long enough that the cancel tests cannot end by themselves first.
LONG = 400


@pytest.mark.parametrize(
    ("dialect", "use_infill"), [("llama-server", True), ("llama-server", False), ("openai", False)]
)
def test_each_endpoint_completes_the_function(
    llama_server: PeerServer, remote: list[RemoteBackend], dialect: str, use_infill: bool
) -> None:
    backend = RemoteBackend(settings(dialect, llama_server.url, use_infill=use_infill))
    remote.append(backend)
    result = backend.complete(CompletionRequest(prefix=PREFIX, suffix=SUFFIX, max_tokens=32))
    assert result.stats.stop_reason in ("eog", "max_tokens"), result.stats
    assert "return" in result.text
    assert "<|" not in result.text
    assert backend.describe()["template"] == "qwen2.5-coder"
    (server,) = backend.describe()["servers"]
    assert server["state"] == "healthy" and server["requests"] == 1 and server["errors"] == 0


def test_cancel_closes_the_connection_and_frees_the_slot(
    llama_server: PeerServer, remote: list[RemoteBackend]
) -> None:
    backend = RemoteBackend(settings("llama-server", llama_server.url))
    remote.append(backend)
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def cancel_on_first_text(_text: str) -> bool:
        if not cancelled_at:
            cancelled_at.append(time.perf_counter())
            cancel.set()
        return False

    request = CompletionRequest(prefix="# the first 500 primes\nprimes = [", suffix="", max_tokens=LONG)
    result = backend.complete(request, cancel, cancel_on_first_text)
    returned_ms = (time.perf_counter() - cancelled_at[0]) * 1000
    state = wait_until_idle(llama_server.url)
    idle_ms = (time.perf_counter() - cancelled_at[0]) * 1000
    print(f"cancel → complete() returned {returned_ms:.1f} ms; slot idle {idle_ms:.1f} ms after the cancel")
    assert result.stats.stop_reason == "cancelled"
    assert result.text == ""
    # The slot stopped far short of the request's 400 tokens: the server cancelled it.
    decoded = max(slot.get("next_token", [{}])[0].get("n_decoded", 0) for slot in state)
    assert decoded < LONG / 4, state
    assert backend.describe()["totals"]["cancelled"] == 1


def test_an_early_stop_by_post_processing_closes_the_stream(
    llama_server: PeerServer, remote: list[RemoteBackend]
) -> None:
    backend = RemoteBackend(settings("openai", llama_server.url))
    remote.append(backend)
    seen: list[str] = []

    def stop_at_first_line(text: str) -> bool:
        seen.append(text)
        return "\n" in text

    request = CompletionRequest(prefix="# the first 500 primes\nprimes = [", suffix="", max_tokens=LONG)
    result = backend.complete(request, None, stop_at_first_line)
    wait_until_idle(llama_server.url)
    assert result.stats.stop_reason == "callback"
    assert result.text == seen[-1] and "\n" in result.text
    assert result.stats.tokens_generated < LONG / 2


def test_the_pipeline_post_processes_a_remote_stream(
    llama_server: PeerServer, remote: list[RemoteBackend]
) -> None:
    backend = RemoteBackend(settings("llama-server", llama_server.url))
    remote.append(backend)
    text = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    retu\n"
    doc = Document("file:///mul.py", text, "python")
    pipeline = CompletionPipeline(backend, derive(Config()))
    plan = pipeline.plan(doc, text.rindex("retu") + len("retu"))
    assert plan.skip_reason is None
    generation = pipeline.run(plan, threading.Event())
    # One line, post-processed: the rest of ``return a * b`` and nothing after it.
    assert "\n" not in generation.text
    assert "a * b" in generation.text, generation.text


def test_token_counts_come_from_the_server(
    llama_server: PeerServer, remote: list[RemoteBackend], model_path: Path
) -> None:
    backend = RemoteBackend(settings("llama-server", llama_server.url))
    remote.append(backend)
    assert backend.describe()["token_counting"].startswith("server /tokenize")
    assert backend.capabilities.exact_token_counts
    sample = "for index, value in enumerate(values):\n    print(index, value)  # <|fim_middle|>\n"
    with open_vocabulary(model_path) as vocabulary:
        assert backend.count_tokens(sample) == vocabulary.count_tokens(sample)


def test_the_time_budget_cuts_a_long_answer(llama_server: PeerServer, remote: list[RemoteBackend]) -> None:
    backend = RemoteBackend(settings("openai", llama_server.url))
    remote.append(backend)
    request = CompletionRequest(
        prefix="# the first 500 primes\nprimes = [", suffix="", max_tokens=LONG, time_budget_ms=300
    )
    result = backend.complete(request)
    wait_until_idle(llama_server.url)
    assert result.stats.stop_reason == "time_budget"
    assert result.text and result.stats.tokens_generated < LONG
    assert slots(llama_server.url)
