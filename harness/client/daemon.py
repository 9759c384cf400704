"""A headless LSP client for the daemon: start it, open files, ask for completions.

It speaks to ``fim-lsp serve`` over stdio exactly as an editor does, and is what the
one-shot ``fim-lsp complete``, the demo and the benchmarks are built on.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pygls.lsp.client import LanguageClient

from harness.client.inline import as_inline_list
from harness.engines import engine_env


def client_capabilities() -> types.ClientCapabilities:
    """What an editor with inline completion declares (pytest-lsp's presets lack it)."""
    return types.ClientCapabilities(
        general=types.GeneralClientCapabilities(position_encodings=[types.PositionEncodingKind.Utf16]),
        text_document=types.TextDocumentClientCapabilities(
            synchronization=types.TextDocumentSyncClientCapabilities(dynamic_registration=False),
            inline_completion=types.InlineCompletionClientCapabilities(dynamic_registration=False),
            completion=types.CompletionClientCapabilities(),
        ),
        window=types.WindowClientCapabilities(work_done_progress=True),
        workspace=types.WorkspaceClientCapabilities(configuration=False),
    )


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), from /proc; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            raw = handle.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; the fields after its ")" are fixed.
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


@dataclass
class PendingRequest:
    """One inline-completion request in flight; ``future`` resolves with the response."""

    id: str
    future: asyncio.Future[Any]
    sent_at: float
    cancel_sent: bool = False

    @property
    def was_cancelled(self) -> bool:
        """The daemon answered with RequestCancelled (not an ordinary, possibly empty, result)."""
        return self.future.done() and isinstance(self.future.exception(), JsonRpcRequestCancelled)


@dataclass
class DaemonClient:
    """One running daemon and the documents opened in it."""

    # ``fim-lsp serve`` run by this interpreter, so the venv under test is the one measured.
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "cli", "serve"])
    initialization_options: dict[str, Any] = field(default_factory=dict)
    client: LanguageClient = field(default_factory=lambda: LanguageClient("fim-lsp-harness", "0.1"))
    versions: dict[str, int] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    messages: list[types.ShowMessageParams] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def start(self, env: dict[str, str] | None = None) -> None:
        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def on_message(params: types.ShowMessageParams) -> None:
            self.messages.append(params)

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def on_log(_params: types.LogMessageParams) -> None:
            pass

        @self.client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def on_progress_create(_params: types.WorkDoneProgressCreateParams) -> None:
            return None

        @self.client.feature(types.PROGRESS)
        def on_progress(_params: types.ProgressParams) -> None:
            pass

        await self.client.start_io(*self.command, env={**os.environ, **engine_env(), **(env or {})})
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=client_capabilities(),
                process_id=os.getpid(),
                initialization_options=self.initialization_options,
            )
        )
        self.client.initialized(types.InitializedParams())

    async def status(self) -> dict[str, Any]:
        result = await self.client.protocol.send_request_async("fim/status", {})
        return plain_result(result)

    async def wait_ready(self, timeout: float = 300.0) -> dict[str, Any]:
        """Wait until the model is loaded (or failed); returns the last status."""
        deadline = time.monotonic() + timeout
        while True:
            status = await self.status()
            if status.get("state") in ("ready", "error") or time.monotonic() > deadline:
                return status
            await asyncio.sleep(0.1)

    def open(self, uri: str, text: str, language_id: str) -> None:
        self.versions[uri] = 1
        self.texts[uri] = text
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id=language_id, version=1, text=text)
            )
        )

    def change(self, uri: str, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        """Send one incremental edit; the caller keeps its own copy of the text."""
        self.versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(types.Position(*start), types.Position(*end)), text=text
                    )
                ],
            )
        )

    def replace_all(self, uri: str, text: str) -> None:
        self.versions[uri] += 1
        self.texts[uri] = text
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

    async def inline(
        self, uri: str, line: int, character: int, *, invoked: bool = True
    ) -> types.InlineCompletionList | None:
        result = await self.client.text_document_inline_completion_async(
            _inline_params(uri, line, character, invoked)
        )
        return as_inline_list(result)

    def send_inline(self, uri: str, line: int, character: int, *, invoked: bool = False) -> PendingRequest:
        """Send an inline-completion request without waiting, so it can be cancelled.

        An explicit id lets the caller send ``$/cancelRequest`` for it later, as an editor
        does when a newer keystroke supersedes the request.
        """
        params = _inline_params(uri, line, character, invoked)
        request_id = f"inline-{next(self._ids)}"
        sent_at = time.perf_counter()
        raw = self.client.protocol.send_request(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=request_id
        )
        return PendingRequest(request_id, asyncio.wrap_future(raw), sent_at)

    def move_cursor(self, uri: str, line: int, character: int) -> None:
        """``fim/didMoveCursor``: the editor plugins send it when the cursor jumps elsewhere."""
        self.client.protocol.notify(
            "fim/didMoveCursor",
            {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}},
        )

    def cancel(self, request: PendingRequest) -> None:
        """``$/cancelRequest`` for a request that has not been answered yet."""
        if request.future.done() or request.cancel_sent:
            return
        request.cancel_sent = True
        self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=request.id))

    def close(self, uri: str) -> None:
        self.versions.pop(uri, None)
        self.texts.pop(uri, None)
        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )

    @property
    def server_pid(self) -> int | None:
        server = getattr(self.client, "_server", None)
        return server.pid if server is not None else None

    def cpu_seconds(self) -> float | None:
        """The daemon process's CPU time so far (all threads)."""
        pid = self.server_pid
        return process_cpu_seconds(pid) if pid is not None else None

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.client.shutdown_async(None), timeout=10)
            self.client.exit(None)
        except Exception:
            pass
        try:
            await asyncio.wait_for(self.client.stop(), timeout=10)
        except Exception:
            server = getattr(self.client, "_server", None)
            if server is not None and server.returncode is None:
                server.kill()


def _inline_params(uri: str, line: int, character: int, invoked: bool) -> types.InlineCompletionParams:
    """An inline request as an editor sends it: invoked by a key, or automatic while typing."""
    kind = (
        types.InlineCompletionTriggerKind.Invoked if invoked else types.InlineCompletionTriggerKind.Automatic
    )
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=kind),
    )


def plain_result(value: Any) -> Any:
    """pygls hands custom results over as namedtuple-like objects; make them dicts."""
    if isinstance(value, dict):
        return {k: plain_result(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_result(v) for v in value]
    if hasattr(value, "_asdict"):
        return {k: plain_result(v) for k, v in value._asdict().items()}
    return value
