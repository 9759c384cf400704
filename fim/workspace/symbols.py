"""What one source file offers other files: its definitions, its identifiers, its imports.

A definition is summarised the way a reader of another file needs it: a function's
signature and docstring with the body left out, a class's header with its fields and
its methods' signatures, a type or constant whole (capped). Definitions come from the
file's tree-sitter tree; identifiers and imports from plain regular expressions, which
are cheaper and do not care whether the file parses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fim import languages

if TYPE_CHECKING:
    from tree_sitter import Node

#: A summary longer than this is cut at a line end.
MAX_SUMMARY_CHARS = 1200
#: A docstring kept in a summary is cut to this many characters.
MAX_DOCSTRING_CHARS = 300
#: Members listed in a class summary.
MAX_MEMBERS = 24
#: Identifiers shorter than this say too little to match files or chunks on.
MIN_IDENTIFIER_CHARS = 3

IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")

#: Words of the languages themselves, which match every file and mean nothing here.
KEYWORDS = frozenset(
    re.findall(
        r"\w+",
        """
and as assert async await break case catch class const continue def default del elif else
enum except export extends false final finally for from func function go if impl
implements import in interface is let match mod module mut new nil none not null or
package pass pub raise return self static struct super switch this throw true try type
typeof use var void while with yield int str bool float string number any object list
dict print len range none true false fn crate where loop trait dyn ref unsafe extern
async
""",
    )
)


@dataclass(frozen=True)
class Definition:
    """One definition of a file, as another file would want to see it."""

    name: str
    kind: str
    #: The signature, docstring and members, bodies left out.
    summary: str
    #: First line of the definition in its file (0-based).
    line: int


@dataclass(frozen=True)
class Language:
    """How definitions look in one language's tree."""

    #: Their bodies are left out of a summary.
    functions: frozenset[str]
    #: Their members are summarised in turn.
    containers: frozenset[str]
    #: Kept whole, up to the cap.
    whole: frozenset[str]
    #: Wrap a definition (decorators, ``export``): looked through.
    wrappers: frozenset[str]
    #: Declarations whose names sit in child nodes of these types.
    declarators: frozenset[str] = frozenset()


_JS = Language(
    functions=frozenset(
        {"function_declaration", "generator_function_declaration", "method_definition", "function_signature"}
    ),
    containers=frozenset({"class_declaration", "abstract_class_declaration", "class"}),
    whole=frozenset(
        {
            "interface_declaration",
            "type_alias_declaration",
            "enum_declaration",
            "lexical_declaration",
            "variable_declaration",
            "public_field_definition",
            "field_definition",
        }
    ),
    wrappers=frozenset({"export_statement"}),
    declarators=frozenset({"variable_declarator"}),
)

LANGUAGE_RULES: dict[str, Language] = {
    "python": Language(
        functions=frozenset({"function_definition"}),
        containers=frozenset({"class_definition"}),
        whole=frozenset({"expression_statement"}),
        wrappers=frozenset({"decorated_definition"}),
    ),
    "javascript": _JS,
    "typescript": _JS,
    "tsx": _JS,
    "go": Language(
        functions=frozenset({"function_declaration", "method_declaration"}),
        containers=frozenset(),
        whole=frozenset({"type_declaration", "const_declaration", "var_declaration"}),
        wrappers=frozenset(),
        declarators=frozenset({"type_spec", "const_spec", "var_spec"}),
    ),
    "rust": Language(
        functions=frozenset({"function_item", "function_signature_item"}),
        containers=frozenset({"impl_item", "trait_item"}),
        whole=frozenset({"struct_item", "enum_item", "const_item", "static_item", "type_item", "union_item"}),
        wrappers=frozenset(),
    ),
    "java": Language(
        functions=frozenset({"method_declaration", "constructor_declaration"}),
        containers=frozenset({"class_declaration", "interface_declaration", "enum_declaration"}),
        whole=frozenset({"field_declaration"}),
        wrappers=frozenset(),
        declarators=frozenset({"variable_declarator"}),
    ),
}


def identifiers(text: str) -> frozenset[str]:
    """The identifiers of a text that can tell one piece of code from another."""
    return frozenset(
        word
        for word in IDENTIFIER.findall(text)
        if len(word) >= MIN_IDENTIFIER_CHARS and word.lower() not in KEYWORDS
    )


def _cap(text: str, limit: int = MAX_SUMMARY_CHARS) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    return text[: cut if cut > 0 else limit] + "\n..."


