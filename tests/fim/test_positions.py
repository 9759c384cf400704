"""Positions: LSP (line, character) in UTF-8/16/32 against string offsets and UTF-8 bytes.

The reference used here is deliberately naive (split the text with a regular
expression, encode each piece) so that it shares nothing with ``fim.positions``.
"""

from __future__ import annotations

import logging
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fim.context import Document
from fim.positions import (
    LineIndex,
    PositionEncoding,
    byte_column_to_index,
    byte_offset,
    choose_encoding,
    index_in_line,
    line_starts,
    offset_at,
    position_of,
)

ENCODINGS = list(PositionEncoding)
#: Pieces that make positions hard: astral characters (surrogate pairs in UTF-16),
#: CJK, combining marks, flags (two astral code points), every kind of line break.
PIECES = [
    "a",
    "Z",
    "_",
    " ",
    "\t",
    "é",
    "中",
    "文",
    "😀",
    "🐍",
    "e\u0301",
    "🇫🇷",
    "\n",
    "\r\n",
    "\r",
    "()",
    "ß",
]

texts = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


def reference_lines(text: str) -> list[tuple[int, int]]:
    """(start, content end) of every line, line breaks as LSP defines them."""
    lines = []
    start = 0
    for match in re.finditer(r"\r\n|\r|\n", text):
        lines.append((start, match.start()))
        start = match.end()
    lines.append((start, len(text)))
    return lines


def units(text: str, encoding: PositionEncoding) -> int:
    if encoding is PositionEncoding.UTF8:
        return len(text.encode("utf-8"))
    if encoding is PositionEncoding.UTF16:
        return len(text.encode("utf-16-le")) // 2
    return len(text)


def boundaries(text: str) -> list[int]:
    """String indices a position can name: not between the \\r and \\n of a CRLF."""
    return [
        index
        for index in range(len(text) + 1)
        if not (0 < index < len(text) and text[index - 1 : index + 1] == "\r\n")
    ]


@given(texts)
def test_line_starts_match_reference(text: str) -> None:
    assert line_starts(text) == [start for start, _ in reference_lines(text)]


@settings(max_examples=200)
@given(texts, st.sampled_from(ENCODINGS))
def test_every_position_round_trips(text: str, encoding: PositionEncoding) -> None:
    lines = reference_lines(text)
    for index in boundaries(text):
        line = max(number for number, (start, _) in enumerate(lines) if start <= index)
        character = units(text[lines[line][0] : index], encoding)
        assert position_of(text, index, encoding) == (line, character)
        found = offset_at(text, line, character, encoding)
        assert (found.index, found.clamped) == (index, False)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.integers(-3, 60), st.integers(-3, 200), st.sampled_from(ENCODINGS))
def test_any_position_is_clamped_never_an_error(
    text: str, line: int, character: int, encoding: PositionEncoding
) -> None:
    found = offset_at(text, line, character, encoding)
    assert 0 <= found.index <= len(text)
    lines = reference_lines(text)
    if line < 0:
        assert (found.index, found.clamped) == (0, True)
    elif line >= len(lines):
        assert (found.index, found.clamped) == (len(text), True)
    else:
        start, end = lines[line]
        assert start <= found.index <= end, "a position never leaves its line"
        reached = units(text[start : found.index], encoding)
        assert reached <= max(0, character)
        if character > units(text[start:end], encoding):
            assert found.clamped and found.index == end
        if not found.clamped:
            assert reached == character


@pytest.mark.parametrize(
    ("encoding", "inside"),
    [
        (PositionEncoding.UTF16, 1),
        (PositionEncoding.UTF8, 1),
        (PositionEncoding.UTF8, 2),
        (PositionEncoding.UTF8, 3),
    ],
)
def test_position_inside_a_character_lands_before_it(encoding: PositionEncoding, inside: int) -> None:
    text = "ab😀cd"
    found = offset_at(text, 0, 2 + inside, encoding)
    assert found == found.__class__(2, True)


def test_clamping_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fim.positions"):
        assert offset_at("one\ntwo", 5, 0).index == len("one\ntwo")
        assert offset_at("one\ntwo", 0, 99).index == 3
    assert len(caplog.records) == 2


@given(texts)
def test_byte_offsets_are_utf8_lengths(text: str) -> None:
    for index in range(len(text) + 1):
        assert byte_offset(text, index) == len(text[:index].encode("utf-8"))


@given(
    st.lists(st.sampled_from([p for p in PIECES if p not in ("\n", "\r\n", "\r")]), max_size=20).map("".join)
)
def test_byte_columns_map_back_to_indices(line: str) -> None:
    for index in range(len(line) + 1):
        assert byte_column_to_index(line, len(line[:index].encode("utf-8"))) == index


def test_index_in_line_on_tabs_counts_one_unit() -> None:
    assert index_in_line("\t\tx", 2, PositionEncoding.UTF16).index == 2


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (None, PositionEncoding.UTF16),
        ([], PositionEncoding.UTF16),
        (["utf-16"], PositionEncoding.UTF16),
        (["utf-16", "utf-8"], PositionEncoding.UTF8),
        (["utf-8", "utf-32"], PositionEncoding.UTF32),
        (["latin-1"], PositionEncoding.UTF16),
    ],
)
def test_choose_encoding_prefers_code_points(offered: list[str] | None, chosen: PositionEncoding) -> None:
    assert choose_encoding(offered) is chosen


def test_line_index_shift_is_applied_lazily() -> None:
    index = LineIndex([0, 4, 8, 12])
    index.shift_within_line(1, 3)
    index.shift_within_line(1, 2)
    assert [index.start(line) for line in range(4)] == [0, 4, 13, 17]
    assert index.line_of(12) == 1 and index.line_of(13) == 2
    index.shift_within_line(0, -1)  # another line: the pending shift is settled first
    assert index.starts == [0, 3, 12, 16]


edits = st.lists(
    st.tuples(st.floats(0, 1), st.integers(0, 6), st.lists(st.sampled_from(PIECES), max_size=4).map("".join)),
    max_size=12,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(texts, edits, st.sampled_from(ENCODINGS))
def test_document_edits_keep_positions_exact(
    text: str, changes: list[tuple[float, int, str]], encoding: PositionEncoding
) -> None:
    doc = Document("file:///notes.txt", text)
    for where, length, inserted in changes:
        spots = boundaries(text)
        start = spots[int(where * (len(spots) - 1))]
        end = next((spot for spot in spots if spot >= min(len(text), start + length)), len(text))
        start_position = position_of(text, start, encoding)
        end_position = position_of(text, end, encoding)
        doc.apply_change((start_position, end_position), inserted, encoding)
        text = text[:start] + inserted + text[end:]
        assert doc.text == text
        assert doc.starts == line_starts(text)
        for index in boundaries(text)[::3]:
            line, character = position_of(text, index, encoding)
            assert doc.offset_at(line, character, encoding) == index


def test_document_change_past_the_end_is_clamped(caplog: pytest.LogCaptureFixture) -> None:
    doc = Document("file:///a.py", "x = 1\n")
    with caplog.at_level(logging.WARNING):
        doc.apply_change(((9, 0), (12, 4)), "y = 2\n")
        doc.apply_change(((0, 99), (0, 120)), "  # one")
        doc.apply_change(((1, 0), (0, 0)), "z")  # end before start: an insertion
    assert doc.text == "x = 1  # one\nzy = 2\n"
    assert any("clamped" in record.getMessage() for record in caplog.records)
