"""End to end over real LSP (pytest-lsp) against the real 0.5B model."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.lsp_server.conftest import SERVER, TEST_OPTIONS, capabilities, start, status, wait_state

URI = "file:///tmp/fim-e2e/numbers.py"
SOURCE = '''def is_even(number):
    """Return True when number is divisible by two."""
    return num
'''
# Line 2 ends with "return num"; the cursor goes after "num".
CURSOR = types.Position(line=2, character=14)


def open_doc(client: LanguageClient, text: str = SOURCE, uri: str = URI) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
        )
    )


def inline_params(
    position: types.Position, uri: str = URI, invoked: bool = False
) -> types.InlineCompletionParams:
    kind = (
        types.InlineCompletionTriggerKind.Invoked if invoked else types.InlineCompletionTriggerKind.Automatic
    )
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=position,
        context=types.InlineCompletionContext(trigger_kind=kind),
    )


def insert_char(client: LanguageClient, version: int, position: types.Position, char: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(position, position), text=char)
            ],
        )
    )


def items_of(result: types.InlineCompletionList | list | None) -> list[types.InlineCompletionItem]:
    if result is None:
        return []
    return list(result.items if isinstance(result, types.InlineCompletionList) else result)


async def test_initialize_advertises_inline_completion(raw_client: LanguageClient) -> None:
    result = await start(raw_client)
    caps = result.capabilities
    assert caps.inline_completion_provider is not None and caps.inline_completion_provider is not False
    # This client shows ghost text: it is not offered a completion list as well.
    assert caps.completion_provider is None
    sync = caps.text_document_sync
    assert isinstance(sync, types.TextDocumentSyncOptions)
    assert sync.change == types.TextDocumentSyncKind.Incremental
    await wait_state(raw_client)


async def test_progress_is_reported_while_the_model_loads(raw_client: LanguageClient) -> None:
    await start(raw_client)
    await wait_state(raw_client)
    tokens = [t for t in raw_client.progress_reports if str(t).startswith("fim-lsp/model")]
    assert len(tokens) == 1
    reports = raw_client.progress_reports[tokens[0]]
    assert reports, "no work-done progress for the model load"
    assert isinstance(reports[0], types.WorkDoneProgressBegin)
    assert "loading model" in (reports[0].message or "")
    assert isinstance(reports[-1], types.WorkDoneProgressEnd)


async def test_inline_completion_is_the_obvious_line(client: LanguageClient) -> None:
    open_doc(client)
    result = await client.text_document_inline_completion_async(inline_params(CURSOR))
    items = items_of(result)
    assert len(items) == 1
    item = items[0]
    assert isinstance(item.insert_text, str)
    # The range covers the typed "num" and the text repeats it.
    assert item.range == types.Range(types.Position(2, 11), CURSOR)
    assert item.insert_text.startswith("number")
    assert "% 2 == 0" in item.insert_text
    assert "\n" not in item.insert_text


async def test_inline_completion_extends_the_suggest_lists_selected_item(client: LanguageClient) -> None:
    # VS Code with quick suggestions on: the user typed "nu", its word list selected
    # "number" over "nu". Ghost text shows only over that range and starting with it.
    text = SOURCE.replace("return num", "return nu")
    open_doc(client, text)
    typed = types.Range(types.Position(2, 11), types.Position(2, 13))
    params = inline_params(types.Position(2, 13))
    params.context.selected_completion_info = types.SelectedCompletionInfo(range=typed, text="number")
    items = items_of(await client.text_document_inline_completion_async(params))
    assert len(items) == 1
    item = items[0]
    assert item.range == typed
    assert isinstance(item.insert_text, str)
    assert item.insert_text.startswith("number ") and "% 2 == 0" in item.insert_text
    # The document itself is unchanged: the same position without a list completes "nu".
    plain = items_of(await client.text_document_inline_completion_async(inline_params(types.Position(2, 13))))
    assert plain and plain[0].range == typed
    assert isinstance(plain[0].insert_text, str) and plain[0].insert_text.startswith("nu")


async def test_status_says_no_layer_was_offloaded_on_a_cpu_build(client: LanguageClient) -> None:
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this llama.cpp has a GPU backend; `fim-lsp doctor` checks the offload there")
    # The default gpuLayers (-1) asks for every layer; a CPU-only build offloads none.
    assert (await status(client))["gpuLayersOffloaded"] == 0


def completion_params() -> types.CompletionParams:
    return types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=URI), position=CURSOR)


async def test_classic_completion_is_for_clients_without_inline(raw_client: LanguageClient) -> None:
    declared = capabilities()
    assert declared.text_document is not None
    declared.text_document.inline_completion = None  # eglot, for one
    result = await raw_client.initialize_session(
        types.InitializeParams(capabilities=declared, initialization_options=TEST_OPTIONS)
    )
    assert result.capabilities.completion_provider is not None
    await wait_state(raw_client)
    open_doc(raw_client)
    answer = await raw_client.text_document_completion_async(completion_params())
    items = answer.items if isinstance(answer, types.CompletionList) else answer
    assert items and items[0].text_edit is not None
    assert items[0].text_edit.new_text.startswith("number") and "% 2 == 0" in items[0].text_edit.new_text


async def test_a_ghost_text_client_is_not_offered_completion_and_it_never_cancels(
    raw_client: LanguageClient,
) -> None:
    # VS Code with its defaults sends textDocument/completion on most keystrokes.
    result = await start(raw_client)
    assert result.capabilities.completion_provider is None
    await wait_state(raw_client)
    open_doc(raw_client)
    inline = asyncio.ensure_future(raw_client.text_document_inline_completion_async(inline_params(CURSOR)))
    for _ in range(5):
        answer = await raw_client.text_document_completion_async(completion_params())
        assert not (answer.items if isinstance(answer, types.CompletionList) else answer)
    items = items_of(await inline)
    assert items and "% 2 == 0" in str(items[0].insert_text)
    counters = (await status(raw_client))["counters"]
    assert counters["cancelled"] == 0 and counters["model_runs"] == 1


async def test_type_through_and_cache_use_no_model_tokens(client: LanguageClient) -> None:
    open_doc(client)
    first = items_of(await client.text_document_inline_completion_async(inline_params(CURSOR)))
    suggestion = first[0].insert_text
    assert isinstance(suggestion, str) and suggestion.startswith("number")
    before = await status(client)
    # The user types "b", the next character of the suggestion ("num" + "b" of "number").
    insert_char(client, 2, CURSOR, "b")
    typed = items_of(await client.text_document_inline_completion_async(inline_params(types.Position(2, 15))))
    after = await status(client)
    assert typed and typed[0].insert_text == suggestion
    assert after["counters"]["type_through"] == before["counters"]["type_through"] + 1
    assert after["engineTotals"]["evaluated"] == before["engineTotals"]["evaluated"]
    assert after["engineTotals"]["requests"] == before["engineTotals"]["requests"]
    # Delete the "b": the original prompt again, served from the cache.
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=3),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(CURSOR, types.Position(2, 15)), text=""
                )
            ],
        )
    )
    again = items_of(await client.text_document_inline_completion_async(inline_params(CURSOR)))
    last = await status(client)
    assert again and again[0].insert_text == suggestion
    assert last["counters"]["cache_hits"] == after["counters"]["cache_hits"] + 1
    assert last["engineTotals"]["evaluated"] == before["engineTotals"]["evaluated"]


LONG_SOURCE = "".join(f"def helper_{i}(value):\n    return value * {i}\n\n\n" for i in range(150))


async def test_did_change_cancels_the_request_in_flight(client: LanguageClient) -> None:
    text = LONG_SOURCE + "def main():\n    "
    open_doc(client, text)
    end = types.Position(line=text.count("\n"), character=4)
    first = asyncio.ensure_future(client.text_document_inline_completion_async(inline_params(end)))
    # Messages are handled in order: once the status answers, the request is in progress.
    await status(client)
    await asyncio.sleep(0.2)
    insert_char(client, 2, end, "r")
    started = time.monotonic()
    result = await asyncio.wait_for(first, timeout=60)
    waited = time.monotonic() - started
    assert items_of(result) == []
    current = await status(client)
    assert current["counters"]["cancelled"] >= 1
    assert current["engineTotals"]["cancelled"] >= 1
    # The engine is free again: a request for the new state is answered with text.
    second = items_of(
        await client.text_document_inline_completion_async(
            inline_params(types.Position(end.line, 5), invoked=True)
        )
    )
    assert second and isinstance(second[0].insert_text, str) and second[0].insert_text.startswith("r")
    print(f"cancel by didChange answered {waited * 1000:.0f} ms after the edit")


async def test_cancel_request_is_honoured(client: LanguageClient) -> None:
    text = LONG_SOURCE + "def main():\n    "
    open_doc(client, text)
    end = types.Position(line=text.count("\n"), character=4)
    msg_id = "cancel-me"
    # pytest-lsp's send_request_async is a coroutine: a task sends the request now.
    future = asyncio.ensure_future(
        client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(end), msg_id=msg_id
        )
    )
    await status(client)  # handled in order: the request has been dispatched
    await asyncio.sleep(0.2)
    client.protocol.notify("$/cancelRequest", types.CancelParams(id=msg_id))
    try:
        result = await asyncio.wait_for(future, timeout=60)
    except Exception as error:  # RequestCancelled (-32800) is the other correct answer
        assert "cancel" in str(error).lower()
    else:
        assert items_of(result) == []
    # The generation itself stops too (not just the answer): the engine counts it.
    deadline = time.monotonic() + 60
    while (await status(client))["engineTotals"]["cancelled"] < 1:
        assert time.monotonic() < deadline, "the engine never noticed the cancel"
        await asyncio.sleep(0.05)


async def test_typing_what_a_cancelled_request_was_writing_carries_its_generation_on(
    client: LanguageClient,
) -> None:
    open_doc(client)
    msg_id = "typed-on"
    future = asyncio.ensure_future(
        client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(CURSOR), msg_id=msg_id
        )
    )
    deadline = time.monotonic() + 60
    while not any(
        entry["uri"] == URI and entry["generatedChars"] for entry in (await status(client))["generations"]
    ):
        assert time.monotonic() < deadline, "the model never started writing"
        await asyncio.sleep(0.01)
    # The keystroke as an editor sends it: the edit, and the cancel of the old request.
    insert_char(client, 2, CURSOR, "b")
    client.protocol.notify("$/cancelRequest", types.CancelParams(id=msg_id))
    with contextlib.suppress(Exception):  # RequestCancelled, or the answer if it came first
        await asyncio.wait_for(future, timeout=60)
    result = await client.text_document_inline_completion_async(
        inline_params(types.Position(CURSOR.line, CURSOR.character + 1))
    )
    texts = [item.insert_text for item in items_of(result)]
    current = await status(client)
    assert texts == ["number % 2 == 0"], texts
    assert current["counters"]["carried_on"] == 1
    assert current["counters"]["model_runs"] == 1


async def test_keystroke_storm_is_answered_in_full(client: LanguageClient) -> None:
    open_doc(client, "")
    typed = ""
    pending = []
    line = "def add(a, b):\n    return a + b\n\n\ndef multiply(a, b):\n    return a * " * 3
    for version, char in enumerate(line[:200], start=2):
        lines = typed.split("\n")
        position = types.Position(line=len(lines) - 1, character=len(lines[-1]))
        insert_char(client, version, position, char)
        typed += char
        lines = typed.split("\n")
        here = types.Position(line=len(lines) - 1, character=len(lines[-1]))
        pending.append(
            asyncio.ensure_future(client.text_document_inline_completion_async(inline_params(here)))
        )
        await asyncio.sleep(0.005)
    results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), timeout=180)
    assert len(results) == 200
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors[:3]
    # The final state gets a real completion.
    lines = typed.split("\n")
    final = items_of(
        await client.text_document_inline_completion_async(
            inline_params(types.Position(len(lines) - 1, len(lines[-1])), invoked=True)
        )
    )
    assert final and isinstance(final[0].insert_text, str) and final[0].insert_text.strip()


async def test_invalid_setting_is_named_and_defaults_stay(raw_client: LanguageClient) -> None:
    await start(raw_client, {"nCtx": "lots", "maxTokens": 16, "kvCacheType": "q2"})
    current = await wait_state(raw_client)
    messages = " | ".join(m.message for m in raw_client.messages)
    assert "nCtx" in messages and "kvCacheType" in messages
    assert current["state"] == "ready"  # the defaults stayed in force


async def test_missing_model_is_reported_and_the_daemon_keeps_serving(raw_client: LanguageClient) -> None:
    await start(raw_client, {"model": "/nonexistent/dir/missing.gguf"})
    current = await wait_state(raw_client)
    assert current["state"] == "error"
    errors = [m for m in raw_client.messages if m.type == types.MessageType.Error]
    assert len(errors) == 1
    assert "/nonexistent/dir/missing.gguf" in errors[0].message and "not found" in errors[0].message
    open_doc(raw_client)
    result = await raw_client.text_document_inline_completion_async(inline_params(CURSOR))
    assert items_of(result) == []
    assert "model is error" in (await status(raw_client))["lastNoSuggestionReason"]


async def test_config_change_reloads_another_model(client: LanguageClient, tmp_path) -> None:
    from fim import models

    other = tmp_path / "same-weights.gguf"
    os.symlink(models.resolve(models.DEFAULT_MODEL, fetch=False), other)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"fimLsp": {"model": str(other)}})
    )
    deadline = time.monotonic() + 120
    while True:
        current = await status(client)
        if current["state"] == "ready" and current["modelPath"] == str(other):
            break
        assert time.monotonic() < deadline, current
        await asyncio.sleep(0.1)
    open_doc(client)
    items = items_of(await client.text_document_inline_completion_async(inline_params(CURSOR)))
    assert items and "% 2 == 0" in str(items[0].insert_text)


async def test_daemon_exits_when_the_editor_process_dies() -> None:
    editor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    daemon = subprocess.Popen(
        SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        body = (
            '{"jsonrpc":"2.0","id":1,"method":"initialize","params":'
            f'{{"processId":{editor.pid},"capabilities":{{}},"rootUri":null}}}}'
        ).encode()
        assert daemon.stdin is not None
        daemon.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        daemon.stdin.flush()
        time.sleep(2)
        assert daemon.poll() is None, "daemon exited before its editor did"
        editor.kill()
        editor.wait()
        # The pipe stays open: only the watch on processId can end the daemon.
        daemon.wait(timeout=15)
        assert daemon.returncode is not None
    finally:
        for process in (editor, daemon):
            if process.poll() is None:
                process.kill()


async def test_accept_command_and_notifications_are_counted(client: LanguageClient) -> None:
    open_doc(client)
    items = items_of(await client.text_document_inline_completion_async(inline_params(CURSOR)))
    command = items[0].command
    assert command is not None and command.command == "fim-lsp.accept"
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command.command, arguments=command.arguments)
    )
    client.protocol.notify("textDocument/didShowCompletion", {"item": {"insertText": "x"}})
    client.protocol.notify("textDocument/didPartiallyAcceptCompletion", {"item": {"insertText": "x"}})
    current = await status(client)
    counters = current["counters"]
    assert counters["accepted"] == 1
    assert counters["shown"] == 1
    assert counters["partially_accepted"] == 1
    assert counters["acceptance_rate"] == 1.0


async def test_a_generation_cut_by_the_time_budget_is_not_cached(raw_client: LanguageClient) -> None:
    # The workspace/configuration pull would otherwise bring the tests' generous budget.
    raw_client.set_configuration({"timeBudgetMs": 50}, section="fimLsp")
    await start(raw_client, {"timeBudgetMs": 50})
    await wait_state(raw_client)
    open_doc(raw_client)
    await raw_client.text_document_inline_completion_async(inline_params(CURSOR))
    first = await status(raw_client)
    assert first["lastRequest"]["stop_reason"] == "time_budget"
    raw_client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"fimLsp": {"timeBudgetMs": 60000}})
    )
    items = items_of(await raw_client.text_document_inline_completion_async(inline_params(CURSOR)))
    second = await status(raw_client)
    assert second["counters"]["cache_hits"] == first["counters"]["cache_hits"]
    assert items and "% 2 == 0" in str(items[0].insert_text)


async def test_speculative_next_is_ready_after_accepting(raw_client: LanguageClient) -> None:
    raw_client.set_configuration({"timeBudgetMs": 60000, "speculative": True}, section="fimLsp")
    await start(raw_client, {"speculative": True})
    await wait_state(raw_client)
    source = "def square(x):\n    return x * x\n\n\ndef cube(x):\n    return "
    open_doc(raw_client, source)
    end = types.Position(line=5, character=11)
    items = items_of(await raw_client.text_document_inline_completion_async(inline_params(end)))
    assert items
    suggestion = str(items[0].insert_text)
    # Wait for the background completion of the accepted state.
    deadline = time.monotonic() + 120
    while (await status(raw_client))["counters"]["speculative_ready"] < 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    before = await status(raw_client)
    # Accept: the editor inserts the suggestion and asks again at its end.
    raw_client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(end, end), text=suggestion)
            ],
        )
    )
    after_accept = types.Position(line=5, character=11 + len(suggestion))
    await raw_client.text_document_inline_completion_async(inline_params(after_accept))
    after = await status(raw_client)
    assert after["counters"]["speculative_hits"] == before["counters"]["speculative_hits"] + 1
    assert after["engineTotals"]["requests"] == before["engineTotals"]["requests"]


COUNT_URI = "file:///tmp/fim-e2e/count.py"
COUNT_SOURCE = '''def count_negatives(values):
    """How many of the values are below zero."""
    count = 0
    for value in values:
        if value < 0:

'''
BALANCE_URI = "file:///tmp/fim-e2e/balance.py"
BALANCE_SOURCE = '''from typing import List


def below_zero(operations: List[int]) -> bool:
    """Return True if the balance falls below zero at any point, else False."""
    balance = 0
    for op in operations:
        balance += op
        if balance < 0:
    return False
'''


async def test_a_block_opener_gets_its_body_and_a_function_end_its_last_lines(client: LanguageClient) -> None:
    # The example: the line opens a block, so the suggestion goes on into it.
    open_doc(client, BALANCE_SOURCE, BALANCE_URI)
    position = types.Position(line=8, character=len("        if balance < 0:"))
    items = items_of(
        await client.text_document_inline_completion_async(inline_params(position, BALANCE_URI, invoked=True))
    )
    assert len(items) == 1 and isinstance(items[0].insert_text, str)
    assert items[0].insert_text == "\n            return True"
    # An empty line at column 0 in the last block of a function (as HumanEval lays it
    # out): the body starts at the block's indentation, and the function's last line
    # follows the block.
    open_doc(client, COUNT_SOURCE, COUNT_URI)
    position = types.Position(line=5, character=0)
    items = items_of(
        await client.text_document_inline_completion_async(inline_params(position, COUNT_URI, invoked=True))
    )
    assert len(items) == 1 and isinstance(items[0].insert_text, str)
    lines = items[0].insert_text.split("\n")
    assert lines[0] == "            count += 1"
    assert lines[-1] == "    return count"


AVERAGE_URI = "file:///tmp/fim-e2e/average.py"
AVERAGE_SOURCE = '''def average(values):
    """The mean of the values."""
    total = (values)
    return total / len(values)
'''


async def test_code_right_of_the_cursor_is_met_and_a_word_is_answered_only_when_asked(
    client: LanguageClient,
) -> None:
    # Code right of the cursor: the model sees it and its answer stops where it begins.
    open_doc(client, AVERAGE_SOURCE, AVERAGE_URI)
    position = types.Position(line=2, character=len("    total = "))
    items = items_of(await client.text_document_inline_completion_async(inline_params(position, AVERAGE_URI)))
    assert [item.insert_text for item in items] == ["sum"]
    assert (await status(client))["lastMode"] == "single-line"  # while typing: one line
    asked = await client.text_document_inline_completion_async(
        inline_params(position, AVERAGE_URI, invoked=True)
    )
    assert (await status(client))["lastMode"] == "multi-line"  # asked for: over lines if need be
    assert [item.insert_text for item in items_of(asked)] == ["sum"]
    # Inside a word: nothing while typing; asked for, the daemon makes the request.
    inside = types.Position(line=3, character=len("    return to"))
    items = items_of(await client.text_document_inline_completion_async(inline_params(inside, AVERAGE_URI)))
    current = await status(client)
    assert items == [] and current["lastMode"] == "none"
    assert "identifier" in current["lastNoSuggestionReason"]
    await client.text_document_inline_completion_async(inline_params(inside, AVERAGE_URI, invoked=True))
    assert (await status(client))["lastMode"] == "multi-line"
