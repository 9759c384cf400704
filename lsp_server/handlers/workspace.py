"""Workspace folders (event loop): the roots the workspace index reads, and its progress.

The roots come from ``initialize`` (``workspaceFolders``, else ``rootUri``/``rootPath``)
and follow ``workspace/didChangeWorkspaceFolders``. Indexing starts in ``initialized``,
after the settings pull, so ``workspaceContext: false`` or ``excludeGlobs`` from the
editor's settings apply before a single file is read. The first scan of each root is
reported with ``$/progress`` when the client supports it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types

from fim.workspace import path_of
from fim.workspace.index import ScanReport
from lsp_server.protocol import FimServer
from lsp_server.services import Services

log = logging.getLogger(__name__)


def roots_from_initialize(params: types.InitializeParams) -> list[Path]:
    """The workspace roots an ``initialize`` names, local folders only."""
    uris = [folder.uri for folder in params.workspace_folders or ()]
    if not uris and params.root_uri:
        uris = [params.root_uri]
    if not uris and params.root_path:
        uris = [params.root_path]
    return [path for uri in uris if (path := path_of(uri)) is not None]


class IndexProgress:
    """``$/progress`` for each root's first scan; called from the watcher threads."""

    def __init__(self, server: FimServer) -> None:
        self.server = server
        self.loop: asyncio.AbstractEventLoop | None = None
        self._started: dict[Path, asyncio.Future[bool]] = {}

    def _enabled(self) -> bool:
        window = self.server.client_capabilities.window if self.server.client_capabilities else None
        return bool(self.loop is not None and window and window.work_done_progress)

    def _on_loop(self, work: Callable[[], Any]) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(work)

    def begin(self, root: Path) -> None:
        if not self._enabled():
            return

        async def start() -> bool:
            token = self._token(root)
            try:
                await self.server.work_done_progress.create_async(token)
            except Exception as error:
                log.info("client refused progress: %s", error)
                return False
            self.server.work_done_progress.begin(
                token, types.WorkDoneProgressBegin(title="fim-lsp", message=f"indexing {root.name} …")
            )
            return True

        def schedule() -> None:
            self._started[root] = asyncio.ensure_future(start())

        self._on_loop(schedule)

    def _token(self, root: Path) -> str:
        return f"fim-lsp/index/{root}"

    def _after_start(self, root: Path, send: Callable[[str], None]) -> None:
        def schedule() -> None:
            started = self._started.get(root)
            if started is None:
                return
            started.add_done_callback(lambda done: send(self._token(root)) if done.result() else None)

        self._on_loop(schedule)

    def progress(self, root: Path, files: int) -> None:
        message = f"indexing {root.name}: {files} files"
        self._after_start(
            root,
            lambda token: self.server.work_done_progress.report(
                token, types.WorkDoneProgressReport(message=message)
            ),
        )

    def end(self, root: Path, report: ScanReport) -> None:
        log.info(
            "workspace %s indexed: %d files, %d skipped, %.1f s%s",
            root,
            report.files,
            report.skipped,
            report.seconds,
            f" (stopped: {report.stopped})" if report.stopped else "",
        )
        message = f"indexed {report.files} files of {root.name}"
        self._after_start(
            root,
            lambda token: self.server.work_done_progress.end(
                token, types.WorkDoneProgressEnd(message=message)
            ),
        )


def register(server: FimServer, services: Services) -> None:
    progress = IndexProgress(server)
    services.workspace.reporter = progress

    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    def did_change_workspace_folders(_ls: FimServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
        progress.loop = asyncio.get_event_loop()
        for folder in params.event.removed:
            path = path_of(folder.uri)
            if path is not None:
                services.workspace.remove_root(path)
        for folder in params.event.added:
            path = path_of(folder.uri)
            if path is not None:
                services.workspace.add_root(path)


def start_indexing(services: Services, roots: list[Path]) -> None:
    """Index the roots ``initialize`` named, under the settings in force (``initialized``)."""
    reporter = services.workspace.reporter
    if isinstance(reporter, IndexProgress):
        reporter.loop = asyncio.get_event_loop()
    services.workspace.set_roots(roots)
