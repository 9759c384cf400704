"""The mode of a completion: one line, several, or no request, and why.

``decide_mode`` looks at where the cursor is: in a comment or string, in an
identifier, before text that is not only closing punctuation, right after a block
opener, on a blank line, or at the end of a written line. Besides the mode it says how
far a completion may run (its ``Extent``):

* ``LINE``: the rest of the line (comments, strings, text right of the cursor);
* ``BLOCK``: right after a block opener, or on a blank line below one: the block's body;
* ``STATEMENT``: at the end of a written line: that line, and when it opens a block or
  leaves a bracket open, on into the block or to the statement's end (post-processing
  judges the generated line with the language's opener rules);
* ``FILL``: on a blank line with code below: several lines, up to that code;
* ``SPAN``: before code on the cursor's line (or inside a word, when the user asked for
  a completion): the text up to that code, which the prompt's suffix shows the model;
  one line while typing, as many lines as the model writes when asked for.

It also says the opener's indentation and the least indentation a line below needs to
belong to the cursor's block (the floor), which the suffix cut and the post-processing
use. On a blank line it says where a completion's first line starts at the least (the
block's indentation, which an editor would have typed), and for a block body with no
code of its own level below (the end of a function), how far lines may go on after the
block ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from fim.context.text import indent_width, is_word_char, leading_whitespace

if TYPE_CHECKING:
    from fim.context.document import Document
    from fim.languages import LanguageSpec

#: Only closing punctuation and whitespace right of the cursor: a completion can go there.
CLOSING_RIGHT = re.compile(r"^[\s)\]}>;,:'\"`]*$")
#: Lines searched upwards for a block opener above a blank cursor line.
OPENER_SEARCH_LINES = 50
#: Lines of code searched upwards for the function a block is nested in.
DEFINITION_SEARCH_LINES = 400
_LAST_TOKEN = re.compile(r"(?:\w+|\S)$")


class Mode(StrEnum):
    """How much to complete: one line, a block, or nothing."""

    SINGLE_LINE = "single-line"
    MULTI_LINE = "multi-line"
    NONE = "none"


class Extent(StrEnum):
    """How far a completion may run past the cursor's line, and what ends it."""

    #: The rest of the cursor's line.
    LINE = "line"
    #: The body of the block opened on the cursor's line or above a blank one: ends where
    #: a line's indentation drops to the opener's.
    BLOCK = "block"
    #: The line being written; on into the block it opens or the lines its open brackets
    #: continue on, to their end.
    STATEMENT = "statement"
    #: Lines on a blank line, up to the code below: ends before a line that repeats the
    #: document's next line or leaves the block that code belongs to.
    FILL = "fill"
    #: Text between the cursor and the code right of it on its line: ends where the model
    #: ends its middle (it sees that code in the suffix), or where it writes that code.
    SPAN = "span"


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


def next_nonblank(doc: Document, line: int, limit: int = 50) -> int | None:
    """The first non-blank line below ``line``, within ``limit`` lines."""
    for candidate in range(line + 1, min(doc.line_count, line + 1 + limit)):
        if doc.line_text(candidate).strip():
            return candidate
    return None


def previous_nonblank(doc: Document, line: int, limit: int = 50) -> int | None:
    """The first non-blank line above ``line``, within ``limit`` lines."""
    for candidate in range(line - 1, max(-1, line - 1 - limit), -1):
        if doc.line_text(candidate).strip():
            return candidate
    return None


def _nearby_code(doc: Document, spec: LanguageSpec, line: int, step: int) -> int | None:
    """The nearest line above (``step`` -1) or below (1) holding code.

    Blank lines and line comments are skipped (a comment's indentation says little about
    the block), and so are preprocessor lines (``#ifdef``) in languages where ``#`` does
    not start a comment: they sit at column 0 whatever the nesting.
    """
    candidate = line + step
    for _ in range(OPENER_SEARCH_LINES):
        if not 0 <= candidate < doc.line_count:
            return None
        stripped = doc.line_text(candidate).strip()
        if stripped and not stripped.startswith(("#", *spec.line_comment)):
            return candidate
        candidate += step
    return None


