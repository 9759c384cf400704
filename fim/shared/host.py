"""The shared engine process: one resident model for all of a user's editor windows.

``python -m fim.shared.host --socket PATH --settings JSON`` loads the model once and
serves every ``fim-lsp serve`` that connects to its Unix socket (see ``fim.shared.wire``
for the messages). The first daemon that needs it starts it; it exits once no daemon
has been connected for ``--idle-seconds``.

One scheduler for all windows: engine work runs on one worker thread, one job at a
time. A new completion, from any window, cancels the job in flight and every queued
one (the newest keystroke is the one the user waits for); warm-ups (``warm``,
``prefill``) and ``forget`` queue behind. A daemon that goes away cancels its own jobs.

Crash isolation: a fault in llama.cpp takes down this process, not the editors'
daemons; theirs see the connection close, answer that request with nothing, and start
a new host on the next one.

Lifetime: one host per socket, held by a lock file that also names its pid. A host
started while another holds the lock waits for it (it may be loading, or exiting after
its idle time) and exits at once if that one answers. A host that cannot load the model
writes ``LOAD_FAILED`` and the reason as its last log line and exits with
``LOAD_FAILED_EXIT``, for the daemon that started it to show.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import queue
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fim.backend import CompletionStats
from fim.shared.wire import (
    LOAD_FAILED,
    LOAD_FAILED_EXIT,
    Channel,
    answers_ping,
    repository_from_wire,
    request_from_wire,
)

log = logging.getLogger(__name__)

#: How long a generation waits for a daemon's verdict on its text before it stops.
VERDICT_TIMEOUT_S = 30.0
#: How often the idle check runs: a short idle time (the tests') is honoured to within it.
ACCEPT_POLL_S = 0.25
#: How long a new host waits for the one holding the lock to answer or go.
LOCK_WAIT_S = 300.0


@dataclass(eq=False)  # a job is itself: the queue removes it by identity
class Job:
    kind: str  # "complete", "warm", "prefill" or "forget"
    channel: Channel
    message: dict[str, Any]
    cancel: threading.Event = field(default_factory=threading.Event)
    verdicts: queue.Queue[bool] = field(default_factory=queue.Queue)


class EngineHost:
    def __init__(self, engine: Any, idle_seconds: float) -> None:
        self.engine = engine
        self.idle_seconds = idle_seconds
        self._jobs: deque[Job] = deque()
        self._current: Job | None = None
        self._lock = threading.Condition()
        self._connections = 0
        self._idle_since = time.monotonic()
        self._stopping = threading.Event()
        #: Completion jobs by (channel, id), to route verdicts and cancels.
        self._by_id: dict[tuple[int, Any], Job] = {}
        #: Connections whose daemon said ``release``: it loaded other settings.
        self._released: set[int] = set()

    # ------------------------------------------------------------------ connections
    def serve(self, listener: socket.socket) -> None:
        listener.settimeout(ACCEPT_POLL_S)
        threading.Thread(target=self._work, name="engine", daemon=True).start()
        while not self._stopping.is_set():
            try:
                sock, _address = listener.accept()
            except TimeoutError:
                with self._lock:
                    idle = self._connections == 0 and time.monotonic() - self._idle_since > self.idle_seconds
                if idle:
                    # A daemon that connects from now until the socket is gone sees it close
                    # before its handshake is answered, and starts a new host.
                    log.info("no daemon connected for %.1f s: exiting", self.idle_seconds)
                    self._stopping.set()
                continue
            with self._lock:
                self._connections += 1
            threading.Thread(target=self._read, args=(Channel(sock),), daemon=True).start()

    def _read(self, channel: Channel) -> None:
        try:
            for message in channel.messages():
                self._dispatch(channel, message)
        except (OSError, ValueError) as error:
            log.info("a daemon's connection failed: %s", error)
        finally:
            with self._lock:
                self._connections -= 1
                self._idle_since = time.monotonic()
                if id(channel) in self._released:
                    self._released.discard(id(channel))
                    if self._connections == 0:
                        # The last daemon moved to other settings: no window is about to
                        # come back to these, so the model's memory is freed now.
                        self._idle_since -= self.idle_seconds
                for key, job in list(self._by_id.items()):
                    if job.channel is channel:
                        job.cancel.set()
                        job.verdicts.put(True)
                        del self._by_id[key]
            channel.close()

    def _dispatch(self, channel: Channel, message: dict[str, Any]) -> None:
        op = message.get("op")
        request_id = message.get("id")
        if op == "ping":
            # The pid: a daemon whose cancel this host ignores (a hang in llama.cpp) kills it.
            channel.send({"id": request_id, "result": {"pid": os.getpid()}})
        elif op == "release":
            with self._lock:
                self._released.add(id(channel))
        elif op == "describe":
            described = {**self.engine.describe(), "shared_engine_pid": os.getpid()}
            channel.send({"id": request_id, "result": described})
        elif op == "build_prompt":
            prompt = self.engine.build_prompt(message["prefix"], message["suffix"])
            channel.send({"id": request_id, "result": list(prompt)})
        elif op in ("complete", "warm", "prefill", "forget"):
            job = Job(op, channel, message)
            with self._lock:
                if op == "complete":
                    # The newest keystroke, in whichever window, is what a user waits for.
                    for stale in (self._current, *self._jobs):
                        if stale is not None and stale.kind != "forget":
                            stale.cancel.set()
                            stale.verdicts.put(True)
                    self._by_id[(id(channel), request_id)] = job
                elif op in ("warm", "prefill"):
                    self._by_id[(id(channel), request_id)] = job
                self._jobs.append(job)
                self._lock.notify()
        elif op in ("verdict", "cancel"):
            with self._lock:
                found = self._by_id.get((id(channel), request_id))
                # A queued job is answered now, not behind the job in flight (another
                # window's, which may decode for its whole time budget): a daemon takes a
                # cancel that stays unanswered for long for a hang.
                queued = op == "cancel" and found is not None and found in self._jobs
                if queued:
                    assert found is not None
                    self._jobs.remove(found)
                    del self._by_id[(id(channel), request_id)]
            if found is not None:
                if op == "cancel":
                    found.cancel.set()
                    found.verdicts.put(True)
                    if queued:
                        _answer_cancelled(found)
                else:
                    found.verdicts.put(bool(message.get("stop")))
        else:
            channel.send({"id": request_id, "error": f"unknown op {op!r}"})

    # ------------------------------------------------------------------ the engine thread
    def _work(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                while not self._jobs and not self._stopping.is_set():
                    self._lock.wait(1.0)
                if self._stopping.is_set():
                    return
                job = self._current = self._jobs.popleft()
            try:
                self._run(job)
            except OSError:
                pass  # the daemon went away; its reader thread cleans up
            except Exception as error:  # a bad request must not stop the host
                log.exception("engine job failed")
                with contextlib.suppress(OSError):
                    job.channel.send({"id": job.message.get("id"), "error": str(error)})
            finally:
                with self._lock:
                    self._current = None
                    self._by_id.pop((id(job.channel), job.message.get("id")), None)

    def _run(self, job: Job) -> None:
        message = job.message
        request_id = message.get("id")
        if job.kind == "forget":
            self.engine.forget(message["key"])
            return
        if job.cancel.is_set():
            _answer_cancelled(job)
            return
        if job.kind == "warm":
            limit = message.get("max_tokens")
            repository = repository_from_wire(message.get("repository"))
            evaluated = self.engine.warm(message["key"], message["text"], job.cancel, limit, repository)
            job.channel.send({"id": request_id, "result": evaluated})
            return
        if job.kind == "prefill":
            evaluated = self.engine.prefill(request_from_wire(message["request"]), job.cancel)
            job.channel.send({"id": request_id, "result": evaluated})
            return

        def ask(text: str) -> bool:
            """May the generation go on after ``text``? The daemon's stop rules decide."""
            job.channel.send({"id": request_id, "text": text})
            try:
                return job.verdicts.get(timeout=VERDICT_TIMEOUT_S)
            except queue.Empty:
                return True

        result = self.engine.complete(request_from_wire(message["request"]), job.cancel, ask)
        job.channel.send({"id": request_id, "result": {"text": result.text, "stats": asdict(result.stats)}})


