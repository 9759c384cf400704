"""``textDocument/inlineCompletion`` and ``textDocument/completion`` (event loop).

The handler only converts between LSP and the completion service. An inline item's
range covers the word typed so far and its ``insertText`` repeats that word, because
editors insert an empty-range item after the typed text. Classic completion is for
clients without inline completion (eglot); a client that shows ghost text is not
offered it.
"""

from __future__ import annotations

import logging

from lsprotocol import types

from fim.positions import position_of
from lsp_server.completion import Outcome
from lsp_server.protocol import ACCEPT_COMMAND, FimServer
from lsp_server.services import Services

log = logging.getLogger(__name__)


def register(server: FimServer, services: Services) -> None:
    documents = services.documents
    completions = services.completions

    async def outcome_at(uri: str, position: types.Position, invoked: bool) -> Outcome | None:
        doc = documents.get(uri)
        if doc is None:
            completions.no_suggestion_for(uri, f"document {uri} is not open")
            return None
        located = doc.offset_at(position.line, position.character, server.encoding)
        outcome = await completions.complete(doc, located, invoked=invoked)
        if outcome.notice:
            server.show(outcome.notice, types.MessageType.Warning)
        return outcome

    def typed_range(uri: str, outcome: Outcome) -> types.Range:
        doc = documents[uri]
        encoding = server.encoding
        start = position_of(doc.text, outcome.cursor - len(outcome.typed_word), encoding, doc.starts)
        end = position_of(doc.text, outcome.cursor, encoding, doc.starts)
        return types.Range(types.Position(*start), types.Position(*end))

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        _ls: FimServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        uri = params.text_document.uri
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        outcome = await outcome_at(uri, params.position, invoked)
        services.idle.touch(uri)
        if outcome is None or not outcome.text or uri not in documents:
            return types.InlineCompletionList(items=[])
        item = types.InlineCompletionItem(
            insert_text=outcome.typed_word + outcome.text,
            range=typed_range(uri, outcome),
            command=types.Command(title="Accept", command=ACCEPT_COMMAND, arguments=[uri, outcome.text]),
        )
        completions.counters.suggested += 1
        if outcome.source == "model" and services.settings.config.speculative:
            # llama.vim's idea: while the user reads the suggestion, compute the next one
            # for the state after accepting it; any edit cancels this.
            doc = documents[uri]
            completions.background(completions.speculate(doc, outcome.cursor, outcome.text))
        return types.InlineCompletionList(items=[item])

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=[], resolve_provider=False),
    )
    async def completion(ls: FimServer, params: types.CompletionParams) -> types.CompletionList:
        uri = params.text_document.uri
        if ls.protocol.client_shows_inline:
            # Not offered to this client (see FimProtocol.lsp_initialize); if it asks
            # anyway, the inline request in flight must not be cancelled for it.
            return types.CompletionList(is_incomplete=False, items=[])
        outcome = await outcome_at(uri, params.position, invoked=True)
        if outcome is None or not outcome.text or uri not in documents:
            return types.CompletionList(is_incomplete=True, items=[])
        new_text = outcome.typed_word + outcome.text
        first_line = new_text.split("\n", 1)[0].strip() or new_text.strip()
        item = types.CompletionItem(
            label=first_line[:80],
            kind=types.CompletionItemKind.Text,
            detail="fim-lsp",
            filter_text=outcome.typed_word or None,
            text_edit=types.TextEdit(range=typed_range(uri, outcome), new_text=new_text),
            insert_text_format=types.InsertTextFormat.PlainText,
        )
        return types.CompletionList(is_incomplete=True, items=[item])
