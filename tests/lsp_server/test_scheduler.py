"""The scheduler's rules with plain Python work (the real model is covered end to end)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lsp_server.scheduler import Cancelled, Scheduler


async def test_newest_request_cancels_older_ones() -> None:
    scheduler = Scheduler()
    started = threading.Event()

    def slow(cancel: threading.Event) -> str:
        started.set()
        while not cancel.wait(0.01):
            pass
        return "stopped"

    first = scheduler.new_job("completion", "a")
    running = asyncio.ensure_future(scheduler.run(first, slow))
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    second = scheduler.new_job("completion", "b")
    assert first.cancel.is_set() and not second.cancel.is_set()
    assert await asyncio.wait_for(running, 5) == "stopped"
    assert await scheduler.run(second, lambda cancel: "fresh") == "fresh"
    scheduler.shutdown()


async def test_a_job_cancelled_before_it_starts_never_runs() -> None:
    scheduler = Scheduler()
    ran: list[str] = []
    job = scheduler.new_job("completion", "a")
    scheduler.cancel_document("a")
    with pytest.raises(Cancelled):
        await scheduler.run(job, lambda cancel: ran.append("ran"))
    assert ran == []
    scheduler.shutdown()


async def test_idle_work_never_cancels_a_request() -> None:
    scheduler = Scheduler()
    request = scheduler.new_job("completion", "a")
    idle = scheduler.new_job("idle", "a")
    assert not request.cancel.is_set()
    assert not scheduler.idle
    later = scheduler.new_job("completion", "a")
    assert idle.cancel.is_set() and request.cancel.is_set() and not later.cancel.is_set()
    scheduler.shutdown()


async def test_cancelling_the_awaiting_task_cancels_the_work() -> None:
    scheduler = Scheduler()
    seen = threading.Event()

    def work(cancel: threading.Event) -> None:
        seen.set()
        cancel.wait(5)

    job = scheduler.new_job("completion", "a")
    task = asyncio.ensure_future(scheduler.run(job, work))
    await asyncio.get_running_loop().run_in_executor(None, seen.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert job.cancel.is_set()
    scheduler.shutdown()