def _fill_floor(doc: Document, spec: LanguageSpec, line: int, unit: int) -> tuple[int, int]:
    """The least indentation of the lines a blank ``line`` can be filled with, and of its first.

    The code below sets it: lines must stay in the block that code belongs to. When that
    code is deeper than the code above (and that is no opener), the missing lines open its
    block and start at the level above. When that
    code closes or continues a block (``}``, ``end``, ``else:``), or is a new definition
    or top-level code less indented than the line above the cursor, the cursor is inside
    the block above it: lines must be deeper than that code, one ``unit`` deeper at the
    least for the first.
    """
    below = _nearby_code(doc, spec, line, 1)
    above = _nearby_code(doc, spec, line, -1)
    above_width = indent_width(leading_whitespace(doc.line_text(above))) if above is not None else 0
    if below is None:
        return (1, unit) if above_width > 0 else (0, 0)
    text = doc.line_text(below)
    stripped = text.strip()
    width = indent_width(leading_whitespace(text))
    if above is not None and width > above_width and not spec.is_opener_line(doc.line_text(above).strip()):
        # The code below is nested deeper than the code above: the missing lines open
        # its block (a loop header), so they start at the level above.
        return above_width, above_width
    closes = spec.is_closer_line(stripped) or spec.is_continuation_line(stripped)
    leaves_block = width < above_width and (width == 0 or spec.is_opener_line(stripped))
    return (width + 1, width + unit) if closes or leaves_block else (width, width)


def _enclosing_definition(doc: Document, spec: LanguageSpec, line: int) -> int | None:
    """The indentation of the function or class ``line`` is nested in (None: none found).

    Each less indented line on the way up must be the next enclosing one; the search
    gives up after ``DEFINITION_SEARCH_LINES`` lines of code.
    """
    width = indent_width(leading_whitespace(doc.line_text(line)))
    candidate = line
    for _ in range(DEFINITION_SEARCH_LINES):
        found = _nearby_code(doc, spec, candidate, -1)
        if found is None or width == 0:
            return None
        candidate = found
        text = doc.line_text(candidate)
        candidate_width = indent_width(leading_whitespace(text))
        if candidate_width < width:
            if spec.is_definition_line(text.strip()):
                return candidate_width
            width = candidate_width
    return None


@dataclass(frozen=True)
class ModeDecision:
    """The mode, the reason shown for it, and the block a multi-line completion fills."""

    mode: Mode
    reason: str
    block_indent: str | None = None
    #: Lines below need at least this indentation to belong to the cursor's block.
    floor: int = 0
    extent: Extent = Extent.LINE
    #: On a blank line: the least indentation of a completion's first line (0: any).
    line_indent: int = 0
    #: A block body on a blank line with no code below at the opener's level or deeper
    #: (the end of a function): lines may go on after the block down to this
    #: indentation, as a fill would. None: the block's end ends the completion.
    after_block_floor: int | None = None


