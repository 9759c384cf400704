"""One pass down per request: context, then prompt and backend, then post-processing.

Everything that decides *what* to complete lives here, beside each other: the context
cut, the mode and its settings override, the comment policy, token healing, the model
request and the streaming post-processing. The daemon around it only speaks the
protocol, schedules and caches.

A request is split in two halves because they run on two threads:

* ``CompletionPipeline.plan`` is cheap and runs on the daemon's event loop: it builds
  the context and decides whether and how to generate. Its ``Plan.key`` names the
  answer, so a cache can serve it without generating.
* ``CompletionPipeline.run`` runs on the inference thread: the backend generates under
  the post-processing's stop rules, and the result is trimmed.

With a ``RepositorySource`` (the workspace), the request also carries other files of
the workspace, chosen and pinned per document by the source, so that successive
prompts for a document share their leading tokens.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fim.backend import Backend, CompletionRequest, CompletionStats, RepositoryContext
from fim.config import GenerationSettings
from fim.context import CompletionContext, Document, Mode, build_context
from fim.postprocess import StreamFilter


class RepositorySource(Protocol):
    """Other files of the workspace for a document: chosen once, then pinned."""

    def repository_for(
        self, uri: str, text: str, cursor: int, count_tokens: Callable[[str], int]
    ) -> RepositoryContext | None:
        """The pinned context of ``uri`` (chosen now if it has none)."""
        ...

    def refresh(self, uri: str, text: str, count_tokens: Callable[[str], int]) -> RepositoryContext | None:
        """Choose ``uri``'s context again (the user paused) and pin it."""
        ...


@dataclass(frozen=True)
class Plan:
    """What one request will do: generate ``request``, or nothing for ``skip_reason``."""

    context: CompletionContext
    mode: Mode
    #: Why nothing is generated here; None when the model should run.
    skip_reason: str | None
    #: Names the answer for a cache: equal keys get equal completions.
    key: tuple[Any, ...]
    request: CompletionRequest
    #: Text the model was made to write first that is not in the document (the blank
    #: line's missing indentation): part of the completion shown.
    lead: str = ""

    @property
    def prefix_start(self) -> int:
        return max(0, self.context.cursor - len(self.context.prefix))


@dataclass
class Generation:
    text: str
    stats: CompletionStats

    @property
    def complete(self) -> bool:
        """Whether this is the model's whole answer and may be served again from a cache.

        A generation cut short by the time budget (a busy machine) or an error is shown
        once but not remembered: the next request at the same place asks the model again.
        So is one made from a prefix shortened for a cold jump: by the next request the
        whole prefix is warm.
        """
        whole = self.stats.stop_reason in ("eog", "callback", "max_tokens")
        return whole and not self.stats.prefix_cut_tokens


_TRAILING_WORD = re.compile(r"\w+\Z")


def whole_part_of_cut(text: str, *, multi_line: bool) -> str:
    """What can be shown of a generation the time budget (or a multi-line token cap) cut short.

    The cut falls after any token, so the last word may be unfinished (``retu`` of
    ``return``) and so may the last line of a block. A multi-line completion keeps its
    complete lines; a single line (or a block with one line so far) loses its trailing
    word. Post-processing then applies as usual, and its syntax check cuts back to the
    longest prefix that parses (an expression left hanging at ``==`` loses the ``==``).
    """
    if multi_line:
        complete, newline, _unfinished = text.rpartition("\n")
        if newline and complete.strip():
            return complete
    return _TRAILING_WORD.sub("", text)


