"""``textDocument/inlineCompletion`` and ``textDocument/completion`` (event loop).

The handler only converts between LSP and the completion service. An inline item's
range covers the word typed so far and its ``insertText`` repeats that word, because
editors insert an empty-range item after the typed text. Classic completion is for
clients without inline completion (eglot); a client that shows ghost text is not
offered it.

While the editor's own suggest list is open (VS Code's quick suggestions, on by
default), the request carries ``selectedCompletionInfo``: the list's selected item and
the range it would replace. VS Code shows ghost text then only when the inline item
replaces that same range and starts with that item's text, so the completion is made
for the document as it will be once that item is accepted, and answered over its range.
"""

from __future__ import annotations

import logging

from lsprotocol import types

from fim.context import Document
from fim.positions import position_of
from lsp_server.completion import Outcome
from lsp_server.protocol import ACCEPT_COMMAND, FimServer
from lsp_server.services import Services

log = logging.getLogger(__name__)


def register(server: FimServer, services: Services) -> None:
    documents = services.documents
    completions = services.completions

    async def outcome_at(
        uri: str,
        position: types.Position,
        invoked: bool,
        selected: types.SelectedCompletionInfo | None = None,
    ) -> tuple[Outcome, Document] | None:
        doc = documents.get(uri)
        if doc is None:
            completions.no_suggestion_for(uri, f"document {uri} is not open")
            return None
        encoding = server.encoding
        located = doc.offset_at(position.line, position.character, encoding)
        if selected is not None:
            # Complete the text as it reads once the suggest list's item is accepted; the
            # cursor then sits at the end of that item, wherever the request's position was.
            start = doc.offset_at(selected.range.start.line, selected.range.start.character, encoding)
            end = doc.offset_at(selected.range.end.line, selected.range.end.character, encoding)
            start, end = min(start, end), max(start, end)
            doc = doc.copy()
            doc.replace(start, end, selected.text)
            located = start + len(selected.text)
        outcome = await completions.complete(doc, located, invoked=invoked)
        if outcome.notice:
            server.show(outcome.notice, types.MessageType.Warning)
        return outcome, doc

    def typed_range(doc: Document, outcome: Outcome) -> types.Range:
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
        selected = params.context.selected_completion_info
        answer = await outcome_at(uri, params.position, invoked, selected)
        services.idle.touch(uri)
        if answer is None or not answer[0].text or uri not in documents:
            log.debug("inline %s:%d:%d: nothing", uri, params.position.line, params.position.character)
            return types.InlineCompletionList(items=[])
        outcome, doc = answer
        if selected is not None:
            # The same range as the list's item and its text first, or VS Code hides it.
            item_range, insert_text = selected.range, selected.text + outcome.text
        else:
            item_range, insert_text = typed_range(doc, outcome), outcome.typed_word + outcome.text
        item = types.InlineCompletionItem(
            insert_text=insert_text,
            range=item_range,
            command=types.Command(title="Accept", command=ACCEPT_COMMAND, arguments=[uri, outcome.text]),
        )
        completions.counters.suggested += 1
        log.debug(
            "inline %s:%d:%d (%s, list item %r): %r",
            uri,
            params.position.line,
            params.position.character,
            outcome.source,
            selected.text if selected is not None else None,
            insert_text,
        )
        if outcome.source == "model" and services.settings.config.speculative:
            # llama.vim's idea: while the user reads the suggestion, compute the next one
            # for the state after accepting it; any edit cancels this.
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
        answer = await outcome_at(uri, params.position, invoked=True)
        if answer is None or not answer[0].text or uri not in documents:
            return types.CompletionList(is_incomplete=True, items=[])
        outcome, doc = answer
        new_text = outcome.typed_word + outcome.text
        first_line = new_text.split("\n", 1)[0].strip() or new_text.strip()
        item = types.CompletionItem(
            label=first_line[:80],
            kind=types.CompletionItemKind.Text,
            detail="fim-lsp",
            filter_text=outcome.typed_word or None,
            text_edit=types.TextEdit(range=typed_range(doc, outcome), new_text=new_text),
            insert_text_format=types.InsertTextFormat.PlainText,
        )
        return types.CompletionList(is_incomplete=True, items=[item])
