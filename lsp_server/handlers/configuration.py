"""``workspace/didChangeConfiguration`` (event loop): push or pull, then apply."""

from __future__ import annotations

from lsprotocol import types

from lsp_server.configuring import apply_settings, pull_configuration
from lsp_server.protocol import FimServer
from lsp_server.services import Services


def register(server: FimServer, services: Services) -> None:
    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: FimServer, params: types.DidChangeConfigurationParams) -> None:
        settings = params.settings
        if isinstance(settings, dict) and settings:
            await apply_settings(ls, services, settings)
        elif services.supports_configuration_pull:
            await pull_configuration(ls, services)