def decide_mode(
    doc: Document,
    spec: LanguageSpec,
    line: int,
    line_prefix: str,
    line_suffix: str,
    scope: str,
    *,
    invoked: bool = False,
) -> ModeDecision:
    """The mode for the cursor at the end of ``line_prefix`` on ``line``, in ``scope``.

    ``invoked``: the user asked for this completion (a key, not a keystroke's trigger);
    then a cursor inside a word is answered too.
    """
    line_text = line_prefix + line_suffix
    own_indent = indent_width(leading_whitespace(line_text))
    blank_before = not line_prefix.strip()
    floor = indent_width(line_prefix) if blank_before else own_indent
    inside_word = (
        line_prefix
        and line_suffix
        and is_word_char(line_prefix[-1], spec.word_extra)
        and is_word_char(line_suffix[0], spec.word_extra)
    )
    if inside_word and invoked and scope == "code":
        return ModeDecision(
            Mode.MULTI_LINE,
            "inside an identifier, asked for: the text up to the code right of the cursor",
            floor=floor,
            extent=Extent.SPAN,
        )
    if inside_word:
        return ModeDecision(
            Mode.NONE,
            "cursor is inside an identifier (word characters on both sides): no request",
            floor=floor,
        )
    if scope == "comment":
        return ModeDecision(Mode.SINGLE_LINE, "inside a comment: single line", floor=floor)
    if scope == "string":
        return ModeDecision(
            Mode.SINGLE_LINE, "inside a string (handled like a comment): single line", floor=floor
        )
    stripped_prefix = line_prefix.strip()
    right = line_suffix.strip()
    if right and not CLOSING_RIGHT.match(line_suffix):
        # While typing inside a line, the middle is almost always on that line, and a
        # model that misses the code right of the cursor runs on for lines (measured:
        # `bench jumps --mid-line`); lines are worth their time when asked for.
        if invoked:
            return ModeDecision(
                Mode.MULTI_LINE,
                "code right of the cursor, asked for: the text up to it, over lines if need be",
                floor=floor,
                extent=Extent.SPAN,
            )
        return ModeDecision(
            Mode.SINGLE_LINE,
            "code right of the cursor: single line up to it, shown to the model as the suffix",
            floor=floor,
            extent=Extent.SPAN,
        )
    if stripped_prefix and spec.is_opener_line(stripped_prefix):
        indent = leading_whitespace(line_text)
        return ModeDecision(
            Mode.MULTI_LINE,
            f"right after the block opener {_opener_token(stripped_prefix)!r}: "
            "multi-line to the end of the block",
            indent,
            indent_width(indent) + 1,
            Extent.BLOCK,
        )
    if right:
        return ModeDecision(
            Mode.SINGLE_LINE, "only closing punctuation right of the cursor: single line", floor=floor
        )
    if blank_before:
        opener = _opener_above(doc, spec, line)
        if opener is not None:
            opener_line, opener_text = opener
            indent = leading_whitespace(doc.line_text(opener_line))
            width = indent_width(indent)
            following = next_nonblank(doc, line)
            empty = following is None
            if following is not None:
                text_below = doc.line_text(following)
                empty = indent_width(leading_whitespace(text_below)) <= width
            what = "empty block body" if empty else "new line right after a block opener"
            unit = indent_width(doc.indent_unit(line))
            after_block: int | None = None
            below = _nearby_code(doc, spec, line, 1)
            below_width = indent_width(leading_whitespace(doc.line_text(below))) if below is not None else 0
            definition = None
            if not spec.is_definition_line(opener_text):
                definition = _enclosing_definition(doc, spec, opener_line)
            if definition is not None and (below is None or below_width < width):
                # Nothing of the opener's level follows in its block (the end of a
                # function): the lines after the body may be missing too, up to the
                # code below and inside the function.
                after_block = max(_fill_floor(doc, spec, line, unit)[0], definition + 1)
            return ModeDecision(
                Mode.MULTI_LINE,
                f"{what} after {_opener_token(opener_text)!r}: multi-line to the end of the block",
                indent,
                width + 1,
                Extent.BLOCK,
                line_indent=width + unit,
                after_block_floor=after_block,
            )
        fill_floor, line_indent = _fill_floor(doc, spec, line, indent_width(doc.indent_unit(line)))
        return ModeDecision(
            Mode.MULTI_LINE,
            "blank line: multi-line up to the code that follows",
            floor=fill_floor,
            extent=Extent.FILL,
            line_indent=line_indent,
        )
    return ModeDecision(
        Mode.MULTI_LINE,
        "end of a written line: this statement, and the block it opens or the lines it continues on",
        floor=floor,
        extent=Extent.STATEMENT,
    )
