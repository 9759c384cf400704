"""Keeping a ``WorkspaceIndex`` current with what happens on disk, through ``watchfiles``.

One daemon thread per root: it scans the root once, then applies every batch of
changes ``watchfiles.watch`` reports (a rename arrives as a deletion and an addition).
Nothing here runs on the event loop, so indexing never delays a completion.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import watchfiles

from fim.workspace.filter import SKIPPED_DIRECTORIES
from fim.workspace.index import SOURCE_EXTENSIONS, ScanReport, WorkspaceIndex

log = logging.getLogger(__name__)

#: Milliseconds watchfiles waits for a burst of changes to settle before reporting it.
DEBOUNCE_MS = 200


def _worth_reporting(_change: watchfiles.Change, path: str) -> bool:
    """Source files and .gitignore files outside skipped folders (cheap, by name only)."""
    candidate = Path(path)
    if any(part in SKIPPED_DIRECTORIES for part in candidate.parts):
        return False
    # A folder's deletion has no suffix, and its files must leave the index too.
    return (
        candidate.name == ".gitignore"
        or candidate.suffix.lower() in SOURCE_EXTENSIONS
        or not candidate.suffix
    )


class WorkspaceWatcher:
    """Scans one root into its index, then follows changes on disk until stopped."""

    def __init__(
        self,
        index: WorkspaceIndex,
        on_scanned: Callable[[ScanReport], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.index = index
        self._on_scanned = on_scanned
        self._on_progress = on_progress
        self._on_change = on_change
        self._stop = threading.Event()
        #: Set once the first scan is done and the watch is running.
        self.watching = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"fim-watch-{index.root.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            report = self.index.scan(self._stop, self._on_progress)
            if self._on_scanned is not None:
                self._on_scanned(report)
            for batch in watchfiles.watch(
                self.index.root,
                watch_filter=_worth_reporting,
                debounce=DEBOUNCE_MS,
                stop_event=self._stop,
                yield_on_timeout=True,
                rust_timeout=500,
                raise_interrupt=False,
            ):
                self.watching.set()
                if batch:
                    self.apply(batch)
        except Exception:  # the daemon goes on without workspace updates
            log.exception("workspace watcher for %s stopped", self.index.root)
        finally:
            self.watching.set()

    def apply(self, batch: set[tuple[watchfiles.Change, str]]) -> None:
        """Apply one batch of changes; deletions first, so a rename ends with the new name."""
        ordered = sorted(batch, key=lambda item: item[0] != watchfiles.Change.deleted)
        for change, raw in ordered:
            path = Path(raw)
            if change == watchfiles.Change.deleted:
                self.index.file_deleted(path)
            elif path.is_dir():
                self._add_folder(path)
            else:
                self.index.file_changed(path)
        if self._on_change is not None:
            self._on_change()

    def _add_folder(self, folder: Path) -> None:
        """A folder moved in: its files arrive without events of their own."""
        if self.index.filter.excluded(folder, is_dir=True) is not None:
            return
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix.lower() in SOURCE_EXTENSIONS:
                self.index.file_changed(path)
