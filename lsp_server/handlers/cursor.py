"""``fim/didMoveCursor`` (event loop): the editor's cursor moved to another region.

A custom notification that the fim-lsp editor plugins send, debounced, when the cursor
lands somewhere new (a jump, a search, another window). The daemon warms the prompt
prefix a request at that cursor would need, so the first keystroke there does not wait
for it. Pure LSP clients never send it; the daemon then warms on open and after pauses.

Params: ``{"textDocument": {"uri": ...}, "position": {"line": L, "character": C}}``.
"""

from __future__ import annotations

import logging
from typing import Any

from lsp_server.protocol import FimServer
from lsp_server.services import Services

log = logging.getLogger(__name__)
CURSOR_METHOD = "fim/didMoveCursor"


def _field(params: Any, *path: str) -> Any:
    """``params.a.b`` whether pygls gave us an object or a plain dict; None if absent."""
    value = params
    for name in path:
        value = value.get(name) if isinstance(value, dict) else getattr(value, name, None)
        if value is None:
            return None
    return value


def register(server: FimServer, services: Services) -> None:
    @server.feature(CURSOR_METHOD)
    def did_move_cursor(ls: FimServer, params: Any) -> None:
        uri = _field(params, "textDocument", "uri")
        line = _field(params, "position", "line")
        character = _field(params, "position", "character")
        if not isinstance(uri, str) or not isinstance(line, int) or not isinstance(character, int):
            log.info(
                "%s: ignored, expected textDocument.uri and an integer position: %r", CURSOR_METHOD, params
            )
            return
        doc = services.documents.get(uri)
        if doc is None or line < 0 or character < 0:
            return
        offset = doc.offset_at(line, character, ls.encoding)
        services.workspace.cursor_at(uri, offset)
        services.workspace.viewed(uri, doc.text, line)
        services.idle.cursor_moved(uri, offset)
