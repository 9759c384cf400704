"""Routing and the circuit breaker of an endpoint list (no server needed)."""

from __future__ import annotations

import time

from fim.remote.servers import FAILURES_TO_OPEN, ServerPool


def test_documents_spread_and_stay_on_their_server() -> None:
    pool = ServerPool.of(["http://a:1/", "http://b:2"])
    first = pool.pick("file:///a.py")
    assert first is not None and first.url == "http://a:1"
    first.succeeded(50.0, 300.0)
    second = pool.pick("file:///b.py")
    assert second is not None and second is not first
    second.succeeded(10.0, 100.0)
    # a.py keeps its (slower) server while it is healthy: its prompt cache is there.
    assert pool.pick("file:///a.py") is first


def test_fewest_in_flight_wins_for_a_new_document() -> None:
    pool = ServerPool.of(["http://a:1", "http://b:2"])
    busy, idle = pool.servers
    busy.in_flight = 2
    assert pool.pick("file:///new.py") is idle


def test_a_dead_server_is_left_until_its_cool_down_and_health_check() -> None:
    pool = ServerPool.of(["http://a:1", "http://b:2"])
    dead, alive = pool.servers
    assert pool.pick("file:///a.py") is dead
    assert dead.failed("cannot connect", opens=True)
    # Its document moves; nothing is routed to the open breaker.
    assert pool.pick("file:///a.py") is alive
    assert pool.pick("file:///other.py") is alive
    assert pool.pick("file:///a.py", exclude=(alive,)) is None
    dead.open_until = time.monotonic() - 1
    assert dead.usable(time.monotonic())
    dead.answered_health()
    assert dead.state == "healthy" and dead.failures_in_a_row == 0
    assert pool.snapshot()[0]["errors"] == 1 and pool.snapshot()[0]["lastError"] == "cannot connect"


def test_server_errors_open_the_breaker_only_in_a_row() -> None:
    pool = ServerPool.of(["http://a:1"])
    (server,) = pool.servers
    for _ in range(FAILURES_TO_OPEN - 1):
        assert not server.failed("HTTP 500", opens=False)
    server.succeeded(None, 10.0)
    for _ in range(FAILURES_TO_OPEN - 1):
        assert not server.failed("HTTP 500", opens=False)
    assert server.failed("HTTP 500", opens=False)
    assert server.state == "down" and not pool.any_usable()
