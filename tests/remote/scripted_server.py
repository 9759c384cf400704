"""A loopback HTTP server whose answers a test writes: status, streamed lines, delays, cuts.

For the failures a real server cannot be made to show on demand (a 422 or 500, a
stream cut in the middle, a slow first token) and for Ollama, whose server cannot be
installed here: ``ollama_answer`` follows Ollama's documented ``/api/generate``.
Streams use chunked transfer encoding, as the real servers do, so a cut is a
connection closed before the last chunk.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    lines: list[str] = field(default_factory=list)
    content_type: str = "text/event-stream"
    #: Seconds before the first line is sent.
    first_delay_s: float = 0.0
    #: Seconds between lines.
    line_delay_s: float = 0.0
    #: Close the connection after this many lines, without ending the body.
    cut_after: int | None = None


@dataclass
class Received:
    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


Script = Callable[[Received], Answer]


class ScriptedServer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[Received] = []
        #: Streams the client closed before the end (a write failed).
        self.disconnects = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer({})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                self._answer(json.loads(raw or b"{}"))

            def _answer(self, body: dict[str, Any]) -> None:
                received = Received(self.command, self.path, body, dict(self.headers))
                owner.received.append(received)
                answer = owner.script(received)
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                time.sleep(answer.first_delay_s)
                try:
                    for number, line in enumerate(answer.lines):
                        if answer.cut_after is not None and number >= answer.cut_after:
                            self.close_connection = True
                            return
                        data = line.encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                        time.sleep(answer.line_delay_s)
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    owner.disconnects += 1
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def json_answer(data: Any, status: int = 200) -> Answer:
    return Answer(status=status, lines=[json.dumps(data)], content_type="application/json")


def sse(events: list[dict[str, Any]], *, done: bool = True) -> list[str]:
    lines = [f"data: {json.dumps(event)}\n\n" for event in events]
    return [*lines, "data: [DONE]\n\n"] if done else lines


#: What the scripted Ollama generates, in pieces, for any FIM prompt.
OLLAMA_PIECES = ["return", " a", " +", " b", "\n"]
OLLAMA_MODELS = {"qwen2.5-coder:0.5b-base"}


def ollama_answer(received: Received) -> Answer:
    """Ollama's ``/api/version`` and ``/api/generate``, as its API documentation says.

    ``/api/generate`` answers an unknown model with 404 and ``{"error": ...}``, an empty
    prompt with one ``done_reason: "load"`` line and no text, and otherwise streams
    NDJSON ``{"response", "done": false}`` lines and a last line with ``done: true``,
    ``done_reason`` ("stop", or "length" when ``num_predict`` ran out) and the counts.
    """
    ndjson = "application/x-ndjson"
    if received.path == "/api/version":
        return json_answer({"version": "0.12.0"})
    if received.path != "/api/generate":
        return json_answer({"error": "404 page not found"}, status=404)
    body = received.body
    model = body.get("model", "")
    if model not in OLLAMA_MODELS:
        return json_answer({"error": f'model "{model}" not found, try pulling it first'}, status=404)
    if not body.get("prompt"):
        return Answer(
            lines=[json.dumps({"model": model, "done": True, "done_reason": "load"}) + "\n"],
            content_type=ndjson,
        )
    limit = int(body.get("options", {}).get("num_predict", -1))
    pieces = OLLAMA_PIECES if limit < 0 else OLLAMA_PIECES[:limit]
    lines = [json.dumps({"model": model, "response": piece, "done": False}) + "\n" for piece in pieces]
    final = {
        "model": model,
        "response": "",
        "done": True,
        "done_reason": "length" if len(pieces) < len(OLLAMA_PIECES) else "stop",
        "prompt_eval_count": max(1, len(body["prompt"]) // 3),
        "eval_count": len(pieces),
    }
    return Answer(lines=[*lines, json.dumps(final) + "\n"], content_type=ndjson)
