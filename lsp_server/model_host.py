"""Owns the resident engine: loads it in the background, reports progress, reloads.

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
from fim.engine import Engine, EngineConfig, ModelLoadError
from lsp_server.config import MODEL_FIELDS, Config
from lsp_server.scheduler import Scheduler

log = logging.getLogger(__name__)
State = Literal["idle", "loading", "ready", "error"]


@dataclass
class LoadOutcome:
    engine: Engine | None
    error: str | None


def engine_config(config: Config, model_path: str) -> EngineConfig:
    return EngineConfig(
        model_path=model_path,
        n_ctx=config.n_ctx,
        n_threads=config.threads or None,
        n_gpu_layers=config.gpu_layers,
        flash_attn=config.flash_attn,
        kv_cache_type=config.kv_cache_type,
        n_streams=config.document_streams,
        fim_order=None if config.fim_order == "auto" else config.fim_order,
    )


def load_engine(config: Config, say: Callable[[str], None]) -> Engine:
    """Resolve the model (fetching only if allowed) and load it; raises ModelLoadError."""
    try:
        path = models.resolve(config.model, fetch=config.allow_download, progress=say)
    except models.ModelError as error:
        raise ModelLoadError(str(error)) from error
    say(f"loading {path.name}")
    try:
        return Engine(engine_config(config, str(path)))
    except MemoryError as error:
        raise ModelLoadError(f"{path}: not enough RAM to load the model") from error


class ModelHost:
    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.engine: Engine | None = None
        self.state: State = "idle"
        self.error: str | None = None
        self.loaded_for: Config | None = None
        self._lock = threading.Lock()
        self.generation = 0

    def needs_reload(self, config: Config) -> bool:
        if self.loaded_for is None:
            return True
        return any(getattr(config, name) != getattr(self.loaded_for, name) for name in MODEL_FIELDS)

    async def load(self, config: Config, say: Callable[[str], None]) -> LoadOutcome:
        """Load (or reload) the model on the inference thread."""
        self.state = "loading"
        self.error = None
        self.generation += 1
        job = self.scheduler.new_job("load", None)

        def work(_cancel: threading.Event) -> LoadOutcome:
            old = self.engine
            self.engine = None
            if old is not None:
                old.close()
            try:
                return LoadOutcome(load_engine(config, say), None)
            except ModelLoadError as error:
                return LoadOutcome(None, str(error))
            except Exception as error:  # llama.cpp can fail in ways we do not know yet
                log.exception("model load failed")
                return LoadOutcome(None, f"{config.model}: {error}")

        outcome = await self.scheduler.run(job, work)
        self.loaded_for = config
        if outcome.engine is not None:
            self.engine = outcome.engine
            self.state = "ready"
        else:
            self.state = "error"
            self.error = outcome.error
        return outcome