def _answer_cancelled(job: Job) -> None:
    """The answer to a job cancelled before it ran: nothing evaluated, nothing generated."""
    request_id = job.message.get("id")
    if job.kind in ("warm", "prefill"):
        job.channel.send({"id": request_id, "result": 0})
    elif job.kind == "complete":
        stats = CompletionStats(stop_reason="cancelled", cancelled_in="queue")
        job.channel.send({"id": request_id, "result": {"text": "", "stats": asdict(stats)}})


def _bind(path: Path) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a crashed host's; the lock says no live host holds it
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o077)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_mask)
    listener.listen(16)
    return listener


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fim.shared.host", description=__doc__)
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--settings", required=True, help="the engine's settings as JSON")
    parser.add_argument("--idle-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")

    # One host per socket: the lock is held for the host's life and freed by the OS if it dies.
    with Path(f"{args.socket}.lock").open("a") as lock:
        if not _take_lock(lock, args.socket):
            log.info("another host serves %s", args.socket)
            return 0
        # The pid, for `fim-lsp doctor` and for the test suite to stop what its tests left.
        os.ftruncate(lock.fileno(), 0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        return _serve(args.socket, args.settings, args.idle_seconds)


def _take_lock(lock: Any, path: Path) -> bool:
    """Take the host lock, waiting while its holder loads or exits; False if a live host answers."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        if answers_ping(path) or time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def _serve(path: Path, settings: str, idle_seconds: float) -> int:

    from fim.llama import EngineConfig, LlamaEngine
    from fim.llama.log import quiet_llama

    quiet_llama()
    try:
        engine = LlamaEngine(EngineConfig(**json.loads(settings)))
    except MemoryError:
        print(f"{LOAD_FAILED}not enough RAM to load the model", file=sys.stderr, flush=True)
        return LOAD_FAILED_EXIT
    except Exception as error:  # ModelLoadError names the file; anything else must reach the user too
        log.exception("the model did not load")
        print(f"{LOAD_FAILED}{error}", file=sys.stderr, flush=True)
        return LOAD_FAILED_EXIT
    listener = _bind(path)
    log.info("serving %s on %s", engine.describe().get("model_path"), path)
    try:
        EngineHost(engine, idle_seconds).serve(listener)
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
