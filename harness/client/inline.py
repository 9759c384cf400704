"""Reading the daemon's inline-completion answers as an editor applies them.

An answer is a list of items (or a bare array of them, or None); the editor shows the
first item and, on accept, replaces the item's range (the word typed before the cursor)
with its text. These helpers give that item's text, the text it adds after the cursor,
and the document once it is accepted.
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from fim.positions import PositionEncoding, line_starts, offset_at


def as_inline_list(result: Any) -> types.InlineCompletionList | None:
    """The response of an inline request: a list, a bare item array, or None."""
    if result is None or isinstance(result, types.InlineCompletionList):
        return result
    return types.InlineCompletionList(items=list(result))


def inline_item_text(item: types.InlineCompletionItem) -> str:
    """An item's insert text, whether sent as a plain string or as a snippet."""
    return item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value


def insert_text_of(result: types.InlineCompletionList | None) -> tuple[str, types.Range | None]:
    """The first item's text and the range it replaces; ("", None) when there is none."""
    if not result or not result.items:
        return "", None
    item = result.items[0]
    return inline_item_text(item), item.range


def suggestion_after_cursor(text: str, cursor: int, result: types.InlineCompletionList | None) -> str:
    """What the first inline item adds after the cursor once the editor inserts it.

    The item's range covers the word typed before the cursor and its text repeats it,
    so inserting it leaves the text before the cursor as it was.
    """
    if not result or not result.items:
        return ""
    after = apply_suggestion(text, cursor, result)
    added = len(after) - len(text)
    if added > 0 and after[:cursor] == text[:cursor] and after[cursor + added :] == text[cursor:]:
        return after[cursor : cursor + added]
    # Not a plain insertion at the cursor (the item rewrote text): report its text.
    return inline_item_text(result.items[0])


def apply_suggestion(text: str, cursor: int, result: types.InlineCompletionList | None) -> str:
    """The document after the editor inserts the first inline item (at the cursor if no range)."""
    if not result or not result.items:
        return text
    item = result.items[0]
    insert = inline_item_text(item)
    if item.range is None:
        return text[:cursor] + insert + text[cursor:]
    starts = line_starts(text)
    start = offset_at(text, item.range.start.line, item.range.start.character, PositionEncoding.UTF16, starts)
    end = offset_at(text, item.range.end.line, item.range.end.character, PositionEncoding.UTF16, starts)
    return text[: start.index] + insert + text[end.index :]
