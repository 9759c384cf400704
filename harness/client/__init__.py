"""The LSP client of the daemon: what every over-the-wire tool in the harness talks through.

``DaemonClient`` starts ``fim-lsp serve`` on stdio and speaks to it exactly as an editor
does; ``inline`` reads the suggestions it answers with; ``languages`` maps file names to
LSP language ids. The names are re-exported here so callers import ``harness.client``.
"""

from __future__ import annotations

from harness.client.daemon import (
    DaemonClient,
    PendingRequest,
    client_capabilities,
    plain_result,
    process_cpu_seconds,
)
from harness.client.inline import (
    apply_suggestion,
    as_inline_list,
    inline_item_text,
    insert_text_of,
    suggestion_after_cursor,
)
from harness.client.languages import LANGUAGE_IDS, language_id_for

__all__ = [
    "LANGUAGE_IDS",
    "DaemonClient",
    "PendingRequest",
    "apply_suggestion",
    "as_inline_list",
    "client_capabilities",
    "inline_item_text",
    "insert_text_of",
    "language_id_for",
    "plain_result",
    "process_cpu_seconds",
    "suggestion_after_cursor",
]
