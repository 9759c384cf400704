"""Settings from ``workspace/didChangeConfiguration`` and the ``workspace/configuration`` pull.

Invalid values are reported by name with ``window/showMessage``; defaults stay in force.
A change to a model option reloads the model without a restart.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from lsp_server import config as config_module
from lsp_server.config import Config

if TYPE_CHECKING:
    from lsp_server.server import FimServer

log = logging.getLogger(__name__)


async def apply_settings(ls: FimServer, settings: Any, *, reload: bool = True) -> None:
    # Layers, later wins: defaults, initializationOptions, these settings, the command
    # line. Each batch starts again from the layers below it, so a setting the user
    # removed goes back to what it was before.
    base, _ = config_module.parse(ls.initialization_options, Config())
    merged, problems = config_module.parse(settings, base)
    merged, more = config_module.parse(ls.cli_overrides, merged)
    for problem in [*problems, *more]:
        ls.show(str(problem), types.MessageType.Warning)
    ls.apply_config(merged)
    from lsp_server.handlers.lifecycle import load_model, set_log_level

    set_log_level(ls, merged.log_level)
    if reload and ls.host.state != "idle" and ls.host.needs_reload(merged):
        log.info("model settings changed; reloading")
        await load_model(ls)


async def pull_configuration(ls: FimServer, *, reload: bool = True) -> None:
    try:
        result = await asyncio.wait_for(
            ls.workspace_configuration_async(
                types.ConfigurationParams(
                    items=[types.ConfigurationItem(section=config_module.CONFIG_SECTION)]
                )
            ),
            timeout=5,
        )
    except Exception as error:
        log.info("workspace/configuration pull failed: %s", error)
        return
    if result and isinstance(result[0], dict):
        await apply_settings(ls, result[0], reload=reload)


def register(server: FimServer) -> None:
    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: FimServer, params: types.DidChangeConfigurationParams) -> None:
        settings = params.settings
        if isinstance(settings, dict) and settings:
            await apply_settings(ls, settings)
        elif ls.supports_configuration_pull:
            await pull_configuration(ls)
