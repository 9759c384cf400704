"""``fim-lsp bench quality --cross-file``: does the workspace context complete what other files define?

The tasks are made here, from real multi-file Python and TypeScript packages
(``CROSS_FILE_SDISTS`` and ``CROSS_FILE_NPM``, pinned, fetched by pip and npm into a
corpus cache of their own; nothing is committed). As in
CrossCodeEval, a hole is a line that uses a name defined at the top level of another
file of the same package: the cursor goes just before the name, and the answer is the
rest of the line. The rest of the line is removed from the document; the lines after
it stay.

Every hole is completed twice in the same run, by the same in-process model and the
same completion pipeline the daemon uses: with the workspace context (the package
indexed as a workspace folder, the current file's own text never taken from the disk)
and without it. Scored: exact match of the first line and its edit similarity.

Then the cost per keystroke, warm: on a few holes the document is warmed as the idle
prefill would, and the first characters of the answer are typed one by one; each
keystroke's evaluated tokens and time are recorded, with and without the context.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import random
import re
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from fim import languages
from fim.config import Config, derive, engine_config
from fim.context import Document
from fim.pipeline import CompletionPipeline
from fim.workspace import Workspace, WorkspaceSettings
from fim.workspace.filter import FileFilter
from fim.workspace.index import FileEntry, WorkspaceIndex
from harness.replay.jumps import PYPI_SDISTS, default_corpus_dir, fetch_corpus
from harness.report import edit_similarity, fmt_ms, fmt_pct, machine, markdown_table, rate
from harness.runner import QUALITY_DEFAULTS, BenchError

if TYPE_CHECKING:
    from tree_sitter import Node

#: Pure-Python packages whose modules import each other: ``bench jumps``'s three and six
#: more, so that the holes are not one project's style.
CROSS_FILE_SDISTS = (
    *PYPI_SDISTS,
    "flask==3.0.3",
    "jinja2==3.1.4",
    "werkzeug==3.0.4",
    "httpx==0.27.2",
    "markdown-it-py==3.0.0",
    "rich==13.9.4",
)
#: A TypeScript package whose modules import each other (its ``src``).
CROSS_FILE_NPM = ("rxjs@7.8.1",)
#: Names shorter than this are too common to say the line needs the other file.
MIN_NAME_CHARS = 5
#: Answers shorter than this are mostly punctuation.
MIN_ANSWER_CHARS = 4
#: Holes taken from one file at most, so that one large module does not dominate.
MAX_HOLES_PER_FILE = 4
#: Keystrokes typed per hole when the warm cost is measured.
TYPED_KEYSTROKES = 3
#: Lines that import or define rather than use: no holes there.
_SKIPPED_LINE = {
    "python": re.compile(r"^\s*(?:from\s|import\s|def\s|class\s|async\s+def\s|@|#)"),
    "typescript": re.compile(
        r"^\s*(?:import\s|export\s+(?:\*|\{|default\s+)?(?:declare\s+)?(?:abstract\s+)?"
        r"(?:function|class|interface|type|enum|\{|\*)|function\s|class\s|interface\s|type\s|//|/\*|\*|@)"
    ),
}
#: ``import { a, b as c } from './module'``: the names a TypeScript file takes from its package.
_TS_NAMED_IMPORT = re.compile(r"""\bimport\s+(?:type\s+)?\{([^}]*)\}\s*from\s*['"](\.[^'"]*)['"]""")
#: Syntax nodes whose identifiers are not a use of the name in code.
_NOT_CODE = frozenset(("import_statement", "import_from_statement", "string", "template_string", "comment"))


@dataclass(frozen=True)
class Hole:
    """One task: a file of a package, the cursor, and the rest of the line as the answer."""

    root: Path
    path: PurePosixPath
    text: str
    cursor: int
    answer: str
    name: str
    language: str = "python"

    @property
    def id(self) -> str:
        return f"{self.path}:{self.text.count(chr(10), 0, self.cursor) + 1}"


def package_roots(source: Path) -> list[Path]:
    """Folders holding a top-level package (the workspace root is their parent).

    A Python package is a folder with ``__init__.py`` under a folder without one; a
    TypeScript package is the ``src`` folder beside a ``package.json``.
    """
    roots = set()
    for init in sorted(source.rglob("__init__.py")):
        package = init.parent
        parts = set(package.parts)
        if not (package.parent / "__init__.py").exists() and not parts & {
            "tests",
            "test",
            "examples",
            "docs",
        }:
            roots.add(package.parent)
    for manifest in sorted(source.rglob("package.json")):
        src = manifest.parent / "src"
        if "node_modules" not in manifest.parts and src.is_dir() and next(src.rglob("*.ts"), None):
            roots.add(src)
    return sorted(roots)


def _imported_names(entry: FileEntry, packages: set[str]) -> set[str]:
    """Names the file imports from its own package, as CrossCodeEval's holes use."""
    if entry.language == "typescript":
        names = set()
        for match in _TS_NAMED_IMPORT.finditer(entry.text):
            for name in match.group(1).split(","):
                words = name.replace("type ", " ").split()
                if words:
                    names.add(words[-1])  # ``a as b`` is used as ``b``
        return names
    return {
        found.parts[-1]
        for found in entry.imports
        if found.relative is not None or (found.parts and found.parts[0] in packages)
    }


