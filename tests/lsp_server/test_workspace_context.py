"""Workspace context end to end over real LSP with the real 0.5B model.

The right completion needs a field name defined in another file of the workspace: the
model gets it only from the workspace context, and guesses another name without it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.lsp_server.conftest import TEST_OPTIONS, capabilities, status, wait_state
from tests.lsp_server.test_daemon import inline_params, items_of, open_doc

SETTINGS_SOURCE = '''"""The proxy's settings."""


class ServerSettings:
    """Where the proxy listens and what it forwards to."""

    def __init__(self, listen_port: int, upstream_hostname: str, retry_budget_seconds: float) -> None:
        self.listen_port = listen_port
        self.upstream_hostname = upstream_hostname
        self.retry_budget_seconds = retry_budget_seconds
'''
MAIN_SOURCE = """from proxy.settings import ServerSettings


def banner(settings: ServerSettings) -> str:
    return f"forwarding to {settings."""
CURSOR = types.Position(line=4, character=len('    return f"forwarding to {settings.'))
SECRET = "UPSTREAM_TOKEN=sk-live-never-in-a-prompt\n"


def workspace(root: Path) -> str:
    (root / "proxy").mkdir()
    (root / "proxy" / "__init__.py").write_text("")
    (root / "proxy" / "settings.py").write_text(SETTINGS_SOURCE)
    (root / "proxy" / "main.py").write_text(MAIN_SOURCE)
    (root / ".env").write_text(SECRET)
    return (root / "proxy" / "main.py").as_uri()


async def start_in(client: LanguageClient, root: Path, options: dict[str, Any]) -> None:
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(),
            initialization_options={**TEST_OPTIONS, **options},
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
        )
    )


async def wait_indexed(client: LanguageClient, root: Path, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        roots = (await status(client))["workspace"]["roots"]
        found = next((entry for entry in roots if entry["root"] == str(root.resolve())), None)
        if found and found["scanned"]:
            return found
        assert time.monotonic() < deadline, f"workspace never indexed: {roots}"
        await asyncio.sleep(0.1)


async def test_only_the_workspace_context_gives_the_other_files_field(
    raw_client: LanguageClient, tmp_path: Path
) -> None:
    uri = workspace(tmp_path)
    # The whole prompt at once (no cold cut), so the first request already has the context.
    await start_in(raw_client, tmp_path, {"coldPrefillMs": 0, "workspaceContext": True})
    await wait_state(raw_client)
    indexed = await wait_indexed(raw_client, tmp_path)
    assert indexed["files"] == 3  # __init__, settings, main: never the .env
    tokens = [token for token in raw_client.progress_reports if str(token).startswith("fim-lsp/index/")]
    assert tokens, "no $/progress for the first index"

    # An open buffer of a secret never reaches the context either.
    open_doc(raw_client, SECRET, (tmp_path / ".env").as_uri())
    open_doc(raw_client, MAIN_SOURCE, uri)
    result = await raw_client.text_document_inline_completion_async(inline_params(CURSOR, uri=uri))
    texts = [str(item.insert_text) for item in items_of(result)]
    assert texts and texts[0].startswith("upstream_hostname"), texts
    chosen = (await status(raw_client))["workspace"]["chosen"]
    expected = {"path": "proxy/settings.py", "line": 4, "reason": "definition of ServerSettings (imported)"}
    assert expected in chosen
    assert all(".env" not in entry["path"] for entry in chosen)

    # The same request without workspace context: the model has to guess the name.
    raw_client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={**TEST_OPTIONS, "coldPrefillMs": 0, "workspaceContext": False}
        )
    )
    await asyncio.sleep(0.5)
    result = await raw_client.text_document_inline_completion_async(inline_params(CURSOR, uri=uri))
    texts = [str(item.insert_text) for item in items_of(result)]
    assert not (texts and texts[0].startswith("upstream_hostname")), texts


async def test_workspace_folders_follow_the_editor(raw_client: LanguageClient, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        (folder / "module.py").write_text("def helper() -> int:\n    return 1\n")
    # No model is needed to index: a missing one keeps the test light.
    await start_in(raw_client, first, {"model": str(tmp_path / "missing.gguf"), "workspaceContext": True})
    await wait_state(raw_client)
    await wait_indexed(raw_client, first)
    raw_client.workspace_did_change_workspace_folders(
        types.DidChangeWorkspaceFoldersParams(
            event=types.WorkspaceFoldersChangeEvent(
                added=[types.WorkspaceFolder(uri=second.as_uri(), name="second")],
                removed=[types.WorkspaceFolder(uri=first.as_uri(), name="first")],
            )
        )
    )
    indexed = await wait_indexed(raw_client, second)
    assert indexed["files"] == 1
    roots = (await status(raw_client))["workspace"]["roots"]
    assert [entry["root"] for entry in roots] == [str(second.resolve())]
