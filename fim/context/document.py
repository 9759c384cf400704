"""One open text document, kept in step with the editor, and its syntax window.

``Document`` holds the text and line starts of a document, updated edit by edit, and
for the languages in ``fim.languages`` a ``SyntaxWindow``: a tree-sitter tree over the
lines around the cursor that every LSP content change edits (``Tree.edit``) and that is
re-parsed incrementally when a context is built. Other languages get no tree.

It also measures the document's characters per token once with the model's tokenizer
(on a bounded sample), so that token budgets can be turned into character counts, and
counts the short suffix exactly.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from fim import languages
from fim.context.text import detect_indent_unit
from fim.positions import (
    LineIndex,
    PositionEncoding,
    index_in_line,
    line_content_end,
    line_starts,
    utf8_length,
)

if TYPE_CHECKING:
    from tree_sitter import Tree

log = logging.getLogger(__name__)

#: The model's tokenizer: how many tokens a text takes.
TokenCounter = Callable[[str], int]

#: Characters per token assumed until the document's own ratio is measured.
DEFAULT_CHARS_PER_TOKEN = 3.5
#: Characters of text around the cursor tokenized once to measure that ratio.
CALIBRATION_CHARS = 2000
#: A cursor this far from where the ratio was measured measures it again.
RECALIBRATE_CHARS = CALIBRATION_CHARS // 2
#: The syntax window: aligned to this many lines so that small moves keep it, reaching
#: this many lines below the cursor (at least the minimum), never larger than the cap.
WINDOW_GRID_LINES = 16
WINDOW_LINES_AFTER = 32
WINDOW_MIN_LINES_AFTER = 12
WINDOW_ALIGN_SEARCH = 400
MAX_WINDOW_CHARS = 96_000


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
        #: The token counter, the characters per token it measured, and where.
        self._calibration: tuple[TokenCounter, float, int] | None = None
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
        next_start = lines.start(line + 1) if line + 1 < len(lines) else None
        return line_content_end(self._text, lines.start(line), next_start)

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
        if "\x00" in self._text[start:end]:
            # A binary file opened as text: tree-sitter's error recovery over it took a
            # quarter of a second per keystroke, and no grammar describes it.
            return None
        window = SyntaxWindow(self.language.name, start, self._text[start:end])
        self._window = window
        if window.parsed() is None:
            return None
        return window

    # ------------------------------------------------------------------ token counts
    def chars_per_token(self, count_tokens: TokenCounter, around: int = 0) -> float:
        """Characters per token in the text just before ``around``, where the prefix is.

        Text differs within a file: a table of hex literals takes three times the tokens
        per character of the code around it. A ratio measured once, at the end of a
        file, put a 5,872-token prefix (budget 1,536) in front of a cursor at the end of
        such a table: two minutes of prefill. It is measured again when the cursor is more
        than ``RECALIBRATE_CHARS`` from where it was measured (one tokenization of
        ``CALIBRATION_CHARS``, well under a millisecond).
        """
        cached = self._calibration
        if cached is not None and cached[0] == count_tokens and abs(around - cached[2]) <= RECALIBRATE_CHARS:
            return cached[1]
        text = self._text
        start = max(0, around - CALIBRATION_CHARS)
        sample = text[start:around]
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
        self._calibration = (count_tokens, ratio, around)
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
