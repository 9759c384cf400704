"""llama.vim's request building and suggestion rendering, for the benchmark peer.

Written from llama.vim's ``llama#fim`` and ``s:fim_render`` (autoload/llama.vim): the
local context is up to 256 lines above the cursor line (``input_prefix``), the cursor
line's text before the cursor (``prompt``) and the rest of the line plus 64 lines below
(``input_suffix``); a line holding only whitespace is sent as empty with ``n_indent`` 0;
an automatic request is not sent when more than 8 characters follow the cursor;
responses are cached under hashes of the context and shown again when the typed text
matches the start of a cached answer (``harness.peer.session``).

llama.vim's ring buffer of extra context (``input_extra``) fills from yanks and other
buffers; a single-file replay has none, so it is sent empty. Columns are code points
(Vim counts bytes; the fixtures are ASCII).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

N_PREFIX = 256
N_SUFFIX = 64
N_PREDICT = 128
T_MAX_PROMPT_MS = 500
#: llama.vim uses 250 ms for a first request (1000 ms only for its speculative follow-up).
T_MAX_PREDICT_MS = 250
T_MAX_PREDICT_SPECULATIVE_MS = 1000
MAX_LINE_SUFFIX = 8
RETRY_MS = 100
#: What llama.vim asks the server to return, plus two figures the benchmark reports
#: (this only filters the response; the computation is the same).
RESPONSE_FIELDS = [
    "content",
    "timings/prompt_n",
    "timings/prompt_ms",
    "timings/prompt_per_token_ms",
    "timings/prompt_per_second",
    "timings/predicted_n",
    "timings/predicted_ms",
    "timings/predicted_per_token_ms",
    "timings/predicted_per_second",
    "truncated",
    "tokens_cached",
]
EXTRA_FIELDS = ["tokens_evaluated", "stop_type"]


def buffer_lines(text: str) -> list[str]:
    """A file's lines as Vim holds them: a final newline does not make an empty last line."""
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines


@dataclass(frozen=True)
class LocalContext:
    prefix: str
    middle: str
    suffix: str
    indent: int
    line_cur: str
    line_cur_prefix: str
    line_cur_suffix: str

    def hashes(self) -> list[str]:
        """llama.vim's cache keys: the context, and the same with 1–3 first lines dropped."""
        keys = [cache_key(self.prefix + self.middle + "Î" + self.suffix)]
        trimmed = self.prefix
        for _ in range(3):
            newline = trimmed.find("\n")
            trimmed = "" if newline < 0 else trimmed[newline + 1 :]
            if not trimmed:
                break
            keys.append(cache_key(trimmed + self.middle + "Î" + self.suffix))
        return keys


def cache_key(text: str) -> str:
    """llama.vim's cache key for a context (SHA-256 of its text)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def local_context(
    lines: list[str], line: int, column: int, n_prefix: int = N_PREFIX, n_suffix: int = N_SUFFIX
) -> LocalContext:
    """llama.vim's ``s:fim_ctx_local`` for a cursor at 0-based ``line``/``column``."""
    line_cur = lines[line] if line < len(lines) else ""
    line_cur_prefix = line_cur[:column]
    line_cur_suffix = line_cur[column:]
    # Vim's getline(max(1, y - n_prefix), y - 1) with 1-based y = line + 1.
    lines_prefix = lines[max(0, line - n_prefix) : line]
    lines_suffix = lines[line + 1 : min(len(lines), line + 1 + n_suffix)]
    if not line_cur.strip():
        # A line of whitespace only: start from the beginning of the line.
        indent = 0
        line_cur_prefix = ""
        line_cur_suffix = ""
    else:
        indent = len(line_cur) - len(line_cur.lstrip())
    return LocalContext(
        prefix="\n".join(lines_prefix) + "\n",
        middle=line_cur_prefix,
        suffix=line_cur_suffix + "\n" + "\n".join(lines_suffix) + "\n",
        indent=indent,
        line_cur=line_cur,
        line_cur_prefix=line_cur_prefix,
        line_cur_suffix=line_cur_suffix,
    )


def local_context_after(
    lines: list[str],
    line: int,
    prev: list[str],
    indent: int,
    n_prefix: int = N_PREFIX,
    n_suffix: int = N_SUFFIX,
) -> LocalContext:
    """``s:fim_ctx_local`` with ``prev``: the context as if the shown suggestion were accepted.

    llama.vim builds it for its speculative follow-up request; like llama.vim, it joins
    the whole cursor line with the suggestion's first line.
    """
    line_cur = lines[line] + prev[0] if len(prev) == 1 else prev[-1]
    lines_prefix = lines[max(0, line - n_prefix + len(prev) - 1) : line]
    if len(prev) > 1:
        lines_prefix = [*lines_prefix, lines[line] + prev[0], *prev[1:-1]]
    lines_suffix = lines[line + 1 : min(len(lines), line + 1 + n_suffix)]
    return LocalContext(
        prefix="\n".join(lines_prefix) + "\n",
        middle=line_cur,
        suffix="\n" + "\n".join(lines_suffix) + "\n",
        indent=indent,
        line_cur=line_cur,
        line_cur_prefix=line_cur,
        line_cur_suffix="",
    )


