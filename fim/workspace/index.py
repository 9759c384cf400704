"""An index of the source files under one workspace root, bounded in files, bytes and time.

For each file the ``FileFilter`` lets through it holds the text, the definitions, the
identifiers and the imports (``fim.workspace.symbols``), and it answers the questions the
context chooser asks: which files does this import name, which files define this name,
which files share this folder. Open buffers overlay the files on disk: their unsaved
text wins until they are closed.

Thread-safe: the watcher thread and the event loop update it, the event loop reads it.
Every read takes a snapshot under the lock; nothing slow happens under it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fim import languages
from fim.workspace.filter import FileFilter
from fim.workspace.symbols import Definition, Import, definitions, identifiers, imports

log = logging.getLogger(__name__)

#: File stems that stand for their folder as a module (``pkg/__init__.py`` is ``pkg``).
PACKAGE_STEMS = frozenset({"__init__", "index", "mod", "lib"})
#: Extensions of the languages with a grammar: the only files indexed.
SOURCE_EXTENSIONS = frozenset(ext for spec in languages.LANGUAGES for ext in spec.extensions)


@dataclass(frozen=True)
class IndexLimits:
    max_files: int = 5000
    max_bytes: int = 64_000_000
    #: The first scan stops after this long; files seen later are indexed when they change.
    max_scan_seconds: float = 30.0


@dataclass(frozen=True)
class FileEntry:
    """What the index knows of one file."""

    path: PurePosixPath
    language: str
    text: str
    definitions: tuple[Definition, ...]
    identifiers: frozenset[str]
    imports: tuple[Import, ...]
    #: True when the text is an open buffer's, not the file on disk.
    from_buffer: bool = False

    @property
    def folder(self) -> PurePosixPath:
        return self.path.parent


def module_keys(path: PurePosixPath, language: str) -> list[tuple[str, ...]]:
    """The module names a file answers to, as path parts without the extension."""
    parts = tuple(path.with_suffix("").parts)
    keys = [parts]
    if path.stem in PACKAGE_STEMS:
        keys.append(parts[:-1])
    if language == "go":  # a Go import names the package's folder
        keys.append(tuple(path.parent.parts))
    return [key for key in keys if key]


def make_entry(path: PurePosixPath, text: str, *, from_buffer: bool = False) -> FileEntry | None:
    spec = languages.language_for("", path.name)
    if not spec.has_grammar:
        return None
    return FileEntry(
        path=path,
        language=spec.name,
        text=text,
        definitions=tuple(definitions(spec.name, text)),
        identifiers=identifiers(text),
        imports=tuple(imports(spec.name, text)),
        from_buffer=from_buffer,
    )


@dataclass
class ScanReport:
    files: int = 0
    bytes: int = 0
    skipped: int = 0
    #: Why the scan stopped early ("" when it saw every file).
    stopped: str = ""
    seconds: float = 0.0


@dataclass
class WorkspaceIndex:
    """The indexed files of one root, and lookups over them."""

    root: Path
    filter: FileFilter
    limits: IndexLimits = field(default_factory=IndexLimits)
    _files: dict[PurePosixPath, FileEntry] = field(default_factory=dict)
    _buffers: dict[PurePosixPath, FileEntry] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: Bumped on every change, so a caller can tell whether what it chose is stale.
    generation: int = 0
    scanned: bool = False
    last_scan: ScanReport | None = None

    # ------------------------------------------------------------------ building
    def _walk(self) -> Iterator[Path]:
        """Source files under the root, skipping excluded folders without entering them."""
        pending = [self.root]
        while pending:
            folder = pending.pop()
            try:
                children = sorted(folder.iterdir())
            except OSError:
                continue
            for child in children:
                if child.is_symlink():
                    continue  # a link may lead out of the workspace, or round in a loop
                if child.is_dir():
                    if self.filter.excluded(child, is_dir=True) is None:
                        pending.append(child)
                elif child.suffix.lower() in SOURCE_EXTENSIONS:
                    yield child

    def scan(
        self,
        cancel: threading.Event | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ScanReport:
        """Index every allowed source file under the root, within the limits."""
        report = ScanReport()
        started = time.monotonic()
        for path in self._walk():
            if cancel is not None and cancel.is_set():
                report.stopped = "cancelled"
                break
            if report.files >= self.limits.max_files:
                report.stopped = f"maxIndexedFiles ({self.limits.max_files}) reached"
                break
            if report.bytes >= self.limits.max_bytes:
                report.stopped = f"{self.limits.max_bytes} bytes indexed"
                break
            if time.monotonic() - started > self.limits.max_scan_seconds:
                report.stopped = f"{self.limits.max_scan_seconds:.0f} s scan time limit"
                break
            entry = self._read(path)
            if entry is None:
                report.skipped += 1
                continue
            with self._lock:
                self._files[entry.path] = entry
                self.generation += 1
            report.files += 1
            report.bytes += len(entry.text)
            if progress is not None and report.files % 50 == 0:
                progress(report.files)
        report.seconds = time.monotonic() - started
        self.scanned = True
        self.last_scan = report
        if report.stopped:
            log.info("workspace %s: index stopped early: %s", self.root, report.stopped)
        return report

    def _read(self, path: Path) -> FileEntry | None:
        relative = self.filter.relative(path)
        if relative is None or path.suffix.lower() not in SOURCE_EXTENSIONS:
            return None
        text = self.filter.read_text(path)
        return make_entry(relative, text) if text is not None else None

    # ------------------------------------------------------------------ changes
    def file_changed(self, path: Path) -> None:
        """``path`` was created or modified on disk: read it again (or drop it if now excluded)."""
        if path.name == ".gitignore":
            self.filter.forget_gitignore(path)
            return
        relative = self.filter.relative(path)
        if relative is None:
            return
        entry = self._read(path) if path.is_file() else None
        with self._lock:
            if entry is not None:
                if entry.path not in self._files and len(self._files) >= self.limits.max_files:
                    return
                self._files[entry.path] = entry
            elif self._files.pop(relative, None) is None:
                return
            self.generation += 1

    def file_deleted(self, path: Path) -> None:
        relative = self.filter.relative(path)
        if relative is None:
            return
        with self._lock:
            removed = self._files.pop(relative, None) is not None
            # A deleted folder: everything under it goes.
            below = [known for known in self._files if relative in known.parents]
            for known in below:
                del self._files[known]
            if removed or below:
                self.generation += 1

    def set_buffer(self, path: Path, text: str) -> bool:
        """An open buffer's text, which wins over the file on disk; False if it is excluded."""
        relative = self.filter.relative(path)
        allowed = relative is not None and self.filter.accept_text(path, text) is not None
        entry = make_entry(relative, text, from_buffer=True) if allowed and relative is not None else None
        with self._lock:
            if entry is None:
                if relative is not None and self._buffers.pop(relative, None) is not None:
                    self.generation += 1
                return False
            self._buffers[entry.path] = entry
            self.generation += 1
        return True

    def drop_buffer(self, path: Path) -> None:
        relative = self.filter.relative(path)
        if relative is None:
            return
        with self._lock:
            if self._buffers.pop(relative, None) is not None:
                self.generation += 1

    # ------------------------------------------------------------------ reading
    def entries(self) -> dict[PurePosixPath, FileEntry]:
        """Every indexed file, open buffers winning over the disk."""
        with self._lock:
            merged = dict(self._files)
            merged.update(self._buffers)
        return merged

    def get(self, path: PurePosixPath) -> FileEntry | None:
        with self._lock:
            return self._buffers.get(path) or self._files.get(path)

    def __len__(self) -> int:
        with self._lock:
            return len(self._files.keys() | self._buffers.keys())

    def contains(self, path: Path) -> bool:
        relative = self.filter.relative(path)
        return relative is not None and self.get(relative) is not None


