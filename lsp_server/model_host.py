"""Owns the resident backend: loads it in the background, reports its state, reloads.

States: ``idle`` (before initialize), ``loading``, ``ready``, ``error``. While not
ready, completion requests get empty results. A load failure is shown to the user once,
with the path and the reason, and the daemon keeps serving empty results.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fim import models
from fim.backend import Backend, ModelLoadError
from fim.config import RELOAD_FIELDS, Config, engine_config, remote_settings
from lsp_server.scheduler import Scheduler

log = logging.getLogger(__name__)
State = Literal["idle", "loading", "ready", "error"]


@dataclass
class LoadOutcome:
    backend: Backend | None
    error: str | None


def load_backend(config: Config, say: Callable[[str], None]) -> Backend:
    """Resolve the model (fetching only if allowed) and load it; raises ModelLoadError."""
    if config.backend != "llama.cpp":
        return connect_remote(config, say)
    from fim.llama import LlamaEngine  # loads llama.cpp's library on first use

    try:
        path = models.resolve(config.model, fetch=config.allow_download, progress=say)
    except models.ModelError as error:
        raise ModelLoadError(str(error)) from error
    say(f"loading {path.name}")
    try:
        if config.shared_engine:
            from dataclasses import asdict

            from fim.shared.client import SharedEngine

            return SharedEngine(asdict(engine_config(config, str(path))))
        return LlamaEngine(engine_config(config, str(path)))
    except MemoryError as error:
        raise ModelLoadError(f"{path}: not enough RAM to load the model") from error


def connect_remote(config: Config, say: Callable[[str], None]) -> Backend:
    """A remote backend; the local model file, when cached, only counts tokens."""
    from fim.remote import RemoteBackend  # imports httpx

    try:
        local: str | None = str(models.resolve(config.model, fetch=False))
    except models.ModelError:
        local = None
    say(f"connecting to {config.backend} at {config.endpoint}")
    return RemoteBackend(remote_settings(config, local))


class ModelHost:
    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.backend: Backend | None = None
        self.state: State = "idle"
        self.error: str | None = None
        self.loaded_for: Config | None = None
        self.generation = 0

    @property
    def ready_backend(self) -> Backend | None:
        """The backend when it can serve a request, else None."""
        return self.backend if self.state == "ready" else None

    def needs_reload(self, config: Config) -> bool:
        if self.loaded_for is None:
            return True
        return any(getattr(config, name) != getattr(self.loaded_for, name) for name in RELOAD_FIELDS)

    async def load(self, config: Config, say: Callable[[str], None]) -> LoadOutcome:
        """Load (or reload) the model on the inference thread."""
        self.state = "loading"
        self.error = None
        self.generation += 1
        job = self.scheduler.new_job("load", None)

        def work(_cancel: threading.Event) -> LoadOutcome:
            old = self.backend
            self.backend = None
            if old is not None:
                old.close()
            try:
                return LoadOutcome(load_backend(config, say), None)
            except ModelLoadError as error:
                return LoadOutcome(None, str(error))
            except Exception as error:  # llama.cpp can fail in ways we do not know yet
                log.exception("model load failed")
                return LoadOutcome(None, f"{config.model}: {error}")

        outcome = await self.scheduler.run(job, work)
        self.loaded_for = config
        if outcome.backend is not None:
            self.backend = outcome.backend
            self.state = "ready"
        else:
            self.state = "error"
            self.error = outcome.error
        return outcome
