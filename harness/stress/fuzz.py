"""``fim-lsp bench fuzz``: hypothesis-generated JSON-RPC/LSP traffic against a real daemon.

One ``fim-lsp serve`` process with the real model gets batches of messages drawn by
hypothesis, sent back to back with short random pauses, so that they interleave with
the completions they start:

* well-formed requests (inline and classic completions at any position, ``fim/status``,
  commands, unknown methods) and notifications (opens, edits, closes, cancels,
  settings), on a few documents: duplicate opens, changes for documents never opened,
  version regressions, reversed and out-of-range ranges, zero-width, combining and
  4-byte characters at the positions, CR/LF mixes, NULs, lone surrogates (as JSON
  escapes and as raw invalid UTF-8);
* the same messages with a field removed, a value of the wrong type, null params, a
  wrong ``jsonrpc``, an id of a bad type, a huge or fractional id;
* bodies that are not JSON (cut short, garbage, too deeply nested), JSON that is no
  message, and cancellations of ids never sent.

Every request must be answered, with a result or a JSON-RPC error, within
``--answer-timeout`` seconds: by its id, or with a null id where JSON-RPC says so (a
body that is not JSON, a request whose id is unusable). The process must stay up. After
the run a real completion, on a fresh document, must give the same text as before it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from harness.report import machine, markdown_table, percentile, round_or_none
from harness.runner import add_common_options, our_options
from harness.stress.wire import Answer, RawConnection, encode, frame, id_key

# ---------------------------------------------------------------------- the reference completion
REFERENCE_TEXT = '''def is_even(number):
    """Return True when number is divisible by two."""
    return num
'''
REFERENCE_POSITION = (2, 14)
#: Tests assert content, not speed: a generous budget keeps the reference deterministic,
#: and no cache, so that the completion after the run comes from the model again.
FUZZ_OPTIONS = {"timeBudgetMs": 60000, "cache": False}

# ---------------------------------------------------------------------- building blocks
URIS = (
    "file:///fuzz/a.py",
    "file:///fuzz/b.ts",
    "file:///fuzz/c.txt",
    "file:///fuzz/never-opened.go",
    "untitled:Untitled-1",
    "",
    "file:///fuzz/%ZZ%20odd name.py",
)
LANGUAGES = ("python", "typescript", "javascript", "go", "plaintext", "", "no-such-language")
#: Characters that make positions interesting: zero-width, combining, 4-byte, line breaks.
SPECIAL_CHARACTERS = (
    "\u200b",  # zero-width space
    "\u200d",  # zero-width joiner
    "\ufeff",  # byte-order mark
    "\u0301",  # combining acute accent
    "😀",
    "𝔘",
    "\U0010ffff",
    "\r\n",
    "\r",
    "\n",
    "\t",
    "\x00",
    "\ufffd",
    "é",
    "<|fim_middle|>",
)
CODE_FRAGMENTS = (
    "def f(x):\n    return x",
    "    ",
    "if (a) {\n  b();\n}",
    "import os\n",
    '"""doc"""',
    "x = [1, 2,",
    "((((",
    "}",
    "# comment ",
)
#: Options that can be changed without reloading the model (a reload is tested elsewhere).
SAFE_OPTIONS = {
    "maxTokens": st.integers(-5, 300),
    "multiline": st.sampled_from(["auto", "always", "never", "sometimes"]),
    "completeInComments": st.booleans(),
    "typeThrough": st.booleans(),
    "debounceMs": st.integers(-1, 300),
    "suffixTokens": st.integers(-1, 256),
    "prefixTokens": st.integers(0, 4096),
    "disabledLanguages": st.lists(st.sampled_from(LANGUAGES), max_size=2),
    "enabledLanguages": st.lists(st.sampled_from(LANGUAGES), max_size=2),
    "logLevel": st.sampled_from(["error", "warning", "info", "debug", "loud"]),
    "idlePrefill": st.booleans(),
    "idlePrefillMs": st.integers(0, 500),
    "speculative": st.booleans(),
    "noSuchOption": st.integers(),
}

JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def document_text() -> st.SearchStrategy[str]:
    """Document text: code, odd characters, line-break mixes, lone surrogates."""
    piece = st.one_of(
        st.sampled_from(CODE_FRAGMENTS),
        st.sampled_from(SPECIAL_CHARACTERS),
        st.text(max_size=12),
        st.integers(0xD800, 0xDFFF).map(chr),  # a lone surrogate
    )
    return st.lists(piece, max_size=25).map("".join)


def position() -> st.SearchStrategy[dict[str, Any]]:
    coordinate = st.one_of(st.integers(0, 12), st.integers(0, 80), st.sampled_from([2**31 - 1, 10**6]))
    return st.fixed_dictionaries({"line": coordinate, "character": coordinate})


def text_range() -> st.SearchStrategy[dict[str, Any]]:
    """Ranges in order, reversed, out of range, on lines that do not exist."""
    return st.fixed_dictionaries({"start": position(), "end": position()})


# ---------------------------------------------------------------------- one message
@dataclass(frozen=True)
class Draft:
    """One message before it gets its id: what it is, and how it must be answered."""

    kind: str
    #: A JSON value (sent with or without ASCII escapes) or raw bytes (sent as they are).
    payload: Any
    #: How the id is made: None for a notification; "int", "str", "huge", "negative",
    #: "float", "null", "bad" (a type JSON-RPC does not allow) for a request.
    id_style: str | None = None
    #: "by-id": an answer carrying the request's id; "some": an answer whose id the
    #: daemon cannot know (null, or one read from a broken body); "none": a notification.
    owed: str = "none"
    ascii_escapes: bool = True
    pause_ms: float = 0.0


ID_PLACEHOLDER = "\x00id\x00"


def _request(method: str, params: Any) -> dict[str, Any]:
    message = {"jsonrpc": "2.0", "id": ID_PLACEHOLDER, "method": method}
    if params is not ...:
        message["params"] = params
    return message


def _notification(method: str, params: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not ...:
        message["params"] = params
    return message


@st.composite
def well_formed(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A message an editor could send (though not always at a sensible moment)."""
    uri = draw(st.sampled_from(URIS))
    kind = draw(
        st.sampled_from(
            [
                "inline",
                "inline",
                "inline",
                "completion",
                "status",
                "command",
                "unknown-request",
                "open",
                "open",
                "change",
                "change",
                "change",
                "close",
                "cancel",
                "settings",
                "acceptance",
                "unknown-notification",
            ]
        )
    )
    identifier = {"uri": uri}
    if kind in ("inline", "completion"):
        params: dict[str, Any] = {"textDocument": identifier, "position": draw(position())}
        if kind == "inline":
            trigger = draw(st.sampled_from([1, 2, 2, 0, 3, 99]))
            params["context"] = {"triggerKind": trigger}
            return kind, _request("textDocument/inlineCompletion", params)
        return kind, _request("textDocument/completion", params)
    if kind == "status":
        return kind, _request("fim/status", draw(st.sampled_from([{}, None, ..., []])))
    if kind == "command":
        command = draw(st.sampled_from(["fim-lsp.accept", "fim-lsp.status", "no.such.command"]))
        arguments = draw(st.lists(JSON_VALUE, max_size=3))
        return kind, _request("workspace/executeCommand", {"command": command, "arguments": arguments})
    if kind == "unknown-request":
        method = draw(st.sampled_from(["fim/unknown", "textDocument/hover", "$/weird", "x" * 300]))
        return kind, _request(method, draw(JSON_VALUE))
    if kind == "open":
        item = {
            "uri": uri,
            "languageId": draw(st.sampled_from(LANGUAGES)),
            "version": draw(st.integers(-3, 2**31 - 1)),
            "text": draw(document_text()),
        }
        return kind, _notification("textDocument/didOpen", {"textDocument": item})
    if kind == "change":
        change = draw(
            st.one_of(
                st.fixed_dictionaries({"range": text_range(), "text": document_text()}),
                st.fixed_dictionaries({"text": document_text()}),
            )
        )
        changes = [change, *draw(st.lists(st.just(change), max_size=2))]
        version = draw(st.integers(-3, 50))  # versions go backwards too
        return kind, _notification(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": version}, "contentChanges": changes},
        )
    if kind == "close":
        return kind, _notification("textDocument/didClose", {"textDocument": identifier})
    if kind == "cancel":
        unknown = draw(st.one_of(st.integers(-(2**40), 2**40), st.text(max_size=10)))
        return kind, _notification("$/cancelRequest", {"id": unknown})
    if kind == "settings":
        chosen = draw(st.lists(st.sampled_from(sorted(SAFE_OPTIONS)), max_size=4, unique=True))
        values = {name: draw(st.one_of(SAFE_OPTIONS[name], JSON_LEAF)) for name in chosen}
        wrapped = draw(st.sampled_from(["flat", "section", "null"]))
        settings_value = {"fimLsp": values} if wrapped == "section" else values if wrapped == "flat" else None
        return kind, _notification("workspace/didChangeConfiguration", {"settings": settings_value})
    if kind == "acceptance":
        method = draw(
            st.sampled_from(["textDocument/didShowCompletion", "textDocument/didPartiallyAcceptCompletion"])
        )
        return kind, _notification(method, draw(JSON_VALUE))
    method = draw(st.sampled_from(["$/setTrace", "$/unknown", "fim/nothing", "initialized"]))
    return kind, _notification(method, draw(JSON_VALUE))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*prefix, index)))
    return found