def resolve_imports(
    entry: FileEntry, files: dict[PurePosixPath, FileEntry]
) -> dict[PurePosixPath, FileEntry]:
    """The workspace files ``entry`` imports."""
    by_key: dict[tuple[str, ...], list[PurePosixPath]] = {}
    by_tail: dict[tuple[str, ...], list[PurePosixPath]] = {}
    for path, other in files.items():
        if path == entry.path:
            continue
        for key in module_keys(path, other.language):
            by_key.setdefault(key, []).append(path)
            for start in range(len(key)):
                by_tail.setdefault(key[start:], []).append(path)
    found: dict[PurePosixPath, FileEntry] = {}
    folder = entry.folder.parts
    for wanted in entry.imports:
        parts = _strip_extension(wanted.parts)
        if wanted.relative is not None:
            if wanted.relative > len(folder):
                continue
            base = folder[: len(folder) - wanted.relative]
            matches = by_key.get((*base, *parts), [])
        else:
            matches = []
            # The workspace root may be the package itself: drop leading parts until one fits.
            for start in range(len(parts)):
                matches = by_tail.get(parts[start:], [])
                if matches:
                    break
        for path in matches:
            found[path] = files[path]
    return found


def _strip_extension(parts: tuple[str, ...]) -> tuple[str, ...]:
    if parts and PurePosixPath(parts[-1]).suffix.lower() in SOURCE_EXTENSIONS:
        return (*parts[:-1], PurePosixPath(parts[-1]).stem)
    return parts
