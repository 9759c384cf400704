"""``create_server()``: the daemon's factory. No globals: all state hangs off ``Services``.

Threading: handlers run on the asyncio event loop and stay cheap (document edits,
context building, caches). Everything that touches the model runs on the scheduler's
single inference thread (not pygls' thread pool, which also reads stdin).
"""

from __future__ import annotations

from typing import Any

from lsp_server.handlers import commands, completion, configuration, cursor, documents, lifecycle, workspace
from lsp_server.protocol import FimServer
from lsp_server.services import Services


def create_server(cli_overrides: dict[str, Any] | None = None) -> tuple[FimServer, Services]:
    """A pygls server with every handler registered, and the session's services."""
    server = FimServer()
    services = Services.build(cli_overrides)
    for module in (lifecycle, configuration, documents, cursor, completion, commands, workspace):
        module.register(server, services)
    return server, services
