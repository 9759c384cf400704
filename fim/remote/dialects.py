"""What each kind of server is asked and what its stream says, as data in and out.

A dialect turns one request into an HTTP path and JSON body, and one decoded stream
event into a ``Chunk``. It does no I/O: ``fim.remote.backend`` sends and reads.

* ``openai``: ``/v1/completions`` with the raw FIM prompt (vLLM, TGI, llama-server, LM
  Studio, llamafiler, text-generation-webui, llama-cpp-python's server). Never a
  ``suffix`` key (refused or misused by all of them); always ``max_tokens`` (vLLM stops
  at 16 without it, llama-server never). SSE, ending with ``data: [DONE]``.
* ``llama-server``: ``/infill`` (the server builds the FIM prompt from the model's own
  tokens and truncates it to its batch) or, with ``useInfill`` off, ``/completion`` with
  the raw prompt. SSE without ``[DONE]``: the last event has ``stop: true``.
* ``ollama``: ``/api/generate`` with ``raw: true`` and the raw prompt, streamed as NDJSON
  lines with ``done`` and ``done_reason``; ``num_ctx`` is set because Ollama's default
  depends on the GPU's memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from fim.backend import SamplingConfig, StopReason
from fim.remote.prompt import fim_prompt, stop_strings
from fim.templates import FimTemplate

DialectName = Literal["openai", "llama-server", "ollama"]
StreamFormat = Literal["sse", "ndjson"]


@dataclass(frozen=True)
class Ask:
    """One completion as the dialects need it."""

    prefix: str
    suffix: str
    template: FimTemplate
    model: str
    max_tokens: int
    sampling: SamplingConfig
    #: Ollama's context size; other servers fix theirs at start.
    n_ctx: int
    keep_alive: str
    #: Other files of the workspace, (path, text), shown before the current file.
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Chunk:
    """One stream event: new text, and whether and why the stream ended."""

    text: str = ""
    done: bool = False
    stop_reason: StopReason | None = None
    #: The prompt's size in tokens, when the server reports it (calibrates the ratio).
    prompt_tokens: int | None = None
    error: str | None = None


class ServerError(Exception):
    """The server answered, but with an error; the message says which and why."""


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("error") or json.dumps(error))
    return str(error)


def _stop_reason(finish: Any) -> StopReason:
    return "max_tokens" if finish in ("length", "limit") else "eog"


@dataclass(frozen=True)
class Dialect:
    """The common part: headers, health path and stream format."""

    name: DialectName = "openai"
    stream_format: StreamFormat = "sse"
    health_path: str = "/health"

    def request(self, ask: Ask) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def chunk(self, event: dict[str, Any]) -> Chunk:
        raise NotImplementedError


@dataclass(frozen=True)
class OpenAI(Dialect):
    name: DialectName = "openai"

    def request(self, ask: Ask) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": ask.model,
            "prompt": fim_prompt(ask.template, ask.prefix, ask.suffix),
            "max_tokens": ask.max_tokens,
            "temperature": ask.sampling.temperature,
            "top_p": ask.sampling.top_p,
            "seed": ask.sampling.seed,
            "stop": stop_strings(ask.template),
            "stream": True,
        }
        return "/v1/completions", body

    def chunk(self, event: dict[str, Any]) -> Chunk:
        if "error" in event:
            return Chunk(done=True, stop_reason="error", error=_error_text(event["error"]))
        choices = event.get("choices") or [{}]
        choice = choices[0] if isinstance(choices[0], dict) else {}
        finish = choice.get("finish_reason")
        usage = event.get("usage") if isinstance(event.get("usage"), dict) else {}
        return Chunk(
            text=str(choice.get("text") or ""),
            done=finish is not None,
            stop_reason=_stop_reason(finish) if finish is not None else None,
            prompt_tokens=usage.get("prompt_tokens") if usage else None,
        )


@dataclass(frozen=True)
class LlamaServer(Dialect):
    name: DialectName = "llama-server"
    #: ``/infill`` (server-side FIM from the model's own tokens) or ``/completion``.
    use_infill: bool = True

    def request(self, ask: Ask) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "n_predict": ask.max_tokens,
            "temperature": ask.sampling.temperature,
            "top_k": ask.sampling.top_k,
            "top_p": ask.sampling.top_p,
            "seed": ask.sampling.seed,
            "stop": stop_strings(ask.template),
            "stream": True,
            # Keep the prompt's evaluated tokens in the slot for the next keystroke.
            "cache_prompt": True,
        }
        if self.use_infill:
            # Tokenized by the server with special-token parsing off: no marker injection.
            extra = [{"filename": path, "text": text} for path, text in ask.extra]
            body.update(input_prefix=ask.prefix, input_suffix=ask.suffix, input_extra=extra)
            return "/infill", body
        body["prompt"] = fim_prompt(ask.template, ask.prefix, ask.suffix)
        return "/completion", body

    def chunk(self, event: dict[str, Any]) -> Chunk:
        if "error" in event:
            return Chunk(done=True, stop_reason="error", error=_error_text(event["error"]))
        done = bool(event.get("stop"))
        evaluated = event.get("tokens_evaluated")
        return Chunk(
            text=str(event.get("content") or ""),
            done=done,
            stop_reason=_stop_reason(event.get("stop_type")) if done else None,
            prompt_tokens=int(evaluated) if done and isinstance(evaluated, int) and evaluated else None,
        )


@dataclass(frozen=True)
class Ollama(Dialect):
    name: DialectName = "ollama"
    stream_format: StreamFormat = "ndjson"
    health_path: str = "/api/version"

    def request(self, ask: Ask) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": ask.model,
            # Ollama generates nothing for an empty prompt; the markers make it non-empty.
            "prompt": fim_prompt(ask.template, ask.prefix, ask.suffix),
            "raw": True,
            "stream": True,
            "keep_alive": ask.keep_alive,
            "options": {
                "num_predict": ask.max_tokens,
                "num_ctx": ask.n_ctx,
                "temperature": ask.sampling.temperature,
                "top_k": ask.sampling.top_k,
                "top_p": ask.sampling.top_p,
                "seed": ask.sampling.seed,
                "stop": stop_strings(ask.template),
            },
        }
        return "/api/generate", body

    def chunk(self, event: dict[str, Any]) -> Chunk:
        if "error" in event:
            return Chunk(done=True, stop_reason="error", error=_error_text(event["error"]))
        done = bool(event.get("done"))
        reason = event.get("done_reason")
        if done and reason == "load":
            return Chunk(done=True, stop_reason="error", error="Ollama only loaded the model (empty prompt)")
        count = event.get("prompt_eval_count")
        return Chunk(
            text=str(event.get("response") or ""),
            done=done,
            stop_reason=_stop_reason(reason) if done else None,
            prompt_tokens=int(count) if done and isinstance(count, int) and count else None,
        )


def dialect_named(name: str, *, use_infill: bool = True) -> Dialect:
    if name == "openai":
        return OpenAI()
    if name == "llama-server":
        return LlamaServer(use_infill=use_infill)
    if name == "ollama":
        return Ollama()
    raise ValueError(f"unknown remote backend {name!r} (openai, llama-server or ollama)")


def stream_events(line: str, stream_format: StreamFormat) -> tuple[dict[str, Any] | None, bool]:
    """Decode one line of a stream: (event or None, whether the stream says it ended).

    SSE: ``data: {json}`` carries an event, ``data: [DONE]`` ends the stream, lines that
    start with ``:`` are comments (llama-server's keep-alive pings) and ``event:``/``id:``
    lines and blank separators carry nothing we need. llama-server sends an error as
    ``error: {json}``. NDJSON: every non-blank line is one event.
    """
    line = line.strip()
    if not line or line.startswith(":"):
        return None, False
    if stream_format == "ndjson":
        payload = line
    else:
        field, _colon, payload = line.partition(":")
        payload = payload.strip()
        if field == "error":
            return {"error": _parse(payload) or payload}, True
        if field != "data":
            return None, False
        if payload == "[DONE]":
            return None, True
    event = _parse(payload)
    if event is None:
        raise ServerError(f"the stream carried something that is not JSON: {payload[:120]!r}")
    return event, False


def _parse(payload: str) -> dict[str, Any] | None:
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
