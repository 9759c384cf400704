"""A scripted ``Backend`` for fast unit tests of the daemon's services.

It answers from a table instead of a model, streams its answer through the stop
callback as a model would, and honours the cancel token. The same behaviours are
covered against the real model in ``tests/lsp_server/test_daemon.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fim.backend import (
    BackendCapabilities,
    CompletionRequest,
    CompletionResult,
    CompletionStats,
    RepositoryContext,
    StopCallback,
    StopReason,
)


@dataclass
class ScriptedBackend:
    """Completes with ``answer(request)``; records every request it was asked."""

    answer: Callable[[CompletionRequest], str]
    stop_reason: StopReason = "eog"
    #: Seconds to spend "generating" each answer, checking the cancel token meanwhile.
    delay: float = 0.0
    #: Seconds between the characters of an answer, as a model's tokens come.
    char_delay: float = 0.0
    requests: list[CompletionRequest] = field(default_factory=list)
    warmed: list[str] = field(default_factory=list)
    prefilled: list[CompletionRequest] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)

    @property
    def capabilities(self) -> BackendCapabilities:
        return BackendCapabilities(document_streams=True, token_healing=False, exact_token_counts=False)

    def describe(self) -> dict[str, Any]:
        return {"model_path": "scripted", "template": "scripted"}

    def count_tokens(self, text: str) -> int:
        return len(text) // 3

    def build_prompt(self, prefix: str, suffix: str) -> Sequence[int]:
        return [ord(char) for char in prefix + suffix]

    def complete(
        self,
        request: CompletionRequest,
        cancel: threading.Event | None = None,
        on_text: StopCallback | None = None,
    ) -> CompletionResult:
        deadline = time.monotonic() + self.delay
        self.requests.append(request)
        self.started.set()
        stats = CompletionStats(tokens_prompt=len(request.prefix) + len(request.suffix))
        while time.monotonic() < deadline:
            if cancel is not None and cancel.wait(0.005):
                stats.stop_reason = "cancelled"
                return CompletionResult("", stats)
        text = ""
        for char in self.answer(request):
            if cancel is not None and self.char_delay and cancel.wait(self.char_delay):
                stats.stop_reason = "cancelled"
                return CompletionResult("", stats)
            text += char
            stats.tokens_generated += 1
            if on_text is not None and on_text(text):
                stats.stop_reason = "callback"
                return CompletionResult(text, stats)
        stats.stop_reason = self.stop_reason
        return CompletionResult(text, stats)

    def prefill(self, request: CompletionRequest, cancel: threading.Event) -> int:
        self.prefilled.append(request)
        return self.count_tokens(request.prefix)

    def warm(
        self,
        key: str,
        text: str,
        cancel: threading.Event,
        max_tokens: int | None = None,
        repository: RepositoryContext | None = None,
    ) -> int:
        self.warmed.append(key)
        return self.count_tokens(text)

    def forget(self, key: str) -> None:
        pass

    def close(self) -> None:
        pass
