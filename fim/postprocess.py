"""Streaming stop and trim rules applied to the model's raw output.

``StreamFilter.should_stop`` is called by the engine after every token with the text
generated so far and says when the answer is complete, so generation stops early.
``finish`` turns the final raw text into what the user is shown:

* single line: up to the end of the line. When the cursor's line is blank, a completion
  may open with that line's end and then bring the real line; that first, empty line
  is skipped (keeping it would lose the completion, as llama.cpp's ``/infill`` does).
  At the end of a written line, a completion that opens with a line break brings the
  next line: the break is kept and that whole line is shown (Copilot's behaviour, and
  how SantaCoder-FIM holes are cut);
* multi-line, by the context's ``Extent``:

  - a block body (after an opener): up to the end of the block, when a line's
    indentation drops to the opener's, or a closing line ends it. A closing line is
    kept only when the document does not close the block already. On a blank line
    with nothing of the opener's level below (the end of a function), the lines after
    the block follow as a fill does, inside the function (``after_block_floor``);
  - a statement (at the end of a written line): the line; when it leaves a bracket
    open, the lines that close it; when it then opens a block (``:``, ``{``, ``then``,
    ``do``: the language's opener rules) and the document has no body below it, that
    block as above. A line that does neither ends the completion, as in single-line
    mode;
  - a fill (a blank line): lines up to the code below, ending before a line that
    repeats the document's next non-blank line or that is indented less than the block
    that line belongs to (the context's ``floor``);
  - a span (code right of the cursor; over lines only when the user asked): the lines
    the model writes before it ends its middle, having seen that code in the suffix. It
    ends before a line that repeats one of the document's next lines (whatever its
    indentation) or that leaves the cursor's definition for column 0, and on a line
    that ends with the code right of the cursor (the model wrote it again: that copy is
    removed). Otherwise the last line merges with that code as a single line does; the
    lines keep the model's indentation, in the document's tab style;
* a line after a ``return`` (``break``, ``raise``...) at its level or deeper is dead
  code: the completion ends before it (a model that has finished a function often
  writes a stray docstring or the function again);
* what duplicates the text right of the cursor is removed: the closing brackets and
  quotes that are already there, the rest of the line reproduced, the next line
  repeated. Whitespace-only output and a line repeating its predecessor are dropped;
* indentation follows the document's (tabs or spaces);
* for languages with a grammar, a completion that makes the parse around the cursor
  worse (more ERROR or MISSING nodes) is cut back to its longest prefix that does not,
  or dropped.

Every stop that ``should_stop`` signals is a cut that ``finish`` makes anyway, so
stopping early never changes what is shown.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

from fim import languages
from fim.context import CompletionContext, Mode
from fim.context.mode import Extent
from fim.context.text import StringScanner, indent_width, leading_whitespace

log = logging.getLogger(__name__)

_OPENING = {"(": ")", "[": "]", "{": "}"}
_CLOSING = {")": "(", "]": "[", "}": "{"}
_QUOTES = "\"'`"
_CLOSERS_AND_PUNCTUATION = ")]}>;,:\"'`"
#: A line this short (stripped) is too common to call a repetition (``}``, ``end``, ``i++``).
MIN_REPEAT_CHARS = 6
#: Longest run of lines that ends a completion when the model writes it twice in a row.
MAX_REPEATED_RUN = 4
#: A line indented deeper than this is whitespace run away, not code: it ends a completion.
MAX_INDENT_COLUMNS = 64
#: A span ends before a line that repeats one of this many document lines below the cursor's.
SPAN_LINES_BELOW = 8
#: At most this many cut-back candidates are parsed for one completion.
MAX_SYNTAX_CANDIDATES = 12
_PARTIAL_WORD = re.compile(r"^\w+$")
_WORD_BOUNDARY = re.compile(r"\b|(?<=[^\w\s])|(?=[^\w\s])")


def _normalize(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "")


def bracket_balance(text: str, string_delimiter: str = "") -> int:
    """Openers minus closers in ``text``, outside strings.

    ``string_delimiter`` says ``text`` starts inside a string opened before it: the
    first unescaped delimiter closes that string and counts as a closer.
    """
    scanner = StringScanner(text, _QUOTES, string_delimiter)
    balance = 0
    for _, char in scanner.code_characters():
        if char in _OPENING:
            balance += 1
        elif char in _CLOSING:
            balance -= 1
    return balance - 1 if scanner.closed_open_string else balance


def _continues(statement: str) -> bool:
    """Whether a statement goes on on the next line: a bracket left open, or a trailing backslash."""
    stripped = statement.rstrip()
    return stripped.endswith("\\") or bracket_balance(stripped) > 0


def _repeated_run(kept: list[str], line: str) -> int:
    """How many lines of a run ``line`` completes that repeats the run right before it (0: none).

    A model that loops writes the same two to four lines again and again; the first
    copy is kept and the rest dropped. A single repeated line is ``_repeats``' case.
    Indentation is not compared: the first line of a fill lacks what the user typed.
    """
    lines = [text.strip() for text in (*kept, line)]
    for size in range(2, MAX_REPEATED_RUN + 1):
        run = lines[-size:]
        if len(lines) >= 2 * size and run == lines[-2 * size : -size] and not all(map(_is_trivial, run)):
            return size
    return 0


def _is_trivial(line: str) -> bool:
    stripped = line.strip()
    return len(stripped) < MIN_REPEAT_CHARS or not any(char.isalnum() for char in stripped)


@dataclass
class _Cut:
    """The lines of a multi-line completion that are kept, and whether that is final."""

    #: The rest of the cursor's line first, then whole lines (right-stripped).
    lines: list[str]
    #: A stop rule fired: more generated text cannot change what is kept.
    done: bool
    #: Line break and indentation to end on, before closers right of the cursor.
    tail: str = ""


class StreamFilter:
    """Stop rules and final trimming for one completion request."""

    def __init__(self, context: CompletionContext, mode: Mode | None = None) -> None:
        self.context = context
        self.mode = mode or context.mode
        self.spec = languages.language_named(context.language)
        tab = context.tab_size
        self._tab = tab
        #: The code right of the cursor, stripped once: on a minified line it is long, and
        #: the stop rules read it after every token.
        self._right = context.line_suffix.strip()
        self._blank_line = not context.line_prefix.strip() and not self._right
        self._line_end = bool(context.line_prefix.strip()) and not self._right
        if self.mode is not Mode.MULTI_LINE:
            self.extent = Extent.LINE
        elif context.mode is Mode.MULTI_LINE:
            self.extent = context.extent
        else:
            self.extent = Extent.BLOCK  # multi-line forced by the settings
        if context.block_indent is not None:
            self._block_width = indent_width(context.block_indent, tab)
        else:
            # Multi-line forced by the settings: the block is the cursor line's own.
            own = leading_whitespace(context.line_prefix + context.line_suffix)
            self._block_width = indent_width(own, tab) - 1
        self._next_line = context.next_line.rstrip()
        self._lines_below, self._short_lines_below = (
            self._document_lines_below() if self.extent is Extent.SPAN else (frozenset(), frozenset())
        )
        self._next_width = self._width(context.next_line) if context.next_line.strip() else -1

    # ------------------------------------------------------------------ shared rules
    def _width(self, line: str) -> int:
        return indent_width(leading_whitespace(line), self._tab)

    def _body(self, text: str) -> tuple[str, bool]:
        """The text without a blank first line on a blank cursor line; whether it was skipped.

        A fill skips every blank line before its first one.
        """
        text = _normalize(text)
        skipped = False
        while self._blank_line:
            newline = text.find("\n")
            if newline < 0 or text[:newline].strip():
                break
            text, skipped = text[newline + 1 :], True
            if self.extent is not Extent.FILL:
                break
        return text, skipped

    def _closes_block(self, stripped: str) -> bool:
        return self.spec.is_closer_line(stripped)

    def _block_already_closed(self, width: int) -> bool:
        """Whether the document closes, right after the cursor, a block opened at ``width``."""
        right = self._right
        if right and self._closes_block(right):
            return True
        stripped = self.context.next_line.strip()
        return (
            bool(stripped)
            and (self._closes_block(stripped) or self.spec.is_continuation_line(stripped))
            and self._next_width == width
        )

    def _repeats(self, line: str, previous: str) -> bool:
        """A complete generated line that copies the next document line or the line before it."""
        if _is_trivial(line):
            return False
        stripped = line.rstrip()
        return stripped == self._next_line or stripped == previous.rstrip()

    def _repeats_below(self, line: str, previous: str) -> bool:
        """Like ``_repeats``, whatever the indentation: a fill has reached the code below."""
        if _is_trivial(line):
            return False
        stripped = line.strip()
        return stripped == self._next_line.strip() or stripped == previous.strip()

    def _runaway_indent(self, line: str) -> bool:
        """Whether ``line`` starts with more whitespace than any real code line has.

        Made to start at a deeper indentation than it meant (``missing_indent``), the
        model sometimes writes nothing but whitespace until the token cap. Indentation
        only grows as such a line streams in, so this cut is the same early and late.
        """
        return self._width(line) > MAX_INDENT_COLUMNS

    def _after_jump(self, kept: list[str], line: str) -> bool:
        """Whether ``line`` follows a ``return`` (``break``...) at its level or deeper: dead code.

        A model that has written the end of a function often goes on with a stray
        docstring or a second version of it; a line that ends the block (``}``, ``else:``,
        a ``case`` label) is no such line.
        """
        last = next((text for text in reversed(kept) if text.strip()), None)
        if last is None or not self.spec.is_jump_line(last.strip()):
            return False
        stripped = line.strip()
        if self._closes_block(stripped) or self.spec.is_continuation_line(stripped):
            return False
        if languages.is_case_label(stripped):
            return False
        return self._width(line) >= self._width(last)

    def _first_line_width(self, line: str, skipped: bool) -> int:
        """Where the cursor line's completion ``line`` is shown: the typed indentation counts."""
        typed = self.context.line_prefix
        if skipped:
            whitespace = leading_whitespace(line)
            return self._width(line) if whitespace.startswith(typed) else self._width(typed)
        return self._width(typed) if typed else self._width(line)

    def _opened_line(self, text: str) -> str | None:
        """In single-line mode at a line end: the text after a leading line break, if any."""
        if self.mode is not Mode.SINGLE_LINE or not self._line_end:
            return None
        text = _normalize(text)
        newline = text.find("\n")
        if newline < 0 or text[:newline].strip():
            return None
        return text[newline + 1 :]

    # ------------------------------------------------------------------ where lines end
    def _cut(self, body: str, final: bool, skipped: bool) -> _Cut:
        """The lines to keep of ``body``; ``final`` says no more text will come."""
        lines = body.split("\n")
        if self.extent is Extent.STATEMENT:
            return self._cut_statement(lines, final)
        if self.extent is Extent.FILL:
            return self._cut_fill(lines, final, skipped)
        if self.extent is Extent.SPAN:
            return self._cut_span(lines, final)
        width = self._block_width
        return self._cut_block(lines, 1, [lines[0].rstrip()], width, final, self._block_already_closed(width))

    def _cut_block(
        self, lines: list[str], start: int, kept: list[str], width: int, final: bool, closed: bool
    ) -> _Cut:
        """Lines from ``start`` up to where the block opened at ``width`` ends.

        It ends before a line indented no deeper than its opener. A closing line there
        (``}``, ``end``) is kept when the document does not close the block already
        (``closed``); with the closer right of the cursor, the completion ends on a fresh
        line before it.
        """
        for index in range(start, len(lines)):
            line = lines[index]
            if self._runaway_indent(line):
                return _Cut(kept, True)
            complete = final or index < len(lines) - 1
            stripped = line.strip()
            if not stripped:
                if complete:
                    kept.append("")
                continue
            if self._width(line) <= width:
                if not complete and _PARTIAL_WORD.match(line.lstrip()):
                    return _Cut(kept, False)  # "e" may become "end": wait for the word to finish
                if not self._closes_block(stripped):
                    after = self.context.after_block_floor
                    if self.extent is Extent.BLOCK and after is not None and self._width(line) >= after:
                        # Nothing of the block's level follows it in the document: the
                        # lines after the block are filled too, up to the code below.
                        return self._cut_fill(lines, final, False, index, kept, after)
                    return _Cut(kept, True)
                if not closed:
                    if not complete:
                        return _Cut(kept, False)  # the closing line is kept: wait for all of it
                    kept.append(line.rstrip())
                    return _Cut(kept, True)
                tail = ""
                if self.extent is Extent.BLOCK and self._right:
                    tail = "\n" + (self.context.block_indent or leading_whitespace(line))
                return _Cut(kept, True, tail)
            if not complete:
                return _Cut(kept, False)
            if self._repeats(line, kept[-1]) or self._after_jump(kept, line):
                return _Cut(kept, True)
            run = _repeated_run(kept, line)
            if run:
                return _Cut(kept[: len(kept) - run + 1], True)
            kept.append(line.rstrip())
        return _Cut(kept, False)

    def _cut_statement(self, lines: list[str], final: bool) -> _Cut:
        """The line being written; on over the lines it continues on, and into the block it opens.

        A statement goes on while it leaves a bracket open (or ends with a backslash).
        When its last line opens a block (the language's opener rules) and the document
        has no body below it yet, the block follows, to its end. When the model breaks
        the cursor's line at once and that line's statement is complete, the statement
        is the new line.
        """
        prefix = self.context.line_prefix
        if not (final or len(lines) > 1):
            return _Cut(lines, False)
        kept = [lines[0].rstrip()]
        statement = prefix + lines[0]
        width = self._width(prefix)
        index = 0
        if not lines[0].strip() and not _continues(prefix):
            index = 1
            if index >= len(lines) or not (final or index < len(lines) - 1):
                return _Cut(kept, final)
            statement = lines[index]
            width = self._width(statement)
            kept.append(statement.rstrip())
            if not statement.strip():
                return _Cut(kept, True)
        if self._next_width > width:
            return _Cut(kept, True)  # its body or its continuation is in the document already
        while True:
            # Opener rules read one line: a statement over several lines is read as one.
            if self.spec.is_opener_line(" ".join(part.strip() for part in statement.split("\n"))):
                closed = self._block_already_closed(width)
                return self._cut_block(lines, index + 1, kept, width, final, closed)
            if not _continues(statement):
                return _Cut(kept, True)
            index += 1
            if index >= len(lines) or not (final or index < len(lines) - 1):
                return _Cut(kept, final)
            statement += "\n" + lines[index]
            kept.append(lines[index].rstrip())

    def _cut_fill(
        self,
        lines: list[str],
        final: bool,
        skipped: bool,
        start: int = 0,
        kept: list[str] | None = None,
        floor: int | None = None,
    ) -> _Cut:
        """Lines on a blank line, up to the code below; from ``start``, after ``kept``.

        The fill ends before a line that repeats the document's next line (the model has
        reached the code that is there) or that is less indented than the block that
        code belongs to (``floor``, by default the context's: it would close that block).
        """
        floor = self.context.floor if floor is None else floor
        kept = [] if kept is None else kept
        for index in range(start, len(lines)):
            line = lines[index]
            if self._runaway_indent(line):
                return _Cut(kept, True)
            complete = final or index < len(lines) - 1
            if not line.strip():
                if complete or index == 0:
                    kept.append("")
                continue
            width = self._first_line_width(line, skipped) if index == 0 else self._width(line)
            if width < floor:
                return _Cut(kept, True)
            if not complete:
                return _Cut(kept, False)
            whole = self.context.line_prefix + line if index == 0 else line
            if self._repeats_below(whole, kept[-1] if kept else self.context.previous_line):
                return _Cut(kept, True)
            if self._after_jump(kept, line):
                return _Cut(kept, True)
            run = _repeated_run(kept, line)
            if run:
                return _Cut(kept[: len(kept) - run + 1], True)
            kept.append(line.rstrip())
        return _Cut(kept, False)

    def _document_lines_below(self) -> tuple[frozenset[str], frozenset[str]]:
        """The next few lines after the cursor's line: the non-trivial ones stripped, and
        the short ones with a word (``else:``, ``end``) as they are, indentation and all.

        A short line is too common to mean the model went on with the code below unless
        it is at the very same indentation.
        """
        source, start = self.context.source, self.context.cursor
        # Only as far as those lines: slicing the rest of a long document on every
        # request would copy all of it.
        end = start
        for _ in range(SPAN_LINES_BELOW + 1):
            end = source.find("\n", end) + 1
            if end == 0:
                end = len(source)
                break
        below = source[start:end].split("\n")[1 : SPAN_LINES_BELOW + 1]
        long_lines = frozenset(line.strip() for line in below if not _is_trivial(line))
        short_lines = frozenset(
            line.rstrip() for line in below if _is_trivial(line) and any(char.isalnum() for char in line)
        )
        return long_lines, short_lines

    def _meets_right(self, line: str, first: bool) -> bool:
        """Whether the generated ``line`` ends with the code right of the cursor.

        On the cursor's own line any such ending counts: a model that writes the whole
        line and goes on to the next has rewritten that code. Further down, a short
        ending (``)``, ``1``) is too common to mean it.
        """
        right = self._right
        long_enough = first or len(right) >= MIN_REPEAT_CHARS
        return bool(right) and long_enough and line.rstrip().endswith(right)

    def _leaves_the_definition(self, line: str) -> bool:
        """A line at column 0 below an indented cursor line: the model has left the
        function the cursor is in (a test, a ``__main__`` block), unless it closes it."""
        return (
            self._width(line) == 0
            and self._width(self.context.line_prefix + self.context.line_suffix) > 0
            and not self._closes_block(line.strip())
        )

    def _cut_span(self, lines: list[str], final: bool) -> _Cut:
        """Lines up to where the middle meets the code right of the cursor.

        The model saw that code in the suffix and ends its middle there; when it runs on
        instead, it either writes that code again at the end of a line (kept: the merge
        removes the copy) or goes on with the code below, whatever its indentation: a
        line that is one of the document's next ``SPAN_LINES_BELOW`` lines is cut, and so is
        a line that leaves the definition the cursor is in.
        """
        kept = [lines[0]]
        if self._runaway_indent(lines[0]):
            return _Cut([], True)
        if (final or len(lines) > 1) and self._meets_right(lines[0], first=True):
            return _Cut(kept, True)
        for index in range(1, len(lines)):
            line = lines[index]
            if self._runaway_indent(line):
                return _Cut(kept, True)
            complete = final or index < len(lines) - 1
            if not complete:
                return _Cut([*kept, line], False)
            if line.strip() and (
                self._repeats(line, kept[-1])
                or line.strip() in self._lines_below
                or line.rstrip() in self._short_lines_below
                or self._leaves_the_definition(line)
            ):
                return _Cut(kept, True)
            run = _repeated_run(kept, line)
            if run:
                return _Cut(kept[: len(kept) - run + 1], True)
            kept.append(line)
            if self._meets_right(line, first=False):
                return _Cut(kept, True)
        return _Cut(kept, False)

    # ------------------------------------------------------------------ streaming
    def should_stop(self, text: str) -> bool:
        """Called after every token: True once the rest cannot change what is shown."""
        if self.mode is Mode.NONE:
            return True
        opened = self._opened_line(text)
        if opened is not None:
            return "\n" in opened
        body, skipped = self._body(text)
        if self.extent is Extent.LINE:
            return "\n" in body
        return self._cut(body, False, skipped).done

    # ------------------------------------------------------------------ final text
    def finish(self, text: str) -> str:
        """What is shown for the raw output ``text`` ("" for nothing)."""
        if self.mode is Mode.NONE:
            return ""
        opened = self._opened_line(text)
        if opened is not None:
            result = self._finish_opened(opened)
        else:
            body, skipped = self._body(text)
            if self.extent is Extent.LINE:
                result = self._finish_single(self._first_line(body, skipped).split("\n", 1)[0])
            else:
                result = self._finish_multi(self._cut(body, True, skipped), skipped)
        if not result.strip():
            return ""
        result = self._check_syntax(result)
        if not result.strip():
            return ""
        if self.context.newline != "\n":
            result = result.replace("\n", self.context.newline)
        return result

    def _first_line(self, body: str, skipped: bool) -> str:
        """``body`` with its first line placed after the indentation the user typed."""
        if skipped:
            return self._strip_cursor_indent(body)
        if self._blank_line and self.context.line_prefix:
            # The editor indented the blank line already; more indentation from the
            # model there is a token-boundary artefact, not a deeper level.
            return body.lstrip(" \t")
        return body

    def _finish_opened(self, body: str) -> str:
        """A line break and the one new line after the cursor's line, or "" (before the syntax check)."""
        line = self._reindent([body.split("\n", 1)[0].rstrip()])[0]
        if not line.strip():
            return ""
        if not _is_trivial(line) and line.strip() == self.context.next_line.strip():
            log.debug("dropped a new line that repeats the next one: %r", line)
            return ""
        return "\n" + line

    def _strip_cursor_indent(self, body: str) -> str:
        """The real first line came after a line break: the cursor's indentation is already typed."""
        typed = self.context.line_prefix
        first, newline, rest = body.partition("\n")
        whitespace = leading_whitespace(first)
        first = first[len(typed) :] if whitespace.startswith(typed) else first.lstrip(" \t")
        return first + newline + rest

    def _finish_single(self, body: str) -> str:
        line = body.split("\n", 1)[0]
        context = self.context
        right = self._right
        without_copy = self._without_right_copy(line)
        if without_copy is not None:
            line = without_copy
        elif right:
            line = self._merge_with_right(line, right)
        if (
            not right
            or context.line_suffix[0].isspace()
            or context.line_suffix[0] in _CLOSERS_AND_PUNCTUATION
        ):
            line = line.rstrip()
        if not line.strip():
            return ""
        whole = (context.line_prefix + line + context.line_suffix).strip()
        if not _is_trivial(whole) and (
            whole == context.next_line.strip() or whole == context.previous_line.strip()
        ):
            log.debug("dropped a completion that repeats a neighbouring line: %r", whole)
            return ""
        return line

    def _merge_with_right(self, line: str, right: str) -> str:
        """Remove the part of ``line`` that the text right of the cursor already has."""
        stripped = line.rstrip()
        if right.startswith(stripped.strip()):
            return ""  # the completion only repeats what follows the cursor
        delimiter = self.context.string_delimiter if self.context.scope == "string" else ""
        balance = bracket_balance(stripped, delimiter)
        # Only a piece as long as the line can end it: counting down from the whole right
        # side of a minified line would slice megabytes once per character.
        for size in range(min(len(right), len(stripped)), 0, -1):
            duplicate = right[:size]
            if not stripped.endswith(duplicate):
                continue
            kept = stripped[: len(stripped) - size]
            if bracket_balance(kept, delimiter) == 0 and (balance != 0 or size == len(right)):
                return kept
        return line

    def _finish_multi(self, cut: _Cut, skipped: bool) -> str:
        """The kept lines as one completion: the first after the cursor, the rest reindented."""
        kept = list(cut.lines)
        # A span's last line may be only the indentation its right side starts at, where
        # the model ended it; where a stop rule cut it, blank lines there mean nothing.
        keeps_blank_end = self.extent is Extent.SPAN and not cut.done
        while len(kept) > 1 and not kept[-1].strip() and not keeps_blank_end:
            kept.pop()
        if not kept:
            return ""
        tail = cut.tail
        if self.extent is Extent.STATEMENT and not kept[0].strip():
            # A statement on a new line after the cursor's line: shown after a line break.
            if len(kept) == 1 or (not _is_trivial(kept[1]) and kept[1].strip() == self._next_line.strip()):
                return ""
            return "\n" + "\n".join(self._reindent(kept[1:], self._width(self.context.line_prefix)))
        first = self._first_line(kept[0], skipped)
        if len(kept) == 1 and not tail:
            return self._finish_single(first)  # one line after all: merge it like one
        if self.extent is Extent.SPAN:
            return self._finish_span(first, kept[1:])
        if self.extent is Extent.BLOCK:
            base: int | None = self._block_width if self.context.block_indent is not None else None
        else:
            base = self._width(self.context.line_prefix + first)
        result = "\n".join([first.rstrip(), *self._reindent(kept[1:], base)])
        if not result.strip():
            return ""
        if self._right and "\n" in result and not tail:
            tail = "\n" + (self.context.block_indent or "")
        return result + tail

    def _finish_span(self, first: str, rest: list[str]) -> str:
        """A span over several lines: its last line ends where the code right of the cursor begins.

        That line keeps its indentation even when nothing else is left of it: it is
        where that code now starts.
        """
        lines = self._reindent([line.rstrip() for line in rest[:-1]] + [rest[-1]])
        last = lines[-1]
        right_side = self.context.line_suffix
        right = self._right
        without_copy = self._without_right_copy(last)
        if without_copy is not None:
            last = without_copy
        else:
            merged = self._merge_with_right(last, right)
            if merged.strip():
                last = merged.rstrip() if right_side[0].isspace() else merged
            else:
                last = leading_whitespace(last)
        return "\n".join([first.rstrip(), *lines[:-1], last])

    def _without_right_copy(self, line: str) -> str | None:
        """A span's ``line`` without the code right of the cursor it ends with, or None.

        The model saw that code in the suffix, so a line that ends with all of it wrote
        it again: dropping the copy leaves the line the model wrote, whatever its
        brackets. The spacing the document's right side starts with is dropped too.
        """
        right_side = self.context.line_suffix
        right = self._right
        if self.extent is not Extent.SPAN or not right or not line.rstrip().endswith(right):
            return None
        kept = line.rstrip()[: -len(right)]
        spacing = leading_whitespace(right_side)
        if kept.endswith(spacing) or not kept.strip():
            kept = kept[: max(0, len(kept) - len(spacing))]
        return kept

    def _reindent(self, lines: list[str], base: int | None = None) -> list[str]:
        """Indentation in the document's style: tabs for a tab document, else spaces.

        ``base`` is the width of the line the others are nested under, when known.
        """
        unit = self.context.indent_unit
        if unit == "\t":
            # The model indented with spaces: its step is the common divisor of its
            # indentations when that is 2 or 3, else the usual 4.
            step = 0
            for line in lines:
                if line.startswith(" "):
                    step = math.gcd(step, len(leading_whitespace(line).expandtabs(self._tab)))
            step = step if step in (2, 3) else self._tab
            converted = []
            for line in lines:
                whitespace = leading_whitespace(line)
                if " " not in whitespace:
                    converted.append(line)
                    continue
                width = len(whitespace.expandtabs(step))
                converted.append("\t" * (width // step) + " " * (width % step) + line[len(whitespace) :])
            return converted
        converted = []
        for line in lines:
            whitespace = leading_whitespace(line)
            if "\t" in whitespace:
                line = whitespace.expandtabs(len(unit)) + line[len(whitespace) :]
            converted.append(line)
        return self._rescale(converted, len(unit), base)

    def _rescale(self, lines: list[str], width: int, base: int | None) -> list[str]:
        """Model indentation steps of 2 or 3 spaces in a document that steps wider, widened.

        Only when every line inside the block is a whole number of the model's steps
        deeper than the opener and some are not a whole number of the document's.
        """
        if base is None:
            return lines
        depths = [len(leading_whitespace(line)) - base for line in lines if line.strip()]
        depths = [depth for depth in depths if depth > 0]
        step = 0
        for depth in depths:
            step = math.gcd(step, depth)
        if step not in (2, 3) or step >= width or all(depth % width == 0 for depth in depths):
            return lines
        rescaled = []
        for line in lines:
            depth = len(leading_whitespace(line)) - base
            if line.strip() and depth > 0:
                line = " " * (base + depth // step * width) + line.lstrip(" ")
            rescaled.append(line)
        return rescaled

    # ------------------------------------------------------------------ syntax check
    def _candidates(self, completion: str) -> list[str]:
        """Shorter versions of ``completion`` to fall back to, longest first."""
        candidates: list[str] = []
        lines = completion.split("\n")
        for count in range(len(lines) - 1, 0, -1):
            shorter = "\n".join(lines[:count]).rstrip()
            if shorter.strip() and shorter not in candidates:
                candidates.append(shorter)
        first = lines[0]
        cuts = sorted({match.start() for match in _WORD_BOUNDARY.finditer(first)}, reverse=True)
        for cut in cuts:
            shorter = first[:cut].rstrip()
            if shorter.strip() and shorter not in candidates and shorter != completion:
                candidates.append(shorter)
        return candidates[: MAX_SYNTAX_CANDIDATES - 1]

    def _check_syntax(self, completion: str) -> str:
        context = self.context
        window = context.check_window
        if window is None or not self.spec.has_grammar or languages.grammar(self.spec.name) is None:
            return completion
        start, end = window
        if not start <= context.cursor <= end:
            return completion
        source = context.source
        before = source[start:end].encode("utf-8", "surrogatepass")
        head = source[start : context.cursor].encode("utf-8", "surrogatepass")
        tail = source[context.cursor : end].encode("utf-8", "surrogatepass")
        base_tree = languages.parse(self.spec.name, before)
        if base_tree is None:
            return completion
        baseline = languages.error_count(base_tree.root_node)
        row = head.count(b"\n")
        column = len(head) - (head.rfind(b"\n") + 1)
        for candidate in [completion, *self._candidates(completion)]:
            inserted = candidate.encode("utf-8", "surrogatepass")
            edited = base_tree.copy()
            end_row = row + inserted.count(b"\n")
            end_column = (
                column + len(inserted)
                if b"\n" not in inserted
                else len(inserted) - (inserted.rfind(b"\n") + 1)
            )
            edited.edit(
                len(head),
                len(head),
                len(head) + len(inserted),
                (row, column),
                (row, column),
                (end_row, end_column),
            )
            tree = languages.parse(self.spec.name, head + inserted + tail, edited)
            if tree is None:
                return completion
            errors = languages.error_count(tree.root_node)
            if errors <= baseline:
                if candidate is not completion:
                    log.debug("cut a completion back to where it parses: %r -> %r", completion, candidate)
                return candidate
        log.debug("dropped a completion that breaks the parse: %r", completion)
        return ""
