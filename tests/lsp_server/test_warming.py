"""Warming ahead of the user, end to end with the real model: open and cursor moves.

A long file (more than the prefix budget) is opened and the editor says the cursor
jumped deep into it (``fim/didMoveCursor``). The daemon must prefill that region's
prompt prefix before any keystroke, so the request there reuses it instead of
evaluating it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.lsp_server.conftest import status
from tests.lsp_server.test_daemon import inline_params, items_of, open_doc

INVENTORY = Path(__file__).resolve().parents[2] / "fixtures" / "src" / "inventory.py"
URI = "file:///tmp/fim-e2e/long_inventory.py"


def long_source() -> str:
    """Our inventory module six times over, each copy's names made distinct."""
    text = INVENTORY.read_text()
    return "\n\n".join(
        text.replace("Inventory", f"Inventory{n}").replace("def ", f"def v{n}_") for n in range(6)
    )


async def warmed_tokens_settle(client: LanguageClient, above: int = 0, timeout: float = 240) -> int:
    """Wait until idle prefill has evaluated more than ``above`` tokens and then stopped."""
    deadline = time.monotonic() + timeout
    last, steady_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        current = (await status(client))["idlePrefillTokens"]
        if current != last:
            last, steady_since = current, time.monotonic()
        elif current > above and time.monotonic() - steady_since > 2.0:
            return current
        await asyncio.sleep(0.25)
    raise AssertionError(f"idle prefill never settled (last count {last})")


async def test_a_cursor_jump_warms_the_prefix_a_request_there_needs(client: LanguageClient) -> None:
    text = long_source()
    lines = text.split("\n")
    target = next(i for i in range(len(lines) * 3 // 4, len(lines)) if lines[i].strip().startswith("return "))
    column = len(lines[target]) - len(lines[target].lstrip()) + len("return ")
    # The user is writing that return's value: the line ends at the cursor.
    lines[target] = lines[target][:column]
    text = "\n".join(lines)
    open_doc(client, text, URI)
    opened = await warmed_tokens_settle(client)
    client.protocol.notify(
        "fim/didMoveCursor",
        {"textDocument": {"uri": URI}, "position": {"line": target, "character": column}},
    )
    # Fails (times out) when the cursor notification warms nothing.
    await warmed_tokens_settle(client, above=opened)
    result = await client.text_document_inline_completion_async(
        inline_params(types.Position(line=target, character=column), uri=URI)
    )
    request = (await status(client))["lastRequest"]
    assert items_of(result), "no suggestion at the warmed cursor"
    # The prefix (hundreds of tokens) was evaluated before the request: only the
    # tokens at the cursor and the template's are left.
    assert request["tokens_reused"] > 300
    assert request["tokens_evaluated"] < 40, request


async def test_a_malformed_cursor_notification_is_ignored(client: LanguageClient) -> None:
    open_doc(client)
    for params in ({}, {"textDocument": {"uri": URI}}, {"textDocument": {"uri": 3}, "position": "x"}, None):
        client.protocol.notify("fim/didMoveCursor", params)
    assert (await status(client))["state"] == "ready"
