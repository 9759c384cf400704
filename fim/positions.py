"""Exact conversion between LSP positions, string offsets and UTF-8 byte offsets.

LSP counts characters in the negotiated encoding (UTF-16 code units by default). Python
strings count code points. Positions past the end of a line or of the file are clamped,
never an error: the caller learns that it happened through ``clamped``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PositionEncoding(StrEnum):
    UTF8 = "utf-8"
    UTF16 = "utf-16"
    UTF32 = "utf-32"


def _units(char: str, encoding: PositionEncoding) -> int:
    code = ord(char)
    if encoding is PositionEncoding.UTF16:
        return 2 if code > 0xFFFF else 1
    if encoding is PositionEncoding.UTF8:
        if code < 0x80:
            return 1
        if code < 0x800:
            return 2
        return 3 if code < 0x10000 else 4
    return 1


@dataclass(frozen=True)
class Offset:
    index: int
    clamped: bool


def line_starts(text: str) -> list[int]:
    """Offsets where each line starts; ``\\r\\n``, ``\\n`` and ``\\r`` all end a line."""
    starts = [0]
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char == "\n":
            starts.append(index + 1)
        elif char == "\r":
            if index + 1 < length and text[index + 1] == "\n":
                index += 1
            starts.append(index + 1)
        index += 1
    return starts


def _line_end(text: str, starts: list[int], line: int) -> int:
    """Offset of the end of ``line``'s content, before its line break."""
    end = starts[line + 1] if line + 1 < len(starts) else len(text)
    if end > starts[line] and line + 1 < len(starts):
        end -= 1
        if end > starts[line] and text[end] == "\n" and text[end - 1] == "\r":
            end -= 1
    return end


def offset_at(
    text: str,
    line: int,
    character: int,
    encoding: PositionEncoding = PositionEncoding.UTF16,
    starts: list[int] | None = None,
) -> Offset:
    """String index of an LSP position, clamped into the text."""
    starts = starts if starts is not None else line_starts(text)
    clamped = False
    if line < 0:
        return Offset(0, True)
    if line >= len(starts):
        return Offset(len(text), True)
    if character < 0:
        character, clamped = 0, True
    start = starts[line]
    end = _line_end(text, starts, line)
    index = start
    remaining = character
    while index < end and remaining > 0:
        width = _units(text[index], encoding)
        if width > remaining:
            # Inside a surrogate pair or a multi-byte character: stay before it.
            clamped = True
            break
        remaining -= width
        index += 1
    if remaining > 0 and index >= end:
        clamped = True
    return Offset(index, clamped)


def position_of(
    text: str,
    index: int,
    encoding: PositionEncoding = PositionEncoding.UTF16,
    starts: list[int] | None = None,
) -> tuple[int, int]:
    """LSP (line, character) of a string index."""
    starts = starts if starts is not None else line_starts(text)
    index = max(0, min(index, len(text)))
    # Binary search for the line holding index.
    low, high = 0, len(starts) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if starts[middle] <= index:
            low = middle
        else:
            high = middle - 1
    line = low
    if encoding is PositionEncoding.UTF32:
        return line, index - starts[line]
    return line, sum(_units(char, encoding) for char in text[starts[line] : index])


def byte_offset(text: str, index: int) -> int:
    """UTF-8 byte offset of a string index (what tree-sitter counts)."""
    return len(text[:index].encode("utf-8"))
