"""llama-cpp-python's own server (``python -m llama_cpp.server``) through ``openai``.

It builds FIM from token id 0 when given a ``suffix``, so only a raw prompt works; it
has no ``/tokenize``, so token budgets are estimated. Its ``[server]`` extra comes with
the test dependencies.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fim.backend import CompletionRequest
from fim.remote import RemoteBackend
from harness.peer.server import free_port
from tests.remote.conftest import SERVER_CONTEXT, SERVER_THREADS, settings


@pytest.fixture(scope="module")
def llama_cpp_server(model_path: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(SERVER_CONTEXT),
        "--n_threads",
        str(SERVER_THREADS),
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 180
            while True:
                assert process.poll() is None, "llama_cpp.server exited"
                try:
                    with urllib.request.urlopen(url + "/v1/models", timeout=2):
                        break
                except (urllib.error.URLError, OSError):
                    assert time.monotonic() < deadline, "llama_cpp.server did not start"
                    time.sleep(0.3)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_llama_cpp_server_completes_through_openai(
    llama_cpp_server: str, remote: list[RemoteBackend]
) -> None:
    backend = RemoteBackend(settings("openai", llama_cpp_server))
    remote.append(backend)
    described = backend.describe()
    # The served name is the model's path: the template follows from it.
    assert described["template"] == "qwen2.5-coder"
    assert "characters per token" in described["token_counting"]
    request = CompletionRequest(
        prefix="def fibonacci(n):\n    ", suffix="\n\nprint(fibonacci(10))\n", max_tokens=24
    )
    result = backend.complete(request)
    assert result.stats.stop_reason in ("eog", "max_tokens"), result.stats
    assert "return" in result.text or "if n" in result.text, result.text
    assert "<|" not in result.text


def test_after_a_cancel_the_next_request_is_served(
    llama_cpp_server: str, remote: list[RemoteBackend]
) -> None:
    """It notices a disconnect only between chunks and serves one request at a time:
    a cancel after the first text must leave it free for the next request."""
    backend = RemoteBackend(settings("openai", llama_cpp_server))
    remote.append(backend)
    cancel = threading.Event()

    def cancel_on_first_text(_text: str) -> bool:
        cancel.set()
        return False

    long = CompletionRequest(prefix="# the first 500 primes\nprimes = [", suffix="", max_tokens=400)
    assert backend.complete(long, cancel, cancel_on_first_text).stats.stop_reason == "cancelled"
    request = CompletionRequest(prefix="def fibonacci(n):\n    ", suffix="\n", max_tokens=16)
    result = backend.complete(request)
    print(f"llama_cpp.server: the request after a cancel took {result.stats.total_ms:.0f} ms")
    assert result.stats.stop_reason in ("eog", "max_tokens") and result.text
