"""The peer's request body and suggestion rendering, as llama.vim builds and shows them.

Pure functions: no server is needed. The expected values follow llama.vim's
``s:fim_ctx_local``, ``llama#fim`` and ``s:fim_render``.
"""

from __future__ import annotations

from harness.peer.llamavim import (
    N_PREDICT,
    buffer_lines,
    infill_body,
    local_context,
    local_context_after,
    render,
)
from harness.peer.server import PeerServer

SOURCE = "import os\n\ndef main():\n    path = os.getcwd()\n    print(pa)\n\nmain()\n"


def test_body_fields_match_llama_vim() -> None:
    lines = buffer_lines(SOURCE)
    context = local_context(lines, 4, len("    print(pa"))
    body = infill_body(context)
    assert body["input_prefix"] == "import os\n\ndef main():\n    path = os.getcwd()\n"
    assert body["prompt"] == "    print(pa"
    assert body["input_suffix"] == ")\n\nmain()\n"
    assert body["n_indent"] == 4
    assert body["n_predict"] == N_PREDICT == 128
    assert body["t_max_predict_ms"] == 250
    assert body["t_max_prompt_ms"] == 500
    assert (body["top_k"], body["top_p"]) == (40, 0.90)
    assert body["samplers"] == ["top_k", "top_p", "infill"]
    assert body["cache_prompt"] is True
    assert body["stream"] is False
    assert body["input_extra"] == []
    assert body["response_fields"][0] == "content"


def test_prefix_and_suffix_are_cut_to_256_and_64_lines() -> None:
    lines = [f"x{number} = {number}" for number in range(1000)]
    context = local_context(lines, 500, 3)
    prefix_lines = context.prefix.split("\n")[:-1]
    assert len(prefix_lines) == 256
    assert prefix_lines[0] == "x244 = 244" and prefix_lines[-1] == "x499 = 499"
    suffix_lines = context.suffix.split("\n")
    # The rest of the cursor line, then 64 lines below, then a final newline.
    assert suffix_lines[0] == "0 = 500"
    assert suffix_lines[1] == "x501 = 501"
    assert suffix_lines[64] == "x564 = 564"
    assert suffix_lines[65] == ""


def test_whitespace_only_line_is_sent_empty_with_no_indent() -> None:
    lines = ["def f():", "        ", "    return 1"]
    context = local_context(lines, 1, 8)
    assert context.middle == ""
    assert context.indent == 0
    assert context.suffix == "\n    return 1\n"


def test_first_line_prefix_is_a_lone_newline() -> None:
    # Vim's getline(1, 0) is empty and llama.vim still appends "\n".
    context = local_context(["abc"], 0, 1)
    assert context.prefix == "\n"
    assert context.middle == "a"


def test_buffer_lines_drop_the_final_newline_only() -> None:
    assert buffer_lines("a\nb\n") == ["a", "b"]
    assert buffer_lines("a\nb") == ["a", "b"]
    assert buffer_lines("a\n\n") == ["a", ""]


def test_cache_keys_include_trimmed_prefixes() -> None:
    context = local_context(["a", "b", "c", "d", "e"], 4, 0)
    keys = context.hashes()
    assert len(keys) == 4 and len(set(keys)) == 4
    assert local_context(["a", "b", "c", "d", "e"], 4, 0).hashes() == keys


def test_render_trims_and_rejects_repeats() -> None:
    lines = ["def f(x):", "    ", "    return x"]
    # Trailing empty lines go; the suggestion is accepted.
    shown = render("    y = x * 2\n\n", lines, 1, 4)
    assert shown.lines == ["y = x * 2"] and shown.can_accept and shown.lead == "    "
    assert shown.completion_after("    ") == "y = x * 2"
    text = "def f(x):\n    \n    return x\n"
    assert shown.apply(text, text.index("\n    \n") + 5) == "def f(x):\n    y = x * 2\n    return x\n"
    # A suggestion that repeats the next line is dropped.
    assert not render("    return x", lines, 1, 4).can_accept
    # Whitespace only: nothing to accept.
    assert not render("   \n", lines, 1, 4).can_accept


def test_render_mid_line_keeps_content() -> None:
    lines = ["total = sum(val", "print(total)"]
    shown = render("ues)", lines, 0, len("total = sum(val"))
    assert shown.lines == ["ues)"] and shown.can_accept and shown.lead is None
    assert shown.completion_after("total = sum(val") == "ues)"


def test_accepting_on_an_empty_line_keeps_the_suggestions_indentation() -> None:
    # An empty line at column 0 (a HumanEval line hole): the suggested line as it came.
    text = "def f(x):\n\n    return y\n"
    lines = buffer_lines(text)
    shown = render("    y = x + 1\n    z = 2", lines, 1, 0)
    assert shown.lead == ""
    assert shown.apply(text, len("def f(x):\n")) == "def f(x):\n    y = x + 1\n    z = 2\n    return y\n"
    assert shown.completion_after("") == "    y = x + 1\n    z = 2"


def test_auto_peer_command_uses_loopback_model_and_threads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = PeerServer(tmp_path / "llama-server", tmp_path / "m.gguf", threads=3, n_ctx=4096, port=1234)
    command = server.command()
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("-m") + 1] == str(tmp_path / "m.gguf")
    assert command[command.index("-t") + 1] == "3"
    assert command[command.index("-c") + 1] == "4096"
    assert command[command.index("-np") + 1] == "1"


def test_speculative_context_assumes_the_suggestion_accepted() -> None:
    lines = ["def f(x):", "    y = x", "    return y"]
    one = local_context_after(lines, 1, [" + 1"], indent=4)
    assert one.middle == "    y = x + 1" and one.line_cur_suffix == ""
    assert one.prefix == "def f(x):\n" and one.suffix == "\n    return y\n"
    assert one.indent == 4
    many = local_context_after(lines, 1, [" + 1", "    z = y", "    w = z"], indent=4)
    assert many.prefix == "def f(x):\n    y = x + 1\n    z = y\n"
    assert many.middle == "    w = z"
    assert infill_body(many, t_max_predict_ms=1000)["t_max_predict_ms"] == 1000
