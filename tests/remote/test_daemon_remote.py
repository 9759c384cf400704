"""The daemon with a remote backend: completions, fim/status, and failures said once.

The server is the scripted Ollama of ``scripted_server`` (no Ollama server can be
installed here), written to Ollama's documented ``/api/generate``; the failures are
scripted the same way. Each test drives the real daemon over stdio.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from harness.peer.server import PeerServer, free_port
from tests.lsp_server.conftest import start, status, wait_state
from tests.remote.conftest import wait_until_idle
from tests.remote.scripted_server import (
    OLLAMA_MODELS,
    Answer,
    Received,
    ScriptedServer,
    json_answer,
    ollama_answer,
)

SOURCE = "def add(a, b):\n    \n"
CURSOR = types.Position(line=1, character=4)
URI = "file:///add.py"
TOKEN = "s3cret-token-for-the-test"
MODEL = next(iter(OLLAMA_MODELS))


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "cli", "serve"],
        server_env={**os.environ, "FIM_TEST_API_TOKEN": TOKEN},
    )
)
async def remote_daemon(lsp_client: LanguageClient):
    """The real daemon, with a token in its environment; each test initializes it."""
    yield
    await lsp_client.shutdown_session()


@pytest.fixture
def ollama() -> Iterator[ScriptedServer]:
    with ScriptedServer(ollama_answer) as server:
        yield server


def remote_options(url: str | list[str], **more: Any) -> dict[str, Any]:
    # A model name that resolves to no local file: token counts fall back to the ratio.
    return {"backend": "ollama", "endpoint": url, "remoteModel": MODEL, "model": "/nonexistent.gguf", **more}


async def complete(client: LanguageClient) -> str:
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=URI),
        position=CURSOR,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
    )
    result = await client.text_document_inline_completion_async(params)
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    return str(items[0].insert_text) if items else ""


def open_document(client: LanguageClient, text: str = SOURCE) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(URI, "python", 1, text))
    )


def edit(client: LanguageClient, version: int, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri=URI, version=version),
            [types.TextDocumentContentChangeWholeDocument(text)],
        )
    )


def warnings(client: LanguageClient) -> list[str]:
    return [
        m.message for m in client.messages if m.type in (types.MessageType.Warning, types.MessageType.Error)
    ]


async def test_ollama_completes_through_the_daemon(
    remote_daemon: LanguageClient, ollama: ScriptedServer
) -> None:
    await start(remote_daemon, remote_options(ollama.url, apiKeyEnv="FIM_TEST_API_TOKEN", nCtx=4096))
    ready = await wait_state(remote_daemon)
    assert ready["state"] == "ready", ready
    open_document(remote_daemon)
    assert await complete(remote_daemon) == "return a + b"
    generate = [r for r in ollama.received if r.path == "/api/generate"]
    assert len(generate) == 1
    body = generate[0].body
    assert body["raw"] is True and body["model"] == MODEL and "suffix" not in body
    assert body["options"]["num_ctx"] == 4096 and body["options"]["num_predict"] >= 1
    assert body["prompt"].startswith("<|fim_prefix|>def add(a, b):")
    assert generate[0].headers.get("Authorization") == f"Bearer {TOKEN}"
    current = await status(remote_daemon)
    assert current["backend"] == "ollama"
    (server,) = current["remoteServers"]
    assert server["state"] == "healthy" and server["requests"] == 1 and server["errors"] == 0
    assert "characters per token" in current["tokenCounting"]
    # The token reaches the server and nowhere else.
    assert TOKEN not in json.dumps(current)
    assert not any(TOKEN in message for message in warnings(remote_daemon))


async def test_unreachable_endpoint_is_said_once_and_the_daemon_keeps_serving(
    remote_daemon: LanguageClient,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    await start(remote_daemon, remote_options(url, connectTimeoutMs=300))
    assert (await wait_state(remote_daemon))["state"] == "ready"
    open_document(remote_daemon)
    for version in range(2, 6):
        edit(remote_daemon, version, SOURCE)
        assert await complete(remote_daemon) == ""
    told = warnings(remote_daemon)
    assert any(url in message and "not answering" in message for message in told), told
    failures = [message for message in told if "suggestions resume" in message]
    assert len(failures) == 1, told
    current = await status(remote_daemon)
    assert current["remoteServers"][0]["state"] == "down"
    assert current["remoteServers"][0]["errors"] >= 1


@pytest.mark.parametrize(
    ("answer", "said", "server_state"),
    [
        # Three 5xx in a row open the breaker and a cut stream opens it at once (its
        # health check may close it again); a refused request says nothing of the
        # server's health.
        (json_answer({"error": "model runner crashed"}, status=500), "HTTP 500", "down"),
        (json_answer({"detail": [{"msg": "field required"}]}, status=422), "HTTP 422", "healthy"),
        (json_answer({"error": "bad request"}, status=400), "HTTP 400", "healthy"),
        (Answer(lines=['{"response": "ret", "done": false}\n'] * 3, cut_after=2), "stream", "down"),
    ],
    ids=["500", "422", "400", "cut"],
)
async def test_a_failing_server_is_said_once(
    remote_daemon: LanguageClient, answer: Answer, said: str, server_state: str
) -> None:
    def script(received: Received) -> Answer:
        return answer if received.path == "/api/generate" else ollama_answer(received)

    with ScriptedServer(script) as server:
        await start(remote_daemon, remote_options(server.url))
        assert (await wait_state(remote_daemon))["state"] == "ready"
        open_document(remote_daemon)
        for version in range(2, 5):
            edit(remote_daemon, version, SOURCE)
            assert await complete(remote_daemon) == ""
        failures = [message for message in warnings(remote_daemon) if "suggestions resume" in message]
        assert len(failures) == 1, warnings(remote_daemon)
        assert said in failures[0] and server.url in failures[0]
        current = await status(remote_daemon)
        assert current["state"] == "ready"
        (described,) = current["remoteServers"]
        assert said in described["lastError"] and described["errors"] >= 1
        if server_state == "healthy":
            assert described["state"] == "healthy"  # never opened, even at a health check


async def test_an_unknown_model_name_is_named(remote_daemon: LanguageClient, ollama: ScriptedServer) -> None:
    options = remote_options(ollama.url, remoteModel="no-such-model:7b", fimTemplate="qwen2.5-coder")
    await start(remote_daemon, options)
    assert (await wait_state(remote_daemon))["state"] == "ready"
    open_document(remote_daemon)
    assert await complete(remote_daemon) == ""
    (failure,) = [message for message in warnings(remote_daemon) if "suggestions resume" in message]
    assert "HTTP 404" in failure and "no-such-model:7b" in failure


async def test_a_slow_first_token_fails_the_request_not_the_daemon(remote_daemon: LanguageClient) -> None:
    slow = {"on": True}

    def script(received: Received) -> Answer:
        answer = ollama_answer(received)
        if received.path == "/api/generate" and slow["on"]:
            answer.first_delay_s = 2.0
        return answer

    with ScriptedServer(script) as server:
        await start(remote_daemon, remote_options(server.url, firstTokenTimeoutMs=300))
        assert (await wait_state(remote_daemon))["state"] == "ready"
        open_document(remote_daemon)
        assert await complete(remote_daemon) == ""
        (failure,) = [message for message in warnings(remote_daemon) if "suggestions resume" in message]
        assert "first-token deadline" in failure
        slow["on"] = False
        edit(remote_daemon, 2, SOURCE)
        assert await complete(remote_daemon) == "return a + b"


async def test_a_bad_remote_config_is_a_load_error(remote_daemon: LanguageClient) -> None:
    await start(remote_daemon, {"backend": "openai", "endpoint": ""})
    current = await wait_state(remote_daemon)
    assert current["state"] == "error"
    assert "endpoint lists no server URL" in current["error"]
    open_document(remote_daemon)
    assert await complete(remote_daemon) == ""
    errors = [m.message for m in remote_daemon.messages if "could not be loaded" in m.message]
    assert len(errors) == 1


LONG_SOURCE = "".join(f"def helper_{i}(value):\n    return value * {i}\n\n\n" for i in range(150))


async def test_a_keystroke_cancels_the_remote_request_and_frees_the_slot(
    remote_daemon: LanguageClient, llama_server: PeerServer
) -> None:
    await start(remote_daemon, {"backend": "llama-server", "endpoint": llama_server.url})
    assert (await wait_state(remote_daemon))["state"] == "ready"
    text = LONG_SOURCE + "def main():\n    "
    open_document(remote_daemon, text)
    end = types.Position(line=text.count("\n"), character=4)
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=URI),
        position=end,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
    )
    first = asyncio.ensure_future(remote_daemon.text_document_inline_completion_async(params))
    await status(remote_daemon)  # handled in order: the request is in progress
    await asyncio.sleep(0.3)
    edit(remote_daemon, 2, text + "r")
    result = await asyncio.wait_for(first, timeout=120)
    assert not (result.items if isinstance(result, types.InlineCompletionList) else result)
    current = await status(remote_daemon)
    assert current["counters"]["cancelled"] >= 1
    assert current["engineTotals"]["cancelled"] >= 1
    # The server dropped the stale request: its slot is idle without having generated it.
    state = await asyncio.to_thread(wait_until_idle, llama_server.url)
    assert all(slot.get("next_token", [{}])[0].get("n_decoded", 0) < 32 for slot in state), state
    # And it serves the new state.
    params.position = types.Position(end.line, 5)
    params.context = types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)
    second = await remote_daemon.text_document_inline_completion_async(params)
    items = second.items if isinstance(second, types.InlineCompletionList) else second or []
    assert items and str(items[0].insert_text).startswith("r")
