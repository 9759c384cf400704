"""Loading the model for the editor: work-done progress, then a message on failure.

Runs on the event loop; the load itself goes to the inference thread (``ModelHost``).
"""

from __future__ import annotations

import asyncio
import logging

from lsprotocol import types

from fim.config import Config
from lsp_server.protocol import PROGRESS_TOKEN, FimServer
from lsp_server.services import Services

log = logging.getLogger(__name__)


def what_loads(config: Config) -> str:
    if config.backend == "llama.cpp":
        return f"loading model {config.model}"
    return f"connecting to {config.backend} at {config.endpoint}"


async def load_model(ls: FimServer, services: Services) -> None:
    """Load the configured model in the background, reporting work-done progress."""
    loop = asyncio.get_running_loop()
    config = services.settings.config
    progress = ls.work_done_progress
    # A token may be used once: each load (and reload) gets its own.
    token = f"{PROGRESS_TOKEN}/{services.host.generation + 1}"
    use_progress = bool(ls.client_capabilities.window and ls.client_capabilities.window.work_done_progress)
    if use_progress:
        try:
            await progress.create_async(token)
            progress.begin(
                token,
                types.WorkDoneProgressBegin(title="fim-lsp", message=f"{what_loads(config)} …"),
            )
        except Exception as error:
            log.info("client refused progress: %s", error)
            use_progress = False

    def say(message: str) -> None:
        log.info("%s", message)
        if use_progress:
            loop.call_soon_threadsafe(progress.report, token, types.WorkDoneProgressReport(message=message))

    outcome = await services.host.load(config, say)
    if use_progress:
        message = "model ready" if outcome.backend else "model failed to load"
        progress.end(token, types.WorkDoneProgressEnd(message=message))
    if outcome.backend is not None:
        for uri in services.documents:
            services.idle.touch(uri)
        described = outcome.backend.describe()
        log.info(
            "model ready: %s (%s), FIM template %s, %s, %s threads",
            described.get("model_path"),
            described.get("model_description"),
            described.get("template"),
            described.get("order"),
            described.get("n_threads"),
        )
        for problem in described.get("problems", ()):
            # A remote server that is down now may come back; the daemon keeps serving.
            ls.show(f"fim-lsp: {problem}", types.MessageType.Warning)
    else:
        ls.show(f"fim-lsp: the model could not be loaded: {outcome.error}")
