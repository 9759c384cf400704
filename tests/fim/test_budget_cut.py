"""What is kept of a generation the time budget cut short (``fim.pipeline.whole_part_of_cut``).

The cut falls after any token: the last word may be unfinished, and so may the last
line of a block. Post-processing then runs on what is kept, as for any generation.
"""

from __future__ import annotations

import pytest

from fim.pipeline import whole_part_of_cut


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("number % 2 == 0", "number % 2 == "),  # "0" may have been "0x10"
        ("foo(bar, ba", "foo(bar, "),
        ("foo(bar, ", "foo(bar, "),  # ends between words: all of it is whole
        ("x.append(", "x.append("),
        ("retu", ""),  # nothing whole yet
        ("", ""),
    ],
)
def test_a_single_line_loses_its_unfinished_word(text: str, kept: str) -> None:
    assert whole_part_of_cut(text, multi_line=False) == kept


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("\n    total = 0\n    for item in ite", "\n    total = 0"),
        ("total = 0\n    for item in items:\n        tot", "total = 0\n    for item in items:"),
        ("total = sum(ite", "total = sum("),  # one line so far: cut as a line
        ("\n    tot", "\n    "),  # only a blank first line is whole: cut as a line
    ],
)
def test_a_block_keeps_its_complete_lines(text: str, kept: str) -> None:
    assert whole_part_of_cut(text, multi_line=True) == kept
