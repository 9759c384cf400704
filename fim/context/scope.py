"""Where the cursor is: in code, in a comment, or in a string (and what closes it).

With a syntax window the nodes around the cursor say so (``scope_from_tree``); an
unterminated string does not parse as one, so near a parse error, and for languages
without a grammar, the cursor's line is scanned instead (``scope_from_line``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tree_sitter import Node, Tree

    from fim.context.document import Document, SyntaxWindow
    from fim.languages import LanguageSpec

#: Characters of the cursor's line read by ``scope_from_line`` (minified code is one line).
MAX_LINE_SCAN = 20_000
_LUA_BLOCK_COMMENT = re.compile(r"^--\[=*\[")
_DELIMITER = re.compile(r"^[A-Za-z@$]*(\"\"\"|'''|\"|'|`|\[=*\[)")


@dataclass
class CursorSyntax:
    """The tree around the cursor: the chain of nodes holding it, root first."""

    window: SyntaxWindow
    root: Node
    chain: list[Node]


def cursor_syntax(window: SyntaxWindow, tree: Tree, cursor: int) -> CursorSyntax:
    root = tree.root_node
    cursor_byte = window.byte_of(cursor)
    node: Node | None = root.descendant_for_byte_range(cursor_byte, cursor_byte) or root
    chain: list[Node] = []
    while node is not None:
        chain.append(node)
        node = node.parent
    chain.reverse()
    return CursorSyntax(window, root, chain)


def _is_line_comment(spec: LanguageSpec, head: str) -> bool:
    """Whether a comment starting with ``head`` runs to the end of its line."""
    if spec.name == "lua" and _LUA_BLOCK_COMMENT.match(head):
        return False
    return any(head.startswith(marker) for marker in spec.line_comment)


def scope_from_tree(
    doc: Document, spec: LanguageSpec, syntax: CursorSyntax, cursor: int
) -> tuple[str, str] | None:
    """("code" | "comment" | "string", the closing delimiter) where a node says so, else None."""
    window = syntax.window
    cursor_byte = window.byte_of(cursor)
    if cursor_byte == 0:
        return None
    node: Node | None = syntax.root.descendant_for_byte_range(cursor_byte - 1, cursor_byte)
    text = doc.text
    while node is not None:
        kind = node.type
        if kind in spec.code_in_string_types:
            return "code", ""
        if kind in spec.comment_types or kind in spec.string_types:
            start = window.offset_of(node.start_byte)
            inside = node.start_byte < cursor_byte < node.end_byte
            if kind in spec.comment_types:
                at_end = cursor_byte == node.end_byte and _is_line_comment(spec, text[start : start + 4])
                return ("comment", "") if inside or at_end else ("code", "")
            # An unterminated string ends where the cursor is.
            if inside or (node.has_error and cursor_byte == node.end_byte):
                match = _DELIMITER.match(text[start : start + 8])
                delimiter = match.group(1) if match else ""
                if delimiter.startswith("["):  # Lua long string [==[ ... ]==]
                    delimiter = "]" + delimiter[1:-1] + "]"
                return "string", delimiter
            return "code", ""
        node = node.parent
    return None


def error_near_cursor(syntax: CursorSyntax, cursor: int, line_start: int) -> bool:
    """Whether the tree fails to parse the cursor's line up to the cursor."""
    window = syntax.window
    cursor_byte = window.byte_of(cursor)
    line_byte = window.byte_of(line_start)
    node: Node | None = syntax.root.descendant_for_byte_range(max(0, cursor_byte - 1), cursor_byte)
    while node is not None and (node.start_byte >= line_byte or node.is_error):
        if node.is_error or node.is_missing or node.has_error:
            return True
        node = node.parent
    return False


@functools.lru_cache(maxsize=64)
def _line_scanner(quotes: str, comment_markers: tuple[str, ...]) -> re.Pattern[str]:
    """One regular expression that walks a line as ``StringScanner`` does, at C speed.

    Matches, leftmost first: a closed string literal (skipped), a string left open at
    the end of the text (group ``open``), or a line-comment marker at the start of the
    text or after a space or tab (group ``comment``). A backslash escapes the next
    character inside a string. Minified code puts megabytes on one line, and a walk
    over it in Python took seconds per keystroke.
    """
    closed = [
        rf"{re.escape(quote)}(?:[^{re.escape(quote)}\\]|\\[\s\S])*{re.escape(quote)}" for quote in quotes
    ]
    unterminated = [rf"{re.escape(quote)}(?:[^{re.escape(quote)}\\]|\\[\s\S])*\\?\Z" for quote in quotes]
    markers = [re.escape(marker) for marker in comment_markers]
    never = r"(?!)"
    return re.compile(
        "|".join(
            [
                *closed,
                rf"(?P<open>{'|'.join(unterminated) or never})",
                rf"(?P<comment>(?<![^ \t])(?:{'|'.join(markers) or never}))",
            ]
        )
    )


def scope_from_line(spec: LanguageSpec, line_prefix: str) -> tuple[str, str]:
    """Best guess without a tree: an open quote or a line-comment marker before the cursor.

    Of a line longer than ``MAX_LINE_SCAN`` characters only the last ``MAX_LINE_SCAN``
    before the cursor are read: a guess, for minified code, where a walk over the whole
    line would cost time in proportion to its length on every keystroke.
    """
    if len(line_prefix) > MAX_LINE_SCAN:
        line_prefix = line_prefix[-MAX_LINE_SCAN:]
    for match in _line_scanner(spec.quotes, tuple(spec.line_comment)).finditer(line_prefix):
        if match.group("comment") is not None:
            return "comment", ""
        if match.group("open") is not None:
            return "string", match.group("open")[0]
    return "code", ""
