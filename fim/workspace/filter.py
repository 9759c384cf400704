"""Which files of a workspace may be read at all, and which must never reach a prompt.

Three layers, checked in this order for a path relative to a workspace root:

* secrets (``.env*``, ``*.pem``, ``id_rsa*``...) are excluded whatever ``.gitignore``
  says, and so are files whose contents look like a private key: they are the one thing
  a completion must never leak into a prompt (and from there into a suggestion);
* folders that are never source (``.git/``, ``node_modules/``, virtualenvs, build
  outputs) and the user's ``excludeGlobs``;
* ``.gitignore`` files, read with ``pathspec``'s implementation of git's rules, each one
  applying to the folder it sits in and below.

Binary files and files over a size limit are refused when read (``read_text``).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import pathspec

log = logging.getLogger(__name__)

#: File names that hold credentials; matched against the name only, case-insensitively.
SECRET_NAME_PATTERNS = (
    ".env",
    ".env.*",
    "*.env",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*.p12",
    "*.pfx",
    "*.keystore",
    "*.jks",
    ".npmrc",
    ".pypirc",
    ".netrc",
    ".htpasswd",
    "credentials*",
    "secrets.*",
    "*.secret",
    "*.secrets",
)
_SECRET_NAMES = pathspec.GitIgnoreSpec.from_lines(SECRET_NAME_PATTERNS)

#: Contents that give a file away as a secret whatever its name.
_SECRET_CONTENT = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"|PuTTY-User-Key-File-"
    r"|\bAKIA[0-9A-Z]{16}\b"  # an AWS access key id
)

#: Folders that hold no source of the workspace's own: VCS data, dependencies, caches,
#: virtualenvs and build outputs.
SKIPPED_DIRECTORIES = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "bower_components",
        ".venv",
        "venv",
        ".virtualenv",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        ".eggs",
        "site-packages",
        "build",
        "dist",
        "target",
        "out",
        ".next",
        ".nuxt",
        ".gradle",
        ".idea",
        ".cache",
        "coverage",
        "htmlcov",
    }
)
#: A folder holding this file is a virtualenv whatever it is called.
VIRTUALENV_MARKER = "pyvenv.cfg"

#: Files larger than this are not read.
DEFAULT_MAX_FILE_BYTES = 256_000
#: Bytes at the start of a file looked at to tell binary from text.
BINARY_SNIFF_BYTES = 8192


def is_secret_name(name: str) -> bool:
    """Whether a file name is one that holds credentials."""
    return _SECRET_NAMES.match_file(name.lower())


def looks_like_secret(text: str) -> bool:
    """Whether a text holds something that looks like a private key or an access key."""
    return _SECRET_CONTENT.search(text) is not None


class FileFilter:
    """Decides, for one workspace root, which paths may be indexed and put in a prompt."""

    def __init__(
        self,
        root: Path,
        exclude_globs: Iterable[str] = (),
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes
        self._user = pathspec.GitIgnoreSpec.from_lines(list(exclude_globs))
        #: Folder (relative, "" for the root) -> its .gitignore's rules, or None without one.
        self._gitignores: dict[str, pathspec.GitIgnoreSpec | None] = {}

    # ------------------------------------------------------------------ paths
    def relative(self, path: Path) -> PurePosixPath | None:
        """``path`` relative to the root, or None when it lies outside it."""
        try:
            return PurePosixPath(path.relative_to(self.root).as_posix())
        except ValueError:
            return None

    def excluded(self, path: Path, *, is_dir: bool = False) -> str | None:
        """Why ``path`` must not be read, or None when it may be."""
        relative = self.relative(path)
        if relative is None:
            return "outside the workspace"
        if not is_dir and is_secret_name(relative.name):
            return "a secret"
        parts = relative.parts
        folders = parts if is_dir else parts[:-1]
        for index, folder in enumerate(folders):
            if folder in SKIPPED_DIRECTORIES:
                return f"inside {folder}/"
            if (self.root.joinpath(*parts[: index + 1]) / VIRTUALENV_MARKER).exists():
                return "inside a virtualenv"
        text = relative.as_posix() + ("/" if is_dir else "")
        if text.strip("/") and self._user.match_file(text):
            return "excludeGlobs"
        if self._gitignored(parts, is_dir):
            return ".gitignore"
        return None

    def _gitignored(self, parts: tuple[str, ...], is_dir: bool) -> bool:
        """Git's rule: each folder's .gitignore applies below it; a deeper one wins."""
        ignored = False
        for depth in range(len(parts)):
            folder = "/".join(parts[:depth])
            spec = self._gitignore(folder)
            if spec is None:
                continue
            below = "/".join(parts[depth:]) + ("/" if is_dir else "")
            result = spec.check_file(below)
            if result.include is not None:
                ignored = bool(result.include)
        return ignored

    def _gitignore(self, folder: str) -> pathspec.GitIgnoreSpec | None:
        if folder not in self._gitignores:
            file = self.root / folder / ".gitignore" if folder else self.root / ".gitignore"
            spec = None
            with contextlib.suppress(OSError):  # no .gitignore there
                spec = pathspec.GitIgnoreSpec.from_lines(file.read_text(errors="replace").splitlines())
            self._gitignores[folder] = spec
        return self._gitignores[folder]

    def forget_gitignore(self, path: Path) -> None:
        """A .gitignore changed on disk: read it again when next needed."""
        relative = self.relative(path.parent)
        if relative is not None:
            self._gitignores.pop("" if str(relative) == "." else relative.as_posix(), None)

    # ------------------------------------------------------------------ contents
    def read_text(self, path: Path) -> str | None:
        """The text of a file that may be indexed; None when it is excluded, binary or too big."""
        if self.excluded(path) is not None:
            return None
        try:
            if path.stat().st_size > self.max_file_bytes:
                return None
            data = path.read_bytes()
        except OSError:
            return None
        return self.accept_text(path, data.decode("utf-8", errors="replace"), raw=data)

    def accept_text(self, path: Path, text: str, raw: bytes | None = None) -> str | None:
        """``text`` when a file (or an open buffer) with it may reach a prompt, else None."""
        if self.excluded(path) is not None:
            return None
        sample = raw[:BINARY_SNIFF_BYTES] if raw is not None else text[:BINARY_SNIFF_BYTES].encode()
        if b"\x00" in sample:
            return None
        if len(text) > self.max_file_bytes:
            return None
        if looks_like_secret(text):
            log.info("%s: looks like it holds a private key; never read", path)
            return None
        return text
