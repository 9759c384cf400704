"""Document sync (event loop): keep our own Document per URI; edits cancel stale work."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lsprotocol import types

from fim.context import Document

if TYPE_CHECKING:
    from lsp_server.server import FimServer

log = logging.getLogger(__name__)


def register(server: FimServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: FimServer, params: types.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        ls.documents[item.uri] = Document(item.uri, item.text, item.language_id, item.version)
        ls.idle.touch(item.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: FimServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        # A newer keystroke makes any generation for this document stale: stop it now,
        # without waiting for the client's $/cancelRequest.
        ls.scheduler.cancel_document(uri)
        ls.scheduler.cancel_background()
        doc = ls.documents.get(uri)
        if doc is None:
            log.warning("didChange for a document that was never opened: %s", uri)
            return
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                start, end = change.range.start, change.range.end
                doc.apply_change(
                    ((start.line, start.character), (end.line, end.character)),
                    change.text,
                    ls.encoding,
                )
            else:
                doc.apply_change(None, change.text, ls.encoding)
        doc.version = params.text_document.version
        ls.idle.touch(uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: FimServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.scheduler.cancel_document(uri)
        ls.documents.pop(uri, None)
        ls.completions.forget_document(uri)
        ls.idle.forget(uri)
        engine = ls.host.engine
        if engine is not None:
            # The engine is used only from the inference thread.
            ls.scheduler.maintain(lambda: engine.forget(uri))
