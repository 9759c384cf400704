"""``fim/status``, acceptance notifications and the accept command (event loop).

Acceptance is counted locally for the status; nothing leaves the machine.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lsp_server.handlers.completion import ACCEPT_COMMAND

if TYPE_CHECKING:
    from lsp_server.server import FimServer

log = logging.getLogger(__name__)
STATUS_METHOD = "fim/status"


def status(ls: FimServer) -> dict[str, Any]:
    engine = ls.host.engine
    return {
        "version": ls.version,
        "model": ls.config.model,
        "modelPath": engine.model_path if engine else None,
        "state": ls.host.state,
        "error": ls.host.error,
        "template": engine.template.template.name if engine else None,
        "fimOrder": engine.template.order if engine else None,
        "threads": engine.n_threads if engine else None,
        "engineTotals": dict(engine.totals) if engine else None,
        "positionEncoding": str(ls.encoding),
        "openDocuments": len(ls.documents),
        "idlePrefillTokens": ls.idle.warmed_tokens,
        **ls.completions.status(),
    }


def register(server: FimServer) -> None:
    @server.feature(STATUS_METHOD)
    def fim_status(ls: FimServer, _params: Any) -> dict[str, Any]:
        return status(ls)

    # pygls resolves a command handler's annotations at run time, when FimServer (imported
    # for type checking only) does not exist: these handlers take the server as Any.
    @server.command(ACCEPT_COMMAND)
    def accept(ls: Any, *arguments: Any) -> None:
        ls.completions.counters.accepted += 1

    @server.command("fim-lsp.status")
    def status_command(ls: Any, *_arguments: Any) -> dict[str, Any]:
        return status(ls)

    @server.feature("textDocument/didShowCompletion")
    def did_show(ls: FimServer, params: Any) -> None:
        ls.completions.counters.shown += 1

    @server.feature("textDocument/didPartiallyAcceptCompletion")
    def did_partially_accept(ls: FimServer, _params: Any) -> None:
        ls.completions.counters.partially_accepted += 1
