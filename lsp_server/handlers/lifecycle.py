"""initialize / initialized / shutdown, the model load with progress, logs, orphan exit.

The daemon must never outlive its editor: it watches ``initialize.processId`` and exits
when that process is gone (stdin closing ends the server loop as well).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from lsprotocol import types

from lsp_server import config as config_module

if TYPE_CHECKING:
    from lsp_server.server import FimServer

log = logging.getLogger(__name__)
PROGRESS_TOKEN = "fim-lsp/model"  # a load's token is this plus "/<n>"
LEVELS = {
    "error": (logging.ERROR, types.MessageType.Error),
    "warning": (logging.WARNING, types.MessageType.Warning),
    "info": (logging.INFO, types.MessageType.Info),
    "debug": (logging.DEBUG, types.MessageType.Log),
}


class ClientLogHandler(logging.Handler):
    """Forwards log records to the editor as ``window/logMessage``."""

    def __init__(self, server: FimServer) -> None:
        super().__init__()
        self.server = server
        self.loop: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("pygls", "asyncio")) or self.loop is None:
            return
        kind = (
            types.MessageType.Error
            if record.levelno >= logging.ERROR
            else types.MessageType.Warning
            if record.levelno >= logging.WARNING
            else types.MessageType.Info
            if record.levelno >= logging.INFO
            else types.MessageType.Log
        )
        params = types.LogMessageParams(type=kind, message=self.format(record))
        try:
            if threading.current_thread() is threading.main_thread():
                self.server.window_log_message(params)
            else:
                self.loop.call_soon_threadsafe(self.server.window_log_message, params)
        except Exception:  # logging must never take the daemon down
            pass


def watch_parent(pid: int, interval: float = 1.0) -> None:
    """Exit the process when the editor process ``pid`` is gone."""

    def loop() -> None:
        while True:
            time.sleep(interval)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                log.warning("editor process %d is gone; exiting", pid)
                os._exit(0)
            except PermissionError:
                pass  # exists, owned by someone else

    threading.Thread(target=loop, name="fim-parent-watch", daemon=True).start()


def set_log_level(server: FimServer, level_name: str) -> None:
    level = LEVELS.get(level_name, LEVELS["info"])[0]
    logging.getLogger("fim").setLevel(level)
    logging.getLogger("lsp_server").setLevel(level)


async def load_model(server: FimServer) -> None:
    """Load the configured model in the background, reporting work-done progress."""
    loop = asyncio.get_running_loop()
    progress = server.work_done_progress
    # A token may be used once: each load (and reload) gets its own.
    token = f"{PROGRESS_TOKEN}/{server.host.generation + 1}"
    use_progress = bool(
        server.client_capabilities.window and server.client_capabilities.window.work_done_progress
    )
    if use_progress:
        try:
            await progress.create_async(token)
            progress.begin(
                token,
                types.WorkDoneProgressBegin(
                    title="fim-lsp", message=f"loading model {server.config.model} …"
                ),
            )
        except Exception as error:
            log.info("client refused progress: %s", error)
            use_progress = False

    def say(message: str) -> None:
        log.info("%s", message)
        if use_progress:
            loop.call_soon_threadsafe(progress.report, token, types.WorkDoneProgressReport(message=message))

    outcome = await server.host.load(server.config, say)
    if use_progress:
        message = "model ready" if outcome.engine else "model failed to load"
        progress.end(token, types.WorkDoneProgressEnd(message=message))
    if outcome.engine is not None:
        engine = outcome.engine
        for uri in server.documents:
            server.idle.touch(uri)
        log.info(
            "model ready: %s (%s), FIM template %s, %s, %d threads",
            engine.model_path,
            engine.model_description,
            engine.template.template.name,
            engine.template.order,
            engine.n_threads,
        )
    else:
        server.show(f"fim-lsp: the model could not be loaded: {outcome.error}")


def register(server: FimServer) -> None:
    handler = ClientLogHandler(server)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    for name in ("fim", "lsp_server"):
        logging.getLogger(name).addHandler(handler)

    @server.feature(types.INITIALIZE)
    def initialize(ls: FimServer, params: types.InitializeParams) -> None:
        handler.loop = asyncio.get_event_loop()
        workspace = params.capabilities.workspace
        ls.supports_configuration_pull = bool(workspace and workspace.configuration)
        ls.initialization_options = params.initialization_options
        merged, problems = config_module.parse(params.initialization_options, ls.config)
        merged, more = config_module.parse(ls.cli_overrides, merged)
        ls.apply_config(merged)
        set_log_level(ls, merged.log_level)
        for problem in [*problems, *more]:
            ls.show(str(problem), types.MessageType.Warning)
        if params.process_id:
            watch_parent(params.process_id)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: FimServer, _params: types.InitializedParams) -> None:
        from lsp_server.handlers.configuration import pull_configuration

        if ls.supports_configuration_pull:
            await pull_configuration(ls, reload=False)
        await load_model(ls)

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: FimServer, _params: None) -> None:
        ls.scheduler.shutdown()
