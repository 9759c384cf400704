"""A model served over HTTP as a ``Backend``: the same pipeline, another place to run.

``RemoteBackend`` builds each request from the same context cut and template data as
the in-process engine, streams the answer through the pipeline's ``on_text`` (the
streaming post-processing, whose early stop closes the stream) and cancels a stale
request by closing its connection (``fim.remote.loop``). Several servers in ``endpoint``
are routed, health-checked and broken out per server by ``fim.remote.servers``.

Failures never raise into the daemon: a request that fails returns ``stop_reason
"error"`` with ``stats.error`` saying what happened, and the daemon shows it once.

Token budgets are counted by the server's ``/tokenize`` where it has one (llama-server,
vLLM), else by a local GGUF vocabulary of the same family, else by a chars-per-token
ratio calibrated from the first answer's prompt size; ``describe`` says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import httpx

from fim.backend import (
    BackendCapabilities,
    CompletionRequest,
    CompletionResult,
    CompletionStats,
    ModelLoadError,
    RepositoryContext,
    StopCallback,
)
from fim.remote.dialects import Ask, Dialect, DialectName, ServerError, dialect_named, stream_events
from fim.remote.loop import LoopThread
from fim.remote.prompt import TemplateChoiceError, fim_prompt, template_for_model, template_named
from fim.remote.servers import Server, ServerPool
from fim.templates import FimTemplate

if TYPE_CHECKING:
    from fim.backend import Backend
    from fim.llama.vocabulary import Vocabulary

log = logging.getLogger(__name__)

#: Characters per token before the server has told us a prompt's size (code, BPE).
ASSUMED_CHARS_PER_TOKEN = 3.5
TOKEN_COUNT_CACHE = 512


@dataclass(frozen=True)
class RemoteSettings:
    """Everything a remote backend needs; made from the options by ``fim.config``."""

    dialect: DialectName
    endpoints: tuple[str, ...]
    #: The served model's name ("" lets the server choose, where it can).
    model: str
    #: "auto" (from the model's name) or a family name from ``fim.templates``.
    fim_template: str
    #: Name of the environment variable holding a bearer token ("" for none).
    api_key_env: str
    connect_timeout_s: float
    first_token_timeout_s: float
    n_ctx: int
    use_infill: bool = True
    keep_alive: str = "30m"
    #: A local GGUF to count tokens with when the server cannot (same family only).
    local_vocabulary: str | None = None
    health_interval_s: float = 5.0


#: What a failed request says of its server: it is down (open its breaker at once), it
#: may be failing (a strike towards opening it), or nothing (our request was refused).
ServerHealth = Literal["down", "strike", "none"]


class RequestFailed(Exception):
    """One request to one server failed; ``health`` says what that tells of the server."""

    def __init__(self, message: str, *, health: ServerHealth, retryable: bool = False) -> None:
        super().__init__(message)
        self.health = health
        self.retryable = retryable


@dataclass
class _Reading:
    """One streamed answer as it arrives."""

    #: Everything generated, the typed word being healed included.
    raw: str = ""
    #: What the pipeline sees: ``raw`` after the healed word.
    text: str = ""
    first_token_ms: float | None = None
    stop_reason: str | None = None
    prompt_tokens: int | None = None
    chunks: int = 0
    #: The stream said it was over (SSE ``[DONE]``).
    ended: bool = False


class RemoteBackend:
    """Completions from one or more HTTP servers of one dialect."""

    def __init__(self, settings: RemoteSettings) -> None:
        if not settings.endpoints:
            raise ModelLoadError("backend is remote but endpoint lists no server URL")
        for url in settings.endpoints:
            if not url.startswith(("http://", "https://")):
                raise ModelLoadError(f"endpoint {url!r} is not an http:// or https:// URL")
        self.settings = settings
        self.dialect: Dialect = dialect_named(settings.dialect, use_infill=settings.use_infill)
        self.pool = ServerPool.of(list(settings.endpoints))
        #: Said once after loading (an unreachable server, a missing API key...).
        self.problems: list[str] = []
        headers = {}
        if settings.api_key_env:
            token = os.environ.get(settings.api_key_env, "")
            if token:
                headers["Authorization"] = f"Bearer {token}"
            else:
                self.problems.append(f"apiKeyEnv names {settings.api_key_env}, which is not set")
        self._loop = LoopThread(f"fim-remote-{settings.dialect}")
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(connect=settings.connect_timeout_s, read=None, write=10.0, pool=None),
            # Loopback and LAN servers; a proxy from the environment would only get in the way.
            trust_env=False,
        )
        self._chars_per_token = ASSUMED_CHARS_PER_TOKEN
        self._ratio_source = "assumed"
        self._token_cache: OrderedDict[str, int] = OrderedDict()
        self._tokenizer_url: str | None = None
        self._vocabulary_stack = contextlib.ExitStack()
        self._vocabulary: Vocabulary | None = None
        self.totals = {
            "requests": 0,
            "errors": 0,
            "cancelled": 0,
            "retried": 0,
            "heal_retries": 0,
            "generated_chunks": 0,
        }
        try:
            self._loop.call(self._check_all_health(), timeout=settings.connect_timeout_s + 5)
            self.model_name = settings.model or self._served_model_name()
            self.template = self._choose_template()
            self._choose_token_counter()
        except BaseException:
            self.close()
            raise
        for server in self.pool.servers:
            if server.state != "healthy":
                self.problems.append(f"{server.url} is not answering ({server.last_error}); will retry")
        self._health_task = self._loop.call(self._start_health_checks())

    # ------------------------------------------------------------------ setup
    def _served_model_name(self) -> str:
        """What the first answering server serves, for the template and the requests."""
        paths = {"openai": ["/v1/models"], "llama-server": ["/props", "/v1/models"], "ollama": []}
        for server in self.pool.servers:
            for path in paths[self.dialect.name]:
                with contextlib.suppress(Exception):
                    data = self._loop.call(
                        self._get_json(server, path), timeout=self.settings.connect_timeout_s + 5
                    )
                    name = data.get("model_path") or (data.get("data") or [{}])[0].get("id")
                    if name:
                        return str(name)
        if self.dialect.name == "ollama":
            raise ModelLoadError(
                "backend ollama needs remoteModel (the model to run, e.g. qwen2.5-coder:1.5b-base)"
            )
        return ""

    def _choose_template(self) -> FimTemplate:
        try:
            if self.settings.fim_template != "auto":
                return template_named(self.settings.fim_template)
            if not self.model_name:
                raise TemplateChoiceError(
                    "no server answered with its model's name; set remoteModel or fimTemplate"
                )
            return template_for_model(self.model_name)
        except TemplateChoiceError as error:
            raise ModelLoadError(str(error)) from error

    def _choose_token_counter(self) -> None:
        for server in self.pool.servers:
            if server.state != "healthy":
                continue
            with contextlib.suppress(Exception):
                self._loop.call(
                    self._tokenize(server.url, "def f():"), timeout=self.settings.connect_timeout_s + 5
                )
                self._tokenizer_url = server.url
                return
        if self.settings.local_vocabulary:
            try:
                from fim.llama.vocabulary import open_vocabulary  # loads llama.cpp's library

                vocabulary = self._vocabulary_stack.enter_context(
                    open_vocabulary(self.settings.local_vocabulary)
                )
            except Exception as error:
                log.info("no local vocabulary for token counts: %s", error)
                return
            if vocabulary.template.template.name == self.template.name:
                self._vocabulary = vocabulary
            else:
                self._vocabulary_stack.close()

    # ------------------------------------------------------------------ Backend: description
    @property
    def capabilities(self) -> BackendCapabilities:
        exact = self._tokenizer_url is not None or self._vocabulary is not None
        return BackendCapabilities(document_streams=False, token_healing=True, exact_token_counts=exact)

    def token_counting(self) -> str:
        ratio = f"{self._chars_per_token:.2f} characters per token ({self._ratio_source})"
        if self._vocabulary is not None:
            return f"local vocabulary {self.settings.local_vocabulary}"
        if self._tokenizer_url is not None:
            return f"server /tokenize; {ratio} while no server is healthy"
        return ratio

    def describe(self) -> dict[str, Any]:
        """Dialect, model, template and each server's state; never the API token."""
        return {
            "backend": self.dialect.name,
            "model_path": self.model_name,
            "model_description": f"{self.model_name or 'served model'} via {self.dialect.name}",
            "template": self.template.name,
            "order": self.template.order,
            "n_threads": None,
            "endpoints": list(self.settings.endpoints),
            "api_key_env": self.settings.api_key_env or None,
            "token_counting": self.token_counting(),
            "servers": self.pool.snapshot(),
            "totals": dict(self.totals),
            "busy": any(server.in_flight for server in self.pool.servers),
            "streams_held": 0,
            "problems": list(self.problems),
        }

    # ------------------------------------------------------------------ tokens
    def count_tokens(self, text: str) -> int:
        """Tokens in ``text``; called on the daemon's event loop, so it never waits long.

        A server's ``/tokenize`` is asked only while that server is healthy; otherwise,
        or when it fails, the count is estimated from the ratio.
        """
        if not text:
            return 0
        if self._vocabulary is not None:
            return self._vocabulary.count_tokens(text)
        cached = self._token_cache.get(text)
        if cached is not None:
            self._token_cache.move_to_end(text)
            return cached
        url = self._tokenizer()
        if url is None:
            return self._estimate(text)
        try:
            tokens = self._loop.call(self._tokenize(url, text), timeout=self.settings.connect_timeout_s)
        except Exception as error:
            log.info("server /tokenize failed (%s); estimating this count", error)
            return self._estimate(text)
        count = len(tokens)
        self._calibrate(len(text), count, source="the server's /tokenize")
        self._token_cache[text] = count
        while len(self._token_cache) > TOKEN_COUNT_CACHE:
            self._token_cache.popitem(last=False)
        return count

    def _tokenizer(self) -> str | None:
        """A healthy server to tokenize with, when the servers have ``/tokenize``."""
        if self._tokenizer_url is None:
            return None
        for server in self.pool.servers:
            if server.state == "healthy":
                return server.url
        return None

    def _estimate(self, text: str) -> int:
        return max(1, round(len(text) / self._chars_per_token))

    def _calibrate(self, chars: int, tokens: int, source: str) -> None:
        """Take a server's own count of a long text as the estimating ratio, once."""
        if self._ratio_source == "assumed" and tokens > 16:
            self._chars_per_token = chars / tokens
            self._ratio_source = f"calibrated on {source}"

    def build_prompt(self, prefix: str, suffix: str) -> Sequence[int]:
        """The prompt's ids where the server tokenizes; empty where it cannot say."""
        if self._tokenizer_url is None:
            return []
        prompt = fim_prompt(self.template, prefix, suffix)
        return self._loop.call(self._tokenize(self._tokenizer_url, prompt), timeout=30)

    # ------------------------------------------------------------------ requests
    def complete(
        self,
        request: CompletionRequest,
        cancel: threading.Event | None = None,
        on_text: StopCallback | None = None,
    ) -> CompletionResult:
        """Stream one completion; a set ``cancel`` closes the connection at once."""
        cancel = cancel or threading.Event()
        stats = CompletionStats()
        started = time.perf_counter()
        self.totals["requests"] += 1
        text = ""
        try:
            if cancel.is_set():
                stats.stop_reason = "cancelled"
            else:
                reading, cancelled = self._loop.run_cancellable(
                    self._complete(request, on_text, started), cancel
                )
                if cancelled or reading is None:
                    stats.stop_reason = "cancelled"
                else:
                    text = reading.text
                    stats.stop_reason = reading.stop_reason or "eog"  # type: ignore[assignment]
                    stats.tokens_generated = reading.chunks
                    stats.first_token_ms = reading.first_token_ms or 0.0
                    stats.tokens_prompt = reading.prompt_tokens or 0
        except RequestFailed as error:
            stats.stop_reason = "error"
            stats.error = str(error)
            self.totals["errors"] += 1
        except Exception as error:  # a server answering in a way we did not foresee
            log.exception("remote request failed")
            stats.stop_reason = "error"
            stats.error = f"{self.dialect.name}: unexpected answer ({type(error).__name__}: {error})"
            self.totals["errors"] += 1
        stats.total_ms = (time.perf_counter() - started) * 1000
        stats.decode_ms = max(0.0, stats.total_ms - stats.first_token_ms)
        if stats.stop_reason == "cancelled":
            self.totals["cancelled"] += 1
            text = ""
        return CompletionResult(text, stats)

    async def _complete(
        self, request: CompletionRequest, on_text: StopCallback | None, started: float
    ) -> _Reading:
        reading = await self._on_a_server(request, on_text, started)
        if reading.stop_reason == "heal_failed":
            # The model would not spell out the typed word from before it: ask again with
            # the word in the prompt. The server's prompt cache holds all but its tokens.
            self.totals["heal_retries"] += 1
            unhealed = replace(request, prefix=request.prefix + request.heal, heal="")
            reading = await self._on_a_server(unhealed, on_text, started)
        return reading

    async def _on_a_server(
        self, request: CompletionRequest, on_text: StopCallback | None, started: float
    ) -> _Reading:
        tried: list[Server] = []
        while True:
            server = self.pool.pick(request.stream_key, exclude=tuple(tried))
            if server is None:
                last = tried[-1].last_error if tried else self._down_summary()
                raise RequestFailed(f"no {self.dialect.name} server is answering: {last}", health="none")
            tried.append(server)
            try:
                return await self._stream(server, request, on_text, started)
            except RequestFailed as error:
                if error.health == "none":
                    server.rejected(str(error))
                elif server.failed(str(error), opens=error.health == "down"):
                    log.warning("%s: marked down: %s", server.url, error)
                # Only a connection never made is tried elsewhere: nothing was generated
                # and the request is still current (a cancel would have ended this task).
                if not error.retryable or len(tried) >= len(self.pool.servers):
                    raise
                self.totals["retried"] += 1

    def _down_summary(self) -> str:
        return "; ".join(f"{s.url}: {s.last_error or s.state}" for s in self.pool.servers)

    def _ask(self, request: CompletionRequest) -> Ask:
        return Ask(
            prefix=request.prefix,
            suffix=request.suffix,
            template=self.template,
            model=self.model_name,
            max_tokens=request.max_tokens,
            sampling=request.sampling,
            n_ctx=self.settings.n_ctx,
            keep_alive=self.settings.keep_alive,
            # llama-server's /infill puts these in the model's repository format itself.
            extra=request.repository.files if request.repository is not None else (),
        )

    async def _stream(
        self, server: Server, request: CompletionRequest, on_text: StopCallback | None, started: float
    ) -> _Reading:
        path, body = self.dialect.request(self._ask(request))
        reading = _Reading()
        server.in_flight += 1
        server.requests += 1
        try:
            await self._read(server, path, body, request, on_text, started, reading)
        finally:
            server.in_flight -= 1
        server.succeeded(reading.first_token_ms, (time.perf_counter() - started) * 1000)
        if reading.prompt_tokens:
            prompt_chars = len(body.get("prompt") or request.prefix + request.suffix)
            self._calibrate(prompt_chars, reading.prompt_tokens, source="the server's count of a prompt")
        return reading

    async def _read(
        self,
        server: Server,
        path: str,
        body: dict[str, Any],
        request: CompletionRequest,
        on_text: StopCallback | None,
        started: float,
        reading: _Reading,
    ) -> None:
        where = f"{self.dialect.name} server {server.url}"
        deadline = self.settings.first_token_timeout_s
        try:
            async with (
                asyncio.timeout(deadline) as scope,
                self._client.stream("POST", server.url + path, json=body) as response,
            ):
                if response.status_code != 200:
                    detail = (await response.aread()).decode("utf-8", "replace").strip()[:300]
                    # 4xx: our request or settings (model name...), not the server's health.
                    raise RequestFailed(
                        f"{where} answered HTTP {response.status_code} to {path}: {detail}",
                        health="strike" if response.status_code >= 500 else "none",
                    )
                async for line in response.aiter_lines():
                    event, ended = stream_events(line, self.dialect.stream_format)
                    if ended and event is None:
                        reading.ended = True
                        break
                    if event is None:
                        continue
                    chunk = self.dialect.chunk(event)
                    if chunk.error:
                        raise RequestFailed(f"{where}: {chunk.error}", health="none")
                    if chunk.prompt_tokens:
                        reading.prompt_tokens = chunk.prompt_tokens
                    if chunk.done:
                        reading.stop_reason = chunk.stop_reason
                    if not chunk.text:
                        continue
                    if reading.first_token_ms is None:
                        reading.first_token_ms = (time.perf_counter() - started) * 1000
                        budget = request.time_budget_ms
                        scope.reschedule(
                            None if budget is None else asyncio.get_running_loop().time() + budget / 1000
                        )
                    reading.raw += chunk.text
                    reading.chunks += 1
                    self.totals["generated_chunks"] += 1
                    stop = self._heal(reading, request.heal)
                    if stop is None and on_text is not None and reading.text and on_text(reading.text):
                        stop = "callback"
                    if stop is not None:
                        # Leaving the block closes the connection: the server stops.
                        reading.stop_reason = stop
                        return
        except TimeoutError:
            if reading.first_token_ms is None:
                raise RequestFailed(
                    f"{where}: no text within the first-token deadline of {deadline:g} s", health="strike"
                ) from None
            reading.stop_reason = "time_budget"
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise RequestFailed(
                f"{where}: cannot connect ({error or type(error).__name__})", health="down", retryable=True
            ) from None
        except httpx.TransportError as error:
            raise RequestFailed(
                f"{where}: the stream was cut ({error or type(error).__name__})", health="down"
            ) from None
        except ServerError as error:
            raise RequestFailed(f"{where}: {error}", health="strike") from None
        if reading.stop_reason is None and not reading.ended:
            # Every dialect ends with a last event (or [DONE]); without it the stream was cut.
            raise RequestFailed(f"{where}: the stream ended before its last event", health="down")

    @staticmethod
    def _heal(reading: _Reading, heal: str) -> str | None:
        """Token healing by text: the answer must spell out the typed word before it counts.

        The typed part of the word is left out of the prompt (``CompletionRequest.heal``),
        so that "retu" is completed as the model would write "return", not from the
        tokens "ret"+"u". A server cannot be made to sample only matching tokens, so an
        answer that goes another way is stopped at once ("heal_failed").
        """
        if len(reading.raw) <= len(heal):
            return None if heal.startswith(reading.raw) else "heal_failed"
        if not reading.raw.startswith(heal):
            return "heal_failed"
        reading.text = reading.raw[len(heal) :]
        return None

    # ------------------------------------------------------------------ HTTP helpers
    async def _get_json(self, server: Server, path: str) -> dict[str, Any]:
        response = await self._client.get(server.url + path, timeout=self.settings.connect_timeout_s + 5)
        response.raise_for_status()
        data = response.json()
        return data if isinstance(data, dict) else {}

    async def _tokenize(self, url: str, text: str) -> list[int]:
        # llama-server takes {"content"}, vLLM {"model", "prompt"}; each ignores the other's.
        # Buffer text is counted as text: control-token spellings in it stay plain.
        body = {
            "content": text,
            "prompt": text,
            "add_special": False,
            "add_special_tokens": False,
            "parse_special": False,
        }
        if self.model_name:
            body["model"] = self.model_name
        response = await self._client.post(
            url + "/tokenize", json=body, timeout=self.settings.connect_timeout_s + 5
        )
        response.raise_for_status()
        tokens = response.json().get("tokens")
        if not isinstance(tokens, list):
            raise ValueError("no tokens in the /tokenize answer")
        return tokens

    async def _check_health(self, server: Server) -> None:
        try:
            response = await self._client.get(
                server.url + self.dialect.health_path, timeout=self.settings.connect_timeout_s
            )
        except httpx.HTTPError as error:
            message = f"health check: {error or type(error).__name__}"
            if server.open:
                server.still_down(message)
            else:
                server.failed(message, opens=True)
            return
        # 404: a server without a health route is still a server that answers.
        if response.status_code in (200, 404):
            if server.state != "healthy":
                log.info("%s: answering again", server.url)
            server.answered_health()
        elif server.open:
            server.still_down(f"health check: HTTP {response.status_code}")
        else:
            server.failed(f"health check: HTTP {response.status_code}", opens=True)

    async def _check_all_health(self) -> None:
        await asyncio.gather(*(self._check_health(server) for server in self.pool.servers))

    async def _start_health_checks(self) -> asyncio.Task[None]:
        async def every_interval() -> None:
            while True:
                await asyncio.sleep(self.settings.health_interval_s)
                # A server busy with a request proved itself alive; check the others.
                idle = [s for s in self.pool.servers if not s.in_flight]
                await asyncio.gather(*(self._check_health(server) for server in idle))

        return asyncio.ensure_future(every_interval())

    # ------------------------------------------------------------------ documents, lifetime
    def prefill(self, request: CompletionRequest, cancel: threading.Event) -> int:
        """Not done: a server request to fill its cache would hold its slot like a completion."""
        return 0

    def warm(
        self,
        key: str,
        text: str,
        cancel: threading.Event,
        max_tokens: int | None = None,
        repository: RepositoryContext | None = None,
    ) -> int:
        """Nothing to warm here: the server keeps its own prompt cache."""
        return 0

    def forget(self, key: str) -> None:
        self.pool.forget(key)

    def close(self) -> None:
        if self._loop.loop.is_closed():
            return
        task = getattr(self, "_health_task", None)
        if task is not None:
            self._loop.loop.call_soon_threadsafe(task.cancel)
        with contextlib.suppress(Exception):
            self._loop.call(self._client.aclose(), timeout=5)
        self._loop.close()
        self._vocabulary_stack.close()


if TYPE_CHECKING:
    _implements_backend: type[Backend] = RemoteBackend