class CompletionPipeline:
    """Completions from one backend under one set of generation settings."""

    def __init__(
        self, backend: Backend, settings: GenerationSettings, workspace: RepositorySource | None = None
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.workspace = workspace

    def repository(self, doc: Document, cursor: int) -> RepositoryContext | None:
        """The other files pinned for ``doc`` (None without a workspace)."""
        if self.workspace is None:
            return None
        return self.workspace.repository_for(doc.uri, doc.text, cursor, self.backend.count_tokens)

    def plan(self, doc: Document, cursor: int, *, invoked: bool = False) -> Plan:
        """Cut the context at ``cursor`` and decide what to generate (event loop, cheap).

        ``invoked``: the user asked for this completion; a cursor inside a word is then
        answered too.
        """
        settings = self.settings
        context = build_context(doc, cursor, settings.budgets, self.backend.count_tokens, invoked=invoked)
        mode = self._mode(context)
        skip_reason: str | None = None
        if mode is Mode.NONE:
            skip_reason = context.reason
        elif not settings.complete_in_comments and context.scope != "code":
            skip_reason = "inside a comment or string (completeInComments is off)"
        # Token healing: the typed part of the word is generated, not prompted, so that
        # "return num" can become "number" rather than the variable "num".
        healing = self.backend.capabilities.token_healing and context.prefix.endswith(context.typed_word)
        heal = context.typed_word if healing else ""
        # On a blank line the user has not indented, the model is made to start at the
        # block's indentation, as it would after an editor's auto-indent: at column 0 it
        # often ends the function instead ("def", "#"), which the block's floor cuts to
        # nothing. The indentation is healed, not prompted, so the model still picks
        # deeper indentation tokens when it means to.
        lead = context.missing_indent if self.backend.capabilities.token_healing and not heal else ""
        request = CompletionRequest(
            prefix=context.prefix[: len(context.prefix) - len(heal)],
            heal=heal or lead,
            suffix=context.suffix,
            max_tokens=settings.max_tokens_multiline if mode is Mode.MULTI_LINE else settings.max_tokens,
            time_budget_ms=settings.time_budget_ms,
            stream_key=doc.uri,
            sampling=settings.sampling,
            prompt_lookup=settings.prompt_lookup,
            cold_prefill_ms=settings.cold_prefill_ms,
            # Chosen (or read from the pin) only when the model will run.
            repository=self.repository(doc, cursor) if skip_reason is None else None,
        )
        key = (
            context.prefix,
            context.suffix,
            mode,
            context.extent,
            settings.max_tokens,
            settings.sampling.temperature,
            request.repository,
            lead,
        )
        return Plan(context, mode, skip_reason, key, request, lead)

    def _mode(self, context: CompletionContext) -> Mode:
        if context.mode is Mode.NONE:
            return context.mode
        if self.settings.multiline == "never":
            return Mode.SINGLE_LINE
        if self.settings.multiline == "always":
            return Mode.MULTI_LINE
        return context.mode

    def run(
        self, plan: Plan, cancel: threading.Event, progress: Callable[[str], None] | None = None
    ) -> Generation:
        """Generate and post-process ``plan`` (inference thread).

        ``progress`` hears the text after the cursor generated so far, raw.
        """
        stream_filter = StreamFilter(plan.context, mode=plan.mode)
        lead = plan.lead

        def should_stop(text: str) -> bool:
            if progress is not None:
                progress(lead + text)
            return stream_filter.should_stop(lead + text)

        result = self.backend.complete(plan.request, cancel, should_stop)
        if result.stats.stop_reason == "cancelled":
            return Generation("", result.stats)
        text = lead + result.text
        multi_line = plan.mode is Mode.MULTI_LINE
        # The token cap cuts a multi-line answer inside its last line as the time
        # budget does: that line is unfinished ("    # Yield chunks of").
        stop_reason = result.stats.stop_reason
        if stop_reason == "time_budget" or (multi_line and stop_reason == "max_tokens"):
            text = whole_part_of_cut(text, multi_line=multi_line)
        return Generation(stream_filter.finish(text), result.stats)

    def prefill(self, plan: Plan, cancel: threading.Event) -> int:
        """Evaluate ``plan``'s prompt and generate nothing (inference thread); tokens evaluated."""
        return self.backend.prefill(plan.request, cancel)

    def refresh_context(self, doc: Document) -> RepositoryContext | None:
        """Choose ``doc``'s workspace context again before a warm-up (event loop)."""
        if self.workspace is None:
            return None
        return self.workspace.refresh(doc.uri, doc.text, self.backend.count_tokens)

    def warm(
        self,
        doc: Document,
        prefix_start: int,
        cancel: threading.Event,
        repository: RepositoryContext | None = None,
    ) -> int:
        """Evaluate ``repository`` and the document's text from ``prefix_start`` into its stream."""
        budget = self.settings.budgets.prefix_tokens
        # Characters are a cheap upper bound here; the backend cuts at the token budget.
        text = doc.text[prefix_start : prefix_start + budget * 6]
        if repository is None:
            return self.backend.warm(doc.uri, text, cancel, max_tokens=budget)
        return self.backend.warm(doc.uri, text, cancel, max_tokens=budget, repository=repository)