def holes_in(root: Path) -> list[Hole]:
    """Every line of the package under ``root`` that uses a name another of its files defines."""
    index = WorkspaceIndex(root, FileFilter(root, ["tests/", "test/", "docs/", "examples/", "*.spec.ts"]))
    index.scan()
    entries = index.entries()
    defined_in: dict[str, set[PurePosixPath]] = {}
    for path, entry in entries.items():
        for definition in entry.definitions:
            if len(definition.name) >= MIN_NAME_CHARS and not definition.name.startswith("__"):
                defined_in.setdefault(definition.name, set()).add(path)
    holes = []
    packages = {path.parts[0] for path in entries}
    for path, entry in sorted(entries.items()):
        skipped = _SKIPPED_LINE.get(entry.language)
        if skipped is None:
            continue
        own = {definition.name for definition in entry.definitions}
        imported = _imported_names(entry, packages)
        foreign = {
            name
            for name, paths in defined_in.items()
            if name in imported and name not in own and paths - {path}
        }
        if not foreign:
            continue
        pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, foreign))) + r")\b")
        tree = languages.parse(entry.language, entry.text.encode("utf-8", "surrogatepass"))
        if tree is None:
            continue
        offset = 0
        for line in entry.text.splitlines(keepends=True):
            content = line.rstrip("\r\n")
            found = pattern.search(content)
            if (
                found
                and not skipped.match(content)
                and _in_code(tree.root_node, entry.text, offset + found.start())
            ):
                answer = content[found.start() :].rstrip()
                if len(answer) >= MIN_ANSWER_CHARS:
                    cursor = offset + found.start()
                    line_end = offset + len(content)
                    text = entry.text[:cursor] + entry.text[line_end:]
                    holes.append(Hole(root, path, text, cursor, answer, found.group(1), entry.language))
            offset += len(line)
    return holes


def _in_code(root: Node, text: str, offset: int) -> bool:
    """Whether the name at ``offset`` is an identifier of the code (not a string, comment or import)."""
    start = len(text[:offset].encode("utf-8", "surrogatepass"))
    node: Node | None = root.descendant_for_byte_range(start, start + 1)
    if node is None or node.type not in ("identifier", "type_identifier"):
        return False
    while node is not None:
        if node.type in _NOT_CODE:
            return False
        node = node.parent
    return True


def select_holes(source: Path, limit: int, seed: int) -> list[Hole]:
    """Up to ``limit`` holes, a few per file, the packages taken in turn, the same ones for the same seed.

    Taking the packages in turn keeps a large package (rich has sixty modules) from
    being most of a short draw.
    """
    chooser = random.Random(seed)
    per_package: list[list[Hole]] = []
    for root in package_roots(source):
        by_file: dict[PurePosixPath, list[Hole]] = {}
        for hole in holes_in(root):
            by_file.setdefault(hole.path, []).append(hole)
        picked: list[Hole] = []
        for holes in by_file.values():
            picked.extend(chooser.sample(holes, min(MAX_HOLES_PER_FILE, len(holes))))
        chooser.shuffle(picked)
        per_package.append(picked)
    in_turn = [hole for row in itertools.zip_longest(*per_package) for hole in row if hole is not None]
    return in_turn[:limit]


