"""A private asyncio event loop on its own thread, for the remote backend's HTTP.

The ``Backend`` protocol is synchronous and runs on the daemon's inference thread, but a
blocking read from a socket cannot be interrupted: a keystroke would have to wait for
the server's next chunk. So every request runs as a task on this loop (httpx's
``AsyncClient``), and a cancel cancels the task: leaving ``client.stream()`` before the
body is read closes the TCP connection at once, which is what makes llama-server, vLLM
and TGI stop generating and free the slot.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: How often the waiting thread looks at the cancel token. Setting an Event wakes no
#: other waiter, so this bounds the cancel latency on our side.
CANCEL_POLL_S = 0.005


class LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, work: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``work`` on the loop and wait for it; the loop task is cancelled on timeout."""
        future = asyncio.run_coroutine_threadsafe(work, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer in {timeout} s") from None

    def run_cancellable(self, work: Coroutine[Any, Any, T], cancel: threading.Event) -> tuple[T | None, bool]:
        """Run ``work`` until it ends or ``cancel`` is set: (its value, whether cancelled).

        On a cancel, returns only after the task has unwound, so its connection is closed
        by then. Exceptions of ``work`` are raised here.
        """
        finished = threading.Event()
        outcome: dict[str, Any] = {}

        async def guarded() -> None:
            try:
                outcome["value"] = await work
            except asyncio.CancelledError:
                outcome["cancelled"] = True
            except BaseException as error:
                outcome["error"] = error
            finally:
                finished.set()

        task_future = asyncio.run_coroutine_threadsafe(_start(guarded()), self.loop)
        task = task_future.result()
        while not finished.wait(CANCEL_POLL_S):
            if cancel.is_set():
                self.loop.call_soon_threadsafe(task.cancel)
                finished.wait()
                break
        if "error" in outcome:
            raise outcome["error"]
        if outcome.get("cancelled"):
            return None, True
        return outcome.get("value"), False

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


async def _start(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    return asyncio.ensure_future(work)
