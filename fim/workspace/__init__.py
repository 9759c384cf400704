"""Workspace context: what of the other files of the workspace a completion gets to see.

* ``filter``: which files may be read at all (never secrets, gitignored files,
  dependencies, build outputs, binaries, the user's ``excludeGlobs``);
* ``symbols``: a file's definitions (tree-sitter), identifiers and imports;
* ``index``: the files of one root, bounded in files, bytes and time;
* ``watch``: the index kept current with ``watchfiles``;
* ``choose``: the chunks worth a prompt's workspace budget at one cursor;
* ``session``: one editor session's roots, open buffers and pinned choices.

No LSP here: the daemon tells ``Workspace`` about roots and buffers.
"""

from __future__ import annotations

from fim.workspace.choose import Chunk, RecentChunks, Selection, choose
from fim.workspace.filter import FileFilter, is_secret_name, looks_like_secret
from fim.workspace.index import IndexLimits, WorkspaceIndex
from fim.workspace.session import IndexReporter, Workspace, WorkspaceSettings, path_of
from fim.workspace.watch import WorkspaceWatcher

__all__ = [
    "Chunk",
    "FileFilter",
    "IndexLimits",
    "IndexReporter",
    "RecentChunks",
    "Selection",
    "Workspace",
    "WorkspaceIndex",
    "WorkspaceSettings",
    "WorkspaceWatcher",
    "choose",
    "is_secret_name",
    "looks_like_secret",
    "path_of",
]
