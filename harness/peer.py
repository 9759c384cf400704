"""The benchmark peer: llama.cpp's ``llama-server`` ``/infill``, driven the way llama.vim drives it.

Three parts:

* request building and suggestion rendering, written from llama.vim's ``llama#fim`` and
  ``s:fim_render`` (autoload/llama.vim): the local context is up to 256 lines above the
  cursor line (``input_prefix``), the cursor line's text before the cursor (``prompt``)
  and the rest of the line plus 64 lines below (``input_suffix``); a line holding only
  whitespace is sent as empty with ``n_indent`` 0; an automatic request is not sent
  when more than 8 characters follow the cursor; responses are cached under hashes of
  the context and shown again when the typed text matches the start of a cached answer;
* ``LlamaVimSession``: llama.vim's request discipline for keystroke replay (at most one
  request in flight, a retry every 100 ms while busy, no cancellation);
* ``PeerServer``: ``--peer auto`` starts ``.peer/bin/llama-server`` on loopback with the
  daemon's model file and thread count, and stops it afterwards.

llama.vim's ring buffer of extra context (``input_extra``) fills from yanks and other
buffers; a single-file replay has none, so it is sent empty. Columns are code points
(Vim counts bytes; the fixtures are ASCII).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import json
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BINARY = ROOT / ".peer" / "bin" / "llama-server"

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
        keys = [_sha(self.prefix + self.middle + "Î" + self.suffix)]
        trimmed = self.prefix
        for _ in range(3):
            newline = trimmed.find("\n")
            trimmed = "" if newline < 0 else trimmed[newline + 1 :]
            if not trimmed:
                break
            keys.append(_sha(trimmed + self.middle + "Î" + self.suffix))
        return keys


def _sha(text: str) -> str:
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


# ---------------------------------------------------------------------- HTTP
@dataclass
class InfillResult:
    content: str
    elapsed_ms: float
    prompt_n: int  # prompt tokens evaluated by this request
    prompt_tokens: int  # prompt tokens in all (evaluated + reused from the cache)
    predicted_n: int
    prompt_ms: float
    predicted_ms: float
    stop_type: str
    raw: dict[str, Any]

    @property
    def reused(self) -> int:
        return max(0, self.prompt_tokens - self.prompt_n)


class PeerClient:
    """A blocking ``/infill`` client for one llama-server on loopback."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"--peer wants http://HOST:PORT, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.base = f"http://{self.host}:{self.port}"
        self.timeout = timeout

    def _connection(self, timeout: float | None = None) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)

    def health(self) -> bool:
        try:
            connection = self._connection(timeout=2.0)
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
            connection.close()
            return response.status == 200
        except OSError:
            return False

    def props(self) -> dict[str, Any]:
        connection = self._connection(timeout=10.0)
        connection.request("GET", "/props")
        response = connection.getresponse()
        data = json.loads(response.read() or b"{}")
        connection.close()
        return data if isinstance(data, dict) else {}

    def infill(self, body: dict[str, Any]) -> InfillResult:
        started = time.perf_counter()
        connection = self._connection()
        try:
            connection.request(
                "POST", "/infill", body=json.dumps(body), headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"llama-server /infill: HTTP {response.status}: {payload[:300]!r}")
        data = json.loads(payload)
        return InfillResult(
            content=str(data.get("content", "")),
            elapsed_ms=elapsed,
            prompt_n=int(data.get("timings/prompt_n", 0) or 0),
            prompt_tokens=int(data.get("tokens_evaluated", 0) or 0),
            predicted_n=int(data.get("timings/predicted_n", 0) or 0),
            prompt_ms=float(data.get("timings/prompt_ms", 0.0) or 0.0),
            predicted_ms=float(data.get("timings/predicted_ms", 0.0) or 0.0),
            stop_type=str(data.get("stop_type", "")),
            raw=data,
        )


# ---------------------------------------------------------------------- llama.vim session
@dataclass
class PeerRequest:
    """One ``/infill`` sent during a replay (llama.vim never cancels them)."""

    sent_at: float
    text: str  # the document when it was sent
    line: int
    column: int
    hashes: list[str]
    answered_at: float | None = None
    result: InfillResult | None = None
    error: str | None = None


@dataclass
class Shown:
    at: float
    rendered: Rendered
    line_prefix: str


