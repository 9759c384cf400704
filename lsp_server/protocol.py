"""The daemon's pygls server and protocol classes, and the names it adds to the protocol.

``FimServer`` is the pygls ``LanguageServer`` with the two protocol helpers every
handler needs (the negotiated position encoding and a user-visible message). It holds
no daemon state: that lives in ``lsp_server.services``, which the handlers get when
they are registered.

``FimProtocol`` is pygls' LSP protocol made to answer every request, whatever arrives.
pygls deserializes a message inside ``json.loads``' object hook; when that fails the
message is lost and an editor waits for its answer forever. Here:

* a request whose params do not deserialize gets -32602 InvalidParams naming the field
  and what was wrong with it (a notification is dropped with a warning);
* a body that is not JSON gets -32700 ParseError, with the request's id when it can
  be read from the bytes (else null, as JSON-RPC says);
* something that is not a JSON-RPC 2.0 request (an array, a wrong version, a bad id),
  a second ``initialize`` and any request after ``shutdown`` get -32600 InvalidRequest;
  a second ``initialized`` notification is dropped (it would load the model again);
* an unknown ``InlineCompletionTriggerKind`` (a newer client's) is read as Automatic;
* invalid UTF-8 bytes and lone UTF-16 surrogates in strings become U+FFFD, one per
  surrogate, so that UTF-16 positions in the rest of the text stay right.

Documents are held once, by the daemon's own ``fim.context.Document``: pygls' workspace
copy is not kept, because updating it costs time in proportion to the document's
size on every keystroke and nothing in the daemon reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sys
import threading
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, cast

import cattrs
from cattrs.v import format_exception
from lsprotocol import types
from pygls.exceptions import FeatureNotificationError, FeatureRequestError
from pygls.io_ import StdoutWriter, run_async
from pygls.lsp.server import LanguageServer
from pygls.protocol import (
    JsonRPCNotification,
    JsonRPCRequestMessage,
    JsonRPCResponseMessage,
    LanguageServerProtocol,
    default_converter,
    lsp_method,
)

from fim import __version__
from fim.positions import PositionEncoding

VERSION = __version__
#: Custom request: the daemon's state and counters, as JSON.
STATUS_METHOD = "fim/status"
#: Command attached to every inline item: the editor runs it when the user accepts.
ACCEPT_COMMAND = "fim-lsp.accept"
STATUS_COMMAND = "fim-lsp.status"
#: Work-done progress token of a model load; each load appends "/<n>".
PROGRESS_TOKEN = "fim-lsp/model"

#: JSON-RPC error codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
#: Warnings of one kind of bad input written before the rest go to the debug log only:
#: an editor that sends the same bad message on every keystroke must not flood the log.
WARNINGS_PER_KIND = 5

log = logging.getLogger(__name__)

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_CAMEL = re.compile(r"_([a-z])")
#: A top-level request id in a body that is not JSON: the first "id" key with a value.
_ID_IN_BYTES = re.compile(r'"id"\s*:\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|"(?:[^"\\]|\\.)*")')


def encoding_of(value: str | None) -> PositionEncoding:
    try:
        return PositionEncoding(str(value or "utf-16"))
    except ValueError:
        return PositionEncoding.UTF16


# ---------------------------------------------------------------------- reading bad input
def without_lone_surrogates(value: Any) -> Any:
    """``value`` with every lone UTF-16 surrogate in its strings replaced by U+FFFD.

    JSON escapes such as ``"\\ud800"`` decode to them; they cannot be encoded as UTF-8,
    so the tokenizer and tree-sitter would fail on them later.
    """
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _LONE_SURROGATE.sub("\ufffd", value)
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            cleaned = without_lone_surrogates(item)
            if cleaned is not item:
                value[key] = cleaned
        return value
    if isinstance(value, list):
        for index, item in enumerate(value):
            cleaned = without_lone_surrogates(item)
            if cleaned is not item:
                value[index] = cleaned
        return value
    return value


def _wire_path(path: str) -> str:
    """``$.params.text_document.uri`` as the client wrote it: ``params.textDocument.uri``."""
    path = path.removeprefix("$").removeprefix(".")
    return _CAMEL.sub(lambda match: match.group(1).upper(), path)


def _format_problem(error: BaseException, expected: type | None) -> str:
    # lsprotocol's range validators say what was wrong ("Position.line should be in
    # range [0:2147483647], but was -1"); cattrs' default drops that message.
    if type(error) is ValueError and error.args:
        return str(error.args[0]).rstrip(".")
    return format_exception(error, expected)


def describe_structure_error(error: BaseException) -> str:
    """What was wrong with a message, by field, as the client wrote it."""
    if isinstance(error, cattrs.BaseValidationError):
        problems = []
        for line in cattrs.transform_error(error, path="$", format_exception=_format_problem):
            text, _, path = line.rpartition(" @ ")
            problems.append(f"{_wire_path(path) or 'message'}: {text}" if text else line)
        return "; ".join(problems)
    if type(error) is ValueError:
        return str(error)
    return f"{type(error).__name__}: {error}"


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


@dataclass
class RejectedMessage:
    """A message that could not be read; a request among them still gets its answer."""

    id: Any
    method: str
    code: int
    reason: str
    #: True when the message carried an id and a method: it must be answered.
    is_request: bool
    jsonrpc: str = "2.0"


def _lenient_trigger_kind(value: Any, _type: type) -> types.InlineCompletionTriggerKind:
    try:
        return types.InlineCompletionTriggerKind(value)
    except ValueError:
        log.debug("unknown inline completion trigger kind %r: read as Automatic", value)
        return types.InlineCompletionTriggerKind.Automatic


def fim_converter() -> cattrs.Converter:
    """pygls' converter, reading trigger kinds a newer client may send."""
    converter = default_converter()
    converter.register_structure_hook(types.InlineCompletionTriggerKind, _lenient_trigger_kind)
    return converter


