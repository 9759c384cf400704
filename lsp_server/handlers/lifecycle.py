"""initialize / initialized / shutdown, and the orphan exit (event loop).

The daemon must never outlive its editor: it watches ``initialize.processId`` and exits
when that process is gone (stdin closing ends the server loop as well).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

from lsprotocol import types

from lsp_server.configuring import apply_layer, pull_configuration
from lsp_server.handlers.workspace import roots_from_initialize, start_indexing
from lsp_server.loading import load_model
from lsp_server.logs import forward_logs
from lsp_server.protocol import FimServer
from lsp_server.services import Services

log = logging.getLogger(__name__)


def watch_parent(pid: int, interval: float = 1.0) -> None:
    """Exit the process when the editor process ``pid`` is gone."""

    def loop() -> None:
        while True:
            time.sleep(interval)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                log.warning("editor process %d is gone; exiting", pid)
                os._exit(0)
            except PermissionError:
                pass  # exists, owned by someone else

    threading.Thread(target=loop, name="fim-parent-watch", daemon=True).start()


def register(server: FimServer, services: Services) -> None:
    handler = forward_logs(server)

    @server.feature(types.INITIALIZE)
    def initialize(ls: FimServer, params: types.InitializeParams) -> None:
        handler.loop = asyncio.get_event_loop()
        workspace = params.capabilities.workspace
        services.supports_configuration_pull = bool(workspace and workspace.configuration)
        apply_layer(ls, services, initialization_options=params.initialization_options)
        services.initial_roots = roots_from_initialize(params)
        if params.process_id:
            watch_parent(params.process_id)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: FimServer, _params: types.InitializedParams) -> None:
        if services.supports_configuration_pull:
            await pull_configuration(ls, services, reload=False)
        start_indexing(services, services.initial_roots)
        await load_model(ls, services)

    @server.feature(types.SHUTDOWN)
    def shutdown(_ls: FimServer, _params: None) -> None:
        services.scheduler.shutdown()
        services.workspace.close()
