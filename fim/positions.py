"""Exact conversion between LSP positions, string offsets and UTF-8 byte offsets.

LSP counts characters in the negotiated encoding (UTF-16 code units by default). Python
strings count code points and tree-sitter counts UTF-8 bytes. Lines end at ``\\r\\n``,
``\\n`` or a lone ``\\r``, as LSP defines them.

Positions past the end of a line or of the file, and positions inside a surrogate pair
or a multi-byte character, are clamped, never an error: the caller learns that it
happened through ``Offset.clamped`` and the clamp is logged.

``LineIndex`` keeps the line starts of a document that is edited keystroke by keystroke
without rescanning it: an edit inside one line only records a pending shift for the
lines below it, which is applied when another line is edited.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)

_LINE_BREAK = re.compile(r"\r\n?|\n")


class PositionEncoding(StrEnum):
    UTF8 = "utf-8"
    UTF16 = "utf-16"
    UTF32 = "utf-32"


#: Cheapest first for us: code points are Python string indices, UTF-8 is tree-sitter's unit.
_PREFERENCE = (PositionEncoding.UTF32, PositionEncoding.UTF8, PositionEncoding.UTF16)


def choose_encoding(offered: Iterable[str] | None) -> PositionEncoding:
    """The encoding to announce, given the client's ``general.positionEncodings``.

    UTF-16 is the protocol's default and the answer whenever the client offers nothing
    we know.
    """
    names = {str(name).lower() for name in offered or ()}
    for encoding in _PREFERENCE:
        if encoding.value in names:
            return encoding
    return PositionEncoding.UTF16


@dataclass(frozen=True)
class Offset:
    index: int
    clamped: bool


def line_starts(text: str) -> list[int]:
    """Offsets where each line starts; ``\\r\\n``, ``\\n`` and ``\\r`` all end a line."""
    if "\r" not in text:
        starts = [0]
        append = starts.append
        find = text.find
        index = find("\n")
        while index >= 0:
            append(index + 1)
            index = find("\n", index + 1)
        return starts
    return [0, *(match.end() for match in _LINE_BREAK.finditer(text))]


def line_content_end(text: str, line_start: int, next_start: int | None) -> int:
    """Offset of the end of a line's content, before its line break.

    ``next_start`` is the start of the following line, or ``None`` for the last line.
    """
    if next_start is None:
        return len(text)
    end = next_start
    if end > line_start and text[end - 1] == "\n":
        end -= 1
        if end > line_start and text[end - 1] == "\r":
            end -= 1
    elif end > line_start and text[end - 1] == "\r":
        end -= 1
    return end


def utf8_length(text: str) -> int:
    """Bytes that ``text`` takes in UTF-8."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def units_of(text: str, encoding: PositionEncoding) -> int:
    """Length of ``text`` in the encoding's code units."""
    if encoding is PositionEncoding.UTF32 or text.isascii():
        return len(text)
    if encoding is PositionEncoding.UTF8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def index_in_line(
    line_text: str, character: int, encoding: PositionEncoding = PositionEncoding.UTF16
) -> Offset:
    """Index into ``line_text`` of ``character`` code units; clamped to the line."""
    if character <= 0:
        return Offset(0, character < 0)
    length = len(line_text)
    if encoding is PositionEncoding.UTF32 or line_text.isascii():
        return Offset(min(character, length), character > length)
    if encoding is PositionEncoding.UTF8:
        data = line_text.encode("utf-8", "surrogatepass")
        # A cut inside a multi-byte character leaves a partial sequence that "ignore"
        # drops: the index lands before that character.
        index = len(data[:character].decode("utf-8", "ignore"))
        return Offset(index, character > len(data) or utf8_length(line_text[:index]) != character)
    data = line_text.encode("utf-16-le", "surrogatepass")
    index = len(data[: 2 * character].decode("utf-16-le", "ignore"))
    return Offset(index, 2 * character > len(data) or units_of(line_text[:index], encoding) != character)


