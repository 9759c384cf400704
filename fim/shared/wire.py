"""The shared engine's wire format: JSON lines over a per-user Unix socket.

Every message is one JSON object on one line. Requests carry an ``op`` and, when they
expect an answer, an ``id`` chosen by the client; answers and stream events carry that
``id``. The messages:

* client → host: ``ping``, ``describe``, ``build_prompt``, ``complete`` (with the request),
  ``verdict`` (may the generation go on after this text?), ``cancel``, ``warm``,
  ``prefill`` (a request's prompt, nothing generated), ``forget``, ``release`` (this
  daemon is leaving for other settings);
* host → client: ``result`` (the answer to ``describe``, ``build_prompt``, ``warm``,
  ``prefill`` and ``complete``), ``text`` (generation so far, waiting for a verdict),
  ``error``.

A verdict per text event keeps the streaming stop rules exact: the host decodes the next
token only once the client's post-processing has said that the text so far may go on,
which costs one local round trip (well under a millisecond) per ~30 ms token.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from fim.backend import (
    CompletionRequest,
    CompletionStats,
    ModelLoadError,
    RepositoryContext,
    SamplingConfig,
)

#: Bytes of one message at most; a prefix and suffix of a huge file stay well below.
MAX_MESSAGE = 64 * 2**20


def request_to_wire(request: CompletionRequest) -> dict[str, Any]:
    return asdict(request)


def request_from_wire(data: dict[str, Any]) -> CompletionRequest:
    known = {field.name for field in fields(CompletionRequest)}
    values = {key: value for key, value in data.items() if key in known}
    values["sampling"] = SamplingConfig(**values.get("sampling", {}))
    values["repository"] = repository_from_wire(values.get("repository"))
    return CompletionRequest(**values)


def repository_from_wire(data: dict[str, Any] | None) -> RepositoryContext | None:
    if data is None:
        return None
    files = tuple((str(path), str(text)) for path, text in data["files"])
    return RepositoryContext(name=data["name"], files=files, current_path=data["current_path"])


def stats_from_wire(data: dict[str, Any]) -> CompletionStats:
    known = {field.name for field in fields(CompletionStats)}
    return CompletionStats(**{key: value for key, value in data.items() if key in known})


def socket_path(runtime_dir: Path, engine_settings: dict[str, Any]) -> Path:
    """One socket per user and engine settings: windows with the same model share it."""
    digest = hashlib.sha256(json.dumps(engine_settings, sort_keys=True).encode()).hexdigest()[:16]
    return runtime_dir / f"engine-{digest}.sock"


#: A host that cannot load the model says why on a last log line that starts with this...
LOAD_FAILED = "fim-lsp engine: the model did not load: "
#: ...and exits with this code.
LOAD_FAILED_EXIT = 3
#: Where the sockets go instead of the default: the test suite gives each test its own.
RUNTIME_DIR_ENV = "FIM_LSP_RUNTIME_DIR"
#: A Unix socket's path must fit in ``sockaddr_un`` (108 bytes with the final NUL).
MAX_SOCKET_PATH = 107


def runtime_dir() -> Path:
    """A directory only this user can enter: $FIM_LSP_RUNTIME_DIR, else $XDG_RUNTIME_DIR/fim-lsp,
    else the cache's run/. Raises ModelLoadError for an override that others may enter."""
    override = os.environ.get(RUNTIME_DIR_ENV)
    base = os.environ.get("XDG_RUNTIME_DIR")
    if override:
        root = Path(override)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Never chmod a folder the user named: it may be a shared one (/tmp).
        if root.stat().st_mode & 0o077:
            named = f"{RUNTIME_DIR_ENV}={override}"
            raise ModelLoadError(f"{named}: other users may enter it; name a private folder")
        return root
    root = Path(base) / "fim-lsp" if base else Path.home() / ".cache" / "fim-lsp" / "run"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    root.chmod(0o700)
    return root


def live_hosts(folder: Path) -> list[tuple[Path, int | None]]:
    """(socket, pid) of each host whose lock in ``folder`` is held: the hosts running there."""
    found = []
    for lock_path in sorted(folder.glob("engine-*.sock.lock")):
        with lock_path.open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                continue  # nobody holds it
            except BlockingIOError:
                pass
        try:
            pid: int | None = int(lock_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = None  # it has taken the lock and not yet written its pid
        found.append((lock_path.with_suffix(""), pid))
    return found


def answers_ping(path: Path, timeout: float = 2.0) -> bool:
    """Whether a host listens on ``path`` and answers a ping."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(b'{"op":"ping","id":0}\n')
            with sock.makefile("rb") as reader:
                return bool(reader.readline(MAX_MESSAGE))
        except OSError:
            return False


class Channel:
    """One connection: whole-line reads, and writes that may come from several threads."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._reader = sock.makefile("rb")
        self._write_lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        with self._write_lock:
            self.sock.sendall(data)

    def receive(self) -> dict[str, Any] | None:
        """The next message, or None when the other side has gone."""
        line = self._reader.readline(MAX_MESSAGE)
        if not line:
            return None
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ValueError(f"not a JSON object: {line[:80]!r}")
        return message

    def messages(self) -> Iterator[dict[str, Any]]:
        """Every message until the other side goes away."""
        while (message := self.receive()) is not None:
            yield message

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self._reader.close()
        self.sock.close()
