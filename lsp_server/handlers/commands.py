"""``fim/status``, acceptance notifications and the accept command (event loop).

Acceptance is counted locally for the status; nothing leaves the machine.
"""

from __future__ import annotations

import logging
from typing import Any

from lsp_server.protocol import ACCEPT_COMMAND, STATUS_COMMAND, STATUS_METHOD, VERSION, FimServer
from lsp_server.services import Services

log = logging.getLogger(__name__)


def status(server: FimServer, services: Services) -> dict[str, Any]:
    host = services.host
    described = host.backend.describe() if host.backend is not None else {}
    return {
        "version": VERSION,
        "model": services.settings.config.model,
        "modelPath": described.get("model_path"),
        "state": host.state,
        "error": host.error,
        "template": described.get("template"),
        "fimOrder": described.get("order"),
        "threads": described.get("n_threads"),
        "gpuLayersOffloaded": described.get("layers_offloaded"),
        # With sharedEngine: the host process's socket ("down" while it is not there) and pid.
        "sharedEngine": described.get("shared_engine"),
        "sharedEnginePid": described.get("shared_engine_pid"),
        "backend": described.get("backend"),
        "tokenCounting": described.get("token_counting"),
        "remoteServers": described.get("servers"),
        "engineTotals": described.get("totals"),
        "engineBusy": described.get("busy"),
        "documentStreamsHeld": described.get("streams_held"),
        "rejectedMessages": dict(server.protocol.rejected),
        "positionEncoding": str(server.encoding),
        "openDocuments": len(services.documents),
        "idlePrefillTokens": services.idle.warmed_tokens,
        "cursorPrefillTokens": services.idle.prefilled_tokens,
        "cursorMoves": services.idle.cursor_moves,
        "workspace": services.workspace.status(),
        **services.completions.status(),
    }


def register(server: FimServer, services: Services) -> None:
    counters = services.completions.counters

    @server.feature(STATUS_METHOD)
    def fim_status(ls: FimServer, _params: Any) -> dict[str, Any]:
        return status(ls, services)

    @server.command(ACCEPT_COMMAND)
    def accept(_ls: FimServer, *_arguments: Any) -> None:
        counters.accepted += 1

    @server.command(STATUS_COMMAND)
    def status_command(ls: FimServer, *_arguments: Any) -> dict[str, Any]:
        return status(ls, services)

    @server.feature("textDocument/didShowCompletion")
    def did_show(_ls: FimServer, _params: Any) -> None:
        counters.shown += 1

    @server.feature("textDocument/didPartiallyAcceptCompletion")
    def did_partially_accept(_ls: FimServer, _params: Any) -> None:
        counters.partially_accepted += 1
