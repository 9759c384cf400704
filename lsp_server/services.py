"""The daemon's state for one session, built once by ``create_server``.

Each service gets the collaborators it uses, never the server object; the handlers
get this bundle when they are registered. Nothing here knows about pygls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fim.config import workspace_settings
from fim.context import Document
from fim.workspace import Workspace
from lsp_server.completion import CompletionService
from lsp_server.idle import IdlePrefill
from lsp_server.model_host import ModelHost
from lsp_server.scheduler import Scheduler
from lsp_server.settings import SessionSettings


@dataclass
class Services:
    settings: SessionSettings
    scheduler: Scheduler
    host: ModelHost
    completions: CompletionService
    idle: IdlePrefill
    workspace: Workspace
    documents: dict[str, Document] = field(default_factory=dict)
    #: The client can answer ``workspace/configuration`` (set by initialize).
    supports_configuration_pull: bool = False
    #: The workspace roots ``initialize`` named, indexed from ``initialized`` on.
    initial_roots: list[Path] = field(default_factory=list)

    @classmethod
    def build(cls, cli_overrides: dict[str, Any] | None = None) -> Services:
        settings = SessionSettings(cli_overrides)
        scheduler = Scheduler()
        host = ModelHost(scheduler)
        workspace = Workspace(workspace_settings(settings.config))
        completions = CompletionService(scheduler, host, settings, workspace)
        documents: dict[str, Document] = {}
        idle = IdlePrefill(scheduler, completions, documents, settings)
        return cls(settings, scheduler, host, completions, idle, workspace, documents)
