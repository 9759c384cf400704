"""``create_server()``: the daemon's factory. All state hangs off the server object.

Threading: handlers run on the asyncio event loop and stay cheap (document edits,
context building, caches). Everything that touches the model runs on the scheduler's
single inference thread.
"""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from fim.context import Document
from fim.positions import PositionEncoding
from lsp_server.completion import CompletionService, encoding_of
from lsp_server.config import Config
from lsp_server.idle import IdlePrefill
from lsp_server.model_host import ModelHost
from lsp_server.scheduler import Scheduler

VERSION = "0.1.0"
log = logging.getLogger(__name__)


class FimServer(LanguageServer):
    """The pygls server plus the daemon's state (no module-level globals)."""

    def __init__(self, config: Config | None = None, **kwargs: Any) -> None:
        super().__init__("fim-lsp", VERSION, **kwargs)
        self.config = config or Config()
        self.documents: dict[str, Document] = {}
        self.scheduler = Scheduler()
        self.host = ModelHost(self.scheduler)
        self.completions = CompletionService(self.scheduler, self.host, self.config)
        self.idle = IdlePrefill(self)
        self.cli_overrides: dict[str, Any] = {}
        self.initialization_options: Any = None
        self.supports_configuration_pull = False
        self.log_level = logging.INFO

    @property
    def encoding(self) -> PositionEncoding:
        try:
            return encoding_of(self.workspace.position_encoding)
        except RuntimeError:
            return PositionEncoding.UTF16

    def apply_config(self, config: Config) -> None:
        self.config = config
        self.completions.config = config

    def show(self, message: str, kind: types.MessageType = types.MessageType.Error) -> None:
        log.warning("%s", message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))


def create_server(config: Config | None = None, cli_overrides: dict[str, Any] | None = None) -> FimServer:
    from lsp_server.handlers import commands, completion, configuration, documents, lifecycle

    server = FimServer(config)
    server.cli_overrides = dict(cli_overrides or {})
    for module in (lifecycle, configuration, documents, completion, commands):
        module.register(server)
    return server
