"""Hostile documents: the context is built right and without walking megabytes per keystroke.

Speed is measured by ``fim-lsp bench hostile``; these tests check what the fast paths
give: the line scan that replaced a character walk agrees with it, a minified line, a
binary file and a megabyte of ``(`` get a context, and CR/LF mixes keep positions.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fim import languages
from fim.context import Budgets, Document, build_context
from fim.context.scope import MAX_LINE_SCAN, scope_from_line
from fim.context.text import StringScanner
from fim.positions import PositionEncoding, position_of
from harness.stress.hostile import hostile_documents

BUDGETS = Budgets(prefix_tokens=256, suffix_tokens=0)


def count_tokens(text: str) -> int:
    return len(text) // 3 + 1


def walked_scope(spec: languages.LanguageSpec, line_prefix: str) -> tuple[str, str]:
    """The character walk ``scope_from_line`` used before: the oracle."""
    scanner = StringScanner(line_prefix, spec.quotes)
    for index, _ in scanner.code_characters():
        for marker in spec.line_comment:
            if line_prefix.startswith(marker, index) and (index == 0 or line_prefix[index - 1] in " \t"):
                return "comment", ""
    return ("string", scanner.delimiter) if scanner.delimiter else ("code", "")


LINE_PIECES = st.sampled_from(['"', "'", "`", "\\", "#", "//", "--", " ", "\t", "a", "x = ", "(", "é"])


@settings(max_examples=400, deadline=None)
@given(
    language=st.sampled_from(["python", "javascript", "go", "lua", "c", "plaintext"]),
    pieces=st.lists(LINE_PIECES, max_size=20),
)
def test_the_line_scan_agrees_with_the_character_walk(language: str, pieces: list[str]) -> None:
    spec = languages.language_for(language, f"file:///a.{language}")
    line = "".join(pieces)
    assert scope_from_line(spec, line) == walked_scope(spec, line)


def test_a_huge_line_is_scanned_from_its_last_stretch_only() -> None:
    spec = languages.language_for("javascript", "file:///a.js")
    # A quote far back would open a string if the whole line were read; only the tail is.
    line = '"' + "a" * (MAX_LINE_SCAN * 3) + " x = 1; // note"
    assert scope_from_line(spec, line) == ("comment", "")


def test_every_hostile_document_gets_a_context() -> None:
    for document in hostile_documents():
        text = document.text(0.02)
        doc = Document(f"file:///hostile/{document.name}", text, document.language_id)
        for cursor in (0, len(text) // 2, len(text)):
            context = build_context(doc, cursor, BUDGETS, count_tokens)
            # The prompt's parts are the text on either side of the cursor (which may
            # move back from between a \r and its \n).
            assert cursor - 1 <= context.cursor <= cursor
            assert text[: context.cursor].endswith(context.prefix)
            assert text[context.cursor :].startswith(context.suffix)


def test_a_binary_document_has_no_syntax_window() -> None:
    binary = next(document for document in hostile_documents() if document.name == "binary opened as Python")
    text = binary.text(0.01)
    assert "\x00" in text
    doc = Document("file:///hostile/blob.py", text, "python")
    assert doc.syntax_window(len(text) // 2, 0) is None
    context = build_context(doc, len(text) // 2, BUDGETS, count_tokens)
    assert context.scope in ("code", "comment", "string")


def test_the_typed_word_on_a_minified_line_is_its_last_word() -> None:
    text = "var a=1;" * 200_000 + "return someIdentif"
    doc = Document("file:///hostile/min.js", text, "javascript")
    context = build_context(doc, len(text), BUDGETS, count_tokens)
    assert context.typed_word == "someIdentif"


def test_mixed_line_ends_keep_positions() -> None:
    mixed = next(document for document in hostile_documents() if document.name == "mixed CRLF/LF")
    text = mixed.text(0.05)
    assert "\r\n" in text and "\n" in text.replace("\r\n", "")
    doc = Document("file:///hostile/mixed.py", text, "python")
    for offset in (0, len(text) // 3, len(text) // 2, len(text) - 1):
        line, character = position_of(text, offset, PositionEncoding.UTF16, doc.starts)
        found = doc.offset_at(line, character, PositionEncoding.UTF16)
        # A position between \r and \n means the end of the line's content.
        assert found == offset or text[found : offset + 1] in ("\r", "\r\n")


def test_the_prefix_budget_holds_after_a_jump_into_denser_text() -> None:
    # A counter for which hex literals cost four times the tokens of code, as they do.
    def dense_hex(text: str) -> int:
        return text.count("0x") * 4 + len(text) // 4 + 1

    long_line = next(document for document in hostile_documents() if document.name == "100,000-char line")
    text = long_line.text()
    doc = Document("file:///hostile/table.py", text, "python")
    build_context(doc, len(text), BUDGETS, dense_hex)  # measured first at the end, in code
    table_end = text.index("]\n", text.index("TABLE = ["))
    context = build_context(doc, table_end, BUDGETS, dense_hex)
    assert dense_hex(context.prefix) <= BUDGETS.prefix_tokens * 1.2