def typed(hole: Hole, chars: int) -> Hole:
    """The hole once the user has typed the name's first ``chars`` characters (all but its last, at most)."""
    chars = min(chars, len(hole.name) - 1)
    start = hole.answer[:chars]
    return dataclasses.replace(
        hole,
        text=hole.text[: hole.cursor] + start + hole.text[hole.cursor :],
        cursor=hole.cursor + chars,
        answer=hole.answer[chars:],
    )


def first_line(text: str) -> str:
    return text.split("\n", 1)[0].rstrip()


class Runner:
    """One model, two pipelines (with and without the workspace), and a workspace per package root."""

    def __init__(self, config: Config, model_path: str) -> None:
        from fim.llama import LlamaEngine
        from fim.llama.log import quiet_llama

        quiet_llama()
        self.config = config
        self.engine = LlamaEngine(engine_config(config, model_path))
        self.workspaces: dict[Path, Workspace] = {}
        self.plain = CompletionPipeline(self.engine, derive(config))

    def workspace(self, root: Path) -> Workspace:
        if root not in self.workspaces:
            workspace = Workspace(
                WorkspaceSettings(
                    budget_tokens=self.config.workspace_tokens, exclude_globs=("tests/", "docs/")
                )
            )
            workspace.add_root(root)
            if not workspace.wait_until_watching(120):
                raise BenchError(f"{root}: the workspace index did not finish")
            self.workspaces[root] = workspace
        return self.workspaces[root]

    def pipeline(self, hole: Hole, with_context: bool) -> CompletionPipeline:
        if not with_context:
            return self.plain
        return CompletionPipeline(self.engine, derive(self.config), self.workspace(hole.root))

    @staticmethod
    def uri(hole: Hole, use: str, with_context: bool) -> str:
        """The file's URI, made unique per hole and condition by its fragment.

        The workspace finds the file by its path (the fragment is not part of it), and a
        hole never gets the context pinned for another hole of the same file.
        """
        condition = "workspace" if with_context else "plain"
        return f"{(hole.root / hole.path).as_uri()}#{use}-{hole.cursor}-{condition}"

    def complete(self, hole: Hole, with_context: bool) -> dict[str, Any]:
        pipeline = self.pipeline(hole, with_context)
        document = Document(self.uri(hole, "complete", with_context), hole.text, hole.language)
        plan = pipeline.plan(document, hole.cursor)
        started = time.perf_counter()
        generation = pipeline.run(plan, threading.Event())
        completion = first_line(generation.text)
        return {
            "completion": completion,
            "exact_match": completion == hole.answer,
            "edit_similarity": round(edit_similarity(completion, hole.answer), 4),
            "tokens_prompt": generation.stats.tokens_prompt,
            "context_files": len(plan.request.repository.files) if plan.request.repository else 0,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        }

    def keystrokes(self, hole: Hole, with_context: bool) -> list[dict[str, float]]:
        """Warm the document as the idle prefill does, then type the answer's first characters."""
        pipeline = self.pipeline(hole, with_context)
        document = Document(self.uri(hole, "type", with_context), hole.text, hole.language)
        plan = pipeline.plan(document, hole.cursor)
        pipeline.warm(document, plan.prefix_start, threading.Event(), plan.request.repository)
        costs = []
        for typed in range(1, TYPED_KEYSTROKES + 1):
            document.replace(hole.cursor + typed - 1, hole.cursor + typed - 1, hole.answer[typed - 1])
            plan = pipeline.plan(document, hole.cursor + typed)
            generation = pipeline.run(plan, threading.Event())
            stats = generation.stats
            costs.append({"evaluated": stats.tokens_evaluated, "prefill_ms": stats.prefill_ms})
        self.engine.forget(document.uri)
        return costs

    def close(self) -> None:
        for workspace in self.workspaces.values():
            workspace.close()
        self.engine.close()


def summarize(records: list[dict[str, Any]], condition: str) -> dict[str, Any]:
    results = [record[condition] for record in records]
    return {
        "tasks": len(results),
        "exact_match": rate(sum(result["exact_match"] for result in results), len(results)),
        "edit_similarity": round(statistics.fmean(r["edit_similarity"] for r in results), 4)
        if results
        else None,
        "mean_prompt_tokens": round(statistics.fmean(r["tokens_prompt"] for r in results), 1)
        if results
        else None,
    }