class _Extractor:
    def __init__(self, rules: Language, source: bytes) -> None:
        self.rules = rules
        self.source = source

    def text(self, start: int, end: int) -> str:
        return self.source[start:end].decode("utf-8", "replace")

    def names(self, node: Node) -> list[str]:
        name = node.child_by_field_name("name")
        if name is not None and name.type not in ("string", "computed_property_name"):
            return [self.text(name.start_byte, name.end_byte)]
        if node.type == "expression_statement":
            # Python: a module- or class-level assignment ``NAME = ...`` or ``NAME: T = ...``.
            inner = node.named_children[0] if node.named_children else None
            if inner is not None and inner.type == "assignment":
                left = inner.child_by_field_name("left")
                if left is not None and left.type == "identifier":
                    return [self.text(left.start_byte, left.end_byte)]
            return []
        found: list[str] = []
        for child in node.named_children:
            if child.type in self.rules.declarators:
                found.extend(self.names(child))
        return found

    def docstring(self, body: Node | None) -> str:
        if body is None or not body.named_children:
            return ""
        first = body.named_children[0]
        if first.type == "expression_statement" and first.named_children:
            string = first.named_children[0]
            if string.type == "string":
                return _cap(self.text(first.start_byte, first.end_byte), MAX_DOCSTRING_CHARS)
        return ""

    def indent_of(self, node: Node) -> str:
        line_start = self.source.rfind(b"\n", 0, node.start_byte) + 1
        prefix = self.source[line_start : node.start_byte]
        return prefix.decode("utf-8", "replace") if not prefix.strip() else ""

    def function_summary(self, node: Node, start: int) -> str:
        body = node.child_by_field_name("body")
        if body is None:
            return self.text(start, node.end_byte)
        head = self.text(start, body.start_byte).rstrip()
        indent = self.indent_of(node)
        if body.type == "block" and head.endswith(":"):  # Python
            inner = indent + "    "
            parts = [head]
            doc = self.docstring(body)
            if doc:
                parts.append(inner + doc)
            parts.extend(inner + line for line in self.python_fields(node, body))
            parts.append(inner + "...")
            return "\n".join(parts)
        return head + " { ... }"

    def python_fields(self, node: Node, body: Node) -> list[str]:
        """The ``self.x = ...`` lines of an ``__init__``: the fields a class's users need."""
        name = node.child_by_field_name("name")
        if name is None or self.text(name.start_byte, name.end_byte) != "__init__":
            return []
        lines: list[str] = []
        for statement in body.named_children:
            text = self.text(statement.start_byte, statement.end_byte)
            if text.startswith("self.") and "=" in text and "\n" not in text:
                lines.append(text)
            if len(lines) >= MAX_MEMBERS:
                break
        return lines

    def container_summary(self, node: Node, start: int) -> str:
        body = node.child_by_field_name("body")
        if body is None:
            return _cap(self.text(start, node.end_byte))
        head = self.text(start, body.start_byte).rstrip()
        python = head.endswith(":")
        lines = [head if python else head + " {"]
        inner = self.indent_of(node) + ("    " if python else "  ")
        doc = self.docstring(body) if python else ""
        if doc:
            lines.append(inner + doc)
        members = 0
        for position, child in enumerate(body.named_children):
            if position == 0 and doc:
                continue  # the docstring, already there
            if members >= MAX_MEMBERS:
                lines.append(inner + "...")
                break
            summary = self.member_summary(child)
            if summary:
                lines.append(summary if summary.startswith(inner) else inner + summary.lstrip())
                members += 1
        if not python:
            lines.append(self.indent_of(node) + "}")
        return _cap("\n".join(lines), MAX_SUMMARY_CHARS * 2)

    def member_summary(self, node: Node) -> str:
        start = node.start_byte
        target = node
        if node.type in self.rules.wrappers:
            target = node.child_by_field_name("definition") or node.named_children[-1]
        if target.type in self.rules.functions:
            return self.function_summary(target, start)
        if target.type in self.rules.whole or target.type in ("field_declaration", "property_signature"):
            text = self.text(start, target.end_byte)
            return text if "\n" not in text and len(text) < 200 else ""
        return ""

    def definitions(self, node: Node, found: list[Definition]) -> None:
        for child in node.named_children:
            start = child.start_byte
            target = child
            while target.type in self.rules.wrappers:
                inner = target.child_by_field_name("definition") or target.child_by_field_name("declaration")
                if inner is None:
                    named = [c for c in target.named_children if c.type not in ("decorator", "comment")]
                    inner = named[-1] if named else None
                if inner is None:
                    break
                target = inner
            kind = target.type
            if kind in self.rules.functions:
                summary = self.function_summary(target, start)
            elif kind in self.rules.containers:
                summary = self.container_summary(target, start)
            elif kind in self.rules.whole:
                summary = _cap(self.text(start, target.end_byte))
            else:
                continue
            names = self.names(target)
            if kind == "impl_item":  # Rust: an impl block is found by its type's name
                type_node = target.child_by_field_name("type")
                names = [self.text(type_node.start_byte, type_node.end_byte)] if type_node else []
            line = self.source.count(b"\n", 0, start)
            for name in names:
                found.append(Definition(name, kind, summary, line))


