"""What the model sees: a document's prefix and suffix around the cursor, and the mode.

``Document`` keeps one open text document: its text and line starts, updated edit by
edit, and for the languages in ``fim.languages`` a ``SyntaxWindow``: a tree-sitter tree
over the lines around the cursor that every LSP content change edits (``Tree.edit``)
and that is re-parsed incrementally when a context is built. Other languages get the
same rules applied line by line.

``build_context`` cuts the prompt for one keystroke:

* The prefix ends at the cursor and starts at a line start. It starts at offset 0 when
  the file up to the cursor fits the prefix budget. Otherwise it starts at the earliest
  syntactic boundary that fits: a top-level statement or definition, else one inside
  the definition holding the cursor, else a line on a coarse grid. The start only moves
  when the budget forces it, so successive prompts share a long common prefix and the
  engine reuses its KV cache.
* The suffix is the rest of the cursor's line and then whole lines of the enclosing
  block, up to and including the line that closes it, within the suffix budget and cut
  back to the end of a statement. The block is found by indentation, which agrees with
  the tree for formatted code and stays stable while the line being typed does not
  parse.
* The mode (single line, multi-line, or no request) comes from where the cursor is:
  in a comment or string, in an identifier, after a block opener, before other text.

Token counts are estimated from a chars-per-token ratio measured once per document with
the model's tokenizer on a bounded sample; only the short suffix is counted exactly.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache

from tree_sitter import Node, Tree

from fim import languages
from fim.languages import LanguageSpec
from fim.positions import (
    LineIndex,
    PositionEncoding,
    index_in_line,
    line_starts,
    utf8_length,
)

log = logging.getLogger(__name__)

TokenCounter = Callable[[str], int]

#: Only closing punctuation and whitespace right of the cursor: a completion can go there.
CLOSING_RIGHT = re.compile(r"^[\s)\]}>;,:'\"`]*$")
#: Prefix starts fall on multiples of this many lines when no syntactic boundary fits.
GRID_LINES = 32
#: Characters per token assumed until the document's own ratio is measured.
DEFAULT_CHARS_PER_TOKEN = 3.5
#: Characters of text around the cursor tokenized once to measure that ratio.
CALIBRATION_CHARS = 2000
#: Lines searched upwards for a block opener above a blank cursor line.
OPENER_SEARCH_LINES = 50
TAB_SIZE = 4
#: The syntax window: aligned to this many lines so that small moves keep it, reaching
#: this many lines below the cursor (at least the minimum), never larger than the cap.
WINDOW_GRID_LINES = 16
WINDOW_LINES_AFTER = 32
WINDOW_MIN_LINES_AFTER = 12
WINDOW_ALIGN_SEARCH = 400
MAX_WINDOW_CHARS = 96_000
#: Text before the cursor kept in the window even when the prefix starts at offset 0.
WINDOW_CONTEXT_BEFORE = 4000


class Mode(StrEnum):
    """How much to complete: one line, a block, or nothing."""

    SINGLE_LINE = "single-line"
    MULTI_LINE = "multi-line"
    NONE = "none"


@dataclass(frozen=True)
class Budgets:
    """Tokens allowed for the prefix and for the suffix of the prompt."""

    prefix_tokens: int = 1536
    #: The library's default, for tests and benchmarks; the daemon's own defaults (0, from
    #: the measured quality curve) are in ``lsp_server.config``.
    suffix_tokens: int = 16


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


# ---------------------------------------------------------------------------- helpers


def leading_whitespace(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def indent_width(whitespace: str, tab_size: int = TAB_SIZE) -> int:
    return len(whitespace.expandtabs(tab_size)) if "\t" in whitespace else len(whitespace)


@cache
def _word_pattern(extra: str) -> re.Pattern[str]:
    return re.compile(rf"[\w{re.escape(extra)}]+$")


def _is_word_char(char: str, extra: str) -> bool:
    return char.isalnum() or char == "_" or char in extra


def _detect_newline(text: str) -> str:
    index = text.find("\n")
    return "\r\n" if index > 0 and text[index - 1] == "\r" else "\n"


def detect_indent_unit(lines: list[str], default: str = "    ") -> str:
    """The document's indentation unit: a tab, or the most common step in spaces."""
    tabs = spaces = 0
    steps: Counter[int] = Counter()
    previous = 0
    for line in lines:
        if not line.strip():
            continue
        whitespace = leading_whitespace(line)
        if whitespace.startswith("\t"):
            tabs += 1
            continue
        if whitespace:
            spaces += 1
        width = len(whitespace)
        if width > previous and width - previous in (2, 3, 4, 8):
            steps[width - previous] += 1
        previous = width
    if tabs > spaces:
        return "\t"
    if steps:
        return " " * steps.most_common(1)[0][0]
    return default