@dataclass
class LlamaVimSession:
    """llama.vim's automatic FIM for one buffer: one request in flight, retry every 100 ms.

    The replay calls ``on_edit`` after every change, with the cursor where the editor
    has it; ``shown`` is set whenever a suggestion becomes visible for the current text.
    """

    client: PeerClient
    text: str = ""
    line: int = 0
    column: int = 0
    cache: dict[str, str] = field(default_factory=dict)
    requests: list[PeerRequest] = field(default_factory=list)
    skipped_cached: int = 0
    skipped_line_suffix: int = 0
    shown: Shown | None = None
    #: llama.vim's follow-up request for the state after accepting a shown suggestion.
    speculative: bool = False
    speculative_requests: int = 0
    on_event: Callable[[], None] | None = None
    _indent_last: int = -1
    _in_flight: asyncio.Task[None] | None = None
    _timer: asyncio.TimerHandle | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def busy(self) -> bool:
        return self._in_flight is not None or self._timer is not None

    def _notify(self) -> None:
        self._changed.set()
        if self.on_event is not None:
            self.on_event()

    async def wait_change(self, timeout: float) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def on_edit(self, text: str, line: int, column: int) -> None:
        """CursorMovedI: hide the hint, show a cached one if any, then ``llama#fim``."""
        self.text, self.line, self.column = text, line, column
        self.shown = None
        self.try_hint()
        self.fim()

    def try_hint(self) -> None:
        lines = buffer_lines(self.text)
        context = local_context(lines, self.line, self.column)
        raw = self.cache.get(context.hashes()[0])
        if raw is None:
            # A cached answer for up to 128 characters back, if the typed text matches it.
            typed_context = context.prefix + context.middle
            best = 0
            for back in range(1, min(128, len(typed_context)) + 1):
                removed = typed_context[-back:]
                key = _sha(typed_context[:-back] + "Î" + context.suffix)
                cached = self.cache.get(key)
                if not cached or not cached.startswith(removed) or len(cached) <= back:
                    continue
                rest = cached[back:]
                if raw is None or len(rest) > best:
                    raw, best = rest, len(rest)
        if raw is None:
            return
        rendered = render(raw, lines, self.line, self.column)
        self.shown = Shown(time.perf_counter(), rendered, context.line_cur_prefix)
        self._notify()
        if self.speculative:
            # What llama.vim keeps as the shown content: the rest of the line appended.
            prev = [*rendered.lines[:-1], rendered.lines[-1] + context.line_cur_suffix]
            self.fim(prev)

    def fim(self, prev: list[str] | None = None) -> None:
        if self._in_flight is not None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(RETRY_MS / 1000, self._retry, prev)
            return
        lines = buffer_lines(self.text)
        if prev:
            context = local_context_after(lines, self.line, prev, self._indent_last)
        else:
            context = local_context(lines, self.line, self.column)
        if len(context.line_cur_suffix) > MAX_LINE_SUFFIX:
            self.skipped_line_suffix += 1
            self._notify()
            return
        hashes = context.hashes()
        if any(key in self.cache for key in hashes):
            self.skipped_cached += 1
            self._notify()
            return
        self._indent_last = context.indent
        request = PeerRequest(time.perf_counter(), self.text, self.line, self.column, hashes)
        self.requests.append(request)
        limit = T_MAX_PREDICT_SPECULATIVE_MS if prev else T_MAX_PREDICT_MS
        if prev:
            self.speculative_requests += 1
        body = infill_body(context, t_max_predict_ms=limit)
        self._in_flight = asyncio.ensure_future(self._send(request, body))

    def _retry(self, prev: list[str] | None) -> None:
        self._timer = None
        self.fim(prev)

    async def _send(self, request: PeerRequest, body: dict[str, Any]) -> None:
        try:
            request.result = await asyncio.to_thread(self.client.infill, body)
        except Exception as error:  # a failed request is counted, the replay goes on
            request.error = str(error)
        if self.on_event is not None:
            # Observers see the request still unanswered, so its CPU time is still its own.
            self.on_event()
        request.answered_at = time.perf_counter()
        self._in_flight = None
        if request.result is not None:
            for key in request.hashes:
                self.cache[key] = request.result.content
            if self.shown is None or not self.shown.rendered.can_accept:
                self.try_hint()
        self._notify()

    async def drain(self) -> None:
        while self.busy:
            await self.wait_change(0.05)


# ---------------------------------------------------------------------- --peer auto
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PeerServer:
    """A llama-server we started (``--peer auto``) and must stop."""

    binary: Path
    model: Path
    threads: int
    n_ctx: int = 8192
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        # llama.vim's recommended settings (--fim-qwen-*-default: batch 1024, cache reuse
        # 256), one slot, and the daemon's threads, context size and attention kernel.
        return [
            str(self.binary),
            "-m",
            str(self.model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "-t",
            str(self.threads),
            "-tb",
            str(self.threads),
            "-c",
            str(self.n_ctx),
            "-np",
            "1",
            "-b",
            "1024",
            "-ub",
            "1024",
            "--cache-reuse",
            "256",
            "-fa",
            "off",
            "--no-webui",
        ]

    def start(self, timeout: float = 180.0) -> str:
        if not self.binary.is_file():
            raise FileNotFoundError(f"{self.binary} is missing: run `make peer` to build llama-server")
        self.port = self.port or free_port()
        handle, name = tempfile.mkstemp(prefix="fim-peer-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        client = PeerClient(self.url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self.process.returncode}); see {self.log_path}")
            if client.health():
                return self.url
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"llama-server did not become ready in {timeout:.0f} s; see {self.log_path}")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def resolve_binary(explicit: str | None = None) -> Path:
    return Path(explicit) if explicit else DEFAULT_BINARY