def definitions(language: str, text: str) -> list[Definition]:
    """The top-level definitions of a file in ``language`` (a ``LanguageSpec.name``)."""
    rules = LANGUAGE_RULES.get(language)
    if rules is None:
        return []
    source = text.encode("utf-8", "surrogatepass")
    tree = languages.parse(language, source)
    if tree is None:
        return []
    found: list[Definition] = []
    _Extractor(rules, source).definitions(tree.root_node, found)
    return found


# ---------------------------------------------------------------------- imports
_PYTHON_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+\(?([\w, \t]+)", re.MULTILINE)
_PYTHON_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w.]+)", re.MULTILINE)
_JS_SOURCE = re.compile(
    r"""(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)['"]([^'"\n]+)['"]""",
)
_GO_IMPORT_BLOCK = re.compile(r"^import\s*\(([^)]*)\)", re.MULTILINE)
_GO_IMPORT_LINE = re.compile(r'^import\s+(?:[\w.]+\s+)?"([^"]+)"', re.MULTILINE)
_GO_PATH = re.compile(r'"([^"]+)"')
_RUST_USE = re.compile(r"^[ \t]*(?:pub(?:\([^)]*\))?[ \t]+)?use[ \t]+([\w:]+)", re.MULTILINE)
_RUST_MOD = re.compile(r"^[ \t]*(?:pub(?:\([^)]*\))?[ \t]+)?mod[ \t]+(\w+)[ \t]*;", re.MULTILINE)


@dataclass(frozen=True)
class Import:
    """A module a file imports, as path parts to look for among the workspace's files.

    ``relative`` is how many folders up from the importing file's folder the parts start
    (0: its own folder), or None when they may match anywhere (the end of a path).
    """

    parts: tuple[str, ...]
    relative: int | None


def imports(language: str, text: str) -> list[Import]:
    """What a file imports that may be another file of the same workspace."""
    found: list[Import] = []
    if language == "python":
        for match in _PYTHON_FROM.finditer(text):
            module, names = match.group(1), match.group(2)
            dots = len(module) - len(module.lstrip("."))
            parts = tuple(part for part in module.lstrip(".").split(".") if part)
            relative = dots - 1 if dots else None
            if parts:
                found.append(Import(parts, relative))
            # ``from pkg import module`` imports a module as often as a name.
            for name in names.split(","):
                name = name.strip().split(" ")[0]
                if name:
                    found.append(Import((*parts, name), relative))
        for match in _PYTHON_IMPORT.finditer(text):
            found.append(Import(tuple(match.group(1).split(".")), None))
    elif language in ("javascript", "typescript", "tsx"):
        for match in _JS_SOURCE.finditer(text):
            source = match.group(1)
            if source.startswith("."):
                steps = [part for part in source.split("/") if part not in ("", ".")]
                up = 0
                while steps and steps[0] == "..":
                    steps.pop(0)
                    up += 1
                if steps:
                    found.append(Import(tuple(steps), up))
            # A bare specifier is a package from node_modules, never read.
    elif language == "go":
        paths = [m.group(1) for m in _GO_IMPORT_LINE.finditer(text)]
        for block in _GO_IMPORT_BLOCK.finditer(text):
            paths.extend(m.group(1) for m in _GO_PATH.finditer(block.group(1)))
        found.extend(Import(tuple(path.split("/")), None) for path in paths)
    elif language == "rust":
        for match in _RUST_USE.finditer(text):
            path = [part for part in match.group(1).split("::") if part]
            if path and path[0] in ("crate", "self", "super"):
                path = path[1:]
            # ``a::b::Name`` names a module ``a::b`` (or ``a``) and an item in it.
            found.extend(Import(tuple(path[:end]), None) for end in range(len(path), 0, -1))
        for match in _RUST_MOD.finditer(text):
            found.append(Import((match.group(1),), 0))
    return found
