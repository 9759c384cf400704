"""The ``Backend`` seam: the one interface the daemon uses to get a completion.

A backend turns a prefix and a suffix into a fill-in-the-middle completion. The
in-process llama.cpp engine (``fim.llama``) is the first implementation; remote
servers are others. Everything above this module (the pipeline, the daemon's
completion service, the harness's micro-benchmarks) talks to a backend through these
types only, so a scripted backend can stand in for the model in a unit test.

Threading: backends are not thread-safe. The daemon calls them from one worker thread
and passes a ``threading.Event`` that is set when the request becomes stale.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

StopReason = Literal[
    "eog", "max_tokens", "time_budget", "callback", "cancelled", "context_full", "error", "heal_failed"
]

#: Called with the text generated so far; returning True stops generation.
StopCallback = Callable[[str], bool]


class ModelLoadError(Exception):
    """The model could not be loaded; the message names the path and the reason."""


class CancelledError(Exception):
    """Raised inside a backend when the request's cancel token is set."""


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 0.0
    top_k: int = 40
    top_p: float = 0.9
    seed: int = 0


@dataclass(frozen=True)
class RepositoryContext:
    """Other files of the workspace to show the model before the current file.

    Backend-neutral: the in-process engine renders it in the model family's repository
    format (``fim.templates``); a remote server gets the files as data (llama-server's
    ``/infill`` takes them as ``input_extra``).
    """

    #: The workspace's name (its root folder's).
    name: str
    #: (path relative to the root, text) of each other file, in prompt order.
    files: tuple[tuple[str, str], ...]
    #: The current file's path relative to the root.
    current_path: str


@dataclass
class CompletionRequest:
    prefix: str
    suffix: str
    max_tokens: int = 128
    time_budget_ms: float | None = None
    #: Key of the document whose token stream this prefix belongs to (its URI).
    stream_key: str | None = None
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    prompt_lookup: bool = True
    #: Text the user already typed of the current word. It is left out of the prompt (its
    #: token may merge differently) and the first generated tokens must spell it out; it
    #: is not part of the result.
    heal: str = ""
    #: When the cache holds too little of the prompt (a cold jump), shorten the prefix so
    #: that evaluating what is missing takes about this long; None never shortens.
    cold_prefill_ms: float | None = None
    #: Other files to show before the current one; None: the current file alone.
    repository: RepositoryContext | None = None


@dataclass
class CompletionStats:
    tokens_prompt: int = 0
    tokens_reused: int = 0
    tokens_evaluated: int = 0
    tokens_generated: int = 0
    tokens_drafted: int = 0
    tokens_draft_accepted: int = 0
    reused_from: str = "none"
    prefill_ms: float = 0.0
    first_token_ms: float = 0.0
    decode_ms: float = 0.0
    total_ms: float = 0.0
    stop_reason: StopReason = "eog"
    cancelled_in: str | None = None
    #: Prefix tokens left out to meet ``cold_prefill_ms`` (0: the whole prefix was used).
    prefix_cut_tokens: int = 0
    #: What went wrong, for a ``stop_reason`` of "error" (a remote server's answer...).
    error: str = ""


@dataclass
class CompletionResult:
    text: str
    stats: CompletionStats


@dataclass(frozen=True)
class BackendCapabilities:
    """What a backend can do; the daemon adapts to it rather than to a backend's type."""

    #: Keeps per-document prompt state (KV streams), so ``warm`` pays off while idle.
    document_streams: bool
    #: Honours ``CompletionRequest.heal`` (the typed word is generated, not prompted).
    token_healing: bool
    #: ``count_tokens`` is the model's own tokenizer, not an estimate.
    exact_token_counts: bool


@runtime_checkable
class Backend(Protocol):
    """What the daemon needs from a model, wherever it runs."""

    @property
    def capabilities(self) -> BackendCapabilities: ...

    def describe(self) -> dict[str, Any]:
        """Model path or name, template and settings, for logs and ``fim/status``."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def build_prompt(self, prefix: str, suffix: str) -> Sequence[int]:
        """The prompt the backend would evaluate for this prefix and suffix."""
        ...

    def complete(
        self,
        request: CompletionRequest,
        cancel: threading.Event | None = None,
        on_text: StopCallback | None = None,
    ) -> CompletionResult:
        """Fill the middle; stops early when ``cancel`` is set or ``on_text`` says so."""
        ...

    def prefill(self, request: CompletionRequest, cancel: threading.Event) -> int:
        """Evaluate what ``request`` would, generate nothing; returns tokens evaluated.

        For where the editor's cursor just went. Backends without a prompt cache of
        their own to fill return 0.
        """
        ...

    def warm(
        self,
        key: str,
        text: str,
        cancel: threading.Event,
        max_tokens: int | None = None,
        repository: RepositoryContext | None = None,
    ) -> int:
        """Evaluate a document's leading text (after ``repository``) ahead of a request.

        Returns tokens evaluated. ``repository`` must be what the next request sends, or
        the warm-up is wasted.
        """
        ...

    def forget(self, key: str) -> None:
        """Drop what is held for a document (it was closed)."""
        ...

    def close(self) -> None: ...
