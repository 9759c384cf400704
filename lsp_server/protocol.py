"""The daemon's pygls server class and the names it adds to the protocol.

``FimServer`` is the pygls ``LanguageServer`` with the two protocol helpers every
handler needs (the negotiated position encoding and a user-visible message). It holds
no daemon state: that lives in ``lsp_server.services``, which the handlers get when
they are registered.
"""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from fim import __version__
from fim.positions import PositionEncoding

VERSION = __version__
#: Custom request: the daemon's state and counters, as JSON.
STATUS_METHOD = "fim/status"
#: Command attached to every inline item: the editor runs it when the user accepts.
ACCEPT_COMMAND = "fim-lsp.accept"
STATUS_COMMAND = "fim-lsp.status"
#: Work-done progress token of a model load; each load appends "/<n>".
PROGRESS_TOKEN = "fim-lsp/model"

log = logging.getLogger(__name__)


def encoding_of(value: str | None) -> PositionEncoding:
    try:
        return PositionEncoding(str(value or "utf-16"))
    except ValueError:
        return PositionEncoding.UTF16


class FimServer(LanguageServer):
    """pygls' server with the helpers the handlers share."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("fim-lsp", VERSION, **kwargs)

    @property
    def encoding(self) -> PositionEncoding:
        try:
            return encoding_of(self.workspace.position_encoding)
        except RuntimeError:
            return PositionEncoding.UTF16

    def show(self, message: str, kind: types.MessageType = types.MessageType.Error) -> None:
        log.warning("%s", message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))
