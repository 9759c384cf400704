"""The languages fim-lsp understands, and the tree-sitter plumbing they share.

Each ``LanguageSpec`` names its grammar (an installed ``tree_sitter_*`` wheel), the
editor language ids and file extensions that select it, and the few facts the context
and the post-processing need: which nodes are comments and strings, what opens a block
at the end of a line, and what closes one at the start of a line.

A language without a grammar (or whose grammar fails to load) gets ``GENERIC``: the
same rules, applied line by line without a tree. That is a fallback, never an error.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

from tree_sitter import Language, Node, Parser, Tree

log = logging.getLogger(__name__)

#: Larger documents are not parsed: a full parse costs about 0.25 ms per KB here.
MAX_PARSE_BYTES = 2_000_000

_BRACE_OPENER = re.compile(r"\{$")
_CASE_LABEL = re.compile(r"^(?:case\b.*|default\s*):$")
_BRACKET_CLOSER = re.compile(r"^(?:[}\])]|</)")
_JUMP = re.compile(r"^(?:return|raise|throw|break|continue|goto)\b")


@dataclass(frozen=True)
class LanguageSpec:
    """What fim needs to know about one language."""

    name: str
    language_ids: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    #: The grammar wheel's module and the function in it that returns the language.
    module: str = ""
    loader: str = "language"
    comment_types: frozenset[str] = frozenset()
    string_types: frozenset[str] = frozenset()
    #: Nodes inside a string that hold code again (f-string fields, ``${}``).
    code_in_string_types: frozenset[str] = frozenset()
    line_comment: tuple[str, ...] = ()
    #: Matches a stripped line whose end opens a block (the cursor is right after it).
    opener: re.Pattern[str] = _BRACE_OPENER
    #: Matches the stripped start of a line that closes a block.
    closer: re.Pattern[str] = _BRACKET_CLOSER
    #: Matches the stripped start of a line that ends one block and continues the statement
    #: (``else:``, ``elif``): the end of the block, but never something to add.
    continuation: re.Pattern[str] | None = None
    #: Matches the stripped start of a line that opens a function or class: a completion
    #: that goes on past the end of a block stays inside the nearest one (None: it never
    #: goes on; brace languages have the block's closer below).
    definition: re.Pattern[str] | None = None
    #: Matches the stripped start of a statement after which its block runs no further
    #: (``return``, ``break``...): a line after it at its level is dead code.
    jump: re.Pattern[str] = _JUMP
    #: Identifier characters besides ``\\w``.
    word_extra: str = ""
    #: Characters that open a string on one line (for code the tree cannot parse).
    quotes: str = "\"'`"
    default_indent: str = "    "

    @property
    def has_grammar(self) -> bool:
        return bool(self.module)

    def is_opener_line(self, stripped: str) -> bool:
        """Whether a stripped line ends with something that opens a block."""
        return bool(stripped) and (
            self.opener.search(stripped) is not None or bool(_CASE_LABEL.match(stripped))
        )

    def is_closer_line(self, stripped: str) -> bool:
        return self.closer.match(stripped) is not None

    def is_jump_line(self, stripped: str) -> bool:
        return self.jump.match(stripped) is not None

    def is_definition_line(self, stripped: str) -> bool:
        return self.definition is not None and self.definition.match(stripped) is not None

    def is_continuation_line(self, stripped: str) -> bool:
        return self.continuation is not None and self.continuation.match(stripped) is not None


def is_case_label(stripped: str) -> bool:
    """``case 1:``, ``default:``: a label that starts a branch of a switch (or a Python match)."""
    return _CASE_LABEL.match(stripped) is not None


_C_FAMILY_COMMENTS = ("//",)

PYTHON = LanguageSpec(
    name="python",
    language_ids=("python",),
    extensions=(".py", ".pyi", ".pyw"),
    module="tree_sitter_python",
    comment_types=frozenset({"comment"}),
    string_types=frozenset({"string"}),
    code_in_string_types=frozenset({"interpolation"}),
    line_comment=("#",),
    opener=re.compile(
        r"^(?:async\s+)?(?:def|class|if|elif|else|for|while|try|except|finally|with|match|case)\b"
        r"[^#]*:\s*(?:#.*)?$|^(?:else|try|finally)\s*:\s*(?:#.*)?$"
    ),
    closer=re.compile(r"^[}\])]"),
    continuation=re.compile(r"^(?:else|elif|except|finally|case)\b"),
    definition=re.compile(r"^(?:async\s+)?(?:def|class)\b"),
)


def _javascript_like(
    name: str, ids: tuple[str, ...], extensions: tuple[str, ...], module: str, loader: str
) -> LanguageSpec:
    return LanguageSpec(
        name=name,
        language_ids=ids,
        extensions=extensions,
        module=module,
        loader=loader,
        comment_types=frozenset({"comment", "html_comment"}),
        string_types=frozenset({"string", "template_string", "regex"}),
        code_in_string_types=frozenset({"template_substitution"}),
        line_comment=_C_FAMILY_COMMENTS,
        word_extra="$",
        default_indent="  ",
    )


JAVASCRIPT = _javascript_like(
    "javascript",
    ("javascript", "javascriptreact", "jsx"),
    (".js", ".mjs", ".cjs", ".jsx"),
    "tree_sitter_javascript",
    "language",
)
TYPESCRIPT = _javascript_like(
    "typescript", ("typescript",), (".ts", ".mts", ".cts"), "tree_sitter_typescript", "language_typescript"
)
TSX = _javascript_like("tsx", ("typescriptreact", "tsx"), (".tsx",), "tree_sitter_typescript", "language_tsx")

GO = LanguageSpec(
    name="go",
    language_ids=("go",),
    extensions=(".go",),
    module="tree_sitter_go",
    comment_types=frozenset({"comment"}),
    string_types=frozenset({"interpreted_string_literal", "raw_string_literal", "rune_literal"}),
    line_comment=_C_FAMILY_COMMENTS,
    default_indent="\t",
)

RUST = LanguageSpec(
    name="rust",
    language_ids=("rust",),
    extensions=(".rs",),
    module="tree_sitter_rust",
    comment_types=frozenset({"line_comment", "block_comment"}),
    string_types=frozenset({"string_literal", "raw_string_literal", "char_literal"}),
    line_comment=_C_FAMILY_COMMENTS,
    quotes='"',  # a quote is also a lifetime ('a)
)

_C_STRINGS = frozenset({"string_literal", "char_literal", "system_lib_string", "raw_string_literal"})

C = LanguageSpec(
    name="c",
    language_ids=("c",),
    extensions=(".c", ".h"),
    module="tree_sitter_c",
    comment_types=frozenset({"comment"}),
    string_types=_C_STRINGS,
    line_comment=_C_FAMILY_COMMENTS,
    quotes="\"'",
)

CPP = LanguageSpec(
    name="cpp",
    language_ids=("cpp", "c++", "cuda-cpp"),
    extensions=(".cc", ".cpp", ".cxx", ".c++", ".hh", ".hpp", ".hxx", ".h++", ".ipp", ".tpp", ".inl"),
    module="tree_sitter_cpp",
    comment_types=frozenset({"comment"}),
    string_types=_C_STRINGS,
    line_comment=_C_FAMILY_COMMENTS,
    quotes="\"'",
)

JAVA = LanguageSpec(
    name="java",
    language_ids=("java",),
    extensions=(".java",),
    module="tree_sitter_java",
    comment_types=frozenset({"line_comment", "block_comment"}),
    string_types=frozenset({"string_literal", "character_literal", "text_block"}),
    line_comment=_C_FAMILY_COMMENTS,
    quotes="\"'",
)

LUA = LanguageSpec(
    name="lua",
    language_ids=("lua",),
    extensions=(".lua",),
    module="tree_sitter_lua",
    comment_types=frozenset({"comment"}),
    string_types=frozenset({"string"}),
    line_comment=("--",),
    opener=re.compile(
        r"(?:\bthen|\bdo|\belse|\brepeat|\{)$"
        r"|^(?:local\s+)?function\b.*\)$|\bfunction\s*\([^()]*\)$"
    ),
    closer=re.compile(r"^(?:[}\])]|(?:end|until)\b)"),
    continuation=re.compile(r"^(?:else|elseif)\b"),
    default_indent="  ",
)

#: Any other language: line-based rules that fit most brace and indentation languages.
GENERIC = LanguageSpec(
    name="",
    line_comment=("#", "//", "--", ";"),
    opener=re.compile(r"(?:\{|:|\bdo|\bthen|=>|->)$"),
    closer=re.compile(r"^(?:[}\])]|</|(?:end|fi|done|esac|until)\b)"),
    continuation=re.compile(r"^(?:else|elif|elsif|elseif|except|finally|rescue|ensure|when)\b"),
)

LANGUAGES: tuple[LanguageSpec, ...] = (PYTHON, JAVASCRIPT, TYPESCRIPT, TSX, GO, RUST, C, CPP, JAVA, LUA)

_BY_ID = {language_id: spec for spec in LANGUAGES for language_id in spec.language_ids}
_BY_EXTENSION = {extension: spec for spec in LANGUAGES for extension in spec.extensions}
_BY_NAME = {spec.name: spec for spec in (*LANGUAGES, GENERIC)}


def extension_of(uri: str) -> str:
    """Lower-case file extension of a URI or path ("" when there is none)."""
    path = unquote(urlparse(uri).path) if "://" in uri else uri
    return PurePosixPath(path).suffix.lower()


def language_for(language_id: str = "", uri: str = "") -> LanguageSpec:
    """The spec for an editor language id, else for the file extension, else ``GENERIC``."""
    spec = _BY_ID.get(language_id.lower()) if language_id else None
    if spec is None and uri:
        spec = _BY_EXTENSION.get(extension_of(uri))
    return spec or GENERIC


def language_named(name: str) -> LanguageSpec:
    return _BY_NAME.get(name, GENERIC)


@cache
def grammar(name: str) -> Language | None:
    """The loaded tree-sitter language, or ``None`` when there is none (logged once)."""
    spec = _BY_NAME.get(name)
    if spec is None or not spec.has_grammar:
        return None
    try:
        module = importlib.import_module(spec.module)
        return Language(getattr(module, spec.loader)())
    except Exception as error:  # a broken wheel must not take completions down
        log.warning("no tree-sitter grammar for %s (%s): using line-based context", name, error)
        return None


_parsers = threading.local()


def parser_for(name: str) -> Parser | None:
    """A parser for the language, one per thread (parsers are not thread-safe)."""
    cached: dict[str, Parser] | None = getattr(_parsers, "by_name", None)
    if cached is None:
        cached = {}
        _parsers.by_name = cached
    parser = cached.get(name)
    if parser is None:
        language = grammar(name)
        if language is None:
            return None
        parser = Parser(language)
        cached[name] = parser
    return parser


def parse(name: str, source: bytes, old_tree: Tree | None = None) -> Tree | None:
    """Parse ``source``; incrementally when ``old_tree`` was edited to match it."""
    parser = parser_for(name)
    if parser is None or len(source) > MAX_PARSE_BYTES:
        return None
    try:
        return parser.parse(source, old_tree) if old_tree is not None else parser.parse(source)
    except Exception as error:  # tree-sitter reports failures as ValueError
        log.warning("tree-sitter failed on a %s document (%s)", name, error)
        parser.reset()
        return None


def error_count(node: Node, limit: int = 5000) -> int:
    """ERROR and MISSING nodes under ``node``, visiting only subtrees that hold one."""
    count = 0
    visited = 0
    stack = [node]
    while stack and visited < limit:
        current = stack.pop()
        visited += 1
        if current.is_error or current.is_missing:
            count += 1
        if current.has_error:
            stack.extend(current.children)
    return count
