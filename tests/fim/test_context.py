"""Context building: documents and their syntax windows, prefix/suffix cuts, modes."""

from __future__ import annotations

import itertools
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fim import languages
from fim.context import Budgets, CompletionContext, Document, Mode, build_context, detect_indent_unit
from fim.context.mode import Extent
from fim.positions import line_starts


def quarter(text: str) -> int:
    """Token counter for tests: one token per four characters, rounded up."""
    return (len(text) + 3) // 4


FUNCTION = '''def scale_{n}(values, factor={n}):
    """Scale every value."""
    result = []
    for value in values:
        result.append(value * factor)
    return result


'''


def big_python(functions: int = 120) -> str:
    return "import math\n\n\n" + "".join(FUNCTION.format(n=n) for n in range(functions))


def context_for(source: str, language: str) -> CompletionContext:
    """The context at the ``<|>`` marker of ``source``."""
    cursor = source.index("<|>")
    doc = Document("untitled:1", source.replace("<|>", ""), language)
    return build_context(doc, cursor, Budgets(prefix_tokens=1536, suffix_tokens=16), quarter)


def type_at(doc: Document, cursor: int, text: str, budgets: Budgets) -> list[tuple[int, str, str]]:
    """Type ``text`` one character at a time; (prefix start, prefix, suffix) after each."""
    seen = []
    for char in text:
        doc.replace(cursor, cursor, char)
        cursor += 1
        context = build_context(doc, cursor, budgets, quarter)
        seen.append((context.prefix_start, context.prefix, context.suffix))
    return seen


# ---------------------------------------------------------------------------- languages


@pytest.mark.parametrize(
    ("language_id", "uri", "name"),
    [
        ("python", "file:///x.txt", "python"),
        ("", "file:///src/app.tsx", "tsx"),
        ("typescriptreact", "untitled:1", "tsx"),
        ("javascriptreact", "file:///a.jsx", "javascript"),
        ("plaintext", "file:///main.go", "go"),
        ("", "file:///lib.rs", "rust"),
        ("", "file:///x.H", "c"),
        ("cpp", "", "cpp"),
        ("", "file:///A%20B/Main.java", "java"),
        ("lua", "file:///init.lua", "lua"),
        ("ruby", "file:///app.rb", ""),
        ("", "file:///notes", ""),
    ],
)
def test_language_by_id_then_extension(language_id: str, uri: str, name: str) -> None:
    assert languages.language_for(language_id, uri).name == name


def test_every_grammar_loads_and_parses() -> None:
    for spec in languages.LANGUAGES:
        assert languages.grammar(spec.name) is not None, spec.name
        tree = languages.parse(spec.name, b"x")
        assert tree is not None and tree.root_node.end_byte == 1


def test_unknown_language_is_line_based_not_an_error() -> None:
    doc = Document("file:///a.rb", "def greet(name)\n  puts name\nend\n", "ruby")
    context = build_context(
        doc, len("def greet(name)\n  puts name"), Budgets(prefix_tokens=1536, suffix_tokens=16), quarter
    )
    assert doc.syntax_window(0, 0) is None
    assert context.language == "" and context.check_window is None
    assert context.mode is Mode.MULTI_LINE and context.extent is Extent.STATEMENT
    assert context.suffix == "\nend"


def test_language_id_change_drops_the_window() -> None:
    doc = Document("untitled:1", "x = 1\n", "python")
    assert doc.syntax_window(0, 0) is not None
    doc.language_id = "plaintext"
    assert doc.language.name == "" and doc.syntax_window(0, 0) is None


# ---------------------------------------------------------------------------- the syntax window