def byte_column_to_index(line_text: str, byte_column: int) -> int:
    """Index into ``line_text`` of a UTF-8 byte column (tree-sitter's point column)."""
    if byte_column <= 0:
        return 0
    if line_text.isascii():
        return min(byte_column, len(line_text))
    return len(line_text.encode("utf-8", "surrogatepass")[:byte_column].decode("utf-8", "ignore"))


def offset_at(
    text: str,
    line: int,
    character: int,
    encoding: PositionEncoding = PositionEncoding.UTF16,
    starts: list[int] | None = None,
) -> Offset:
    """String index of an LSP position, clamped into the text."""
    starts = starts if starts is not None else line_starts(text)
    if line < 0:
        log.warning("position (%d, %d) is before the start of the file: clamped to 0", line, character)
        return Offset(0, True)
    if line >= len(starts):
        log.warning(
            "position (%d, %d) is past the last line (%d): clamped to the end",
            line,
            character,
            len(starts) - 1,
        )
        return Offset(len(text), True)
    start = starts[line]
    end = line_content_end(text, start, starts[line + 1] if line + 1 < len(starts) else None)
    found = index_in_line(text[start:end], character, encoding)
    if found.clamped:
        log.warning("position (%d, %d) is not a character boundary of its line: clamped", line, character)
    return Offset(start + found.index, found.clamped)


def line_of(starts: list[int], index: int) -> int:
    """The line holding string ``index``."""
    return max(0, bisect_right(starts, index) - 1)


def position_of(
    text: str,
    index: int,
    encoding: PositionEncoding = PositionEncoding.UTF16,
    starts: list[int] | None = None,
) -> tuple[int, int]:
    """LSP (line, character) of a string index."""
    starts = starts if starts is not None else line_starts(text)
    index = max(0, min(index, len(text)))
    line = line_of(starts, index)
    return line, units_of(text[starts[line] : index], encoding)


def byte_offset(text: str, index: int) -> int:
    """UTF-8 byte offset of a string index (what tree-sitter counts)."""
    return utf8_length(text[: max(0, min(index, len(text)))])


class LineIndex:
    """Line starts of a text that changes by edits, in one unit (characters or bytes).

    Edits within one line are the common case while typing; they leave the list alone
    and accumulate a shift that applies to every line after the edited one.
    """

    def __init__(self, starts: list[int]) -> None:
        self._starts = starts
        self._shift_after = -1  # lines after this one are off by _shift
        self._shift = 0

    def __len__(self) -> int:
        return len(self._starts)

    @property
    def starts(self) -> list[int]:
        self._settle()
        return self._starts

    def _settle(self) -> None:
        if self._shift:
            first = self._shift_after + 1
            shift = self._shift
            self._starts[first:] = [start + shift for start in self._starts[first:]]
        self._shift_after, self._shift = -1, 0

    def start(self, line: int) -> int:
        value = self._starts[line]
        return value + self._shift if line > self._shift_after else value

    def line_of(self, offset: int) -> int:
        """The line holding ``offset``."""
        starts = self._starts
        if not self._shift:
            return max(0, bisect_right(starts, offset) - 1)
        boundary = self._shift_after + 1
        if boundary < len(starts) and offset >= starts[boundary] + self._shift:
            return bisect_right(starts, offset - self._shift, lo=boundary) - 1
        return max(0, bisect_right(starts, offset, hi=boundary) - 1)

    def shift_within_line(self, line: int, delta: int) -> None:
        """Record an edit of ``delta`` units inside ``line`` that added or removed no break."""
        if not delta:
            return
        if self._shift and self._shift_after != line:
            self._settle()
        self._shift_after = line
        self._shift += delta

    def replace_lines(self, first: int, last: int, new_starts: list[int], delta: int) -> None:
        """Lines ``first..last`` now start at ``new_starts``; later lines move by ``delta``."""
        self._settle()
        tail = self._starts[last + 1 :]
        if delta:
            tail = [start + delta for start in tail]
        self._starts[first:] = new_starts + tail