def infill_body(
    context: LocalContext,
    *,
    n_predict: int = N_PREDICT,
    t_max_predict_ms: int = T_MAX_PREDICT_MS,
    extra_fields: bool = True,
) -> dict[str, Any]:
    """The JSON body of llama.vim's ``/infill`` request."""
    return {
        "input_prefix": context.prefix,
        "input_suffix": context.suffix,
        "input_extra": [],
        "prompt": context.middle,
        "n_predict": n_predict,
        "stop": [],
        "n_indent": context.indent,
        "top_k": 40,
        "top_p": 0.90,
        "stream": False,
        "samplers": ["top_k", "top_p", "infill"],
        "cache_prompt": True,
        "t_max_prompt_ms": T_MAX_PROMPT_MS,
        "t_max_predict_ms": t_max_predict_ms,
        "response_fields": RESPONSE_FIELDS + (EXTRA_FIELDS if extra_fields else []),
    }


@dataclass(frozen=True)
class Rendered:
    """What llama.vim would show: the suggestion's lines, and whether Tab accepts it."""

    lines: list[str]
    can_accept: bool
    #: For a whitespace-only cursor line llama.vim replaces the whole line: ``lead`` is
    #: the indentation it keeps (taken from the suggestion), None on other lines.
    lead: str | None = None

    def line_text(self, line_prefix: str) -> str:
        """The cursor line from its start once accepted, plus any further lines.

        llama.vim's ``llama#fim_accept('full')`` sets the line to the kept part of the
        line before the cursor followed by the first suggested line, and appends the rest.
        """
        kept = self.lead[: len(line_prefix)] if self.lead is not None else line_prefix
        return kept + "\n".join(self.lines)

    def completion_after(self, line_prefix: str) -> str:
        """The text the suggestion adds after the cursor ("" if nothing can be accepted)."""
        if not self.can_accept:
            return ""
        whole = self.line_text(line_prefix)
        if whole.startswith(line_prefix):
            return whole[len(line_prefix) :]
        # The line's indentation changed (a whitespace line replaced): what follows it.
        return whole.lstrip(" \t")

    def apply(self, text: str, cursor: int) -> str:
        """The document after accepting the suggestion at ``cursor``."""
        if not self.can_accept:
            return text
        line_start = text.rfind("\n", 0, cursor) + 1
        if self.lead is None:
            return text[:cursor] + "\n".join(self.lines) + text[cursor:]
        line_end = text.find("\n", cursor)
        line_end = len(text) if line_end < 0 else line_end
        return text[:line_start] + self.line_text(text[line_start:cursor]) + text[line_end:]


def render(content: str, lines: list[str], line: int, column: int) -> Rendered:
    """llama.vim's ``s:fim_render`` trimming rules for ``content`` at the cursor."""
    parts = content.split("\n")
    while parts and parts[-1] == "":
        parts.pop()
    if not parts:
        return Rendered([""], False)
    line_cur = lines[line] if line < len(lines) else ""
    lead: str | None = None
    if not line_cur.strip():
        # A whitespace line: the suggestion's own indentation, up to the line's, stays.
        width = min(len(parts[0]) - len(parts[0].lstrip()), len(line_cur))
        lead = parts[0][:width]
        parts[0] = parts[0][width:]
        line_cur = lead
    line_cur_prefix = line_cur[:column]
    line_cur_suffix = line_cur[column:]
    body = parts
    empty = [""]
    if len(body) == 1 and body[0] == "":
        body = empty
    if len(body) > 1 and body[0] == "" and body[1:] == lines[line + 1 : line + len(body)]:
        body = empty
    if len(body) == 1 and body[0] == line_cur_suffix:
        body = empty
    compare = line + 1
    while compare < len(lines) - 1 and not lines[compare].strip():
        compare += 1
    next_line = lines[compare] if compare < len(lines) else None
    if next_line is not None and line_cur_prefix + body[0] == next_line:
        if len(body) == 1:
            body = empty
        elif len(body) == 2:
            following = lines[compare + 1] if compare + 1 < len(lines) else ""
            if body[-1] == following[: len(body[-1])]:
                body = empty
        elif body[1:] == lines[compare + 1 : compare + len(body)]:
            body = empty
    can_accept = bool("\n".join(body).strip())
    return Rendered(list(body), can_accept, lead)
