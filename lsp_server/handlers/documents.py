"""Document sync (event loop): keep our own Document per URI; edits cancel stale work."""

from __future__ import annotations

import logging

from lsprotocol import types

from fim.context import Document
from lsp_server.protocol import FimServer
from lsp_server.services import Services

log = logging.getLogger(__name__)


def register(server: FimServer, services: Services) -> None:
    documents = services.documents
    scheduler = services.scheduler

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(_ls: FimServer, params: types.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        documents[item.uri] = Document(item.uri, item.text, item.language_id, item.version)
        services.workspace.opened(item.uri, item.text)
        # The user is about to need this file: warm it now, not after a pause.
        services.idle.touch(item.uri, now=True)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: FimServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        scheduler.cancel_background()
        doc = documents.get(uri)
        if doc is None:
            scheduler.cancel_document(uri)
            log.warning("didChange for a document that was never opened: %s", uri)
            return
        edited_line = 0
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                start, end = change.range.start, change.range.end
                edited_line = start.line
                doc.apply_change(
                    ((start.line, start.character), (end.line, end.character)),
                    change.text,
                    ls.encoding,
                )
            else:
                doc.apply_change(None, change.text, ls.encoding)
        doc.version = params.text_document.version
        # A newer keystroke makes any generation for this document stale: stop it now,
        # without waiting for the client's $/cancelRequest. Unless the user typed what
        # it had already written: then it goes on for the next request to take over.
        scheduler.cancel_document(uri, keep=services.completions.foreseen_job(uri, doc.text))
        services.workspace.changed(uri, doc.text, edited_line)
        services.idle.touch(uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(_ls: FimServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        scheduler.cancel_document(uri)
        documents.pop(uri, None)
        services.completions.forget_document(uri)
        services.idle.forget(uri)
        services.workspace.closed(uri)
        backend = services.host.backend
        if backend is not None:
            # Backends are used only from the inference thread.
            scheduler.maintain(lambda: backend.forget(uri))
