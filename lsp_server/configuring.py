"""Applying a settings layer: merge, report bad fields, set the log level, reload if needed.

Shared by ``initialize`` and the configuration handlers (event loop). Invalid values are
reported by name with ``window/showMessage``; the layers below stay in force for them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from lsprotocol import types

from fim.config import CONFIG_SECTION, workspace_settings
from lsp_server.loading import load_model
from lsp_server.logs import set_log_level
from lsp_server.protocol import FimServer
from lsp_server.services import Services

log = logging.getLogger(__name__)


def apply_layer(ls: FimServer, services: Services, **layer: Any) -> None:
    """Replace a settings layer and apply the merged result, without reloading."""
    for problem in services.settings.update(**layer):
        ls.show(str(problem), types.MessageType.Warning)
    set_log_level(services.settings.config.log_level)
    services.workspace.configure(workspace_settings(services.settings.config))


async def apply_settings(ls: FimServer, services: Services, settings: Any, *, reload: bool = True) -> None:
    """New workspace settings; a change to a model option reloads the model."""
    apply_layer(ls, services, workspace=settings)
    config = services.settings.config
    if reload and services.host.state != "idle" and services.host.needs_reload(config):
        log.info("model settings changed; reloading")
        await load_model(ls, services)


async def pull_configuration(ls: FimServer, services: Services, *, reload: bool = True) -> None:
    try:
        result = await asyncio.wait_for(
            ls.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section=CONFIG_SECTION)])
            ),
            timeout=5,
        )
    except Exception as error:
        log.info("workspace/configuration pull failed: %s", error)
        return
    if result and isinstance(result[0], dict):
        await apply_settings(ls, services, result[0], reload=reload)
