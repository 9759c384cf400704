"""What the model sees: a document's prefix and suffix around the cursor, and the mode.

This first version is line-based. It cuts whole lines within token budgets and picks
the completion mode from the text around the cursor.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from fim.positions import PositionEncoding, line_starts, offset_at

TokenCounter = Callable[[str], int]

WORD_CHAR = re.compile(r"\w")
TRAILING_WORD = re.compile(r"\w+$")
BLOCK_OPENERS = (":", "{", "(", "[", "=>", "->", "do", "then")
CLOSING_RIGHT = re.compile(r"^[\s)\]}>;,:'\"`]*$")


class Mode(StrEnum):
    SINGLE_LINE = "single-line"
    MULTI_LINE = "multi-line"
    NONE = "none"


@dataclass(frozen=True)
class Budgets:
    prefix_tokens: int = 1536
    suffix_tokens: int = 64


class Document:
    """One open text document."""

    def __init__(self, uri: str, text: str, language_id: str = "", version: int = 0) -> None:
        self.uri = uri
        self.language_id = language_id
        self.version = version
        self._text = text
        self._starts: list[int] | None = None

    @property
    def text(self) -> str:
        return self._text

    @property
    def starts(self) -> list[int]:
        if self._starts is None:
            self._starts = line_starts(self._text)
        return self._starts

    def offset_at(self, line: int, character: int, encoding: PositionEncoding) -> int:
        return offset_at(self._text, line, character, encoding, self.starts).index

    def apply_change(
        self,
        range_: tuple[tuple[int, int], tuple[int, int]] | None,
        new_text: str,
        encoding: PositionEncoding = PositionEncoding.UTF16,
    ) -> None:
        """Apply one LSP content change; ``None`` replaces the whole text."""
        if range_ is None:
            self._text = new_text
        else:
            (start_line, start_char), (end_line, end_char) = range_
            start = self.offset_at(start_line, start_char, encoding)
            end = max(start, self.offset_at(end_line, end_char, encoding))
            self._text = self._text[:start] + new_text + self._text[end:]
        self._starts = None


@dataclass(frozen=True)
class CompletionContext:
    prefix: str
    suffix: str
    mode: Mode
    reason: str
    cursor: int
    line_prefix: str
    line_suffix: str
    typed_word: str
    indent_unit: str = "    "
    block_indent: str | None = None


def _indent_unit(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("\t"):
            return "\t"
    return "    "


def _leading_space(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def decide_mode(line_prefix: str, line_suffix: str, previous_line: str) -> tuple[Mode, str]:
    if line_prefix and line_suffix and WORD_CHAR.match(line_suffix) and WORD_CHAR.match(line_prefix[-1]):
        return Mode.NONE, "cursor is inside an identifier"
    if line_suffix.strip() and not CLOSING_RIGHT.match(line_suffix):
        return Mode.SINGLE_LINE, "text right of the cursor: single line that must merge with it"
    if not line_prefix.strip():
        opener = previous_line.rstrip()
        if opener.endswith(BLOCK_OPENERS):
            return Mode.MULTI_LINE, "empty line after a block opener"
    return Mode.SINGLE_LINE, "continuing the statement"


def build_context(
    doc: Document, cursor: int, budgets: Budgets, count_tokens: TokenCounter
) -> CompletionContext:
    text = doc.text
    cursor = max(0, min(cursor, len(text)))
    line_start = text.rfind("\n", 0, cursor) + 1
    line_end = text.find("\n", cursor)
    line_end = len(text) if line_end < 0 else line_end
    line_prefix = text[line_start:cursor]
    line_suffix = text[cursor:line_end]
    previous_line = text[max(0, text.rfind("\n", 0, max(0, line_start - 1)) + 1) : max(0, line_start - 1)]

    prefix_lines = text[:line_start].splitlines(keepends=True)
    kept: list[str] = []
    used = count_tokens(line_prefix)
    for line in reversed(prefix_lines):
        cost = max(1, len(line) // 3)
        if used + cost > budgets.prefix_tokens:
            break
        kept.append(line)
        used += cost
    prefix = "".join(reversed(kept)) + line_prefix

    suffix = line_suffix
    suffix_used = count_tokens(suffix) if suffix else 0
    for line in text[line_end:].splitlines(keepends=True):
        cost = max(1, len(line) // 3)
        if suffix_used + cost > budgets.suffix_tokens:
            break
        suffix += line
        suffix_used += cost

    mode, reason = decide_mode(line_prefix, line_suffix, previous_line)
    typed = TRAILING_WORD.search(line_prefix)
    return CompletionContext(
        prefix=prefix,
        suffix=suffix,
        mode=mode,
        reason=reason,
        cursor=cursor,
        line_prefix=line_prefix,
        line_suffix=line_suffix,
        typed_word=typed.group(0) if typed else "",
        indent_unit=_indent_unit(text[:4096]),
        block_indent=re.match(r"[ \t]*", previous_line).group(0) if mode is Mode.MULTI_LINE else None,  # type: ignore[union-attr]
    )
