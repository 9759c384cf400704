"""Two real llama-servers behind one ``endpoint`` list; one is killed in the middle.

Documents are spread over the servers and stay on theirs; killing a server while it
streams costs the request in flight and nothing more: the next request for that
document goes to the other server, and ``describe`` (``fim/status``) shows the dead one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fim.backend import CompletionRequest
from fim.remote import RemoteBackend
from harness.peer.server import PeerServer
from tests.remote.conftest import settings, start_llama_server

PREFIX = "def fibonacci(n):\n    "
SUFFIX = "\n\nprint(fibonacci(10))\n"


@pytest.fixture(scope="module")
def two_servers(model_path: Path) -> Iterator[list[PeerServer]]:
    servers: list[PeerServer] = []
    try:
        for _ in range(2):
            servers.append(start_llama_server(model_path))
        yield servers
    finally:
        for server in servers:
            server.stop()


def by_url(backend: RemoteBackend) -> dict[str, dict[str, object]]:
    return {server["url"]: server for server in backend.describe()["servers"]}


def test_a_server_killed_mid_stream_costs_one_suggestion(
    two_servers: list[PeerServer], remote: list[RemoteBackend]
) -> None:
    backend = RemoteBackend(settings("openai", *(server.url for server in two_servers)))
    remote.append(backend)

    def ask(uri: str, on_text=None):  # type: ignore[no-untyped-def]
        request = CompletionRequest(prefix=PREFIX, suffix=SUFFIX, max_tokens=24, stream_key=uri)
        return backend.complete(request, None, on_text)

    assert ask("file:///a.py").text
    assert ask("file:///b.py").text
    servers = by_url(backend)
    assert [s["requests"] for s in servers.values()] == [1, 1], servers
    # a.py stays where its prompt is cached.
    assert ask("file:///a.py").text
    home_of_a = next(url for url, s in by_url(backend).items() if s["requests"] == 2)
    victim = next(server for server in two_servers if server.url == home_of_a)

    def kill_on_first_text(_text: str) -> bool:
        if victim.process is not None and victim.process.poll() is None:
            victim.process.kill()
            victim.process.wait()
        return False

    lost = ask("file:///a.py", kill_on_first_text)
    assert lost.stats.stop_reason == "error"
    assert home_of_a in lost.stats.error
    # The very next suggestion for the same document comes from the other server.
    for uri in ("file:///a.py", "file:///b.py", "file:///c.py"):
        answer = ask(uri)
        assert answer.stats.stop_reason in ("eog", "max_tokens"), answer.stats
        assert "return" in answer.text or "if" in answer.text
    after = by_url(backend)
    assert after[home_of_a]["state"] == "down"
    assert after[home_of_a]["errors"] == 1
    survivor = next(url for url in after if url != home_of_a)
    assert after[survivor]["state"] == "healthy" and after[survivor]["errors"] == 0
    assert backend.describe()["totals"]["errors"] == 1