CODE_PIECES = [
    "x",
    " ",
    "\n",
    "    ",
    "(",
    ")",
    ":",
    "def f():",
    "return 1",
    "é",
    "😀",
    "#",
    '"',
    "\r\n",
    "\t",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(-40, 40), st.integers(0, 5), st.lists(st.sampled_from(CODE_PIECES), max_size=3)
        ),
        min_size=1,
        max_size=25,
    )
)
def test_window_follows_edits_like_a_fresh_parse(edits: list[tuple[int, int, list[str]]]) -> None:
    text = big_python(12)
    doc = Document("file:///a.py", text, "python")
    cursor = len(text) // 2
    build_context(doc, cursor, Budgets(prefix_tokens=300, suffix_tokens=40), quarter)
    for move, length, pieces in edits:
        start = max(0, min(len(text), cursor + move))
        end = min(len(text), start + length)
        inserted = "".join(pieces)
        doc.replace(start, end, inserted)
        text = text[:start] + inserted + text[end:]
        cursor = start + len(inserted)
        build_context(doc, cursor, Budgets(prefix_tokens=300, suffix_tokens=40), quarter)
        assert doc.text == text
        assert doc.starts == line_starts(text)
        window = doc.syntax_window(cursor, max(0, cursor - 100))
        assert window is not None and window.text == text[window.start : window.end]
        tree = window.parsed()
        fresh = languages.parse("python", window.text.encode("utf-8", "surrogatepass"))
        assert tree is not None and fresh is not None
        if not fresh.root_node.has_error:
            assert str(tree.root_node) == str(fresh.root_node)


