"""Choosing what of the workspace goes into one prompt, within a token budget.

Three kinds of candidates, each with a score and the reason it was chosen:

* definitions of the names used near the cursor, found in the files the current file
  imports (highest), in the files of its own folder (its package), and, for names
  defined in one or two places only, anywhere in the workspace;
* chunks from the ring of recently edited and viewed places in other files
  (``RecentChunks``, as llama.vim keeps one);
* chunks of the imported, same-folder and open files most similar to the text around
  the cursor (identifier Jaccard).

They are ranked, deduplicated, fitted to the budget and grouped by file, the best file
last: nearest the current file, which the prompt puts after them all.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from fim.workspace.index import FileEntry, resolve_imports
from fim.workspace.symbols import IDENTIFIER, Definition, identifiers, imports

#: Lines above and below the cursor whose identifiers say what the cursor needs.
NEAR_LINES_BEFORE = 60
NEAR_LINES_AFTER = 10
#: Lines in a chunk of the ring or of a similar file, and the step between similar chunks.
CHUNK_LINES = 16
CHUNK_STEP = 8
#: Chunks the ring keeps.
RING_SIZE = 16
#: Similar chunks below this identifier Jaccard are not worth their tokens.
MIN_SIMILARITY = 0.12
#: Files searched for similar chunks.
MAX_SIMILAR_FILES = 40
#: Tokens each file block costs besides its text (separator and path).
FILE_OVERHEAD_TOKENS = 8
#: The score of a definition the file imports by name but does not use near the cursor.
FAR_IMPORT_SCORE = 1.0
#: A name defined in more files than this is too common to guess which one is meant.
MAX_GLOBAL_DEFINITIONS = 2

#: A name the current file defines itself, which no other file needs to explain.
_LOCAL_DEFINITION = re.compile(
    r"\b(?:def|class|function|func|fn|struct|type|interface|enum|trait|const|let|var)\s+(?:\([^)]*\)\s*)?"
    r"([A-Za-z_$][\w$]*)"
)


@dataclass(frozen=True)
class Chunk:
    """One piece of another file chosen for the prompt."""

    path: PurePosixPath
    text: str
    #: First line of the piece in its file, for ordering and overlap.
    line: int
    reason: str
    score: float
    #: Lines the piece covers in its file (a summary covers only its first line).
    lines: int = 1


@dataclass(frozen=True)
class Selection:
    """The chunks chosen for one document, in prompt order, and what they cost."""

    chunks: tuple[Chunk, ...] = ()
    tokens: int = 0

    def files(self) -> tuple[tuple[str, str], ...]:
        """(path, text) per file, files in prompt order, chunks in file order."""
        grouped: dict[PurePosixPath, list[Chunk]] = {}
        for chunk in self.chunks:
            grouped.setdefault(chunk.path, []).append(chunk)
        return tuple(
            (path.as_posix(), "\n\n".join(chunk.text.rstrip("\n") for chunk in sorted(pieces, key=_line)))
            for path, pieces in grouped.items()
        )

    def describe(self) -> list[dict[str, object]]:
        """What was chosen and why, for ``fim/status``."""
        return [
            {"path": chunk.path.as_posix(), "line": chunk.line + 1, "reason": chunk.reason}
            for chunk in self.chunks
        ]


def _line(chunk: Chunk) -> int:
    return chunk.line


class RecentChunks:
    """The ring of recently edited and viewed places: a few lines around each."""

    def __init__(self, size: int = RING_SIZE) -> None:
        self._chunks: deque[tuple[PurePosixPath, int, str, str]] = deque(maxlen=size)

    def note(self, path: PurePosixPath, text: str, line: int, what: str) -> None:
        """Remember the lines around ``line`` of ``path`` (``what``: "edited" or "viewed")."""
        lines = text.splitlines()
        if not lines:
            return
        first = max(0, min(line, len(lines) - 1) - CHUNK_LINES // 2)
        piece = "\n".join(lines[first : first + CHUNK_LINES])
        if not piece.strip():
            return
        # One place per region of a file: a newer note replaces an overlapping older one.
        for old in list(self._chunks):
            if old[0] == path and abs(old[1] - first) < CHUNK_LINES:
                self._chunks.remove(old)
        self._chunks.append((path, first, piece, what))

    def forget(self, path: PurePosixPath) -> None:
        for old in [chunk for chunk in self._chunks if chunk[0] == path]:
            self._chunks.remove(old)

    def items(self) -> list[tuple[PurePosixPath, int, str, str]]:
        """Newest last."""
        return list(self._chunks)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def _near_cursor(text: str, cursor: int) -> tuple[dict[str, int], frozenset[str], set[str]]:
    """Identifiers around the cursor: for each, its distance in lines (0 on the cursor's line).

    Also the set of those that only ever follow a dot (``t.Tuple``): attributes of
    something, which a definition elsewhere of the same name rarely explains.
    """
    start = cursor
    for _ in range(NEAR_LINES_BEFORE):
        found = text.rfind("\n", 0, start - 1)
        if found < 0:
            start = 0
            break
        start = found + 1
    end = cursor
    for _ in range(NEAR_LINES_AFTER):
        found = text.find("\n", end + 1)
        if found < 0:
            end = len(text)
            break
        end = found
    distances: dict[str, int] = {}
    bare: set[str] = set()
    cursor_line = text.count("\n", start, cursor)
    line = 0
    position = start
    for match in IDENTIFIER.finditer(text, start, end):
        line += text.count("\n", position, match.start())
        position = match.start()
        distance = abs(cursor_line - line)
        name = match.group(0)
        if distance < distances.get(name, 1 << 30):
            distances[name] = distance
        if match.start() == 0 or text[match.start() - 1] != ".":
            bare.add(name)
    wanted = identifiers(text[start:end])
    near = {name: distance for name, distance in distances.items() if name in wanted}
    return near, wanted, set(near) - bare


def _closeness(distance: int) -> float:
    return 1.0 / (1.0 + distance / 8.0)


def _definition_chunks(
    current: FileEntry,
    files: dict[PurePosixPath, FileEntry],
    near: dict[str, int],
    attributes: set[str],
) -> list[Chunk]:
    imported = resolve_imports(current, files)
    same_folder = {
        path: entry
        for path, entry in files.items()
        if entry.folder == current.folder and entry.language == current.language and path != current.path
    }
    chunks: list[Chunk] = []
    found_names: set[str] = set()
    placed: set[tuple[PurePosixPath, int]] = set()
    # Names the file imports by name: worth their definitions even far from the cursor.
    imported_names = {found.parts[-1] for found in current.imports if found.parts}
    for weight, why, group in ((3.0, "imported", imported), (2.0, "same package", same_folder)):
        for path, entry in group.items():
            for definition in _last_of_each_name(entry.definitions):
                distance = near.get(definition.name)
                if group is not imported and definition.name in attributes:
                    distance = None
                if (path, definition.line) in placed:
                    continue
                if distance is not None:
                    score, reason = weight + _closeness(distance), why
                elif definition.name in imported_names and group is imported:
                    score, reason = FAR_IMPORT_SCORE, "imported, used further away"
                else:
                    continue
                found_names.add(definition.name)
                placed.add((path, definition.line))
                chunks.append(
                    Chunk(
                        path,
                        definition.summary,
                        definition.line,
                        f"definition of {definition.name} ({reason})",
                        score,
                    )
                )
    wanted = {
        name
        for name in near
        if name not in found_names and name not in attributes and name not in _locally_defined(current.text)
    }
    if wanted:
        definers: dict[str, list[tuple[PurePosixPath, int, str]]] = {}
        for path, entry in files.items():
            if path == current.path:
                continue
            for definition in _last_of_each_name(entry.definitions):
                if definition.name in wanted:
                    definers.setdefault(definition.name, []).append(
                        (path, definition.line, definition.summary)
                    )
        for name, places in definers.items():
            if len({path for path, _, _ in places}) > MAX_GLOBAL_DEFINITIONS:
                continue
            for path, line, summary in places:
                chunks.append(
                    Chunk(
                        path, summary, line, f"definition of {name} (workspace)", 1.0 + _closeness(near[name])
                    )
                )
    return chunks


def _last_of_each_name(definitions: Iterable[Definition]) -> list[Definition]:
    """One definition per name, the last: overload stubs come first, the implementation last."""
    return list({definition.name: definition for definition in definitions}.values())


def _locally_defined(text: str) -> set[str]:
    return {match.group(1) for match in _LOCAL_DEFINITION.finditer(text)}


def _ring_chunks(current: PurePosixPath, ring: RecentChunks, near_ids: frozenset[str]) -> list[Chunk]:
    items = [item for item in ring.items() if item[0] != current]
    chunks = []
    for age, (path, line, text, what) in enumerate(reversed(items)):
        similarity = jaccard(identifiers(text), near_ids)
        chunks.append(
            Chunk(
                path,
                text,
                line,
                f"recently {what} (similarity {similarity:.2f})",
                0.5 + 2.0 * similarity + 0.5 / (1 + age),
                text.count("\n") + 1,
            )
        )
    return chunks


def _similar_chunks(candidates: Iterable[FileEntry], near_ids: frozenset[str], limit: int = 4) -> list[Chunk]:
    scored: list[Chunk] = []
    for entry in candidates:
        lines = entry.text.splitlines()
        for first in range(0, max(1, len(lines) - CHUNK_LINES // 2), CHUNK_STEP):
            piece = "\n".join(lines[first : first + CHUNK_LINES])
            similarity = jaccard(identifiers(piece), near_ids)
            if similarity >= MIN_SIMILARITY:
                scored.append(
                    Chunk(
                        entry.path,
                        piece,
                        first,
                        f"similar code (similarity {similarity:.2f})",
                        3.0 * similarity,
                        CHUNK_LINES,
                    )
                )
    scored.sort(key=lambda chunk: (-chunk.score, chunk.path, chunk.line))
    return scored[:limit]


def _overlaps(a: Chunk, b: Chunk) -> bool:
    return a.path == b.path and a.line < b.line + b.lines and b.line < a.line + a.lines


def choose(
    current: FileEntry,
    cursor: int,
    files: dict[PurePosixPath, FileEntry],
    ring: RecentChunks,
    budget_tokens: int,
    count_tokens: Callable[[str], int],
) -> Selection:
    """The chunks of other files worth ``budget_tokens`` to a completion at ``cursor``."""
    if budget_tokens <= 0:
        return Selection()
    near, near_ids, attributes = _near_cursor(current.text, cursor)
    candidates = _definition_chunks(current, files, near, attributes)
    candidates += _ring_chunks(current.path, ring, near_ids)
    related = resolve_imports(current, files)
    for path, entry in files.items():
        if len(related) >= MAX_SIMILAR_FILES:
            break
        if path != current.path and (entry.from_buffer or entry.folder == current.folder):
            related.setdefault(path, entry)
    candidates += _similar_chunks(related.values(), near_ids)
    candidates.sort(key=lambda chunk: (-chunk.score, chunk.path, chunk.line))

    chosen: list[Chunk] = []
    seen_texts: set[str] = set()
    spent = 0
    for chunk in candidates:
        if chunk.text in seen_texts or any(_overlaps(chunk, other) for other in chosen):
            continue
        cost = count_tokens(chunk.text) + (
            0 if any(c.path == chunk.path for c in chosen) else FILE_OVERHEAD_TOKENS
        )
        if spent + cost > budget_tokens:
            continue
        chosen.append(chunk)
        seen_texts.add(chunk.text)
        spent += cost
    # Files in prompt order: the best file last, beside the current file.
    best: dict[PurePosixPath, float] = {}
    for chunk in chosen:
        best[chunk.path] = max(best.get(chunk.path, 0.0), chunk.score)
    order = sorted(best, key=lambda path: (best[path], path.as_posix()))
    rank = {path: position for position, path in enumerate(order)}
    chosen.sort(key=lambda chunk: (rank[chunk.path], chunk.line))
    return Selection(tuple(chosen), spent)


def current_entry(path: PurePosixPath, language: str, text: str) -> FileEntry:
    """The document being completed, as the chooser needs it (its definitions are not parsed)."""
    return FileEntry(
        path=path,
        language=language,
        text=text,
        definitions=(),
        identifiers=frozenset(),
        imports=tuple(imports(language, text)),
        from_buffer=True,
    )