def run(args: argparse.Namespace, config: Config, model_path: str) -> dict[str, Any]:
    corpus = fetch_corpus(args.corpus, CROSS_FILE_SDISTS, CROSS_FILE_NPM)
    holes = select_holes(corpus / "src", args.limit or 60, args.seed)
    if args.typed_chars:
        holes = [typed(hole, args.typed_chars) for hole in holes]
    if not holes:
        raise BenchError(f"no cross-file holes in {corpus / 'src'}")
    runner = Runner(config, model_path)
    records = []
    costs: dict[str, list[dict[str, float]]] = {"plain": [], "workspace": []}
    try:
        for number, hole in enumerate(holes, 1):
            record: dict[str, Any] = {
                "task_id": hole.id,
                "language": hole.language,
                "name": hole.name,
                "answer": hole.answer,
            }
            for with_context in (False, True):
                record["workspace" if with_context else "plain"] = runner.complete(hole, with_context)
            records.append(record)
            if number <= args.keystroke_tasks:
                for with_context in (False, True):
                    costs["workspace" if with_context else "plain"] += runner.keystrokes(hole, with_context)
            print(f"  {number}/{len(holes)} holes", file=sys.stderr, flush=True)
    finally:
        runner.close()
    figures = {condition: summarize(records, condition) for condition in ("plain", "workspace")}
    for condition, measured in costs.items():
        figures[condition]["warm_keystroke_evaluated"] = (
            round(statistics.fmean(cost["evaluated"] for cost in measured), 2) if measured else None
        )
        figures[condition]["warm_keystroke_p50_prefill_ms"] = (
            round(statistics.median(cost["prefill_ms"] for cost in measured), 1) if measured else None
        )
    rows = [
        [
            label,
            figures[condition]["tasks"],
            fmt_pct(figures[condition]["exact_match"]),
            f"{figures[condition]['edit_similarity']:.3f}",
            figures[condition]["mean_prompt_tokens"],
            figures[condition]["warm_keystroke_evaluated"],
            fmt_ms(figures[condition]["warm_keystroke_p50_prefill_ms"]),
        ]
        for label, condition in (("file alone", "plain"), ("with workspace context", "workspace"))
    ]
    table = markdown_table(
        [
            "prompt",
            "holes",
            "exact match",
            "edit similarity",
            "mean prompt tokens",
            "tokens evaluated per warm keystroke",
            "warm keystroke prefill p50",
        ],
        rows,
    )
    return {
        "benchmark": "quality-cross-file",
        "corpus": str(corpus),
        "seed": args.seed,
        "typed_chars": args.typed_chars,
        "workspace_tokens": config.workspace_tokens,
        "model": model_path,
        "figures": figures,
        "tasks": records,
        "machine": machine(),
        "markdown": table,
    }


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--corpus",
        type=Path,
        default=default_corpus_dir("corpus-cross-file"),
        help="where the package sources are fetched",
    )
    parser.add_argument("--seed", type=int, default=16, help="which holes are drawn")
    parser.add_argument(
        "--typed-chars",
        type=int,
        default=0,
        help="the name's first N characters are typed already (default 0: the cursor is before the name)",
    )
    parser.add_argument(
        "--keystroke-tasks", type=int, default=5, help="holes on which the warm keystroke cost is measured"
    )


def main(argv: list[str]) -> int:
    from fim import models
    from fim.config import parse
    from harness.runner import add_common_options, init_options, run_command

    parser = argparse.ArgumentParser(
        prog="fim-lsp bench quality --cross-file",
        description="Cross-file holes from real packages: exact match with and without workspace context.",
    )
    parser.add_argument("--limit", type=int, default=60, help="holes (default 60)")
    add_options(parser)
    add_common_options(parser)
    args = parser.parse_args(argv)
    if args.typed_chars < 0:
        parser.error(f"--typed-chars must be 0 or more, not {args.typed_chars}")
    config, problems = parse({**QUALITY_DEFAULTS, **init_options(args.model, args.init_options)})
    if problems:
        print("; ".join(map(str, problems)), file=sys.stderr)
        return 2

    async def measure(args: argparse.Namespace) -> dict[str, Any]:
        try:
            model_path = str(models.resolve(config.model, fetch=False))
        except models.ModelError as error:
            raise BenchError(str(error)) from error
        return await asyncio.to_thread(run, args, config, model_path)

    return run_command(parser.prog, args, measure)
