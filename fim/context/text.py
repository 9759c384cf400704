"""Plain-text helpers shared by context building and post-processing.

Indentation (leading whitespace, its width, the document's unit), words, line breaks,
and ``StringScanner``, which walks a text and tells the characters inside string
literals from the code around them without a parser.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from functools import cache

TAB_SIZE = 4


def leading_whitespace(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def indent_width(whitespace: str, tab_size: int = TAB_SIZE) -> int:
    return len(whitespace.expandtabs(tab_size)) if "\t" in whitespace else len(whitespace)


def indent_of_width(width: int, unit: str, tab_size: int = TAB_SIZE) -> str:
    """Whitespace ``width`` columns wide in the style of ``unit``: tabs (and spaces left over) or spaces."""
    if unit.startswith("\t"):
        return "\t" * (width // tab_size) + " " * (width % tab_size)
    return " " * width


@cache
def word_pattern(extra: str) -> re.Pattern[str]:
    """The word ending a text: word characters and the language's ``extra`` ones."""
    return re.compile(rf"[\w{re.escape(extra)}]+$")


def is_word_char(char: str, extra: str) -> bool:
    return char.isalnum() or char == "_" or char in extra


def detect_newline(text: str) -> str:
    """The document's line break, judged by its first line."""
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


class StringScanner:
    """A walk over ``text`` that skips the contents of string literals.

    A string opens at one of the ``quotes`` characters and closes at the same character
    when a backslash does not escape it. ``open_delimiter`` says the text starts inside
    a string opened before it, which that delimiter (one or more characters) closes.
    """

    def __init__(self, text: str, quotes: str, open_delimiter: str = "") -> None:
        self.text = text
        self._quotes = quotes
        #: The delimiter that closes the string open where the walk has got to; "" in code.
        self.delimiter = open_delimiter
        #: Whether the string open before the text was closed inside it.
        self.closed_open_string = False
        self._in_open_string = bool(open_delimiter)

    def code_characters(self) -> Iterator[tuple[int, str]]:
        """Index and character of each character outside strings, quotes excluded."""
        text = self.text
        index = 0
        length = len(text)
        while index < length:
            char = text[index]
            delimiter = self.delimiter
            if delimiter:
                if char == "\\":
                    index += 2
                    continue
                if text.startswith(delimiter, index):
                    if self._in_open_string:
                        self.closed_open_string = True
                        self._in_open_string = False
                    index += len(delimiter)
                    self.delimiter = ""
                    continue
            elif char in self._quotes:
                self.delimiter = char
            else:
                yield index, char
            index += 1
