"""The benchmarks' backend flags reach our daemon's options (``fim-lsp bench ... --backend``)."""

from __future__ import annotations

import argparse

from fim.config import endpoints, parse
from harness.runner import add_common_options, our_options


def parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_common_options(parser)
    return parser.parse_args(list(argv))


def test_backend_flags_become_daemon_options() -> None:
    args = parsed(
        "--backend",
        "llama-server",
        "--endpoint",
        "http://127.0.0.1:8081",
        "--endpoint",
        "http://127.0.0.1:8082",
        "--remote-model",
        "qwen2.5-coder-7b",
        "--init-options",
        '{"multiline": "never"}',
    )
    options = our_options(args)
    config, problems = parse(options)
    assert problems == []
    assert config.backend == "llama-server" and config.remote_model == "qwen2.5-coder-7b"
    assert endpoints(config) == ("http://127.0.0.1:8081", "http://127.0.0.1:8082")
    assert config.multiline == "never"


def test_without_flags_the_daemon_runs_in_process() -> None:
    options = our_options(parsed("--model", "qwen2.5-coder-0.5b"))
    assert options == {"model": "qwen2.5-coder-0.5b"}
    assert parse(options)[0].backend == "llama.cpp"