# ---------------------------------------------------------------------------- syntax window


class SyntaxWindow:
    """A tree-sitter tree over whole lines of a document around the cursor.

    Every document edit inside the window is applied to the tree (``Tree.edit``) and
    the window is re-parsed incrementally when a context needs it. The window, not the
    whole file, is parsed because while code is being typed it is often unbalanced (an
    open bracket or string), and then tree-sitter re-parses everything after the edit:
    50-250 ms per keystroke on a 10,000-line file, against well under a millisecond for
    a window of a few hundred lines. The window starts on an unindented line, so its
    top-level nodes are the file's.
    """

    def __init__(self, language: str, start: int, text: str) -> None:
        self.language = language
        #: Document offset of the window's first character (a line start).
        self.start = start
        self.text = text
        self.tree: Tree | None = None
        self._stale = True
        self._data: bytes | None = None

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    def data(self) -> bytes:
        if self._data is None:
            self._data = self.text.encode("utf-8", "surrogatepass")
        return self._data

    def copy(self) -> SyntaxWindow:
        twin = SyntaxWindow(self.language, self.start, self.text)
        twin.tree = self.tree.copy() if self.tree is not None else None
        twin._stale, twin._data = self._stale, self._data
        return twin

    def apply(self, start: int, end: int, new_text: str) -> bool:
        """Mirror the document edit ``[start, end) -> new_text``; False if it crosses an edge."""
        delta = len(new_text) - (end - start)
        if end < self.start or (end == self.start and start < self.start):
            self.start += delta
            return True
        if start > self.end:
            return True
        if start < self.start or end > self.end:
            return False
        old = self.text
        relative_start, relative_end = start - self.start, end - self.start
        new = old[:relative_start] + new_text + old[relative_end:]
        if self.tree is not None:
            # Described as a change of whole lines: an exact edit inside trailing whitespace
            # makes tree-sitter-python re-parse everything after it.
            line_start = old.rfind("\n", 0, relative_start) + 1
            line_end = old.find("\n", relative_end)
            line_end = len(old) if line_end < 0 else line_end
            new_line_end = line_end + delta
            start_byte = utf8_length(old[:line_start])
            self.tree.edit(
                start_byte,
                start_byte + utf8_length(old[line_start:line_end]),
                start_byte + utf8_length(new[line_start:new_line_end]),
                (old.count("\n", 0, line_start), 0),
                _point(old, line_end),
                _point(new, new_line_end),
            )
        self.text = new
        self._data = None
        self._stale = True
        return True

    def parsed(self) -> Tree | None:
        """The tree, re-parsed incrementally if edits came since it was parsed."""
        if self._stale:
            tree = languages.parse(self.language, self.data(), self.tree)
            if tree is None and self.tree is not None:
                tree = languages.parse(self.language, self.data())
            self.tree, self._stale = tree, False
        return self.tree

    def byte_of(self, offset: int) -> int:
        """Window byte offset (what tree-sitter counts) of a document offset, clamped."""
        relative = max(0, min(offset - self.start, len(self.text)))
        return relative if self.text.isascii() else utf8_length(self.text[:relative])

    def offset_of(self, byte: int) -> int:
        """Document offset of a window byte offset (inside a character: before it)."""
        if self.text.isascii():
            return self.start + max(0, min(byte, len(self.text)))
        return self.start + len(self.data()[: max(0, byte)].decode("utf-8", "ignore"))


