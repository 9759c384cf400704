"""``SharedEngine``: the ``Backend`` of a daemon whose model lives in the shared host.

The first daemon with given engine settings starts ``fim.shared.host`` and every later
one connects to it, so several editor windows hold one copy of the model (see
``fim.shared.host``). Token counting stays in the daemon, on the model's own vocabulary
loaded without its weights, so context building costs no round trip. When the host is
gone (it crashed, or exited while idle) the request in flight gets an empty answer, a
new host starts in the background, and requests answer empty until it is up. A host
that ignores a cancel for ``HANG_S`` is hung in a native call: the daemon kills it (its
pid came with the opening ping), which is then the same outage for every daemon.

Every connection starts with a ping that must be answered: a host that is exiting
(idle) may still accept a connection and then close it, and that is no outage, just a
reason to start a new host. A model file that is missing or not a GGUF fails here, in
the daemon, before a host is started; any other load failure is the host's last log
line, raised as ``ModelLoadError`` as soon as the host exits.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fim.backend import (
    BackendCapabilities,
    CompletionRequest,
    CompletionResult,
    CompletionStats,
    ModelLoadError,
    RepositoryContext,
    StopCallback,
)
from fim.shared.wire import (
    LOAD_FAILED,
    LOAD_FAILED_EXIT,
    MAX_SOCKET_PATH,
    RUNTIME_DIR_ENV,
    Channel,
    request_to_wire,
    runtime_dir,
    socket_path,
    stats_from_wire,
)
from fim.templates import TemplateError

log = logging.getLogger(__name__)

#: How long a daemon waits for a host it started to load the model and listen.
SPAWN_TIMEOUT_S = 180.0
#: A host exits after this long with no daemon connected...
IDLE_SECONDS = 600.0
#: ...or after this many seconds when set (the test suite's are short: each host holds the model).
IDLE_SECONDS_ENV = "FIM_LSP_ENGINE_IDLE_SECONDS"
#: How long ``describe`` waits for the host before it reports the engine as down.
DESCRIBE_TIMEOUT_S = 2.0
#: How long a host has to answer the ping that opens every connection.
HANDSHAKE_TIMEOUT_S = 30.0
#: After a failed restart, the next is tried no sooner than this (a model that crashes
#: llama.cpp as it loads would otherwise be loaded again on every keystroke).
RESTART_BACKOFF_S = 5.0
#: A host that has not ended a cancelled request this long after the cancel is hung in
#: a native call (llama.cpp notices a cancel between two graph nodes, well under a
#: second even on a busy machine): the daemon kills it, and a new one is started.
HANG_S = 20.0
#: The host's log is set aside (as .log.1) when it grows past this at a start.
LOG_ROTATE_BYTES = 2**20
#: How often a waiting request looks at its cancel flag.
POLL_S = 0.02


class HostGone(Exception):
    """The connection to the shared host closed."""


class SharedEngine:
    """A ``fim.backend.Backend`` whose model runs in the per-user shared host process."""

    def __init__(
        self,
        settings: dict[str, Any],
        *,
        idle_seconds: float | None = None,
    ) -> None:
        from fim.llama import check_gguf
        from fim.llama.vocabulary import open_vocabulary

        # A missing or corrupt file is named at once, not after a host has tried it.
        check_gguf(Path(settings["model_path"]))
        self.settings = settings
        self.idle_seconds = idle_seconds if idle_seconds is not None else idle_seconds_from_env()
        #: Why the host went away, with its log's path: the error of every request until it is back.
        self.lost_message = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._restarting = threading.Event()
        self._retry_after = 0.0
        self._closing = False
        #: The pid of the host connected to (its answer to the opening ping).
        self.host_pid: int | None = None
        #: Set when this daemon killed a hung host: what the user is told instead of the signal.
        self._hang_reason = ""
        self.socket = socket_path(runtime_dir(), settings)
        if len(os.fsencode(self.socket)) > MAX_SOCKET_PATH:
            raise ModelLoadError(
                f"the engine's socket path {self.socket} is too long for a Unix socket; "
                f"set {RUNTIME_DIR_ENV} to a shorter folder"
            )
        self._stack = contextlib.ExitStack()
        try:
            vocabulary = open_vocabulary(settings["model_path"], settings.get("fim_order"))
            self.vocabulary = self._stack.enter_context(vocabulary)
        except TemplateError as error:  # worded as the in-process engine words it
            raise ModelLoadError(f"{settings['model_path']}: {error}") from error
        self._channel: Channel | None = None
        self._answers: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._answers_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._last_described: dict[str, Any] = {}
        #: Times this daemon had to start or reconnect to a host (1 for the first).
        self.connects = 0
        #: Times the host went away under this daemon.
        self.losses = 0
        try:
            # The first connection is waited for: the daemon is "loading" until the model is up.
            self._attach(self._open_channel())
        except BaseException:
            self._stack.close()
            raise

    # ------------------------------------------------------------------ connection
    def _connect(self) -> Channel:
        """The connection, or HostGone while there is none (a new host is started meanwhile)."""
        channel = self._channel
        if channel is not None:
            return channel
        # Never wait for a model to load on a request's thread: answer empty meanwhile.
        if not self._restarting.is_set() and time.monotonic() >= self._retry_after:
            self._restarting.set()
            threading.Thread(target=self._restart, name="shared-engine-restart", daemon=True).start()
        raise HostGone(self.lost_message or "the model process is restarting")

    def _open_channel(self) -> Channel:
        """A connection to a host that answers, starting one if none does; raises ModelLoadError."""
        deadline = time.monotonic() + SPAWN_TIMEOUT_S
        process: subprocess.Popen[bytes] | None = None
        while (channel := self._try_channel()) is None:
            if process is None or process.poll() == 0:
                # None started yet, or ours exited because another host answered, which has
                # gone since (it was exiting while idle): start one.
                process = self._spawn()
            elif process.poll() is not None:
                raise ModelLoadError(self._load_failure(process.returncode))
            if time.monotonic() > deadline:
                took = f"did not start within {SPAWN_TIMEOUT_S:.0f} s"
                raise ModelLoadError(f"the model process {took}; its log: {self.log_path}")
            time.sleep(0.1)
        return channel

    def _attach(self, channel: Channel) -> Channel:
        self._channel = channel
        self.connects += 1
        threading.Thread(target=self._read, args=(channel,), name="shared-engine", daemon=True).start()
        return channel

    def _try_channel(self) -> Channel | None:
        """A connection whose opening ping was answered, or None."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.socket))
            sock.settimeout(HANDSHAKE_TIMEOUT_S)
        except OSError:
            sock.close()
            return None
        channel = Channel(sock)
        try:
            channel.send({"op": "ping", "id": 0})
            answer = channel.receive()
        except (OSError, ValueError):
            answer = None
        if answer is None or answer.get("id") != 0:
            channel.close()
            return None
        sock.settimeout(None)
        result = answer.get("result")
        self.host_pid = result.get("pid") if isinstance(result, dict) else None
        return channel

    def _load_failure(self, code: int) -> str:
        """Why the host this daemon started exited before it listened, for the user."""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        if code == LOAD_FAILED_EXIT:
            for line in reversed(lines):
                if line.startswith(LOAD_FAILED):
                    return line.removeprefix(LOAD_FAILED)
        reason = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        last = f": {lines[-1]}" if lines else ""
        model = self.settings["model_path"]
        return f"the model process {reason} while loading {model}{last}; its log: {self.log_path}"

    @property
    def log_path(self) -> Path:
        return Path(f"{self.socket}.log")

    def _spawn(self) -> subprocess.Popen[bytes]:
        log.info("starting the shared engine on %s", self.socket)
        with contextlib.suppress(OSError):
            if self.log_path.stat().st_size > LOG_ROTATE_BYTES:
                self.log_path.replace(f"{self.log_path}.1")
        command = [
            sys.executable, "-m", "fim.shared.host", "--socket", str(self.socket),
            "--settings", json.dumps(self.settings), "--idle-seconds", str(self.idle_seconds),
        ]  # fmt: skip
        # Its own session: the host outlives the daemon that started it.
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                start_new_session=True, env={**os.environ, "PYTHONPATH": _import_root()},
            )  # fmt: skip
        return self._process

    def _read(self, channel: Channel) -> None:
        try:
            for message in channel.messages():
                with self._answers_lock:
                    answers = self._answers.get(message.get("id", -1))
                if answers is not None:
                    answers.put(message)
        except (OSError, ValueError):
            pass
        lost = not self._closing
        if lost:
            # Before the channel is dropped: a request that then finds none must see the
            # restart under way, or it would start a second one beside this one.
            self._restarting.set()  # from now on requests answer empty at once
        if self._channel is channel:
            self._channel = None
        if lost:
            self.lost_message = self._why_lost()
        with self._answers_lock:
            for answers in self._answers.values():
                answers.put({"gone": True})
        if lost:
            self.losses += 1
            log.warning("%s", self.lost_message)
            self._retry_after = 0.0
            threading.Thread(target=self._restart, name="shared-engine-restart", daemon=True).start()

    def _why_lost(self) -> str:
        """What the user is told (once, by the completion service) when the host went away."""
        process = self._process
        code = None
        if process is not None:
            # The socket closes as the process dies, a moment before it can be reaped.
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = process.wait(timeout=2.0)
        hung, self._hang_reason = self._hang_reason, ""
        if hung:
            reason = hung
        elif code is not None and code < 0:
            reason = f"killed by {signal.Signals(-code).name}"
        elif code is not None:
            reason = f"exited with code {code}"
        else:
            reason = "its connection closed"
        return f"the model process stopped ({reason}) and is being restarted; its log: {self.log_path}"

    def _restart(self) -> None:
        try:
            channel = self._open_channel()
        except (ModelLoadError, OSError) as error:
            log.warning("the model process did not come back: %s", error)
            self.lost_message = f"the model process did not come back: {error}"
            self._retry_after = time.monotonic() + RESTART_BACKOFF_S
        else:
            if self._closing:
                channel.close()
            else:
                self._attach(channel)
        finally:
            self._restarting.clear()

    def _exchange(self, message: dict[str, Any]) -> tuple[int, queue.Queue[dict[str, Any]], Channel]:
        channel = self._connect()
        request_id = next(self._ids)
        answers: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._answers_lock:
            self._answers[request_id] = answers
        try:
            channel.send({**message, "id": request_id})
        except OSError as error:
            self._done(request_id)
            self._channel = None
            raise HostGone(str(error)) from error
        return request_id, answers, channel

    def _done(self, request_id: int) -> None:
        with self._answers_lock:
            self._answers.pop(request_id, None)

    def _call(self, message: dict[str, Any], timeout: float) -> Any:
        request_id, answers, _channel = self._exchange(message)
        try:
            answer = answers.get(timeout=timeout)
        finally:
            self._done(request_id)
        if answer.get("gone"):
            raise HostGone("the shared engine closed the connection")
        if "error" in answer:
            raise RuntimeError(f"shared engine: {answer['error']}")
        return answer["result"]

    def ping(self) -> None:
        """One round trip to the host and back, no engine work (for the IPC benchmark)."""
        self._call({"op": "ping"}, timeout=5.0)

    def _answers_to(
        self,
        request_id: int,
        answers: queue.Queue[dict[str, Any]],
        channel: Channel,
        cancel: threading.Event | None,
    ) -> Iterator[dict[str, Any]]:
        """One request's messages as they come, telling the host once when ``cancel`` is set.

        Two silences mean the host is hung: a cancel not ended within ``HANG_S``, and, once
        a suggestion has begun to stream, ``HANG_S`` without its next piece (one decode
        step apart). The second matters when nothing cancels: a generation the user types
        along with is carried on, not cancelled.
        """
        cancel_sent: float | None = None
        last_piece: float | None = None
        killed = False
        while True:
            if cancel is not None and cancel.is_set() and cancel_sent is None:
                with contextlib.suppress(OSError):
                    channel.send({"op": "cancel", "id": request_id})
                cancel_sent = time.monotonic()
            try:
                answer = answers.get(timeout=POLL_S)
            except queue.Empty:
                now = time.monotonic()
                if killed:
                    continue  # once: the connection's end answers the request
                if cancel_sent is not None and now - cancel_sent > HANG_S:
                    self._kill_hung(channel, f"it did not stop a cancelled request within {HANG_S:.0f} s")
                    killed = True
                elif last_piece is not None and now - last_piece > HANG_S:
                    silent = f"it sent nothing for {HANG_S:.0f} s in the middle of a suggestion"
                    self._kill_hung(channel, silent)
                    killed = True
                continue
            if "text" in answer:
                last_piece = time.monotonic()
            yield answer

    def _kill_hung(self, channel: Channel, what: str) -> None:
        """End a host that has stopped answering; every daemon of it then starts a new one."""
        pid = self.host_pid
        self._hang_reason = f"{what}: hung, killed"
        log.warning("the model process (pid %s) is hung: killing it", pid)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        else:
            channel.close()

    # ------------------------------------------------------------------ Backend
    @property
    def capabilities(self) -> BackendCapabilities:
        streams = int(self.settings.get("n_streams", 0)) > 0
        return BackendCapabilities(document_streams=streams, token_healing=True, exact_token_counts=True)

    def describe(self) -> dict[str, Any]:
        try:
            # fim/status asks on the daemon's event loop: a host that stopped answering (hung)
            # must not hold it long.
            described = self._call({"op": "describe"}, timeout=DESCRIBE_TIMEOUT_S)
        except (HostGone, ModelLoadError, RuntimeError, queue.Empty):
            return {**self._last_described, "shared_engine": "down", "shared_engine_pid": None, "busy": False}
        self._last_described = dict(described)
        return {**described, "shared_engine": str(self.socket), "shared_engine_connects": self.connects}

    def count_tokens(self, text: str) -> int:
        return self.vocabulary.count_tokens(text)

    def build_prompt(self, prefix: str, suffix: str) -> Sequence[int]:
        prompt: list[int] = self._call({"op": "build_prompt", "prefix": prefix, "suffix": suffix}, 60.0)
        return prompt

    def complete(
        self,
        request: CompletionRequest,
        cancel: threading.Event | None = None,
        on_text: StopCallback | None = None,
    ) -> CompletionResult:
        try:
            request_id, answers, channel = self._exchange(
                {"op": "complete", "request": request_to_wire(request)}
            )
        except HostGone:
            return _nothing(self.lost_message or "the model process is not there")
        try:
            for answer in self._answers_to(request_id, answers, channel, cancel):
                if answer.get("gone"):
                    return _nothing(self.lost_message or "the model process closed the connection")
                if "error" in answer:
                    return _nothing(f"shared engine: {answer['error']}")
                if "text" in answer:
                    stop = bool(on_text(answer["text"])) if on_text is not None else False
                    with contextlib.suppress(OSError):
                        channel.send({"op": "verdict", "id": request_id, "stop": stop})
                    continue
                result = answer["result"]
                return CompletionResult(str(result["text"]), stats_from_wire(result["stats"]))
        finally:
            self._done(request_id)
        raise AssertionError("unreachable: the answers never end")

    def prefill(self, request: CompletionRequest, cancel: threading.Event) -> int:
        return self._count_answer({"op": "prefill", "request": request_to_wire(request)}, cancel)

    def warm(
        self,
        key: str,
        text: str,
        cancel: threading.Event,
        max_tokens: int | None = None,
        repository: RepositoryContext | None = None,
    ) -> int:
        context = asdict(repository) if repository is not None else None
        message = {"op": "warm", "key": key, "text": text, "max_tokens": max_tokens, "repository": context}
        return self._count_answer(message, cancel)

    def _count_answer(self, message: dict[str, Any], cancel: threading.Event) -> int:
        """Send a warm-up (``warm`` or ``prefill``) and wait for its count of evaluated tokens."""
        try:
            request_id, answers, channel = self._exchange(message)
        except HostGone:
            return 0
        try:
            for answer in self._answers_to(request_id, answers, channel, cancel):
                if answer.get("gone") or "error" in answer:
                    return 0
                return int(answer["result"])
        finally:
            self._done(request_id)
        raise AssertionError("unreachable: the answers never end")

    def forget(self, key: str) -> None:
        channel = self._channel
        if channel is not None:
            with contextlib.suppress(OSError):
                channel.send({"op": "forget", "key": key})

    def close(self) -> None:
        """Leave the host: the daemon reloads with other settings (it exits without this).

        ``release`` lets a host that no other daemon uses exit now rather than after its
        idle time: the window has moved to another model or other engine settings.
        """
        self._closing = True
        channel, self._channel = self._channel, None
        if channel is not None:
            with contextlib.suppress(OSError):
                channel.send({"op": "release"})
            channel.close()
        self._stack.close()


def idle_seconds_from_env() -> float:
    """``FIM_LSP_ENGINE_IDLE_SECONDS`` when it is a number of seconds, else ``IDLE_SECONDS``."""
    try:
        return max(0.0, float(os.environ[IDLE_SECONDS_ENV]))
    except (KeyError, ValueError):
        return IDLE_SECONDS


def _nothing(reason: str) -> CompletionResult:
    """An empty answer whose error the completion service shows the user once per outage."""
    log.info("no answer: %s", reason)
    return CompletionResult("", CompletionStats(stop_reason="error", error=reason))


def _import_root() -> str:
    """The folder that holds the ``fim`` package, so the host imports this same code."""
    root = str(Path(__file__).resolve().parents[2])
    existing = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{existing}" if existing else root
