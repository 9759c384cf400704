"""The servers behind one ``endpoint`` list: routing, health and a circuit breaker each.

Routing: a document stays on the server it last used while that server is healthy, so
the server's prompt cache keeps its text warm; a new document (or one whose server went
down) goes to the server with the fewest requests in flight, then the fewest documents,
then the fastest first token.

Circuit breaker: a server that fails to connect, cuts a stream or misses the first-token
deadline is opened at once (one lost suggestion, not one per keystroke); HTTP 5xx
answers open it after ``FAILURES_TO_OPEN`` in a row. An open server gets no requests
until its cool-down has passed and a health check (``/health``, Ollama's
``/api/version``) answers; the cool-down doubles up to ``MAX_COOL_DOWN_S`` while it
stays down. Only touched from the remote backend's event-loop thread, except
``snapshot``, which reads plain values.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

ServerState = Literal["unknown", "healthy", "down"]

FAILURES_TO_OPEN = 3
FIRST_COOL_DOWN_S = 2.0
MAX_COOL_DOWN_S = 60.0
#: Weight of the newest latency in the moving average.
LATENCY_WEIGHT = 0.3


@dataclass
class Server:
    url: str
    state: ServerState = "unknown"
    in_flight: int = 0
    requests: int = 0
    errors: int = 0
    last_error: str = ""
    #: Moving average of the time to the first streamed text, ms.
    first_token_ms: float | None = None
    #: Moving average of a whole request's time, ms.
    total_ms: float | None = None
    failures_in_a_row: int = 0
    cool_down_s: float = FIRST_COOL_DOWN_S
    #: While open: no request before this (time.monotonic()).
    open_until: float = 0.0

    @property
    def open(self) -> bool:
        return self.state == "down"

    def usable(self, now: float) -> bool:
        """Whether a request may go here: healthy, unknown, or down with the cool-down over."""
        return not self.open or now >= self.open_until

    def succeeded(self, first_token_ms: float | None, total_ms: float) -> None:
        self.state = "healthy"
        self.failures_in_a_row = 0
        self.cool_down_s = FIRST_COOL_DOWN_S
        if first_token_ms is not None:
            self.first_token_ms = _average(self.first_token_ms, first_token_ms)
        self.total_ms = _average(self.total_ms, total_ms)

    def failed(self, message: str, *, opens: bool) -> bool:
        """Count a failure; returns True when this one opened the breaker."""
        self.errors += 1
        self.last_error = message
        self.failures_in_a_row += 1
        if not (opens or self.failures_in_a_row >= FAILURES_TO_OPEN):
            return False
        was_open = self.open
        self.state = "down"
        self.still_down(message)
        return not was_open

    def rejected(self, message: str) -> None:
        """The server refused this request (a 4xx, an error event): no sign of ill health."""
        self.errors += 1
        self.last_error = message

    def still_down(self, message: str) -> None:
        """A health check of an open server failed again: wait longer before the next try."""
        self.last_error = message
        self.open_until = time.monotonic() + self.cool_down_s
        self.cool_down_s = min(MAX_COOL_DOWN_S, self.cool_down_s * 2)

    def answered_health(self) -> None:
        """A health check passed: close the breaker."""
        if self.open:
            self.open_until = 0.0
        self.state = "healthy"
        self.failures_in_a_row = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "state": self.state,
            "inFlight": self.in_flight,
            "requests": self.requests,
            "errors": self.errors,
            "lastError": self.last_error,
            "firstTokenMs": None if self.first_token_ms is None else round(self.first_token_ms, 1),
            "totalMs": None if self.total_ms is None else round(self.total_ms, 1),
        }


def _average(old: float | None, new: float) -> float:
    return new if old is None else (1 - LATENCY_WEIGHT) * old + LATENCY_WEIGHT * new


@dataclass
class ServerPool:
    servers: list[Server]
    #: Document key → the server it last used.
    _homes: dict[str, Server] = field(default_factory=dict)

    @classmethod
    def of(cls, urls: list[str]) -> ServerPool:
        return cls([Server(url.rstrip("/")) for url in urls])

    def pick(self, key: str | None, exclude: tuple[Server, ...] = ()) -> Server | None:
        """The server for a request of document ``key``; None when every server is open."""
        now = time.monotonic()
        home = self._homes.get(key) if key is not None else None
        if home is not None and home not in exclude and home.state == "healthy":
            return home
        candidates = [s for s in self.servers if s not in exclude and s.usable(now)]
        if not candidates:
            return None
        homed = {id(server): 0 for server in candidates}
        for server in self._homes.values():
            if id(server) in homed:
                homed[id(server)] += 1
        # Fewest requests in flight, then fewest documents (their prompt caches compete
        # for the server's slots), then the fastest first token.
        chosen = min(
            candidates,
            key=lambda s: (s.open, s.in_flight, homed[id(s)], s.first_token_ms or 0.0),
        )
        if key is not None:
            self._homes[key] = chosen
        return chosen

    def forget(self, key: str) -> None:
        self._homes.pop(key, None)

    def any_usable(self) -> bool:
        now = time.monotonic()
        return any(s.usable(now) for s in self.servers)

    def snapshot(self) -> list[dict[str, Any]]:
        return [server.snapshot() for server in self.servers]