def _point(text: str, index: int) -> tuple[int, int]:
    """tree-sitter's (row, byte column) of ``index``; its rows end at ``\\n`` only."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index), utf8_length(text[line_start:index])


# ---------------------------------------------------------------------------- document


class Document:
    """One open text document: text, line starts, and a syntax window when it has a grammar."""

    def __init__(self, uri: str, text: str, language_id: str = "", version: int = 0) -> None:
        self.uri = uri
        self.version = version
        self._language_id = language_id
        self.language = languages.language_for(language_id, uri)
        self._reset(text)

    def _reset(self, text: str) -> None:
        self._text = text
        self._lines = LineIndex(line_starts(text))
        self._window: SyntaxWindow | None = None
        self._edits = 0
        self._calibration: tuple[TokenCounter, float] | None = None
        self._indent_cache: tuple[int, str] | None = None
        self._counts: OrderedDict[str, int] = OrderedDict()

    # ------------------------------------------------------------------ plain access
    @property
    def language_id(self) -> str:
        return self._language_id

    @language_id.setter
    def language_id(self, value: str) -> None:
        self._language_id = value
        language = languages.language_for(value, self.uri)
        if language is not self.language:
            self.language = language
            self._window = None

    @property
    def text(self) -> str:
        return self._text

    @property
    def starts(self) -> list[int]:
        return self._lines.starts

    @property
    def line_count(self) -> int:
        return len(self._lines)

    def line_start(self, line: int) -> int:
        return self._lines.start(line)

    def line_end(self, line: int) -> int:
        """Offset of the end of ``line``'s content, before its line break."""
        lines = self._lines
        if line + 1 >= len(lines):
            return len(self._text)
        end = lines.start(line + 1)
        start = lines.start(line)
        text = self._text
        if end > start and text[end - 1] == "\n":
            end -= 1
            if end > start and text[end - 1] == "\r":
                end -= 1
        elif end > start and text[end - 1] == "\r":
            end -= 1
        return end

    def line_text(self, line: int) -> str:
        return self._text[self._lines.start(line) : self.line_end(line)]

    def line_of(self, offset: int) -> int:
        return self._lines.line_of(offset)

    def offset_at(self, line: int, character: int, encoding: PositionEncoding) -> int:
        """String index of an LSP position, clamped into the text (and logged)."""
        if line < 0:
            log.warning("%s: position (%d, %d) before the file start: clamped", self.uri, line, character)
            return 0
        if line >= len(self._lines):
            log.warning("%s: position (%d, %d) past the last line: clamped", self.uri, line, character)
            return len(self._text)
        start = self._lines.start(line)
        found = index_in_line(self._text[start : self.line_end(line)], character, encoding)
        if found.clamped:
            log.warning("%s: position (%d, %d) clamped to its line", self.uri, line, character)
        return start + found.index

    # ------------------------------------------------------------------ edits
    def apply_change(
        self,
        range_: tuple[tuple[int, int], tuple[int, int]] | None,
        new_text: str,
        encoding: PositionEncoding = PositionEncoding.UTF16,
    ) -> None:
        """Apply one LSP content change; ``None`` replaces the whole text."""
        if range_ is None:
            self._reset(new_text)
            return
        (start_line, start_char), (end_line, end_char) = range_
        start = self.offset_at(start_line, start_char, encoding)
        end = self.offset_at(end_line, end_char, encoding)
        if end < start:
            log.warning("%s: change range ends before it starts: treated as an insertion", self.uri)
            end = start
        self.replace(start, end, new_text)

    def replace(self, start: int, end: int, new_text: str) -> None:
        """Replace ``text[start:end]`` with ``new_text`` (string offsets, clamped)."""
        old = self._text
        start = max(0, min(start, len(old)))
        end = max(start, min(end, len(old)))
        removed = old[start:end]
        if not removed and not new_text:
            return
        lines = self._lines
        first, last = lines.line_of(start), lines.line_of(end)
        delta = len(new_text) - len(removed)
        self._text = old[:start] + new_text + old[end:]
        touches_breaks = (
            "\n" in removed
            or "\r" in removed
            or "\n" in new_text
            or "\r" in new_text
            or (start > 0 and old[start - 1] == "\r")
        )
        if touches_breaks:
            self._replace_lines(first, last, delta)
        else:
            lines.shift_within_line(first, delta)
        if self._window is not None and not self._window.apply(start, end, new_text):
            self._window = None
        self._edits += 1

    def _replace_lines(self, first: int, last: int, delta: int) -> None:
        """Rescan the lines an edit touched, one line wider on top for a joined ``\\r\\n``."""
        lines = self._lines
        low = max(0, first - 1)
        region_start = lines.start(low)
        has_tail = last + 1 < len(lines)
        region_end = lines.start(last + 1) + delta if has_tail else len(self._text)
        local = line_starts(self._text[region_start:region_end])
        if has_tail:
            local.pop()  # the start of the first untouched line, which the tail keeps
        lines.replace_lines(low, last, [region_start + offset for offset in local], delta)

    def copy(self) -> Document:
        """An independent copy (for a speculative edit); its syntax window is copied, not re-parsed."""
        twin = Document.__new__(Document)
        twin.uri, twin.version = self.uri, self.version
        twin._language_id, twin.language = self._language_id, self.language
        twin._text = self._text
        twin._lines = LineIndex(list(self._lines.starts))
        twin._window = self._window.copy() if self._window is not None else None
        twin._edits = self._edits
        twin._calibration = self._calibration
        twin._indent_cache = self._indent_cache
        twin._counts = OrderedDict(self._counts)
        return twin

    # ------------------------------------------------------------------ syntax
    def _clean_line_at_or_before(self, line: int) -> int:
        """The nearest unindented line at or above ``line`` that starts a statement."""
        spec = self.language
        for candidate in range(line, max(-1, line - WINDOW_ALIGN_SEARCH), -1):
            text = self.line_text(candidate)
            if text[:1] not in ("", " ", "\t") and not spec.is_closer_line(text) and text[0] not in "*#)]}":
                return candidate
        return max(0, line)

    def syntax_window(self, cursor: int, need_from: int) -> SyntaxWindow | None:
        """A parsed window holding ``[need_from, cursor]`` and some lines below; None without a grammar.

        The window stays put while it covers what is needed, so typing re-parses it
        incrementally; it moves (one fresh parse of a few hundred lines) when the
        cursor leaves it.
        """
        if not self.language.has_grammar or languages.grammar(self.language.name) is None:
            return None
        cursor_line = self._lines.line_of(cursor)
        if self.line_end(cursor_line) - self._lines.start(cursor_line) > MAX_WINDOW_CHARS // 4:
            return None  # minified code: a window around one line is the whole file
        last_line = len(self._lines) - 1
        window = self._window
        if window is not None:
            wanted_end = self.line_end(min(last_line, cursor_line + WINDOW_MIN_LINES_AFTER))
            if window.start <= need_from and wanted_end <= window.end and window.parsed() is not None:
                return window
        first = self._lines.line_of(max(0, need_from))
        first = self._clean_line_at_or_before(first // WINDOW_GRID_LINES * WINDOW_GRID_LINES)
        last = min(last_line, (cursor_line + WINDOW_LINES_AFTER) // WINDOW_GRID_LINES * WINDOW_GRID_LINES)
        last = max(last, min(last_line, cursor_line + WINDOW_MIN_LINES_AFTER))
        start = self._lines.start(first)
        end = self.line_end(last)
        if end - start > MAX_WINDOW_CHARS:
            start = self._lines.start(self._lines.line_of(max(start, cursor - MAX_WINDOW_CHARS * 3 // 4)))
            end = max(cursor, min(end, start + MAX_WINDOW_CHARS))
        window = SyntaxWindow(self.language.name, start, self._text[start:end])
        self._window = window
        if window.parsed() is None:
            return None
        return window

    # ------------------------------------------------------------------ token counts
    def chars_per_token(self, count_tokens: TokenCounter, around: int = 0) -> float:
        """Characters per token in this document, measured once on text near ``around``."""
        if self._calibration is not None and self._calibration[0] == count_tokens:
            return self._calibration[1]
        text = self._text
        start = max(0, around - CALIBRATION_CHARS * 3 // 4)
        sample = text[start : start + CALIBRATION_CHARS]
        if len(sample) < CALIBRATION_CHARS // 2:
            sample = text[:CALIBRATION_CHARS]
        ratio = DEFAULT_CHARS_PER_TOKEN
        if sample:
            try:
                tokens = count_tokens(sample)
            except Exception as error:  # a tokenizer failure must not stop completions
                log.warning("token counter failed (%s): estimating %.1f chars per token", error, ratio)
                tokens = 0
            if tokens > 0:
                ratio = max(1.0, min(8.0, len(sample) / tokens))
        self._calibration = (count_tokens, ratio)
        return ratio

    def count_tokens_cached(self, count_tokens: TokenCounter, text: str) -> int:
        """Exact count for short texts that repeat from keystroke to keystroke (the suffix)."""
        cached = self._counts.get(text)
        if cached is not None:
            self._counts.move_to_end(text)
            return cached
        try:
            count = count_tokens(text)
        except Exception as error:
            log.warning("token counter failed (%s): estimating", error)
            count = int(len(text) / DEFAULT_CHARS_PER_TOKEN) + 1
        self._counts[text] = count
        if len(self._counts) > 64:
            self._counts.popitem(last=False)
        return count

    def indent_unit(self, around_line: int) -> str:
        """The indentation unit, re-detected after every 64 edits."""
        cached = self._indent_cache
        if cached is not None and self._edits - cached[0] < 64:
            return cached[1]
        first = max(0, around_line - 300)
        last = min(len(self._lines) - 1, around_line + 100)
        text = self._text[self._lines.start(first) : self.line_end(last)]
        unit = detect_indent_unit(text.splitlines(), self.language.default_indent)
        self._indent_cache = (self._edits, unit)
        return unit


# ---------------------------------------------------------------------------- syntax at the cursor


@dataclass
class _CursorSyntax:
    """The tree around the cursor: the chain of nodes holding it, root first."""

    window: SyntaxWindow
    root: Node
    chain: list[Node]


def _cursor_syntax(window: SyntaxWindow, tree: Tree, cursor: int) -> _CursorSyntax:
    root = tree.root_node
    cursor_byte = window.byte_of(cursor)
    node: Node | None = root.descendant_for_byte_range(cursor_byte, cursor_byte) or root
    chain: list[Node] = []
    while node is not None:
        chain.append(node)
        node = node.parent
    chain.reverse()
    return _CursorSyntax(window, root, chain)


_LAST_TOKEN = re.compile(r"(?:\w+|\S)$")
_LUA_BLOCK_COMMENT = re.compile(r"^--\[=*\[")


def _is_line_comment(spec: LanguageSpec, head: str) -> bool:
    """Whether a comment starting with ``head`` runs to the end of its line."""
    if spec.name == "lua" and _LUA_BLOCK_COMMENT.match(head):
        return False
    return any(head.startswith(marker) for marker in spec.line_comment)


_DELIMITER = re.compile(r"^[A-Za-z@$]*(\"\"\"|'''|\"|'|`|\[=*\[)")


def _scope_from_tree(
    doc: Document, spec: LanguageSpec, syntax: _CursorSyntax, cursor: int
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


def _error_near(syntax: _CursorSyntax, cursor: int, line_start: int) -> bool:
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


def _scope_from_line(spec: LanguageSpec, line_prefix: str) -> tuple[str, str]:
    """Best guess without a tree: an open quote or a line-comment marker before the cursor."""
    quote = ""
    index = 0
    length = len(line_prefix)
    while index < length:
        char = line_prefix[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = ""
        elif char in spec.quotes:
            quote = char
        else:
            for marker in spec.line_comment:
                if line_prefix.startswith(marker, index) and (index == 0 or line_prefix[index - 1] in " \t"):
                    return "comment", ""
        index += 1
    return ("string", quote) if quote else ("code", "")


# ---------------------------------------------------------------------------- mode


def _opener_token(stripped: str) -> str:
    """The token that opens the block at the end of a line (``:``, ``{``, ``then``...).

    Reasons name this token and never quote the user's code: the server looks for the
    word "comment" in a reason to tell comments apart.
    """
    match = _LAST_TOKEN.search(stripped)
    return match.group(0) if match else stripped[-1:]


def _opener_above(doc: Document, spec: LanguageSpec, line: int) -> tuple[int, str] | None:
    """The nearest non-blank line above ``line`` if it opens a block: (line, its stripped text)."""
    for candidate in range(line - 1, max(-1, line - 1 - OPENER_SEARCH_LINES), -1):
        stripped = doc.line_text(candidate).strip()
        if not stripped:
            continue
        if any(stripped.startswith(marker) for marker in spec.line_comment):
            return None
        if spec.is_opener_line(stripped) or stripped.endswith(("(", "[", "{")):
            return candidate, stripped
        return None
    return None


def _next_nonblank(doc: Document, line: int, limit: int = 50) -> int | None:
    for candidate in range(line + 1, min(doc.line_count, line + 1 + limit)):
        if doc.line_text(candidate).strip():
            return candidate
    return None


def _previous_nonblank(doc: Document, line: int, limit: int = 50) -> int | None:
    for candidate in range(line - 1, max(-1, line - 1 - limit), -1):
        if doc.line_text(candidate).strip():
            return candidate
    return None


@dataclass(frozen=True)
class _Decision:
    mode: Mode
    reason: str
    block_indent: str | None = None
    #: Lines below need at least this indentation to belong to the cursor's block.
    floor: int = 0


def _decide(
    doc: Document,
    spec: LanguageSpec,
    line: int,
    line_prefix: str,
    line_suffix: str,
    scope: str,
) -> _Decision:
    line_text = line_prefix + line_suffix
    own_indent = indent_width(leading_whitespace(line_text))
    blank_before = not line_prefix.strip()
    floor = indent_width(line_prefix) if blank_before else own_indent
    if (
        line_prefix
        and line_suffix
        and _is_word_char(line_prefix[-1], spec.word_extra)
        and _is_word_char(line_suffix[0], spec.word_extra)
    ):
        return _Decision(
            Mode.NONE,
            "cursor is inside an identifier (word characters on both sides): no request",
            floor=floor,
        )
    if scope == "comment":
        return _Decision(Mode.SINGLE_LINE, "inside a comment: single line", floor=floor)
    if scope == "string":
        return _Decision(
            Mode.SINGLE_LINE, "inside a string (handled like a comment): single line", floor=floor
        )
    stripped_prefix = line_prefix.strip()
    right = line_suffix.strip()
    if right and not CLOSING_RIGHT.match(line_suffix):
        return _Decision(
            Mode.SINGLE_LINE,
            "text right of the cursor is not only closing punctuation: single line that must merge with it",
            floor=floor,
        )
    if stripped_prefix and spec.is_opener_line(stripped_prefix):
        indent = leading_whitespace(line_text)
        return _Decision(
            Mode.MULTI_LINE,
            f"right after the block opener {_opener_token(stripped_prefix)!r}: "
            "multi-line to the end of the block",
            indent,
            indent_width(indent) + 1,
        )
    if right:
        return _Decision(
            Mode.SINGLE_LINE, "only closing punctuation right of the cursor: single line", floor=floor
        )
    if blank_before:
        opener = _opener_above(doc, spec, line)
        if opener is not None:
            opener_line, opener_text = opener
            indent = leading_whitespace(doc.line_text(opener_line))
            width = indent_width(indent)
            following = _next_nonblank(doc, line)
            empty = following is None
            if following is not None:
                text_below = doc.line_text(following)
                empty = indent_width(leading_whitespace(text_below)) <= width
            what = "empty block body" if empty else "new line right after a block opener"
            return _Decision(
                Mode.MULTI_LINE,
                f"{what} after {_opener_token(opener_text)!r}: multi-line to the end of the block",
                indent,
                width + 1,
            )
    return _Decision(Mode.SINGLE_LINE, "continuing the statement: single line", floor=floor)


# ---------------------------------------------------------------------------- prefix


def _first_line_at_or_after(doc: Document, offset: int) -> int:
    """The first line starting at or after ``offset`` (``line_count`` if none)."""
    line = doc.line_of(offset)
    return line + 1 if doc.line_start(line) < offset else line


def _first_child_ending_after(node: Node, byte: int) -> int:
    """Index of the first child of ``node`` that ends after ``byte`` (``child_count`` if none).

    A binary search over ``child(i)``: ``Node.first_child_for_byte`` returns invalid
    nodes in py-tree-sitter 0.25 (reading them crashes the process).
    """
    low, high = 0, node.child_count
    while low < high:
        middle = (low + high) // 2
        child = node.child(middle)
        if child is not None and child.end_byte <= byte:
            low = middle + 1
        else:
            high = middle
    return low


def _syntactic_start(
    doc: Document, syntax: _CursorSyntax, threshold: int, cursor_line_start: int
) -> int | None:
    """Earliest line start at or after ``threshold`` where a node begins, outermost level first."""
    window = syntax.window
    if threshold < window.start:
        return None
    threshold_byte = window.byte_of(threshold)
    cursor_byte = window.byte_of(cursor_line_start)
    chain = syntax.chain
    for level, container in enumerate(chain):
        # Children of this node that start before the cursor's own child (or the cursor).
        limit = chain[level + 1].start_byte if level + 1 < len(chain) else cursor_byte
        if limit < threshold_byte:
            continue  # the cursor's own node at this level starts too early: look inside it
        index = _first_child_ending_after(container, threshold_byte)
        count = container.child_count
        while index < count:
            child = container.child(index)
            if child is None or child.start_byte > limit:
                break
            if child.start_byte >= threshold_byte:
                start = doc.line_start(doc.line_of(window.offset_of(child.start_byte)))
                if threshold <= start <= cursor_line_start:
                    return start
            index += 1
    return None


def _paragraph_start(doc: Document, spec: LanguageSpec, first_line: int, cursor_line: int) -> int | None:
    """Without a tree: the first unindented line after a blank one, at or after ``first_line``."""
    for line in range(max(1, first_line), cursor_line + 1):
        text = doc.line_text(line)
        if text[:1] in ("", " ", "\t") or spec.is_closer_line(text):
            continue
        if not doc.line_text(line - 1).strip():
            return doc.line_start(line)
    return None


def _prefix_start(
    doc: Document,
    spec: LanguageSpec,
    syntax: _CursorSyntax | None,
    cursor: int,
    cursor_line: int,
    budget_chars: float,
) -> int:
    if cursor <= budget_chars:
        return 0
    threshold = cursor - int(budget_chars)
    cursor_line_start = doc.line_start(cursor_line)
    first_line = _first_line_at_or_after(doc, threshold)
    found: int | None
    if syntax is not None:
        found = _syntactic_start(doc, syntax, threshold, cursor_line_start)
    else:
        found = _paragraph_start(doc, spec, first_line, cursor_line)
    if found is not None:
        return found
    grid_line = -(-first_line // GRID_LINES) * GRID_LINES
    if grid_line <= cursor_line:
        return doc.line_start(grid_line)
    if first_line <= cursor_line:
        return doc.line_start(first_line)
    # The cursor's line alone is over the budget: cut inside it, on a coarse grid.
    return min(cursor, -(-threshold // 64) * 64)


# ---------------------------------------------------------------------------- suffix


def _suffix_end(
    doc: Document,
    spec: LanguageSpec,
    cursor: int,
    cursor_line: int,
    floor: int,
    budget_tokens: int,
    ratio: float,
    count_tokens: TokenCounter,
) -> int:
    """End offset of the suffix: whole lines of the cursor's block, within the budget."""
    if budget_tokens <= 0:
        return cursor
    budget_chars = budget_tokens * ratio
    line_end = doc.line_end(cursor_line)
    if line_end - cursor > budget_chars:
        return cursor + int(budget_chars)
    end = line_end
    # Ends of lines where the suffix can stop without cutting a statement, in order.
    boundaries = [line_end]
    sibling_indent: int | None = None
    line = cursor_line + 1
    while line < doc.line_count and doc.line_start(line) - cursor <= budget_chars:
        content = doc.line_text(line)
        stripped = content.strip()
        if not stripped:
            line += 1
            continue
        line_end_offset = doc.line_start(line) + len(content)
        width = indent_width(leading_whitespace(content))
        fits = line_end_offset - cursor <= budget_chars
        closes = spec.is_closer_line(stripped) or spec.is_continuation_line(stripped)
        if width < floor:
            if closes and fits:
                end = line_end_offset
                boundaries.append(end)
            break
        if sibling_indent is None:
            sibling_indent = width
        elif (width < sibling_indent or (width == sibling_indent and not closes)) and boundaries[-1] != end:
            # This line starts a statement, or it closes or continues an enclosing one
            # from further left ("else:" after a block): the statement above ended. A
            # closer at the statement's own indentation (a call's ")") is still part of it.
            boundaries.append(end)
        if not fits:
            end = boundaries[-1]
            break
        end = line_end_offset
        line += 1
    else:
        boundaries.append(end)
    if boundaries[-1] != end:
        boundaries.append(end)
    # Check the estimate with the real tokenizer: the suffix is short, and the same
    # suffix comes back keystroke after keystroke while the user types on the line.
    while len(boundaries) > 1 and doc.count_tokens_cached(count_tokens, doc.text[cursor:end]) > budget_tokens:
        boundaries.pop()
        end = boundaries[-1]
    return end


# ---------------------------------------------------------------------------- the entry point


def _check_window(doc: Document, syntax: _CursorSyntax, cursor: int, cursor_line: int) -> tuple[int, int]:
    """The text a completion is re-parsed in: the top-level nodes around the cursor.

    The node holding the cursor and its neighbours on both sides: while code is being
    typed the tree is often broken into fragments, and the fragment holding the cursor
    alone can be a block whose opener sits in the fragment before it.
    """
    window = syntax.window
    cursor_byte = window.byte_of(cursor)
    root = syntax.root
    count = root.child_count
    index = _first_child_ending_after(root, cursor_byte)
    holder = root.child(index) if index < count else None
    first = index - 1
    last = index + 1 if holder is not None and holder.start_byte <= cursor_byte else index
    start, end = doc.line_start(cursor_line), doc.line_end(cursor_line)
    first_node = root.child(max(0, first)) if count else None
    last_node = root.child(min(count - 1, last)) if count else None
    if first_node is not None and last_node is not None:
        start = min(start, doc.line_start(doc.line_of(window.offset_of(first_node.start_byte))))
        end = max(end, doc.line_end(doc.line_of(window.offset_of(last_node.end_byte))))
    return max(start, window.start), min(end, window.end)


def build_context(
    doc: Document, cursor: int, budgets: Budgets, count_tokens: TokenCounter
) -> CompletionContext:
    """The prompt parts and mode for a completion at string offset ``cursor``."""
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
    syntax: _CursorSyntax | None = None
    if window is not None and tree is not None:
        syntax = _cursor_syntax(window, tree, cursor)
        found = _scope_from_tree(doc, spec, syntax, cursor)
        scope, delimiter = found or ("code", "")
        if found is None and _error_near(syntax, cursor, line_start):
            # An unterminated string does not parse as a string: look at the line.
            line_scope, line_delimiter = _scope_from_line(spec, line_prefix)
            if line_scope == "string":
                scope, delimiter = line_scope, line_delimiter
    else:
        scope, delimiter = _scope_from_line(spec, line_prefix)

    decision = _decide(doc, spec, cursor_line, line_prefix, line_suffix, scope)
    prefix_start = _prefix_start(doc, spec, syntax, cursor, cursor_line, prefix_chars)
    suffix_end = _suffix_end(
        doc, spec, cursor, cursor_line, decision.floor, budgets.suffix_tokens, ratio, count_tokens
    )
    previous = _previous_nonblank(doc, cursor_line)
    following = _next_nonblank(doc, cursor_line)
    typed = _word_pattern(spec.word_extra).search(line_prefix)
    context = CompletionContext(
        prefix=text[prefix_start:cursor],
        suffix=text[cursor:suffix_end],
        mode=decision.mode,
        reason=decision.reason,
        cursor=cursor,
        line_prefix=line_prefix,
        line_suffix=line_suffix,
        typed_word=typed.group(0) if typed else "",
        indent_unit=doc.indent_unit(cursor_line),
        block_indent=decision.block_indent,
        language=spec.name,
        prefix_start=prefix_start,
        suffix_end=suffix_end,
        scope=scope,
        string_delimiter=delimiter,
        previous_line=doc.line_text(previous) if previous is not None else "",
        next_line=doc.line_text(following) if following is not None else "",
        newline=_detect_newline(text),
        source=text,
        check_window=_check_window(doc, syntax, cursor, cursor_line) if syntax is not None else None,
    )
    log.debug("context for %s at %d: %s (%s)", doc.uri, cursor, context.mode, context.reason)
    return context