class StdinStream:
    """The daemon's stdin as the protocol loop reads it.

    A thread reads stdin in large chunks into an ``asyncio.StreamReader``; the loop's
    ``readline`` and ``readexactly`` then cost microseconds. pygls' own stdio reader
    sends each of them to a thread pool: three thread hops per message, 408 us per
    message against 9 us here (measured under load 13), which capped a keystroke storm
    (a change, a request and a cancel per keystroke) well below 1,000 keystrokes/s.

    Each body is decoded here, invalid UTF-8 as U+FFFD: ``json.loads`` fails on it and
    the whole message would be lost. The last body is kept so that a request that is not
    JSON can still be answered with its id.
    """

    #: A header line longer than this is garbage; it is dropped, not buffered.
    MAX_HEADER_LINE = 1 << 20

    def __init__(self, stream: IO[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._stream = stream
        self._loop = loop
        self._reader = asyncio.StreamReader(limit=self.MAX_HEADER_LINE, loop=loop)
        self.last_body = ""
        threading.Thread(target=self._feed, name="fim-stdin", daemon=True).start()

    def _feed(self) -> None:
        read = getattr(self._stream, "read1", self._stream.read)
        try:
            while chunk := read(1 << 16):
                self._loop.call_soon_threadsafe(self._reader.feed_data, chunk)
        except (OSError, ValueError):
            pass  # stdin closed under us: the same as its end
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._loop.call_soon_threadsafe(self._reader.feed_eof)

    async def readline(self) -> bytes:
        try:
            return await self._reader.readline()
        except ValueError:
            # No line end within the limit: asyncio dropped what it read; go on.
            log.warning("dropped a header line longer than %d bytes", self.MAX_HEADER_LINE)
            return b"\r\n"

    async def readexactly(self, size: int) -> bytes | str:
        try:
            raw = await self._reader.readexactly(size)
        except asyncio.IncompleteReadError:
            return b""  # stdin ended inside a message: the loop ends as at a clean end
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            body = raw.decode("utf-8", errors="replace")
            log.debug("a message held invalid UTF-8: read with U+FFFD in its place")
        self.last_body = body
        return body


# ---------------------------------------------------------------------- the protocol
class FimProtocol(LanguageServerProtocol):
    """pygls' LSP protocol, answering every request and keeping no document copies."""

    def __init__(self, server: LanguageServer, converter: cattrs.Converter) -> None:
        super().__init__(server, converter)
        self._initialized = False
        self._initialized_notified = False
        #: How many messages of each kind of bad input were seen, for the status.
        self.rejected: Counter[str] = Counter()

    def note_rejected(self, kind: str, text: str, *args: Any) -> None:
        """Count one bad message and log it; after a few of a kind, only at debug level."""
        self.rejected[kind] += 1
        level = logging.WARNING if self.rejected[kind] <= WARNINGS_PER_KIND else logging.DEBUG
        log.log(level, text, *args)

    # ------------------------------------------------------------------ reading
    def structure_message(self, data: dict[str, Any]) -> Any:
        """A typed message, or a ``RejectedMessage`` saying why it could not be one.

        Called by ``json.loads`` for every JSON object, innermost first; only objects
        with a ``jsonrpc`` member are messages.
        """
        if "jsonrpc" not in data:
            return data
        method = data.get("method")
        if method is not None and "params" in data:
            data["params"] = without_lone_surrogates(data["params"])
        try:
            if data["jsonrpc"] != self.VERSION:
                raise ValueError(f'jsonrpc must be "2.0", got {data["jsonrpc"]!r}')
            if "id" in data and not _valid_id(data["id"]):
                raise ValueError(f"an id must be a string or a number, got {type(data['id']).__name__}")
            message = self._structure(data)
            if "id" in data and method is not None and not hasattr(message, "id"):
                raise ValueError(f"{method} is a notification: it cannot be sent as a request")
            return message
        except Exception as error:
            name = method if isinstance(method, str) else repr(method)
            reason = f"{name}: {describe_structure_error(error)}"
            if "id" not in data or "method" not in data:
                return RejectedMessage(None, name, INVALID_PARAMS, reason, is_request=False)
            # A request is answered: with its id if it has a usable one, else with null.
            usable_id = _valid_id(data["id"])
            bad_params = isinstance(method, str) and isinstance(error, cattrs.BaseValidationError)
            code = INVALID_PARAMS if usable_id and bad_params else INVALID_REQUEST
            return RejectedMessage(data["id"] if usable_id else None, name, code, reason, is_request=True)

    def _structure(self, data: dict[str, Any]) -> Any:
        """pygls' structuring, without its error log (every failure is reported once, here)."""
        converter = self._converter
        if "id" in data:
            if "error" in data:
                return converter.structure(data, types.ResponseErrorMessage)
            if "method" in data:
                method = data["method"]
                if not isinstance(method, str):
                    raise TypeError(f"method must be a string, got {type(method).__name__}")
                request_type = self.get_message_type(method)
                if request_type is None:
                    # JSON-RPC lets a request leave out its params; pygls' generic type does not.
                    request_type = JsonRPCRequestMessage
                    data.setdefault("params", None)
                return converter.structure(data, request_type)
            response_type = self._result_types.pop(data["id"], None) or JsonRPCResponseMessage
            return converter.structure(data, response_type)
        method = data.get("method", "")
        if not isinstance(method, str):
            raise TypeError(f"method must be a string, got {type(method).__name__}")
        notification_type = self.get_message_type(method)
        if notification_type is None:
            notification_type = JsonRPCNotification
            data.setdefault("params", None)
        return converter.structure(data, notification_type)

    # ------------------------------------------------------------------ dispatch
    def handle_message(self, message: Any) -> None:
        """Answer what cannot be handled, then let pygls dispatch the rest."""
        if isinstance(message, RejectedMessage):
            if message.is_request:
                self.note_rejected("invalid_params", "answered %s: %s", message.id, message.reason)
                self.answer_error(message.id, message.code, message.reason)
            else:
                self.note_rejected("invalid_notification", "dropped a notification: %s", message.reason)
            return
        if not hasattr(message, "jsonrpc"):
            self._not_a_message(message)
            return
        method = getattr(message, "method", None)
        is_request = method is not None and hasattr(message, "id")
        if method == types.CANCEL_REQUEST and not _valid_id(getattr(message.params, "id", None)):
            self.note_rejected("invalid_notification", "dropped a cancel for an id of the wrong type")
            return
        if is_request and self._shutdown and method != types.EXIT:
            self.answer_error(message.id, INVALID_REQUEST, f"{method}: the server is shutting down")
            return
        if method == types.INITIALIZED and not is_request:
            # A second one would load the model again under requests that hold the first.
            if self._initialized_notified:
                self.note_rejected("invalid_notification", "dropped a second initialized notification")
                return
            self._initialized_notified = True
        if is_request and method == types.INITIALIZE:
            if self._initialized:
                self.note_rejected("invalid_request", "a second initialize request")
                self.answer_error(message.id, INVALID_REQUEST, "initialize: already initialized")
                return
            self._initialized = True
        super().handle_message(message)

    def _not_a_message(self, message: Any) -> None:
        """A JSON value that is no JSON-RPC message: a request among them is answered."""
        if isinstance(message, dict):
            if "method" not in message and ("result" in message or "error" in message):
                self.note_rejected("invalid_request", "dropped a response without jsonrpc")
                return
            if "method" in message and "id" not in message:
                self.note_rejected("invalid_request", "dropped a notification without jsonrpc")
                return
            request_id = message.get("id") if _valid_id(message.get("id")) else None
            reason = 'not a JSON-RPC 2.0 message (no "jsonrpc": "2.0")'
        else:
            request_id = None
            reason = f"not a JSON-RPC message: a JSON {type(message).__name__}"
        self.note_rejected("invalid_request", "answered an invalid message: %s", reason)
        self.answer_error(request_id, INVALID_REQUEST, reason)

    def answer_parse_error(self, body: str, error: BaseException) -> None:
        """-32700 for a body that is not JSON, with the request's id when it can be read."""
        found = _ID_IN_BYTES.search(body) if '"method"' in body else None
        request_id: Any = None
        if found is not None:
            try:
                request_id = json.loads(found.group(1))
            except ValueError:
                request_id = None
        self.note_rejected("parse_error", "a message that is not JSON (%s)", error)
        self.answer_error(request_id, PARSE_ERROR, f"the message is not valid JSON: {error}")

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        """pygls' cancel, without its warning for an id already answered.

        Editors cancel the request before every keystroke's new one, and most of those
        were answered already: at a thousand keystrokes a second the warnings alone
        would flood the log.
        """
        future = self._request_futures.pop(msg_id, None)
        if future is None:
            log.debug("cancel for a request not in progress: %r", msg_id)
            return
        if future.cancel():
            log.debug("cancelled request %r", msg_id)

    def answer_error(self, request_id: Any, code: int, message: str) -> None:
        self._send_response(request_id, error=types.ResponseError(code=code, message=message))

    # ------------------------------------------------------------------ initialize
    @property
    def client_shows_inline(self) -> bool:
        """The client declared inline completion: it shows suggestions as ghost text."""
        capabilities = getattr(self, "client_capabilities", None)
        document = capabilities.text_document if capabilities is not None else None
        return document is not None and document.inline_completion is not None

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams) -> Generator[Any, Any, types.InitializeResult]:
        result = yield from super().lsp_initialize(params)
        if self.client_shows_inline:
            # A client that shows ghost text also sends textDocument/completion on most
            # keystrokes (VS Code's quick suggestions). The same suggestion in its list
            # would compete with the ghost text for Tab, and each request would cancel
            # the inline one in flight: such a client is not offered completion at all.
            result.capabilities.completion_provider = None
        return result

    # ------------------------------------------------------------------ documents
    # The daemon keeps its own Document per URI; pygls' copy is skipped (see the module
    # docstring). The user's handlers still run, as pygls' own do.
    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> Iterator[Any]:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> Iterator[Any]:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> Iterator[Any]:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None


# ---------------------------------------------------------------------- the server
class RepeatLimit(logging.Filter):
    """Passes the first ``first`` records of each message template, then one in ``every``.

    For the console (stderr) handler: a client that never reads the daemon's stderr, or
    one that sends the same bad message on every keystroke, must not fill the pipe and
    block the daemon on a log line. The log file keeps every record.
    """

    def __init__(self, first: int = 20, every: int = 1000) -> None:
        super().__init__()
        self.first, self.every = first, every
        self._seen: Counter[tuple[str, str]] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        # A bare "%s" carries the whole message in its argument: that is the template then.
        template = str(record.msg)
        key = (record.name, record.getMessage() if template == "%s" else template)
        self._seen[key] += 1
        count = self._seen[key]
        return count <= self.first or count % self.every == 0


def limit_console_logging() -> None:
    """Add ``RepeatLimit`` to the root logger's stderr handlers (once)."""
    for handler in logging.getLogger().handlers:
        stream = getattr(handler, "stream", None)
        is_console = stream is not None and getattr(stream, "name", "") == "<stderr>"
        if is_console and not any(isinstance(found, RepeatLimit) for found in handler.filters):
            handler.addFilter(RepeatLimit())


class FimServer(LanguageServer):
    """pygls' server with the helpers the handlers share."""

    protocol: FimProtocol

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            "fim-lsp", VERSION, protocol_cls=FimProtocol, converter_factory=fim_converter, **kwargs
        )
        self._input: StdinStream | None = None
        self._reported_notification_error = False
        limit_console_logging()

    @property
    def encoding(self) -> PositionEncoding:
        try:
            return encoding_of(self.workspace.position_encoding)
        except RuntimeError:
            return PositionEncoding.UTF16

    def show(self, message: str, kind: types.MessageType = types.MessageType.Error) -> None:
        log.warning("%s", message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """Serve on stdio until stdin ends or ``exit``, reading through ``StdinStream``.

        What pygls' ``start_io`` does, with the faster reader.
        """
        self._stop_event = threading.Event()
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        try:
            asyncio.run(self._serve_stdio(stdin or sys.stdin.buffer))
        except BrokenPipeError:
            log.error("the connection to the client is lost; shutting down")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.shutdown()

    async def _serve_stdio(self, stdin: IO[bytes]) -> None:
        assert self._stop_event is not None
        self._input = StdinStream(stdin, asyncio.get_running_loop())
        await run_async(
            stop_event=self._stop_event,
            # Bodies come back decoded (str): pygls passes them to json.loads, which takes both.
            reader=cast(Any, self._input),
            protocol=self.protocol,
            logger=logging.getLogger("pygls.server"),
            error_handler=self.report_server_error,
        )

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Errors outside a request's own answer: bad bodies, failing notification handlers.

        A body that is not JSON is answered with -32700. A notification handler that
        fails is shown to the user once (later ones are logged): a bug that fires on
        every keystroke must not bury the editor in messages.
        """
        if source is FeatureRequestError:
            return  # the request's answer carries the error already
        if isinstance(error, ValueError | RecursionError) and source is not FeatureNotificationError:
            body = self._input.last_body if self._input is not None else ""
            self.protocol.answer_parse_error(body, error)
            return
        log.error("%s: %s", getattr(source, "__name__", source), error)
        if not self._reported_notification_error:
            self._reported_notification_error = True
            self.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Error,
                    message=f"fim-lsp: internal error ({error}); the daemon keeps serving. See its log.",
                )
            )
