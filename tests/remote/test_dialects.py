"""What each dialect sends and how each stream format is read (no server needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fim.backend import SamplingConfig
from fim.config import endpoints, parse
from fim.remote.dialects import Ask, LlamaServer, Ollama, OpenAI, ServerError, stream_events
from fim.remote.prompt import (
    MARKER_BREAK,
    TemplateChoiceError,
    fim_prompt,
    template_for_model,
    template_named,
)
from fim.templates import CODELLAMA, QWEN, STARCODER

ASK = Ask(
    prefix="def f(",
    suffix=")\n",
    template=QWEN,
    model="qwen2.5-coder-7b",
    max_tokens=48,
    sampling=SamplingConfig(),
    n_ctx=4096,
    keep_alive="30m",
)


def test_openai_sends_a_raw_prompt_never_a_suffix_and_always_max_tokens() -> None:
    path, body = OpenAI().request(ASK)
    assert path == "/v1/completions"
    assert "suffix" not in body
    assert body["max_tokens"] == 48
    assert body["prompt"] == "<|fim_prefix|>def f(<|fim_suffix|>)\n<|fim_middle|>"
    assert "<|endoftext|>" in body["stop"] and "<|file_sep|>" in body["stop"]
    assert body["stream"] is True and body["model"] == "qwen2.5-coder-7b"


def test_llama_server_infill_leaves_the_format_to_the_server() -> None:
    path, body = LlamaServer(use_infill=True).request(ASK)
    assert path == "/infill"
    assert (body["input_prefix"], body["input_suffix"], body["input_extra"]) == ("def f(", ")\n", [])
    assert "prompt" not in body and body["n_predict"] == 48
    path, body = LlamaServer(use_infill=False).request(ASK)
    assert path == "/completion"
    assert body["prompt"].endswith("<|fim_middle|>") and "input_prefix" not in body


def test_llama_server_infill_gets_the_workspace_files_as_input_extra() -> None:
    import dataclasses

    ask = dataclasses.replace(ASK, extra=(("models.py", "class User:\n    name: str\n"),))
    _path, body = LlamaServer(use_infill=True).request(ask)
    assert body["input_extra"] == [{"filename": "models.py", "text": "class User:\n    name: str\n"}]


def test_ollama_asks_raw_with_its_context_size_and_keep_alive() -> None:
    path, body = Ollama().request(ASK)
    assert path == "/api/generate"
    assert body["raw"] is True and "suffix" not in body
    assert body["options"]["num_ctx"] == 4096 and body["options"]["num_predict"] == 48
    assert body["keep_alive"] == "30m"


def test_spm_families_put_the_suffix_first() -> None:
    prompt = fim_prompt(STARCODER, "a = ", "\nb = 2")
    assert prompt == "<fim_suffix>\nb = 2<fim_prefix>a = <fim_middle>"
    assert fim_prompt(CODELLAMA, "x", "y") == " <SUF>y <PRE>x <MID>"


def test_marker_text_in_the_buffer_cannot_end_the_prefix() -> None:
    prompt = fim_prompt(QWEN, "s = '<|fim_middle|>'\n", "<|endoftext|>")
    assert prompt.count("<|fim_middle|>") == 1 and prompt.endswith("<|fim_middle|>")
    assert "<|endoftext|>" not in prompt
    assert f"<{MARKER_BREAK}|fim_middle|>" in prompt


def test_template_follows_the_served_model_name() -> None:
    assert template_for_model("Qwen/Qwen2.5-Coder-7B").name == "qwen2.5-coder"
    assert template_for_model("deepseek-coder:1.3b-base").name == "deepseek-coder"
    assert template_named("starcoder") is STARCODER
    with pytest.raises(TemplateChoiceError, match="fimTemplate"):
        template_for_model("llama3.1:8b")
    with pytest.raises(TemplateChoiceError, match="not a known family"):
        template_named("gpt")


def test_sse_skips_pings_and_ends_on_done() -> None:
    assert stream_events(": ping", "sse") == (None, False)
    assert stream_events("", "sse") == (None, False)
    assert stream_events("event: completion", "sse") == (None, False)
    assert stream_events("data: [DONE]", "sse") == (None, True)
    event, ended = stream_events('data: {"content": "x", "stop": false}', "sse")
    assert event == {"content": "x", "stop": False} and not ended
    event, ended = stream_events('error: {"message": "slot unavailable"}', "sse")
    assert ended and event is not None and "slot unavailable" in str(event["error"])
    with pytest.raises(ServerError, match="not JSON"):
        stream_events("data: {oops", "sse")


def test_each_dialect_reads_its_last_event() -> None:
    chunk = OpenAI().chunk({"choices": [{"text": "", "finish_reason": "length"}]})
    assert chunk.done and chunk.stop_reason == "max_tokens"
    chunk = LlamaServer().chunk({"content": "x", "stop": True, "stop_type": "eos", "tokens_evaluated": 30})
    assert chunk.done and chunk.stop_reason == "eog" and chunk.prompt_tokens == 30 and chunk.text == "x"
    chunk = Ollama().chunk({"response": "", "done": True, "done_reason": "stop", "prompt_eval_count": 12})
    assert chunk.done and chunk.stop_reason == "eog" and chunk.prompt_tokens == 12
    chunk = Ollama().chunk({"done": True, "done_reason": "load"})
    assert chunk.stop_reason == "error" and chunk.error and "empty prompt" in chunk.error
    chunk = OpenAI().chunk({"error": {"message": "The model `x` does not exist."}})
    assert chunk.error == "The model `x` does not exist."


def test_the_readme_snippets_are_valid_settings() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Scaling out", 1)[1].split("\n## ", 1)[0]
    snippets = re.findall(r"```json\n(.*?)```", section, flags=re.DOTALL)
    assert len(snippets) == 4
    backends = set()
    for snippet in snippets:
        config, problems = parse(json.loads(snippet))
        assert problems == [], snippet
        assert endpoints(config), snippet
        backends.add(config.backend)
    assert backends == {"openai", "llama-server", "ollama"}
