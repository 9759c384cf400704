"""A benchmark's daemons get their own engine processes, never those of the user's editors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fim.shared.client import IDLE_SECONDS_ENV
from fim.shared.wire import RUNTIME_DIR_ENV
from harness.engines import engine_env


def test_a_benchmark_gets_a_folder_of_its_own_unless_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RUNTIME_DIR_ENV)
    monkeypatch.delenv(IDLE_SECONDS_ENV)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    # The editors' sockets would be in tmp_path/fim-lsp; the benchmark's go in a folder below.
    assert engine_env() == {
        RUNTIME_DIR_ENV: str(tmp_path / "fim-lsp" / f"bench-{os.getpid()}"),
        IDLE_SECONDS_ENV: "5",
    }
    monkeypatch.setenv(RUNTIME_DIR_ENV, str(tmp_path / "named"))
    monkeypatch.setenv(IDLE_SECONDS_ENV, "3")
    assert engine_env() == {}
