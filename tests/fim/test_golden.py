"""Golden tests: every case under ``fixtures/golden/<language>/``.

A case is a source file holding one ``<CURSOR>`` marker and a JSON sidecar of the same
name (see ``fixtures/golden/README.md``). For each case the context is built at the
marker and checked against the sidecar (mode, where the prefix starts and the suffix
ends, and so on), then every raw model output is post-processed and compared with the
expected text. Each output is also streamed one character at a time through
``should_stop``: what is shown after stopping early must be what is shown for the
whole output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fim.context import Budgets, CompletionContext, Document, Mode, build_context
from fim.context.mode import Extent
from fim.postprocess import StreamFilter

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "golden"
CURSOR = "<CURSOR>"
LANGUAGES_WITH_GRAMMAR = {"python", "javascript", "typescript", "go", "rust", "c", "cpp", "java", "lua"}
MIN_CASES_PER_LANGUAGE = 6


def count_tokens(text: str) -> int:
    """The golden cases' token counter: one token per four characters, rounded up."""
    return (len(text) + 3) // 4


def _cases() -> list[tuple[Path, Path]]:
    pairs = []
    for sidecar in sorted(GOLDEN.glob("*/*.json")):
        sources = [path for path in sidecar.parent.glob(sidecar.stem + ".*") if path.suffix != ".json"]
        assert len(sources) == 1, f"{sidecar}: expected exactly one source file beside it, found {sources}"
        pairs.append((sources[0], sidecar))
    return pairs


CASES = _cases()


def _load(source: Path, sidecar: Path) -> tuple[Document, int, dict[str, Any]]:
    raw = source.read_bytes().decode("utf-8")
    assert raw.count(CURSOR) == 1, f"{source}: needs exactly one {CURSOR} marker"
    cursor = raw.index(CURSOR)
    text = raw.replace(CURSOR, "")
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    doc = Document(source.as_uri(), text, meta.get("language_id", ""))
    return doc, cursor, meta


#: The budgets the cases were written for, unless a case names its own. They are pinned
#: so that a change of the daemon's defaults does not move the cases' expected cuts.
GOLDEN_BUDGETS = {"prefix_tokens": 1536, "suffix_tokens": 64}


def _context(doc: Document, cursor: int, meta: dict[str, Any]) -> CompletionContext:
    budgets = Budgets(**{**GOLDEN_BUDGETS, **meta.get("budgets", {})})
    return build_context(doc, cursor, budgets, count_tokens)


def _streamed(context: CompletionContext, raw: str) -> str:
    stream = StreamFilter(context)
    for end in range(1, len(raw) + 1):
        if stream.should_stop(raw[:end]):
            return raw[:end]
    return raw


def test_every_language_has_golden_cases() -> None:
    counts: dict[str, int] = {}
    for source, _ in CASES:
        counts[source.parent.name] = counts.get(source.parent.name, 0) + 1
    missing = {name for name in LANGUAGES_WITH_GRAMMAR if counts.get(name, 0) < MIN_CASES_PER_LANGUAGE}
    assert not missing, f"languages with fewer than {MIN_CASES_PER_LANGUAGE} golden cases: {sorted(missing)}"


@pytest.mark.parametrize(("source", "sidecar"), CASES, ids=[f"{s.parent.name}/{s.stem}" for s, _ in CASES])
def test_golden_context(source: Path, sidecar: Path) -> None:
    doc, cursor, meta = _load(source, sidecar)
    context = _context(doc, cursor, meta)
    assert context.mode == Mode(meta["mode"]), context.reason
    if "extent" in meta:
        assert context.extent == Extent(meta["extent"]), context.reason
    if "reason_contains" in meta:
        assert meta["reason_contains"] in context.reason
    if "scope" in meta:
        assert context.scope == meta["scope"]
    if "typed_word" in meta:
        assert context.typed_word == meta["typed_word"]
    if "indent_unit" in meta:
        assert context.indent_unit == meta["indent_unit"]
    assert doc.line_of(context.prefix_start) == meta["prefix_start_line"], context.prefix
    assert context.prefix_start == doc.line_start(meta["prefix_start_line"]), (
        "the prefix starts at a line start"
    )
    assert doc.line_of(context.suffix_end) == meta["suffix_end_line"], context.suffix
    assert context.prefix + context.suffix == doc.text[context.prefix_start : context.suffix_end]
    assert context.prefix.endswith(context.line_prefix)
    assert context.suffix.startswith(context.line_suffix)


@pytest.mark.parametrize(("source", "sidecar"), CASES, ids=[f"{s.parent.name}/{s.stem}" for s, _ in CASES])
def test_golden_outputs(source: Path, sidecar: Path) -> None:
    doc, cursor, meta = _load(source, sidecar)
    context = _context(doc, cursor, meta)
    assert meta["outputs"], f"{sidecar}: no outputs to check"
    for output in meta["outputs"]:
        raw, expected = output["raw"], output["expected"]
        assert StreamFilter(context).finish(raw) == expected, output.get("note", raw)
        assert StreamFilter(context).finish(_streamed(context, raw)) == expected, "stopping early changed it"
