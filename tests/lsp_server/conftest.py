"""pytest-lsp fixtures: a real daemon over stdio, with a client that declares inline completion."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from harness.client import plain_result as _plain

SERVER = [sys.executable, "-m", "cli", "serve"]


def capabilities() -> types.ClientCapabilities:
    # None of pytest-lsp's bundled client profiles declare inline completion.
    return types.ClientCapabilities(
        general=types.GeneralClientCapabilities(position_encodings=[types.PositionEncodingKind.Utf16]),
        text_document=types.TextDocumentClientCapabilities(
            synchronization=types.TextDocumentSyncClientCapabilities(),
            inline_completion=types.InlineCompletionClientCapabilities(),
            completion=types.CompletionClientCapabilities(),
        ),
        window=types.WindowClientCapabilities(work_done_progress=True, show_message=None),
        workspace=types.WorkspaceClientCapabilities(configuration=True, did_change_configuration=None),
    )


# Tests assert content, not speed: a generous time budget keeps them deterministic on a
# busy machine (speed is measured by `fim-lsp bench`).
TEST_OPTIONS = {"timeBudgetMs": 60000}


async def start(client: LanguageClient, options: dict[str, Any] | None = None) -> types.InitializeResult:
    return await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(), initialization_options={**TEST_OPTIONS, **(options or {})}
        )
    )


async def status(client: LanguageClient) -> dict[str, Any]:
    result = await client.protocol.send_request_async("fim/status", {})
    return _plain(result)


async def wait_state(
    client: LanguageClient, states: tuple[str, ...] = ("ready", "error"), timeout: float = 300
):
    deadline = time.monotonic() + timeout
    while True:
        current = await status(client)
        if current["state"] in states:
            return current
        assert time.monotonic() < deadline, f"model never reached {states}: {current}"
        await asyncio.sleep(0.1)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient):
    lsp_client.set_configuration(TEST_OPTIONS, section="fimLsp")
    await start(lsp_client)
    await wait_state(lsp_client)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def raw_client(lsp_client: LanguageClient):
    """A started server process that the test initializes itself."""
    lsp_client.set_configuration(TEST_OPTIONS, section="fimLsp")
    yield
    await lsp_client.shutdown_session()
