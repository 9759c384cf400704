"""Real llama-server instances (built by ``make peer``) with the real 0.5B model, and helpers."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fim.remote import RemoteBackend, RemoteSettings
from harness.peer.server import DEFAULT_BINARY, PeerServer

#: One thread each: the machine has two cores and other tests may be running.
SERVER_THREADS = 1
SERVER_CONTEXT = 2048


def start_llama_server(model_path: Path) -> PeerServer:
    server = PeerServer(DEFAULT_BINARY, model_path, threads=SERVER_THREADS, n_ctx=SERVER_CONTEXT)
    server.start()
    return server


@pytest.fixture(scope="module")
def llama_server(model_path: Path) -> Iterator[PeerServer]:
    server = start_llama_server(model_path)
    try:
        yield server
    finally:
        server.stop()


def settings(dialect: str, *urls: str, **overrides: Any) -> RemoteSettings:
    values: dict[str, Any] = {
        "dialect": dialect,
        "endpoints": urls,
        "model": "",
        "fim_template": "auto",
        "api_key_env": "",
        "connect_timeout_s": 2.0,
        "first_token_timeout_s": 60.0,
        "n_ctx": SERVER_CONTEXT,
    }
    values.update(overrides)
    return RemoteSettings(**values)


@pytest.fixture
def remote() -> Iterator[list[RemoteBackend]]:
    """Backends a test opens, closed after it."""
    opened: list[RemoteBackend] = []
    yield opened
    for backend in opened:
        backend.close()


def slots(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url + "/slots", timeout=10) as answer:
        data = json.load(answer)
    return data if isinstance(data, list) else []


def wait_until_idle(url: str, limit_s: float = 30.0) -> list[dict[str, Any]]:
    """Poll ``/slots`` until no slot is processing; returns the slots then."""
    started = time.perf_counter()
    while True:
        state = slots(url)
        if not any(slot.get("is_processing") for slot in state):
            return state
        if time.perf_counter() - started > limit_s:
            raise AssertionError(f"llama-server still busy after {limit_s} s: {state}")
        time.sleep(0.002)
