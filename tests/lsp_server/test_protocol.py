"""Every request gets an answer: bad params, bad JSON, bad ids, bad bytes, bad timing.

A real ``fim-lsp serve`` process spoken to byte by byte (``harness.stress.wire``). The
session is initialized but never sent ``initialized``, so no model loads: these tests
are about the protocol layer, and completion requests answer with nothing at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from harness.stress.wire import RawConnection, encode
from lsp_server.protocol import RepeatLimit

URI = "file:///protocol/a.py"
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def bare_daemon() -> Iterator[RawConnection]:
    connection = RawConnection()
    connection.start()
    connection.call(
        "initialize",
        {"processId": None, "capabilities": {}, "initializationOptions": {}},
        TIMEOUT,
    )
    connection.open(URI, "def f(x):\n    return x\n")
    yield connection
    connection.shutdown()


def inline_params(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "textDocument": {"uri": URI},
        "position": {"line": 1, "character": 4},
        "context": {"triggerKind": 1},
    }
    params.update(overrides)
    return params


def error_of(connection: RawConnection, method: str, params: Any) -> dict[str, Any]:
    answer = connection.call(method, params, TIMEOUT)
    assert answer.error is not None, f"{method} {params!r} was answered without an error: {answer.result!r}"
    return answer.error


def raw_answer(connection: RawConnection, body: bytes, request_id: Any) -> dict[str, Any]:
    """Send a body as it is and return the answer carrying ``request_id``."""
    before = len(connection.arrivals)
    connection.send_body(body)
    if request_id is not None:
        answer = connection.wait(request_id, TIMEOUT)
        assert answer is not None, f"no answer to {body!r}"
        return answer.message
    connection.call("fim/status", {}, TIMEOUT)  # handled in order: any answer is in by now
    fresh = [answer.message for answer in connection.arrivals[before:] if answer.message.get("id") is None]
    assert fresh, f"no null-id answer to {body!r}"
    return fresh[0]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        (inline_params(position={"line": -1, "character": 0}), "params.position"),
        (inline_params(position={"line": "one", "character": 0}), "params.position.line"),
        (inline_params(position={"line": 0}), "params.position.character"),
        (inline_params(textDocument="a.py"), "params.textDocument"),
        (None, "params"),
        ({"textDocument": {"uri": URI}}, "params.position"),
    ],
)
def test_params_that_do_not_deserialize_get_invalid_params_naming_the_field(
    bare_daemon: RawConnection, params: Any, named: str
) -> None:
    error = error_of(bare_daemon, "textDocument/inlineCompletion", params)
    assert error["code"] == -32602
    assert named in error["message"] and "textDocument/inlineCompletion" in error["message"]


def test_a_negative_line_says_what_was_wrong(bare_daemon: RawConnection) -> None:
    params = inline_params(position={"line": -1, "character": 0})
    error = error_of(bare_daemon, "textDocument/inlineCompletion", params)
    assert "line" in error["message"] and "-1" in error["message"]


def test_an_unknown_trigger_kind_from_a_newer_client_is_served(bare_daemon: RawConnection) -> None:
    answer = bare_daemon.call(
        "textDocument/inlineCompletion", inline_params(context={"triggerKind": 3}), TIMEOUT
    )
    assert answer.error is None
    assert answer.result == {"items": []}  # no model is loaded: nothing to suggest, but an answer


def test_a_body_that_is_not_json_is_answered_with_its_id(bare_daemon: RawConnection) -> None:
    body = b'{"jsonrpc": "2.0", "id": "cut", "method": "fim/status", "params": {'
    message = raw_answer(bare_daemon, body, "cut")
    assert message["error"]["code"] == -32700


def test_a_body_without_a_readable_id_is_answered_with_null(bare_daemon: RawConnection) -> None:
    message = raw_answer(bare_daemon, b"\x00\x01 not json at all", None)
    assert message["error"]["code"] == -32700


@pytest.mark.parametrize(
    ("body", "request_id", "code"),
    [
        (encode([1, 2, 3]), None, -32600),
        (encode({"id": 41, "method": "fim/status"}), 41, -32600),
        (encode({"jsonrpc": "1.0", "id": 42, "method": "fim/status"}), 42, -32600),
        (encode({"jsonrpc": "2.0", "id": {"nested": 1}, "method": "fim/status"}), None, -32600),
        (encode({"jsonrpc": "2.0", "id": 43, "method": None}), 43, -32600),
        (
            encode(
                {
                    "jsonrpc": "2.0",
                    "id": 44,
                    "method": "textDocument/didClose",
                    "params": {"textDocument": {"uri": "file:///protocol/other.py"}},
                }
            ),
            44,
            -32600,
        ),
        (
            encode({"jsonrpc": "2.0", "id": 45, "method": "initialize", "params": {"capabilities": {}}}),
            45,
            -32600,
        ),
        (encode({"jsonrpc": "2.0", "id": 46, "method": "no/such/method"}), 46, -32601),
    ],
)
def test_requests_that_are_not_valid_json_rpc_are_answered(
    bare_daemon: RawConnection, body: bytes, request_id: Any, code: int
) -> None:
    message = raw_answer(bare_daemon, body, request_id)
    assert message["error"]["code"] == code
    assert message["error"]["message"]


def test_a_request_without_params_is_served(bare_daemon: RawConnection) -> None:
    answer = bare_daemon.call("fim/status", None, TIMEOUT)
    assert answer.error is None and answer.result["state"] == "idle"


def test_huge_and_fractional_ids_are_echoed(bare_daemon: RawConnection) -> None:
    for request_id in (2**70, -5, 7.5, "x" * 500):
        answer = bare_daemon.call("fim/status", {}, TIMEOUT, request_id=request_id)
        assert answer.message["id"] == request_id


def test_invalid_utf8_and_lone_surrogates_become_replacement_characters(bare_daemon: RawConnection) -> None:
    uri = "file:///protocol/bytes.py"
    # Raw invalid UTF-8 in one document, a JSON-escaped lone surrogate in the other.
    item = {"uri": uri, "languageId": "python", "version": 1, "text": "a = 'X'\n"}
    body = encode({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": item}})
    bare_daemon.send_body(body.replace(b"X", b"\xff\xfe"))
    escaped = json.dumps(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didChange",
            "params": {
                "textDocument": {"uri": uri, "version": 2},
                "contentChanges": [
                    {
                        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
                        "text": "\ud800",
                    }
                ],
            },
        }
    ).encode()
    assert b"\\ud800" in escaped
    bare_daemon.send_body(escaped)
    status = bare_daemon.status(TIMEOUT)
    assert status["openDocuments"] >= 2
    # The daemon kept both and still answers for them.
    answer = bare_daemon.call(
        "textDocument/inlineCompletion", inline_params(textDocument={"uri": uri}), TIMEOUT
    )
    assert answer.error is None


def test_edits_of_unopened_documents_and_odd_ranges_keep_the_daemon_serving(
    bare_daemon: RawConnection,
) -> None:
    bare_daemon.change("file:///protocol/never-opened.py", 3, (0, 0), (0, 0), "x")
    bare_daemon.change(URI, 9, (5, 2), (0, 1), "reversed")
    bare_daemon.change(URI, 2, (10**6, 10**6), (10**6, 10**6), "far away")  # a version regression too
    bare_daemon.cancel("never-sent")
    bare_daemon.cancel(987654321)
    status = bare_daemon.status(TIMEOUT)
    assert status["state"] == "idle"
    assert bare_daemon.alive


def test_bad_input_is_counted_in_the_status(bare_daemon: RawConnection) -> None:
    error_of(bare_daemon, "textDocument/inlineCompletion", None)
    rejected = bare_daemon.status(TIMEOUT)["rejectedMessages"]
    assert rejected.get("invalid_params", 0) >= 1


def test_the_console_log_repeats_a_message_only_so_often() -> None:
    # A client that never reads stderr must not see the daemon block on a full pipe.
    limit = RepeatLimit(first=3, every=10)
    record = logging.LogRecord("pygls", logging.WARNING, __file__, 1, "unknown id %s", ("x",), None)
    passed = [limit.filter(record) for _ in range(30)]
    assert passed[:3] == [True, True, True]
    assert sum(passed) == 3 + 3  # then the 10th, 20th and 30th
    other = logging.LogRecord("pygls", logging.WARNING, __file__, 1, "another message", (), None)
    assert limit.filter(other)
