"""Logging for the editor: records forwarded as ``window/logMessage``, and the level setting."""

from __future__ import annotations

import asyncio
import logging
import threading

from lsprotocol import types
from pygls.lsp.server import LanguageServer

LEVELS = {
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}
#: Loggers of the daemon's own packages, whose records reach the editor.
OWN_LOGGERS = ("fim", "lsp_server")


class ClientLogHandler(logging.Handler):
    """Forwards log records to the editor as ``window/logMessage``."""

    def __init__(self, server: LanguageServer) -> None:
        super().__init__()
        self.server = server
        self.loop: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("pygls", "asyncio")) or self.loop is None:
            return
        kind = (
            types.MessageType.Error
            if record.levelno >= logging.ERROR
            else types.MessageType.Warning
            if record.levelno >= logging.WARNING
            else types.MessageType.Info
            if record.levelno >= logging.INFO
            else types.MessageType.Log
        )
        params = types.LogMessageParams(type=kind, message=self.format(record))
        try:
            if threading.current_thread() is threading.main_thread():
                self.server.window_log_message(params)
            else:
                self.loop.call_soon_threadsafe(self.server.window_log_message, params)
        except Exception:  # logging must never take the daemon down
            pass


def forward_logs(server: LanguageServer) -> ClientLogHandler:
    """Attach a handler that sends the daemon's records to the editor once it is initialized."""
    handler = ClientLogHandler(server)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    for name in OWN_LOGGERS:
        logging.getLogger(name).addHandler(handler)
    return handler


def set_log_level(level_name: str) -> None:
    level = LEVELS.get(level_name, logging.INFO)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)
