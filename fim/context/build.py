"""The entry point: ``build_context`` cuts the prompt for one keystroke.

It asks the document for its syntax window around the cursor, finds the cursor's scope
(``fim.context.scope``), decides the mode (``fim.context.mode``), and cuts the prefix and
suffix within the token budgets (``fim.context.cut``). The result, a
``CompletionContext``, is all the engine and the post-processing need to know.

Token counts are estimated from a chars-per-token ratio measured once per document with
the model's tokenizer on a bounded sample; only the short suffix is counted exactly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fim.context.cut import find_check_window, find_prefix_start, find_suffix_end
from fim.context.document import Document, TokenCounter
from fim.context.mode import Extent, Mode, decide_mode, next_nonblank, previous_nonblank
from fim.context.scope import cursor_syntax, error_near_cursor, scope_from_line, scope_from_tree
from fim.context.text import TAB_SIZE, detect_newline, indent_of_width, word_pattern

if TYPE_CHECKING:
    from fim.context.scope import CursorSyntax

log = logging.getLogger(__name__)

#: Text before the cursor kept in the window even when the prefix starts at offset 0.
WINDOW_CONTEXT_BEFORE = 4000
#: Characters at the end of the line before the cursor searched for the typed word.
MAX_WORD_CHARS = 1000


@dataclass(frozen=True)
class Budgets:
    """Tokens allowed for the prefix and for the suffix of the prompt.

    ``suffix_tokens`` is the budget where the completion is one line or finishes the line
    being written; ``fill_suffix_tokens`` where it fills lines (a blank line, a block
    body); ``span_suffix_tokens`` where code right of the cursor ends it (``Extent.SPAN``).
    ``None`` there means the same as ``suffix_tokens``.
    """

    prefix_tokens: int
    suffix_tokens: int
    fill_suffix_tokens: int | None = None
    span_suffix_tokens: int | None = None

    def suffix_for(self, extent: Extent) -> int:
        """The suffix budget for a completion of this extent."""
        fills = extent in (Extent.FILL, Extent.BLOCK)
        if fills and self.fill_suffix_tokens is not None:
            return self.fill_suffix_tokens
        if extent is Extent.SPAN and self.span_suffix_tokens is not None:
            return self.span_suffix_tokens
        return self.suffix_tokens


@dataclass(frozen=True)
class CompletionContext:
    """Everything about one completion request that the engine and the post-processing need."""

    prefix: str
    suffix: str
    mode: Mode
    reason: str
    cursor: int
    line_prefix: str
    line_suffix: str
    typed_word: str
    indent_unit: str = "    "
    #: Indentation of the line that opened the block a multi-line completion fills.
    block_indent: str | None = None
    #: How far a multi-line completion may run, and what ends it.
    extent: Extent = Extent.LINE
    #: Lines below the cursor need at least this indentation to belong to its block.
    floor: int = 0
    #: A block body with nothing of its level below: lines may go on after the block
    #: down to this indentation (``ModeDecision.after_block_floor``).
    after_block_floor: int | None = None
    #: On a blank line the user has not indented: the block's indentation, which the
    #: completion must start with (the model is made to write it, by token healing).
    missing_indent: str = ""
    #: ``LanguageSpec.name``; "" for a language handled line by line.
    language: str = ""
    #: Where the prefix starts and the suffix ends, as document offsets.
    prefix_start: int = 0
    suffix_end: int = 0
    #: "code", "comment" or "string": where the cursor is.
    scope: str = "code"
    #: The delimiter that closes the string holding the cursor.
    string_delimiter: str = ""
    #: The nearest non-blank lines above and below the cursor's line.
    previous_line: str = ""
    next_line: str = ""
    newline: str = "\n"
    tab_size: int = TAB_SIZE
    #: The document text, and the span of it a completion is parsed in to check it.
    source: str = field(default="", repr=False, compare=False)
    check_window: tuple[int, int] | None = field(default=None, compare=False)


def build_context(
    doc: Document, cursor: int, budgets: Budgets, count_tokens: TokenCounter, *, invoked: bool = False
) -> CompletionContext:
    """The prompt parts and mode for a completion at string offset ``cursor``.

    ``invoked``: the user asked for it (``decide_mode``).
    """
    text = doc.text
    if not 0 <= cursor <= len(text):
        log.warning("%s: cursor %d outside the document (%d chars): clamped", doc.uri, cursor, len(text))
        cursor = max(0, min(cursor, len(text)))
    spec = doc.language
    cursor_line = doc.line_of(cursor)
    line_start = doc.line_start(cursor_line)
    line_end = doc.line_end(cursor_line)
    if cursor > line_end:  # between \r and \n
        cursor = line_end
    line_prefix = text[line_start:cursor]
    line_suffix = text[cursor:line_end]

    ratio = doc.chars_per_token(count_tokens, cursor)
    prefix_chars = budgets.prefix_tokens * ratio
    need_from = cursor - int(prefix_chars) if cursor > prefix_chars else cursor - WINDOW_CONTEXT_BEFORE
    window = doc.syntax_window(cursor, max(0, need_from))
    tree = window.parsed() if window is not None else None
    syntax: CursorSyntax | None = None
    if window is not None and tree is not None:
        syntax = cursor_syntax(window, tree, cursor)
        found = scope_from_tree(doc, spec, syntax, cursor)
        scope, delimiter = found or ("code", "")
        if found is None and error_near_cursor(syntax, cursor, line_start):
            # An unterminated string does not parse as a string: look at the line.
            line_scope, line_delimiter = scope_from_line(spec, line_prefix)
            if line_scope == "string":
                scope, delimiter = line_scope, line_delimiter
    else:
        scope, delimiter = scope_from_line(spec, line_prefix)

    decision = decide_mode(doc, spec, cursor_line, line_prefix, line_suffix, scope, invoked=invoked)
    prefix_start = find_prefix_start(doc, spec, syntax, cursor, cursor_line, prefix_chars)
    suffix_end = find_suffix_end(
        doc,
        spec,
        cursor,
        cursor_line,
        decision.floor,
        budgets.suffix_for(decision.extent),
        ratio,
        count_tokens,
    )
    previous = previous_nonblank(doc, cursor_line)
    unit = doc.indent_unit(cursor_line)
    missing_indent = ""
    if not line_prefix and not line_suffix.strip() and decision.line_indent > 0:
        missing_indent = indent_of_width(decision.line_indent, unit)
    following = next_nonblank(doc, cursor_line)
    # The tail is enough for any word, and searching a minified megabyte line is not.
    typed = word_pattern(spec.word_extra).search(line_prefix[-MAX_WORD_CHARS:])
    context = CompletionContext(
        prefix=text[prefix_start:cursor],
        suffix=text[cursor:suffix_end],
        mode=decision.mode,
        reason=decision.reason,
        cursor=cursor,
        line_prefix=line_prefix,
        line_suffix=line_suffix,
        typed_word=typed.group(0) if typed else "",
        indent_unit=unit,
        block_indent=decision.block_indent,
        extent=decision.extent,
        floor=decision.floor,
        after_block_floor=decision.after_block_floor,
        missing_indent=missing_indent,
        language=spec.name,
        prefix_start=prefix_start,
        suffix_end=suffix_end,
        scope=scope,
        string_delimiter=delimiter,
        previous_line=doc.line_text(previous) if previous is not None else "",
        next_line=doc.line_text(following) if following is not None else "",
        newline=detect_newline(text),
        source=text,
        check_window=find_check_window(doc, syntax, cursor, cursor_line) if syntax is not None else None,
    )
    log.debug("context for %s at %d: %s (%s)", doc.uri, cursor, context.mode, context.reason)
    return context
