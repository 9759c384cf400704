"""Token healing by text against a scripted OpenAI-style server.

The typed part of a word is left out of the prompt and must be spelt out by the answer;
when the model goes another way, the request is asked again with the word in the prompt.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fim.backend import CompletionRequest
from fim.remote import RemoteBackend
from tests.remote.conftest import settings
from tests.remote.scripted_server import Answer, Received, ScriptedServer, json_answer, sse


def pieces(*texts: str) -> list[str]:
    events = [{"choices": [{"text": text, "finish_reason": None}]} for text in texts]
    return sse([*events, {"choices": [{"text": "", "finish_reason": "stop"}]}])


def answer(received: Received) -> Answer:
    if received.path == "/health":
        return json_answer({"status": "ok"})
    if received.path != "/v1/completions":
        return json_answer({"error": "not found"}, status=404)
    prompt = received.body["prompt"]
    if "    ret<|fim_suffix|>" in prompt:
        return Answer(lines=pieces("urn", " 1\n"))
    if "    val<|fim_suffix|>" in prompt:
        return Answer(lines=pieces("ue = 1\n"))
    # Without the typed word: "return" for one, something else for the other.
    return Answer(lines=pieces("return", " 1\n") if "def one" in prompt else pieces("print", "()\n"))


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(answer) as scripted:
        yield scripted


def test_the_typed_word_is_generated_not_prompted(
    server: ScriptedServer, remote: list[RemoteBackend]
) -> None:
    backend = RemoteBackend(settings("openai", server.url, model="qwen2.5-coder", fim_template="auto"))
    remote.append(backend)
    assert backend.capabilities.token_healing
    request = CompletionRequest(prefix="def one():\n    ", heal="ret", suffix="", max_tokens=8)
    result = backend.complete(request)
    assert result.text == "urn 1\n"
    completions = [r for r in server.received if r.path == "/v1/completions"]
    assert len(completions) == 1 and completions[0].body["prompt"].endswith(
        "    <|fim_suffix|><|fim_middle|>"
    )


def test_an_answer_that_misses_the_word_is_asked_again_with_it(
    server: ScriptedServer, remote: list[RemoteBackend]
) -> None:
    backend = RemoteBackend(settings("openai", server.url, model="qwen2.5-coder", fim_template="auto"))
    remote.append(backend)
    request = CompletionRequest(prefix="def two():\n    ", heal="val", suffix="", max_tokens=8)
    result = backend.complete(request)
    assert result.text == "ue = 1\n"
    prompts = [r.body["prompt"] for r in server.received if r.path == "/v1/completions"]
    assert len(prompts) == 2 and prompts[1].endswith("    val<|fim_suffix|><|fim_middle|>")
    assert backend.describe()["totals"]["heal_retries"] == 1
