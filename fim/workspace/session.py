"""The workspace of one editor session: its roots, their indexes, and the context pinned per document.

``Workspace`` owns a ``WorkspaceIndex`` and a ``WorkspaceWatcher`` per root, the open
buffers (their unsaved text wins over the disk), and the ring of recently edited and
viewed places. It knows nothing of LSP: the daemon tells it about roots and buffers.

KV stability: the context chosen for a document is *pinned*. Every keystroke's prompt
uses the pinned choice, so the prompt's leading tokens stay the same and the engine's
KV cache and document streams keep working. The choice is made again only when the
document has none yet and when the user pauses (``refresh``, from the idle warm-up,
which then evaluates the new block before the next keystroke needs it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from fim import languages
from fim.backend import RepositoryContext
from fim.workspace.choose import RecentChunks, Selection, choose, current_entry
from fim.workspace.filter import FileFilter
from fim.workspace.index import IndexLimits, ScanReport, WorkspaceIndex
from fim.workspace.watch import WorkspaceWatcher

log = logging.getLogger(__name__)


class IndexReporter(Protocol):
    """Told about the first scan of a root (from the watcher's thread)."""

    def begin(self, root: Path) -> None: ...

    def progress(self, root: Path, files: int) -> None: ...

    def end(self, root: Path, report: ScanReport) -> None: ...


def path_of(uri: str) -> Path | None:
    """The local path of a ``file://`` URI (or of a plain path); None for other schemes."""
    if "://" not in uri:
        return Path(uri) if uri else None
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


@dataclass(frozen=True)
class WorkspaceSettings:
    enabled: bool = True
    budget_tokens: int = 1024
    exclude_globs: tuple[str, ...] = ()
    max_files: int = 5000


@dataclass
class Pin:
    """The context chosen for one document, and what it was chosen from."""

    selection: Selection
    repository: RepositoryContext | None
    #: The index generation and cursor it was chosen at.
    generation: int
    cursor: int
    chosen_at: float = field(default_factory=time.monotonic)


@dataclass
class _Root:
    index: WorkspaceIndex
    watcher: WorkspaceWatcher


#: Chunks scoring this much are worth a new prefill of the workspace block.
REPIN_SCORE = 2.0


def _covers(pinned: Selection, chosen: Selection) -> bool:
    """Whether ``pinned`` holds every chunk of ``chosen`` that matters, with the same text."""
    held = {(chunk.path, chunk.line, chunk.text) for chunk in pinned.chunks}
    return all(
        (chunk.path, chunk.line, chunk.text) in held for chunk in chosen.chunks if chunk.score >= REPIN_SCORE
    )


class Workspace:
    """Roots, indexes, open buffers and the pinned context of each document."""

    def __init__(
        self, settings: WorkspaceSettings | None = None, reporter: IndexReporter | None = None
    ) -> None:
        self.settings = settings or WorkspaceSettings()
        self.reporter = reporter
        self._roots: dict[Path, _Root] = {}
        #: The roots the editor named, indexed while ``enabled``.
        self._wanted: set[Path] = set()
        self._lock = threading.Lock()
        self.ring = RecentChunks()
        #: Open buffers' latest text, applied to the index when a context is next chosen.
        self._dirty: dict[str, str] = {}
        #: Every open buffer's latest text, read again into a new index.
        self._open: dict[str, str] = {}
        #: The line of each open buffer's latest edit, noted in the ring at the same time.
        self._edited_lines: dict[str, int] = {}
        self._pins: dict[str, Pin] = {}
        #: The last cursor of each document a context was asked for.
        self._cursors: dict[str, int] = {}

    # ------------------------------------------------------------------ roots
    @property
    def roots(self) -> list[Path]:
        """The roots being indexed now."""
        with self._lock:
            return list(self._roots)

    def set_roots(self, roots: Iterable[Path]) -> None:
        wanted = {root.resolve() for root in roots}
        for root in set(self._wanted) - wanted:
            self.remove_root(root)
        for root in sorted(wanted):
            self.add_root(root)

    def add_root(self, root: Path) -> None:
        """Index ``root`` (now, or once ``workspaceContext`` is switched on)."""
        root = root.resolve()
        self._wanted.add(root)
        if self.settings.enabled:
            self._start(root)

    def remove_root(self, root: Path) -> None:
        root = root.resolve()
        self._wanted.discard(root)
        self._stop(root)

    def _start(self, root: Path) -> None:
        if not root.is_dir():
            return
        with self._lock:
            if root in self._roots:
                return
            file_filter = FileFilter(root, self.settings.exclude_globs)
            index = WorkspaceIndex(root, file_filter, IndexLimits(max_files=self.settings.max_files))
            reporter = self.reporter
            watcher = WorkspaceWatcher(
                index,
                on_scanned=(lambda report: reporter.end(root, report)) if reporter else None,
                on_progress=(lambda files: reporter.progress(root, files)) if reporter else None,
            )
            self._roots[root] = _Root(index, watcher)
        if reporter is not None:
            reporter.begin(root)
        watcher.start()
        log.info("workspace root %s: indexing", root)

    def _stop(self, root: Path) -> None:
        with self._lock:
            entry = self._roots.pop(root, None)
        if entry is not None:
            entry.watcher.stop()
        self._pins.clear()

    def configure(self, settings: WorkspaceSettings) -> None:
        """New settings; a change of what is indexed indexes the roots again."""
        old = self.settings
        self.settings = settings
        reindex = (old.exclude_globs, old.max_files, old.enabled) != (
            settings.exclude_globs,
            settings.max_files,
            settings.enabled,
        )
        if reindex:
            for root in self.roots:
                self._stop(root)
            if settings.enabled:
                for root in sorted(self._wanted):
                    self._start(root)
                # Open buffers are read again under the new rules when next chosen.
                self._dirty.update(self._open)
        if reindex or old.budget_tokens != settings.budget_tokens:
            self._pins.clear()

    def close(self) -> None:
        for root in self.roots:
            self._stop(root)

    def index_for(self, path: Path) -> WorkspaceIndex | None:
        """The index of the innermost root holding ``path``."""
        with self._lock:
            holders = [root for root in self._roots if root == path or root in path.parents]
            if not holders:
                return None
            return self._roots[max(holders, key=lambda root: len(root.parts))].index

    def wait_until_watching(self, timeout: float = 30.0) -> bool:
        """Block until every root's first scan is done and its watch runs (for tests, tools)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            watchers = [root.watcher for root in self._roots.values()]
        return all(watcher.watching.wait(max(0.0, deadline - time.monotonic())) for watcher in watchers)

    # ------------------------------------------------------------------ buffers
    def _place(self, uri: str) -> tuple[WorkspaceIndex, Path, PurePosixPath] | None:
        path = path_of(uri)
        if path is None:
            return None
        index = self.index_for(path)
        if index is None:
            return None
        relative = index.filter.relative(path)
        return (index, path, relative) if relative is not None else None

    def opened(self, uri: str, text: str) -> None:
        self._dirty[uri] = self._open[uri] = text
        self.viewed(uri, text, 0)

    def changed(self, uri: str, text: str, line: int) -> None:
        """An edit at ``line``: cheap, the index and the ring take it when a context is next chosen."""
        self._dirty[uri] = self._open[uri] = text
        self._edited_lines[uri] = line

    def viewed(self, uri: str, text: str, line: int) -> None:
        self._note(uri, text, line, "viewed")

    def _note(self, uri: str, text: str, line: int, what: str) -> None:
        place = self._place(uri)
        if place is None:
            return
        index, path, relative = place
        if index.filter.accept_text(path, text) is None:
            return  # an excluded file's buffer never reaches the ring
        self.ring.note(relative, text, line, what)

    def closed(self, uri: str) -> None:
        self._dirty.pop(uri, None)
        self._open.pop(uri, None)
        self._edited_lines.pop(uri, None)
        self._pins.pop(uri, None)
        self._cursors.pop(uri, None)
        place = self._place(uri)
        if place is not None:
            place[0].drop_buffer(place[1])

    def _flush(self, keep: str | None = None) -> None:
        """Take the open buffers' latest text into the index and the ring.

        ``keep``'s own text waits: a document is never its own context, and parsing it
        at every pause in it would be wasted until another document asks.
        """
        dirty = {uri: text for uri, text in self._dirty.items() if uri != keep}
        edited = {uri: line for uri, line in self._edited_lines.items() if uri != keep}
        self._dirty = {uri: text for uri, text in self._dirty.items() if uri == keep}
        self._edited_lines = {uri: line for uri, line in self._edited_lines.items() if uri == keep}
        for uri, text in dirty.items():
            place = self._place(uri)
            if place is None:
                continue
            if not place[0].set_buffer(place[1], text):
                self.ring.forget(place[2])  # excluded: nothing of it may stay
            elif uri in edited:
                self.ring.note(place[2], text, edited[uri], "edited")

    # ------------------------------------------------------------------ context
    def repository_for(
        self,
        uri: str,
        text: str,
        cursor: int,
        count_tokens: Callable[[str], int],
        *,
        refresh: bool = False,
    ) -> RepositoryContext | None:
        """The other files to show before ``uri``'s text: the pinned choice, made if needed."""
        if not self.settings.enabled or self.settings.budget_tokens <= 0:
            return None
        self._cursors[uri] = cursor
        pin = self._pins.get(uri)
        if pin is not None and not refresh:
            return pin.repository
        return self._choose(uri, text, cursor, count_tokens).repository

    def refresh(self, uri: str, text: str, count_tokens: Callable[[str], int]) -> RepositoryContext | None:
        """Choose ``uri``'s context again (the user paused) and pin it.

        At the document's last cursor; a document never asked for yet is chosen for at
        its start. The pin changes only when the new choice holds a chunk that matters
        (``REPIN_SCORE`` or more: a definition of a name near the cursor) that the pinned
        one lacks, or holds it with other text: every change costs a prefill of the block
        and the prefix, so moving about a region keeps the block it has.
        """
        if not self.settings.enabled or self.settings.budget_tokens <= 0:
            return None
        old = self._pins.get(uri)
        cursor = min(self._cursors.get(uri, old.cursor if old is not None else 0), len(text))
        new = self._choose(uri, text, cursor, count_tokens)
        if old is not None and old.repository is not None and _covers(old.selection, new.selection):
            self._pins[uri] = old  # the same object: the engine's tokenized copy stays valid
            return old.repository
        return new.repository

    def cursor_at(self, uri: str, cursor: int) -> None:
        """The editor's cursor moved: the next refresh chooses for that place."""
        self._cursors[uri] = cursor

    def _choose(self, uri: str, text: str, cursor: int, count_tokens: Callable[[str], int]) -> Pin:
        self._flush(keep=uri)
        place = self._place(uri)
        if place is None:
            pin = Pin(Selection(), None, 0, cursor)
            self._pins[uri] = pin
            return pin
        index, _path, relative = place
        language = languages.language_for("", relative.name).name
        current = current_entry(relative, language, text)
        selection = choose(
            current, cursor, index.entries(), self.ring, self.settings.budget_tokens, count_tokens
        )
        repository = (
            RepositoryContext(index.root.name, selection.files(), relative.as_posix())
            if selection.chunks
            else None
        )
        pin = Pin(selection, repository, index.generation, cursor)
        self._pins[uri] = pin
        return pin

    def status(self, uri: str | None = None) -> dict[str, Any]:
        """Roots, index sizes and the context chosen for ``uri`` (or the latest pinned)."""
        with self._lock:
            roots = [
                {
                    "root": str(root),
                    "files": len(entry.index),
                    "scanned": entry.index.scanned,
                    "stoppedEarly": entry.index.last_scan.stopped if entry.index.last_scan else "",
                }
                for root, entry in self._roots.items()
            ]
        pins = self._pins
        if uri is None and pins:
            uri = max(pins, key=lambda key: pins[key].chosen_at)
        pin = pins.get(uri) if uri is not None else None
        return {
            "enabled": self.settings.enabled,
            "roots": roots,
            "document": uri,
            "chosen": pin.selection.describe() if pin is not None else [],
            "chosenTokens": pin.selection.tokens if pin is not None else 0,
            "ring": len(self.ring.items()),
        }
