"""A raw JSON-RPC connection to ``fim-lsp serve`` over stdio, for the stress tools.

``harness.client`` speaks well-formed LSP through pygls; the fuzzer must also send what
no client library would (bodies that are not JSON, invalid UTF-8, wrong types), and
the soak and the storm must count every answer. ``RawConnection`` frames bytes itself,
reads every message the daemon writes on a thread of its own, answers the daemon's
own requests (progress tokens, configuration pulls) as an editor does, and reads the
daemon's stderr so that a flood of log lines can never block it.

Process figures (resident memory, open file descriptors) are read from /proc.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.engines import engine_env

#: ``fim-lsp serve`` run by this interpreter, so the checkout and venv under test are the ones run.
SERVE_COMMAND = [sys.executable, "-m", "cli", "serve"]


def frame(body: bytes) -> bytes:
    """One LSP message on the wire: its Content-Length header, a blank line, the body."""
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def encode(message: Any) -> bytes:
    """A JSON value as a body; non-ASCII text goes as UTF-8, as editors send it."""
    return json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass")


def id_key(value: Any) -> str:
    """A request id as a dict key: ids may be strings, numbers or (in bad messages) anything."""
    return json.dumps(value, sort_keys=True)


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process, from /proc; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


@dataclass
class Answer:
    """A response the daemon sent, and when it arrived (perf_counter)."""

    message: dict[str, Any]
    at: float

    @property
    def error(self) -> dict[str, Any] | None:
        error = self.message.get("error")
        return error if isinstance(error, dict) else None

    @property
    def result(self) -> Any:
        return self.message.get("result")


@dataclass
class RawConnection:
    """One daemon process spoken to byte by byte."""

    command: list[str] = field(default_factory=lambda: list(SERVE_COMMAND))
    env: dict[str, str] = field(default_factory=dict)
    #: Settings the daemon gets when it pulls ``workspace/configuration``.
    settings: dict[str, Any] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    #: Responses by ``id_key(id)``; answers with a null id go to ``null_id_answers``.
    answers: dict[str, Answer] = field(default_factory=dict)
    null_id_answers: list[Answer] = field(default_factory=list)
    #: Every response, in the order it arrived.
    arrivals: list[Answer] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    #: Requests the daemon sent us (method names), answered at once.
    server_requests: list[str] = field(default_factory=list)
    stderr_lines: int = 0
    stderr_tail: list[str] = field(default_factory=list)
    tracebacks: int = 0
    on_notification: Callable[[dict[str, Any]], None] | None = None
    _sent: dict[str, float] = field(default_factory=dict)
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _write_lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 0
    _closed: bool = False

    # ------------------------------------------------------------------ process
    def start(self, cwd: str | None = None) -> None:
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **engine_env(), **self.env},
            cwd=cwd,
        )
        threading.Thread(target=self._read_stdout, name="wire-stdout", daemon=True).start()
        threading.Thread(target=self._read_stderr, name="wire-stderr", daemon=True).start()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def rss(self) -> int | None:
        return rss_bytes(self.pid)

    def fds(self) -> int | None:
        return open_fds(self.pid)

    # ------------------------------------------------------------------ sending
    def send_body(self, body: bytes) -> None:
        """Send one framed body as it is (it need not be JSON)."""
        assert self.process is not None and self.process.stdin is not None
        with self._write_lock:
            self.process.stdin.write(frame(body))
            self.process.stdin.flush()

    def new_id(self) -> int:
        with self._lock:
            self._next_id += 1
            return self._next_id

    def mark_sent(self, request_id: Any) -> None:
        """Remember when a request went out (for a request sent as raw bytes)."""
        with self._lock:
            self._sent[id_key(request_id)] = time.perf_counter()

    def request(self, method: str, params: Any = None, request_id: Any = None) -> Any:
        """Send a request; returns its id (a fresh integer unless one is given)."""
        request_id = self.new_id() if request_id is None else request_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.mark_sent(request_id)
        self.send_body(encode(message))
        return request_id

    def notify(self, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send_body(encode(message))

    def sent_at(self, request_id: Any) -> float | None:
        with self._lock:
            return self._sent.get(id_key(request_id))

    # ------------------------------------------------------------------ waiting
    def answer(self, request_id: Any) -> Answer | None:
        with self._lock:
            return self.answers.get(id_key(request_id))

    def wait(self, request_id: Any, timeout: float) -> Answer | None:
        """The answer to ``request_id``, waiting up to ``timeout`` seconds; None if none came."""
        key = id_key(request_id)
        deadline = time.monotonic() + timeout
        with self._lock:
            while key not in self.answers:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return None
                self._lock.wait(min(remaining, 0.5))
            return self.answers[key]

    def wait_all(self, request_ids: list[Any], timeout: float) -> list[Any]:
        """Wait for every id in ``request_ids`` up to ``timeout`` in all; returns those unanswered."""
        deadline = time.monotonic() + timeout
        for request_id in request_ids:
            self.wait(request_id, max(0.0, deadline - time.monotonic()))
        return [request_id for request_id in request_ids if self.answer(request_id) is None]

    def call(self, method: str, params: Any = None, timeout: float = 60.0, request_id: Any = None) -> Answer:
        """Send a request and wait for its answer; raises TimeoutError if none comes."""
        request_id = self.request(method, params, request_id)
        answer = self.wait(request_id, timeout)
        if answer is None:
            raise TimeoutError(f"{method}: no answer within {timeout:.0f} s")
        return answer

    # ------------------------------------------------------------------ LSP session
    def initialize(self, options: dict[str, Any] | None = None, timeout: float = 60.0) -> Answer:
        capabilities = {
            "general": {"positionEncodings": ["utf-16"]},
            "textDocument": {
                "synchronization": {"dynamicRegistration": False},
                "inlineCompletion": {"dynamicRegistration": False},
                "completion": {},
            },
            "window": {"workDoneProgress": True},
            "workspace": {"configuration": True},
        }
        answer = self.call(
            "initialize",
            {"processId": os.getpid(), "capabilities": capabilities, "initializationOptions": options or {}},
            timeout,
        )
        self.notify("initialized", {})
        return answer

    def status(self, timeout: float = 60.0) -> dict[str, Any]:
        result = self.call("fim/status", {}, timeout).result
        return result if isinstance(result, dict) else {}

    def wait_ready(self, timeout: float = 300.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status.get("state") in ("ready", "error") or time.monotonic() > deadline:
                return status
            time.sleep(0.1)

    def initialize_ready(self, options: dict[str, Any]) -> dict[str, Any]:
        """Initialize with ``options`` and wait for the model; raises if it did not load."""
        self.initialize(options)
        status = self.wait_ready()
        if status.get("state") != "ready":
            raise RuntimeError(f"the model is not ready: {status.get('error')}")
        return status

    def open(self, uri: str, text: str, language_id: str = "python", version: int = 1) -> None:
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": language_id, "version": version, "text": text}},
        )

    def change(self, uri: str, version: int, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        self.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [
                    {
                        "range": {
                            "start": {"line": start[0], "character": start[1]},
                            "end": {"line": end[0], "character": end[1]},
                        },
                        "text": text,
                    }
                ],
            },
        )

    def close_document(self, uri: str) -> None:
        self.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    def inline(self, uri: str, line: int, character: int, invoked: bool = False) -> Any:
        """Send an inline-completion request; returns its id."""
        return self.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": line, "character": character},
                "context": {"triggerKind": 1 if invoked else 2},
            },
        )

    def cancel(self, request_id: Any) -> None:
        self.notify("$/cancelRequest", {"id": request_id})

    def shutdown(self, timeout: float = 10.0) -> int | None:
        """shutdown, exit, then wait for the process; returns its exit code."""
        if self.process is None:
            return None
        if self.alive:
            try:
                self.call("shutdown", None, timeout)
                self.notify("exit")
            except (TimeoutError, OSError):
                pass
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout)
        finally:
            self._closed = True

    # ------------------------------------------------------------------ reading
    def _read_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        stream = self.process.stdout
        while True:
            length = None
            while True:
                header = stream.readline()
                if not header:
                    self._finish()
                    return
                if header.lower().startswith(b"content-length:"):
                    length = int(header.split(b":", 1)[1])
                elif not header.strip() and length is not None:
                    break
            body = stream.read(length)
            try:
                message = json.loads(body)
            except ValueError:
                continue
            self._dispatch(message, time.perf_counter())

    def _dispatch(self, message: Any, at: float) -> None:
        if not isinstance(message, dict):
            return
        if "method" in message and "id" in message:
            self._answer_server_request(message)
            return
        if "method" in message:
            with self._lock:
                self.notifications.append(message)
            if self.on_notification is not None:
                self.on_notification(message)
            return
        answer = Answer(message, at)
        with self._lock:
            self.arrivals.append(answer)
            if message.get("id") is None:
                self.null_id_answers.append(answer)
            else:
                self.answers[id_key(message["id"])] = answer
            self._lock.notify_all()

    def _answer_server_request(self, message: dict[str, Any]) -> None:
        method = message["method"]
        self.server_requests.append(method)
        result: Any = None
        if method == "workspace/configuration":
            items = (message.get("params") or {}).get("items") or []
            result = [self.settings for _ in items]
        with contextlib.suppress(OSError):
            self.send_body(encode({"jsonrpc": "2.0", "id": message["id"], "result": result}))

    def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr_lines += 1
            if line.startswith("Traceback"):
                self.tracebacks += 1
            self.stderr_tail.append(line)
            del self.stderr_tail[:-200]

    def _finish(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.shutdown()