def _set(container: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> None:
    for step in path[:-1]:
        container = container[step]
    if delete:
        del container[path[-1]]
    else:
        container[path[-1]] = value


@st.composite
def mutated(draw: st.DrawFn, message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``message`` with one thing wrong: a field gone, a value of the wrong type, bad params."""
    message = json.loads(json.dumps(message))
    params = message.get("params")
    paths = [("params", *path) for path in _paths(params)] if isinstance(params, dict | list) else []
    how = draw(st.sampled_from(["delete", "retype", "retype", "null-params", "jsonrpc", "method-type"]))
    if how in ("delete", "retype") and paths:
        path = draw(st.sampled_from(paths))
        if how == "delete":
            _set(message, path, None, delete=True)
        else:
            _set(message, path, draw(JSON_VALUE))
        return f"mutated-{how}", message
    if how == "jsonrpc":
        message["jsonrpc"] = draw(st.sampled_from(["1.0", "2", None, 2.0]))
        return "mutated-jsonrpc", message
    if how == "method-type":
        message["method"] = draw(st.one_of(st.integers(), st.none(), st.lists(st.integers(), max_size=2)))
        return "mutated-method", message
    message["params"] = draw(st.sampled_from([None, [], "params", 7]))
    return "mutated-params", message


@st.composite
def malformed(draw: st.DrawFn, message: dict[str, Any]) -> tuple[str, bytes]:
    """A body that is not a JSON-RPC message at all."""
    body = encode(message)
    how = draw(
        st.sampled_from(["truncated", "garbage", "invalid-utf8", "not-an-object", "nested", "no-jsonrpc"])
    )
    if how == "truncated":
        return "malformed-truncated", body[: draw(st.integers(1, max(1, len(body) - 1)))]
    if how == "garbage":
        return "malformed-garbage", draw(st.binary(min_size=1, max_size=64))
    if how == "invalid-utf8":
        junk = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80\x80"]))
        # At the start of a string value after the id (the method, a URI, a document's
        # text), so the JSON stays JSON and the id stays the one the answer must carry.
        starts = [match.end() for match in re.finditer(rb'"(?:method|uri|text|languageId)": "', body)]
        at = draw(st.sampled_from(starts)) if starts else len(body)
        return "malformed-invalid-utf8", body[:at] + junk + body[at:]
    if how == "not-an-object":
        value = draw(st.one_of(st.lists(JSON_LEAF, max_size=3), JSON_LEAF))
        return "malformed-not-an-object", json.dumps(value).encode()
    if how == "nested":
        depth = draw(st.sampled_from([50, 5000, 100_000]))
        return "malformed-nested", b"[" * depth + b"]" * depth
    without = {key: value for key, value in message.items() if key != "jsonrpc"}
    return "malformed-no-jsonrpc", encode(without)


@st.composite
def drafts(draw: st.DrawFn) -> Draft:
    """One message of any kind, with the pause after it."""
    kind, message = draw(well_formed())
    shape = draw(st.sampled_from(["plain"] * 6 + ["mutated"] * 3 + ["malformed"]))
    pause = draw(st.sampled_from([0.0] * 8 + [1.0, 5.0, 20.0, 60.0]))
    request = "id" in message
    id_style = (
        draw(st.sampled_from(["int"] * 6 + ["str"] * 3 + ["huge", "negative", "float", "null", "bad"]))
        if request
        else None
    )
    # A request is answered by its id when the id is one JSON-RPC allows; else with null.
    owed = ("by-id" if id_style not in ("null", "bad") else "some") if request else "none"
    ascii_escapes = draw(st.booleans())
    if shape == "mutated":
        kind, message = draw(mutated(message))
    elif shape == "malformed":
        kind, body = draw(malformed(message))
        if kind not in ("malformed-invalid-utf8", "malformed-no-jsonrpc"):
            owed = "some"  # not JSON, or JSON that is no message: answered with a null id
        return Draft(kind, body, id_style, owed, ascii_escapes, pause)
    return Draft(kind, message, id_style, owed, ascii_escapes, pause)


# ---------------------------------------------------------------------- sending and counting
@dataclass
class FuzzStats:
    messages: int = 0
    requests: int = 0
    bodies_not_json_rpc: int = 0
    answered: int = 0
    unanswered: int = 0
    #: Of those unanswered in time, how many were answered later (slow, not lost).
    late_answers: int = 0
    answered_with_error: int = 0
    null_id_answers: int = 0
    crashes: int = 0
    batches: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    error_codes: Counter[int] = field(default_factory=Counter)
    unanswered_examples: list[str] = field(default_factory=list)
    #: Messages of internal errors (-32603): a handler failed on what it was given.
    internal_errors: list[str] = field(default_factory=list)


class Fuzzer:
    """Sends drafts to one daemon and checks that every request is answered."""

    def __init__(
        self, connection: RawConnection, answer_timeout: float, record: IO[bytes] | None = None
    ) -> None:
        self.connection = connection
        self.answer_timeout = answer_timeout
        #: Every body sent, framed, for replaying a failure byte for byte.
        self.record = record
        self.stats = FuzzStats()
        self._serial = 0
        #: Every id the fuzzer waits on by id, so that a late answer is never taken for
        #: the answer to a broken body.
        self._by_id: set[str] = set()
        #: Requests that had no answer in time, checked again at the end.
        self._late: list[tuple[Any, str]] = []

    def _id(self, style: str) -> Any:
        self._serial += 1
        serial = self._serial
        return {
            "int": 1_000_000 + serial,
            "str": f"fuzz-{serial}",
            "huge": 2**64 + serial,
            "negative": -serial,
            "float": serial + 0.5,
            "null": None,
            "bad": {"serial": serial} if serial % 2 else [serial],
        }[style]

    def send_batch(self, batch: list[Draft]) -> None:
        connection = self.connection
        stats = self.stats
        waiting: list[tuple[Any, str]] = []
        owed_without_id: list[tuple[Any, str]] = []
        answers_before = len(connection.arrivals)
        for draft in batch:
            request_id = self._id(draft.id_style) if draft.id_style is not None else None
            if draft.owed == "by-id":
                connection.mark_sent(request_id)
                waiting.append((request_id, draft.kind))
                self._by_id.add(id_key(request_id))
            elif draft.owed == "some":
                owed_without_id.append((request_id, draft.kind))
            stats.messages += 1
            stats.requests += draft.owed != "none"
            stats.bodies_not_json_rpc += isinstance(draft.payload, bytes)
            stats.kinds[draft.kind] += 1
            body = self._body(draft, request_id)
            if self.record is not None:
                self.record.write(frame(body))
                self.record.flush()
            connection.send_body(body)
            if draft.pause_ms:
                time.sleep(draft.pause_ms / 1000)
        self._collect(waiting, owed_without_id, answers_before)
        stats.batches += 1
        if not connection.alive:
            stats.crashes += 1
            raise RuntimeError(f"the daemon exited: {connection.stderr_tail[-20:]}")

    def _body(self, draft: Draft, request_id: Any) -> bytes:
        if isinstance(draft.payload, bytes):
            return draft.payload.replace(encode(ID_PLACEHOLDER), encode(request_id))
        message = dict(draft.payload)
        if "id" in message:
            message["id"] = request_id
        text = json.dumps(message, ensure_ascii=draft.ascii_escapes)
        return text.encode("utf-8", "surrogatepass")

    def _collect(
        self, waiting: list[tuple[Any, str]], owed_without_id: list[tuple[Any, str]], answers_before: int
    ) -> None:
        """Wait for the batch's answers; count what never came."""
        connection = self.connection
        stats = self.stats
        for request_id, kind in waiting:
            sent = connection.sent_at(request_id) or time.perf_counter()
            answer = connection.wait(request_id, max(0.0, sent + self.answer_timeout - time.perf_counter()))
            if answer is None:
                stats.unanswered += 1
                self._late.append((request_id, kind))
                if len(stats.unanswered_examples) < 20:
                    stats.unanswered_examples.append(f"{kind} id={request_id!r}")
                continue
            stats.answered += 1
            stats.latencies_ms.append((answer.at - sent) * 1000)
            self._count_error(answer)

        def unclaimed() -> list[Answer]:
            # Answers to no request the fuzzer waits on by id: null ids, and ids read
            # from broken bodies.
            return [
                answer
                for answer in connection.arrivals[answers_before:]
                if id_key(answer.message.get("id")) not in self._by_id
            ]

        owed = len(owed_without_id)
        deadline = time.monotonic() + self.answer_timeout
        while len(unclaimed()) < owed and time.monotonic() < deadline:
            time.sleep(0.05)
        extra = unclaimed()
        stats.answered += min(len(extra), owed)
        stats.null_id_answers += sum(answer.message.get("id") is None for answer in extra)
        for answer in extra:
            self._count_error(answer)
        if len(extra) < owed:
            stats.unanswered += owed - len(extra)
            answered_ids = {id_key(answer.message.get("id")) for answer in extra}
            kinds = sorted(
                {kind for request_id, kind in owed_without_id if id_key(request_id) not in answered_ids}
            )
            stats.unanswered_examples.append(f"{owed - len(extra)} of {owed} owed an answer, among {kinds}")

    def late_answers(self) -> int:
        """How many of the requests counted unanswered were answered after their time ran out."""
        return sum(self.connection.answer(request_id) is not None for request_id, _kind in self._late)

    def _count_error(self, answer: Answer) -> None:
        error = answer.error
        if error is not None:
            self.stats.answered_with_error += 1
            code = int(error.get("code", 0))
            self.stats.error_codes[code] += 1
            if code == -32603 and len(self.stats.internal_errors) < 20:
                self.stats.internal_errors.append(str(error.get("message"))[:300])


def run_fuzz(
    connection: RawConnection,
    messages: int,
    batch_size: int,
    seed: int,
    answer_timeout: float,
    record: IO[bytes] | None = None,
) -> FuzzStats:
    """Send ``messages`` hypothesis-drawn messages in batches; returns the counts."""
    fuzzer = Fuzzer(connection, answer_timeout, record)
    batches = max(1, messages // batch_size)

    @hypothesis_seed(seed)
    @settings(
        max_examples=batches,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(drafts(), min_size=batch_size, max_size=batch_size))
    def one_batch(batch: list[Draft]) -> None:
        fuzzer.send_batch(batch)

    one_batch()
    fuzzer.stats.late_answers = fuzzer.late_answers()
    return fuzzer.stats


def reference_completion(connection: RawConnection, uri: str, timeout: float = 120.0) -> str:
    """The inline completion at the reference position of a fresh reference document."""
    connection.open(uri, REFERENCE_TEXT)
    line, character = REFERENCE_POSITION
    request_id = connection.inline(uri, line, character, invoked=True)
    answer = connection.wait(request_id, timeout)
    connection.close_document(uri)
    if answer is None or not isinstance(answer.result, dict):
        return ""
    items = answer.result.get("items") or []
    return str(items[0].get("insertText", "")) if items else ""


def fuzz_session(
    options: dict[str, Any], messages: int, batch_size: int, seed: int, answer_timeout: float
) -> dict[str, Any]:
    """A daemon, the reference completion, the fuzz run, the reference again; the figures."""
    connection = RawConnection(settings={})
    connection.start()
    started = time.perf_counter()
    try:
        connection.initialize_ready(options)
        before = reference_completion(connection, "file:///fuzz-reference/before.py")
        stats = run_fuzz(connection, messages, batch_size, seed, answer_timeout)
        # The settings the fuzz changed go back: the workspace layer is replaced whole.
        connection.notify("workspace/didChangeConfiguration", {"settings": {"fimLsp": {}}})
        after = reference_completion(connection, "file:///fuzz-reference/after.py")
        final_status = connection.status()
    finally:
        exit_code = connection.shutdown()
    latencies = stats.latencies_ms
    return {
        "machine": machine(),
        "seed": seed,
        "messages": stats.messages,
        "requests": stats.requests,
        "bodies_not_json_rpc": stats.bodies_not_json_rpc,
        "answered": stats.answered,
        "unanswered": stats.unanswered,
        "answered_late": stats.late_answers,
        "answered_with_error": stats.answered_with_error,
        "null_id_answers": stats.null_id_answers,
        "crashes": stats.crashes + (0 if exit_code == 0 else 1),
        "exit_code": exit_code,
        "answer_p50_ms": round_or_none(percentile(latencies, 0.5)),
        "answer_p99_ms": round_or_none(percentile(latencies, 0.99)),
        "answer_max_ms": round_or_none(max(latencies) if latencies else None),
        "reference_before": before,
        "reference_after": after,
        "reference_same": bool(before) and before == after,
        "kinds": dict(sorted(stats.kinds.items())),
        "error_codes": {str(code): count for code, count in sorted(stats.error_codes.items())},
        "unanswered_examples": stats.unanswered_examples,
        "internal_errors": stats.internal_errors,
        "daemon_stderr_lines": connection.stderr_lines,
        "daemon_tracebacks_logged": connection.tracebacks,
        "rejected_by_daemon": final_status.get("rejectedMessages"),
        "seconds": round(time.perf_counter() - started, 1),
    }


def markdown(report: dict[str, Any]) -> str:
    rows = [
        ("messages", report["messages"]),
        ("requests (incl. bodies that are not JSON-RPC)", report["requests"]),
        ("answered", report["answered"]),
        ("unanswered", report["unanswered"]),
        ("answered with a JSON-RPC error", report["answered_with_error"]),
        ("crashes", report["crashes"]),
        (
            "answer p50 / p99 / max ms",
            f"{report['answer_p50_ms']} / {report['answer_p99_ms']} / {report['answer_max_ms']}",
        ),
        (
            "reference completion before / after",
            f"{report['reference_before']!r} / {report['reference_after']!r}",
        ),
        ("seconds", report["seconds"]),
    ]
    return markdown_table(["fuzz figure", "value"], rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fim-lsp bench fuzz", description=__doc__.split("\n\n")[0])
    add_common_options(parser)
    parser.add_argument("--messages", type=int, default=10_000, help="messages to send (default 10000)")
    parser.add_argument("--batch", type=int, default=100, help="messages per hypothesis example")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (the run is reproducible)")
    parser.add_argument("--answer-timeout", type=float, default=180.0, help="seconds a request may take")
    args = parser.parse_args(argv)
    options = {**FUZZ_OPTIONS, **our_options(args)}
    report = fuzz_session(options, args.messages, args.batch, args.seed, args.answer_timeout)
    report["markdown"] = markdown(report)
    from harness.report import emit_report

    emit_report(args, report)
    ok = report["unanswered"] == 0 and report["crashes"] == 0 and report["reference_same"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
