"""Token counts for the context budgets: the server's ``/tokenize`` while it is healthy,
an estimate (calibrated on the server's counts) without a network wait while it is not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fim.remote import RemoteBackend
from tests.remote.conftest import settings
from tests.remote.scripted_server import Answer, Received, ScriptedServer, json_answer

#: The scripted server's tokenizer: one token per two characters.
CHARS_PER_TOKEN = 2


def answer(received: Received) -> Answer:
    if received.path == "/health":
        return json_answer({"status": "ok"})
    if received.path == "/tokenize":
        text = received.body["content"]
        assert received.body["parse_special"] is False
        return json_answer({"tokens": list(range(len(text) // CHARS_PER_TOKEN))})
    return json_answer({"error": "not found"}, status=404)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(answer) as scripted:
        yield scripted


def tokenize_calls(server: ScriptedServer) -> int:
    return sum(1 for received in server.received if received.path == "/tokenize")


def test_counts_come_from_the_server_then_from_the_ratio_while_it_is_down(
    server: ScriptedServer, remote: list[RemoteBackend]
) -> None:
    backend = RemoteBackend(settings("llama-server", server.url, model="qwen2.5-coder-1.5b"))
    remote.append(backend)
    assert backend.describe()["token_counting"].startswith("server /tokenize")
    text = "x = compute(values)\n" * 10
    assert backend.count_tokens(text) == len(text) // CHARS_PER_TOKEN
    assert backend.count_tokens(text) == len(text) // CHARS_PER_TOKEN
    calls = tokenize_calls(server)
    (down,) = backend.pool.servers
    down.failed("cannot connect", opens=True)
    other = "y = other(values)\n" * 10
    # No request is made; the estimate uses the ratio measured on the server's counts.
    assert backend.count_tokens(other) == round(len(other) / CHARS_PER_TOKEN)
    assert tokenize_calls(server) == calls
    assert "calibrated on the server's /tokenize" in backend.describe()["token_counting"]