def test_window_stays_put_while_typing_and_moves_with_the_cursor() -> None:
    text = big_python(400)
    doc = Document("file:///a.py", text, "python")
    cursor = text.index("return result", len(text) // 2) + len("return result")
    build_context(doc, cursor, Budgets(prefix_tokens=1536, suffix_tokens=16), quarter)
    window = doc.syntax_window(cursor, cursor)
    type_at(doc, cursor, " + [0]", Budgets(prefix_tokens=1536, suffix_tokens=16))
    assert doc.syntax_window(cursor, cursor) is window
    assert window is not None and window.end - window.start < len(doc.text) // 4
    build_context(doc, 10, Budgets(prefix_tokens=1536, suffix_tokens=16), quarter)
    assert doc.syntax_window(10, 0) is not window


@given(
    st.lists(st.sampled_from(["a", "é", "中", "😀", "\n", "\r\n", " ", "x = 1"]), max_size=30).map("".join)
)
def test_window_bytes_and_offsets_agree(text: str) -> None:
    doc = Document("file:///a.py", text, "python")
    window = doc.syntax_window(len(text), 0)
    assert window is not None and window.start == 0 and window.text == text
    encoded = text.encode("utf-8")
    for offset in range(len(text) + 1):
        byte = window.byte_of(offset)
        assert byte == len(text[:offset].encode("utf-8"))
        assert window.offset_of(byte) == offset
    assert all(window.offset_of(byte) <= len(text) for byte in range(len(encoded) + 2))


def test_copy_is_independent() -> None:
    doc = Document("file:///a.py", "def f():\n    return 1\n", "python")
    build_context(doc, 8, Budgets(prefix_tokens=1536, suffix_tokens=16), quarter)
    twin = doc.copy()
    twin.replace(8, 8, "  # entry")
    assert doc.text == "def f():\n    return 1\n"
    assert twin.text == "def f():  # entry\n    return 1\n"
    assert build_context(twin, 17, Budgets(prefix_tokens=1536, suffix_tokens=16), quarter).scope == "comment"
    assert build_context(doc, 8, Budgets(prefix_tokens=1536, suffix_tokens=16), quarter).scope == "code"


# ---------------------------------------------------------------------------- prefix


def test_prefix_starts_at_zero_when_the_file_fits() -> None:
    text = big_python(3)
    doc = Document("file:///a.py", text, "python")
    context = build_context(doc, len(text) - 10, Budgets(prefix_tokens=2000, suffix_tokens=16), quarter)
    assert context.prefix_start == 0 and context.prefix == text[: len(text) - 10]


def test_prefix_start_is_a_definition_and_fits_the_budget() -> None:
    text = big_python()
    doc = Document("file:///a.py", text, "python")
    cursor = text.index("result.append", len(text) // 2)
    budgets = Budgets(prefix_tokens=200, suffix_tokens=16)
    context = build_context(doc, cursor, budgets, quarter)
    assert 0 < context.prefix_start < cursor
    assert text[context.prefix_start :].startswith("def scale_")
    assert quarter(context.prefix) <= budgets.prefix_tokens * 1.05
    # The previous definition would not have fitted.
    previous = text.rindex("def scale_", 0, context.prefix_start)
    assert quarter(text[previous:cursor]) > budgets.prefix_tokens * 0.95


def test_prefix_start_is_stable_while_typing() -> None:
    text = big_python()
    doc = Document("file:///a.py", text, "python")
    cursor = text.index("    return result\n", len(text) // 2) + len("    return result")
    seen = type_at(
        doc,
        cursor,
        "\n    total = sum(result) * math.pi\n    return total",
        Budgets(prefix_tokens=400, suffix_tokens=16),
    )
    starts = {start for start, _, _ in seen}
    assert len(starts) == 1, "the prefix start moved while typing inside one function"
    for (_, before, _), (_, after, _) in itertools.pairwise(seen):
        assert after.startswith(before), "each prompt extends the previous one"


def test_prefix_start_moves_only_when_the_budget_forces_it() -> None:
    text = big_python()
    doc = Document("file:///a.py", text, "python")
    budgets = Budgets(prefix_tokens=300, suffix_tokens=16)
    starts = []
    distance = 2000
    for cursor in range(len(text) // 2, len(text) // 2 + distance, 50):
        starts.append(build_context(doc, cursor, budgets, quarter).prefix_start)
    assert starts == sorted(starts)
    assert all(text[start:].startswith("def scale_") for start in starts)
    # It moves one definition at a time, as the cursor leaves the oldest one behind.
    definition = len(FUNCTION.format(n=50))
    assert len(set(starts)) <= distance // definition + 2


def test_prefix_of_a_huge_single_line_is_bounded() -> None:
    text = "x = [" + ", ".join(str(n) for n in range(200_000)) + "]\n"
    doc = Document("file:///big.py", text, "python")
    context = build_context(doc, len(text) - 2, Budgets(prefix_tokens=256, suffix_tokens=32), quarter)
    assert 0 < len(context.prefix) <= 256 * 4 + 64
    assert context.suffix == "]"


# ---------------------------------------------------------------------------- suffix


def test_suffix_is_whole_lines_of_the_block_within_budget() -> None:
    text = big_python(4)
    doc = Document("file:///a.py", text, "python")
    cursor = text.index("    result = []") + len("    result = []")
    context = build_context(doc, cursor, Budgets(prefix_tokens=1536, suffix_tokens=64), quarter)
    assert context.suffix == (
        "\n    for value in values:\n        result.append(value * factor)\n    return result"
    )
    tight = build_context(doc, cursor, Budgets(prefix_tokens=1536, suffix_tokens=17), quarter)
    assert tight.suffix == "\n    for value in values:\n        result.append(value * factor)"
    assert quarter(tight.suffix) <= 17
    # Room for the for header but not its body: the statement is not cut.
    assert build_context(doc, cursor, Budgets(prefix_tokens=1536, suffix_tokens=12), quarter).suffix == ""
    assert build_context(doc, cursor, Budgets(prefix_tokens=1536, suffix_tokens=0), quarter).suffix == ""


def test_suffix_never_ends_inside_a_statement() -> None:
    text = "def f():\n    x = 1\n    call(\n        a,\n        b,\n    )\n    return x\n"
    doc = Document("file:///a.py", text, "python")
    cursor = len("def f():\n    x = 1")
    for budget in range(1, 20):
        suffix = build_context(doc, cursor, Budgets(prefix_tokens=1536, suffix_tokens=budget), quarter).suffix
        assert suffix in (
            "",
            "\n    call(\n        a,\n        b,\n    )",
            "\n    call(\n        a,\n        b,\n    )\n    return x",
        )


def test_suffix_keeps_a_whole_line_that_fits_before_an_outer_continuation() -> None:
    # The line after the cursor ends its statement where "elif" continues the outer
    # one; when "elif ..." itself does not fit, the suffix still keeps that line.
    text = "def f(a):\n    if a:\n        x = 1\n\n        return x\n    elif a is None and a != 12345678:\n"
    doc = Document("file:///a.py", text, "python")
    cursor = len("def f(a):\n    if a:\n        x = 1\n")
    suffix = build_context(doc, cursor, Budgets(prefix_tokens=1536, suffix_tokens=10), quarter).suffix
    assert suffix == "\n        return x"


def test_suffix_is_stable_while_typing_on_the_line() -> None:
    text = big_python(6)
    doc = Document("file:///a.py", text, "python")
    cursor = text.index("        result.append(", 400) + len("        result.append(")
    seen = type_at(doc, cursor, "value * 2", Budgets(prefix_tokens=1536, suffix_tokens=16))
    assert len({suffix for _, _, suffix in seen}) == 1


def test_suffix_count_uses_the_real_tokenizer() -> None:
    text = "def f():\n    x = 1\n" + "".join(f"    y{n} = {n}\n" for n in range(30))
    doc = Document("file:///a.py", text, "python")
    calls: list[str] = []

    def counter(chunk: str) -> int:
        calls.append(chunk)
        return len(chunk)  # far more tokens than the chars/4 the estimate assumes

    context = build_context(
        doc, len("def f():\n    x = 1"), Budgets(prefix_tokens=1536, suffix_tokens=40), counter
    )
    assert len(context.suffix) <= 40
    assert context.suffix in calls, "the suffix kept was counted exactly"


def test_count_tokens_failure_falls_back_to_an_estimate(caplog: pytest.LogCaptureFixture) -> None:
    def broken(_text: str) -> int:
        raise RuntimeError("model unloaded")

    doc = Document("file:///a.py", big_python(3), "python")
    with caplog.at_level(logging.WARNING):
        context = build_context(doc, 200, Budgets(prefix_tokens=1536, suffix_tokens=16), broken)
    assert context.prefix == doc.text[:200]
    assert any("token counter failed" in record.getMessage() for record in caplog.records)


# ---------------------------------------------------------------------------- modes


@pytest.mark.parametrize(
    ("language", "source", "mode", "words"),
    [
        ("python", "def f():\n    <|>\n", Mode.MULTI_LINE, "empty block body"),
        ("python", "def f():<|>\n", Mode.MULTI_LINE, "block opener"),
        ("python", "x = {'a':<|>\n", Mode.MULTI_LINE, "written line"),
        ("python", "print(<|>)\n", Mode.SINGLE_LINE, "closing punctuation"),
        ("python", "print(<|>, end='')\n", Mode.SINGLE_LINE, "code right of the cursor"),
        ("python", "# note: <|>\n", Mode.SINGLE_LINE, "comment"),
        ("python", "s = 'abc <|> def'\n", Mode.SINGLE_LINE, "comment"),
        ("python", "s = '''doc\n<|>\n'''\n", Mode.SINGLE_LINE, "comment"),
        ("python", "value = va<|>lue\n", Mode.NONE, "identifier"),
        ("javascript", "const f = () => {<|>};\n", Mode.MULTI_LINE, "block opener"),
        ("javascript", "const s = `${a<|>}`;\n", Mode.SINGLE_LINE, "closing punctuation"),
        ("javascript", "let $el = $do<|>m;\n", Mode.NONE, "identifier"),
        (
            "go",
            "package p\n\nfunc f() {\n\tswitch x {\n\tcase 1:<|>\n\t}\n}\n",
            Mode.MULTI_LINE,
            "block opener",
        ),
        ("c", "int x = 1; /* a <|> */\n", Mode.SINGLE_LINE, "comment"),
        ("lua", "for i = 1, 3 do<|>\nend\n", Mode.MULTI_LINE, "block opener"),
        ("lua", "--[[ long <|> ]]\n", Mode.SINGLE_LINE, "comment"),
        ("lua", "x = 1 --[[ c ]]<|>\n", Mode.MULTI_LINE, "written line"),
        ("rust", "fn f() {\n    // todo<|>\n}\n", Mode.SINGLE_LINE, "comment"),
    ],
)
def test_mode_and_reason(language: str, source: str, mode: Mode, words: str) -> None:
    context = context_for(source, language)
    assert context.mode is mode, context.reason
    assert words in context.reason


@pytest.mark.parametrize(
    ("language", "source", "delimiter"),
    [
        ("python", 'x = "abc<|>\ny = 2\n', '"'),
        ("javascript", "const s = `abc<|>\nfoo();\n", "`"),
        ("go", 'package p\nvar s = "abc<|>\n', '"'),
        ("rust", 'fn f() { let s = "abc<|>\n}\n', '"'),
        ("java", 'class A { String s = "abc<|>\n}\n', '"'),
    ],
)
def test_unterminated_string_is_a_string(language: str, source: str, delimiter: str) -> None:
    context = context_for(source, language)
    assert (context.scope, context.string_delimiter) == ("string", delimiter)
    assert "comment" in context.reason


def test_rust_lifetime_is_not_a_quote() -> None:
    assert context_for("fn f<'a>(x: &'a str) -> &'a str { x.<|>\n", "rust").scope == "code"


@pytest.mark.parametrize(
    ("language", "source", "extent", "floor"),
    [
        ("python", "def f():\n    <|>\n", Extent.BLOCK, 1),
        ("python", "def f(x):\n    y = x\n    <|>\n    return y\n", Extent.FILL, 4),
        # After a loop body, before code at the function's level: either level may follow.
        ("python", "def f(x):\n    for i in x:\n        y(i)\n    <|>\n    return y\n", Extent.FILL, 4),
        # Below the last line of a function (HumanEval's layout: column 0, nothing below).
        ("python", "def f(x):\n    y = x\n<|>\n", Extent.FILL, 1),
        ("python", "def f(x):\n    y = x\n<|>\n\n\nprint(f(1))\n", Extent.FILL, 1),
        # The next method is a new definition: the cursor is in the method above.
        (
            "python",
            "class A:\n    def f(self):\n        x = 1\n        <|>\n\n    def g(self):\n        pass\n",
            Extent.FILL,
            5,
        ),
        ("javascript", "function f() {\n  a();\n  <|>\n}\n", Extent.FILL, 1),
        # The code below is deeper: the hole opens its block (a loop header is missing).
        ("python", 'def f(xs):\n    """Doc."""\n<|>\n        use(x)\n    return xs\n', Extent.FILL, 4),
        # A comment below says nothing about the block: the method after it does.
        (
            "python",
            "class A:\n    def f(self):\n        x = 1\n        <|>\n\n    # helpers\n"
            "    def g(self):\n        pass\n",
            Extent.FILL,
            5,
        ),
        ("c", "void f(int i) {\n#ifdef DEBUG\n    <|>\n#endif\n    run(i);\n}\n", Extent.FILL, 4),
        ("python", "x = foo(a)<|>\n", Extent.STATEMENT, 0),
        ("python", "def f(x):\n    if x > 0<|>\n    return x\n", Extent.STATEMENT, 4),
        ("lua", "if x < 0<|>\n", Extent.STATEMENT, 0),
        # Code right of the cursor: the middle runs up to it, on any line below.
        ("python", "print(<|>, end='')\n", Extent.SPAN, 0),
        ("python", "def f(x):\n    y = <|>x\n    return y\n", Extent.SPAN, 4),
        ("python", "# note: <|>\n", Extent.LINE, 0),
    ],
)
def test_extent_and_floor(language: str, source: str, extent: Extent, floor: int) -> None:
    context = context_for(source, language)
    assert context.extent is extent, context.reason
    one_line = extent in (Extent.LINE, Extent.SPAN)  # a span is one line while typing
    assert context.mode is (Mode.SINGLE_LINE if one_line else Mode.MULTI_LINE)
    assert context.floor == floor


@pytest.mark.parametrize(
    ("language", "source", "missing", "after_block"),
    [
        # HumanEval's layout: column 0 below the last line of a function.
        ("python", "def f(x):\n    y = x\n<|>\n", "    ", None),
        ("python", "def f(x):\n    y = x\n    <|>\n", "", None),
        ("python", "x = 1\n<|>\ny = 2\n", "", None),
        # Below a block opener: its body's indentation; at a function's end the lines
        # after the block may follow, inside the function.
        ("python", "def f(x):\n    if x:\n<|>\n", "        ", 1),
        ("python", "def f(x):\n    if x:\n<|>\n    return x\n", "        ", None),
        ("python", "def f(xs):\n    for x in xs:\n        if x:\n<|>\n    return xs\n", "            ", 4),
        ("python", "class A:\n    def f(self):\n<|>\n", "        ", None),
        ("python", "if x:\n<|>\n", "    ", None),
        # Inside a block closed below, in the document's indentation style.
        ("go", "func f() {\n\ta()\n<|>\n}\n", "\t", None),
        ("javascript", "function f() {\n  a();\n<|>\n}\n", "  ", None),
    ],
)
def test_missing_indentation_and_lines_after_the_block(
    language: str, source: str, missing: str, after_block: int | None
) -> None:
    context = context_for(source, language)
    assert context.missing_indent == missing
    assert context.after_block_floor == after_block


def test_fills_have_their_own_suffix_budget() -> None:
    budgets = Budgets(prefix_tokens=1536, suffix_tokens=0, fill_suffix_tokens=16)
    fill_source = "def f(x):\n    y = x\n    <|>\n    return y\n"
    doc = Document("untitled:1", fill_source.replace("<|>", ""), "python")
    fill = build_context(doc, fill_source.index("<|>"), budgets, quarter)
    assert fill.extent is Extent.FILL and fill.suffix == "\n    return y"
    written = build_context(doc, fill_source.index("y = x") + 5, budgets, quarter)
    assert written.extent is Extent.STATEMENT and written.suffix == ""
    same = Budgets(prefix_tokens=1536, suffix_tokens=16)
    assert same.suffix_for(Extent.FILL) == same.suffix_for(Extent.LINE) == 16


def test_spans_have_their_own_suffix_budget() -> None:
    budgets = Budgets(prefix_tokens=1536, suffix_tokens=0, span_suffix_tokens=16)
    source = "def f(x):\n    y = <|>x + 1\n    return y\n"
    doc = Document("untitled:1", source.replace("<|>", ""), "python")
    span = build_context(doc, source.index("<|>"), budgets, quarter)
    assert span.extent is Extent.SPAN and span.suffix.startswith("x + 1\n    return y")
    assert Budgets(prefix_tokens=1536, suffix_tokens=16).suffix_for(Extent.SPAN) == 16


@pytest.mark.parametrize("language", ["python", "javascript"])
def test_inside_a_word_only_an_asked_for_completion_is_made(language: str) -> None:
    source = "total = compute_va<|>lue(items)\n"
    cursor = source.index("<|>")
    doc = Document("untitled:1", source.replace("<|>", ""), language)
    budgets = Budgets(prefix_tokens=1536, suffix_tokens=16)
    typing = build_context(doc, cursor, budgets, quarter)
    assert typing.mode is Mode.NONE and "identifier" in typing.reason
    asked = build_context(doc, cursor, budgets, quarter, invoked=True)
    assert (asked.mode, asked.extent) == (Mode.MULTI_LINE, Extent.SPAN), asked.reason
    assert "asked for" in asked.reason
    # In a comment a word is prose: even asked for, the cursor inside it gets nothing.
    comment = "# compute_va<|>lue\n"
    doc = Document("untitled:1", comment.replace("<|>", ""), "python")
    assert build_context(doc, comment.index("<|>"), budgets, quarter, invoked=True).mode is Mode.NONE


@pytest.mark.parametrize(
    "source",
    [
        "def comment_line(text):<|>\n",
        "def comment_line(text):\n    <|>\n",
        "comment = make(<|>, comment)\n",
        "comm<|>ent = 1\n",
        "x = comment<|>\n",
    ],
)
def test_only_comments_and_strings_have_comment_in_the_reason(source: str) -> None:
    # The server tells comments apart by the word "comment" in the reason.
    context = context_for(source, "python")
    assert context.scope == "code"
    assert "comment" not in context.reason


def test_typed_word_and_block_indent() -> None:
    source = "class A:\n    def run(self):\n        if self.ready:\n            sta"
    doc = Document("file:///a.py", source, "python")
    context = build_context(doc, len(source), Budgets(prefix_tokens=1536, suffix_tokens=16), quarter)
    assert context.typed_word == "sta"
    assert context.block_indent is None
    opener = build_context(
        doc, source.index(":\n            sta") + 1, Budgets(prefix_tokens=1536, suffix_tokens=16), quarter
    )
    assert opener.mode is Mode.MULTI_LINE and opener.block_indent == "        "


@pytest.mark.parametrize(
    ("lines", "unit"),
    [
        (["def f():", "    x = 1", "    if x:", "        y = 2"], "    "),
        (["function f() {", "  x();", "  if (x) {", "    y();", "  }", "}"], "  "),
        (["func f() {", "\tx()", "\tif x {", "\t\ty()", "\t}", "}"], "\t"),
        (["no indentation at all"], "    "),
    ],
)
def test_indent_unit_detection(lines: list[str], unit: str) -> None:
    assert detect_indent_unit(lines) == unit


def test_crlf_document_keeps_its_line_breaks() -> None:
    text = "def f(x):\r\n    y = x\r\n    return y\r\n"
    doc = Document("file:///a.py", text, "python")
    cursor = text.index("y = x") + len("y = x")
    context = build_context(doc, cursor, Budgets(prefix_tokens=1536, suffix_tokens=16), quarter)
    assert context.newline == "\r\n"
    assert context.prefix == "def f(x):\r\n    y = x"
    assert context.suffix == "\r\n    return y"


# ---------------------------------------------------------------------------- robustness


def test_cursor_outside_the_document_is_clamped(caplog: pytest.LogCaptureFixture) -> None:
    doc = Document("file:///a.py", "x = 1\n", "python")
    with caplog.at_level(logging.WARNING):
        assert build_context(doc, 99, Budgets(prefix_tokens=1536, suffix_tokens=16), quarter).cursor == 6
        assert build_context(doc, -5, Budgets(prefix_tokens=1536, suffix_tokens=16), quarter).cursor == 0
    assert sum("clamped" in record.getMessage() for record in caplog.records) == 2


ODD_PIECES = [
    "x",
    "\n",
    "\r",
    "\r\n",
    "\t",
    " ",
    "{",
    "}",
    '"',
    "'",
    "#",
    "//",
    "/*",
    "*/",
    "😀",
    "中",
    "\x00",
    "\ud800",
    "end",
]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(ODD_PIECES), max_size=60).map("".join),
    st.floats(0, 1),
    st.sampled_from(["python", "javascript", "go", "rust", "c", "lua", "plaintext"]),
    st.integers(0, 200),
    st.integers(0, 50),
)
def test_any_text_and_cursor_builds_a_consistent_context(
    text: str, where: float, language: str, prefix_tokens: int, suffix_tokens: int
) -> None:
    doc = Document("untitled:odd", text, language)
    context = build_context(
        doc,
        int(where * len(text)),
        Budgets(prefix_tokens=prefix_tokens, suffix_tokens=suffix_tokens),
        quarter,
    )
    cursor = context.cursor
    assert context.prefix == text[context.prefix_start : cursor]
    assert context.suffix == text[cursor : context.suffix_end]
    assert context.prefix.endswith(context.line_prefix) or context.prefix_start > cursor - len(
        context.line_prefix
    )
    assert context.typed_word == "" or context.line_prefix.endswith(context.typed_word)
    if context.check_window is not None:
        assert context.check_window[0] <= cursor <= context.check_window[1]
