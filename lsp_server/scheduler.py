"""The single inference worker: one generation in flight, newest request wins.

Every job that touches the model runs on one dedicated thread (not pygls' pool, which
also reads stdin). Each job gets a ``threading.Event`` that the engine checks between
prefill chunks, inside llama.cpp's graph compute and between tokens. A new foreground
job cancels every older one, and an edit cancels the jobs of its document; a cancelled
job that has not started yet returns at once.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, TypeVar

T = TypeVar("T")
JobKind = Literal["completion", "speculative", "idle", "load"]


@dataclass
class Job:
    number: int
    kind: JobKind
    uri: str | None
    cancel: threading.Event = field(default_factory=threading.Event)


class Cancelled(Exception):
    """The job was cancelled before it started."""


class Scheduler:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fim-inference")
        self._numbers = itertools.count(1)
        self._active: dict[int, Job] = {}
        self.cancelled_jobs = 0

    def new_job(self, kind: JobKind, uri: str | None) -> Job:
        job = Job(next(self._numbers), kind, uri)
        if kind in ("completion", "speculative"):
            # Only the newest request matters: everything older is stale.
            for other in list(self._active.values()):
                if other.kind != "load":
                    self._cancel(other)
        self._active[job.number] = job
        return job

    @property
    def idle(self) -> bool:
        """Nothing is queued or running: background work may start."""
        return not self._active

    @property
    def foreground_busy(self) -> bool:
        """A request or a model load is queued or running (background work does not count)."""
        return any(job.kind not in ("idle", "speculative") for job in self._active.values())

    async def run(self, job: Job, work: Callable[[threading.Event], T]) -> T:
        """Run ``work`` on the inference thread; cancelling the awaiting task cancels it."""
        loop = asyncio.get_running_loop()

        def guarded() -> T:
            if job.cancel.is_set():
                raise Cancelled
            return work(job.cancel)

        try:
            return await loop.run_in_executor(self._executor, guarded)
        except asyncio.CancelledError:
            self._cancel(job)
            raise
        finally:
            self._active.pop(job.number, None)

    def maintain(self, work: Callable[[], object]) -> None:
        """Queue housekeeping on the inference thread without cancelling anything."""
        self._executor.submit(work)

    def _cancel(self, job: Job) -> None:
        if not job.cancel.is_set():
            job.cancel.set()
            self.cancelled_jobs += 1

    def cancel_document(self, uri: str, keep: Job | None = None) -> None:
        for job in list(self._active.values()):
            if job.uri == uri and job.kind != "load" and job is not keep:
                self._cancel(job)

    def cancel_job(self, job: Job) -> None:
        self._cancel(job)

    def cancel_background(self) -> None:
        for job in list(self._active.values()):
            if job.kind in ("speculative", "idle"):
                self._cancel(job)

    def shutdown(self) -> None:
        for job in list(self._active.values()):
            self._cancel(job)
        self._executor.shutdown(wait=False, cancel_futures=True)
