"""The private event loop: a cancel ends the task, and its clean-up has run on return."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fim.remote.loop import LoopThread


@pytest.fixture
def loop_thread():  # type: ignore[no-untyped-def]
    thread = LoopThread("test-loop")
    yield thread
    thread.close()


def test_a_cancel_unwinds_the_task_before_returning(loop_thread: LoopThread) -> None:
    started, cleaned_up = threading.Event(), threading.Event()
    cancel = threading.Event()

    async def long_read() -> str:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            # Where ``client.stream()`` closes its connection.
            cleaned_up.set()
        return "never"

    threading.Thread(target=lambda: started.wait() and cancel.set(), daemon=True).start()
    value, cancelled = loop_thread.run_cancellable(long_read(), cancel)
    assert cancelled and value is None
    assert cleaned_up.is_set()


def test_values_and_errors_come_back(loop_thread: LoopThread) -> None:
    async def answer() -> int:
        return 42

    async def failing() -> int:
        raise ValueError("bad answer")

    assert loop_thread.run_cancellable(answer(), threading.Event()) == (42, False)
    with pytest.raises(ValueError, match="bad answer"):
        loop_thread.run_cancellable(failing(), threading.Event())
    assert loop_thread.call(answer(), timeout=5) == 42
