"""Shared test fixtures: the real model file, the daemon's command line, the engine processes.

Daemons run the model in an engine process of their own user (``fim.shared``), found by
a socket in a runtime folder. Each test gets its own folder, so a test's daemons never
find an engine process (its KV cache, its counters) that another test used; daemons of
one test share one, as editor windows do. Engine processes exit a few seconds after
their last daemon (``FIM_LSP_ENGINE_IDLE_SECONDS``) and whatever a test leaves running is
stopped when it ends: each holds a copy of the model, and dozens would fill the memory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fim import models
from fim.shared.client import IDLE_SECONDS_ENV
from fim.shared.wire import RUNTIME_DIR_ENV, live_hosts

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
SERVER_COMMAND = [sys.executable, "-m", "cli", "serve"]


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The real Qwen2.5-Coder-0.5B GGUF; `make test` fetches it before pytest runs."""
    try:
        return models.resolve(models.DEFAULT_MODEL, fetch=False)
    except models.ModelError as error:
        pytest.fail(f"the real model is needed: {error}")


#: Seconds an engine process outlives its last daemon in tests (600 for users).
TEST_IDLE_SECONDS = "3"


def _engine_folder() -> Path:
    # Short, under /tmp: a Unix socket's path must stay under 108 bytes.
    return Path(tempfile.mkdtemp(prefix="fim-rt-"))


def stop_engines(folder: Path) -> int:
    """Stop the engine processes whose sockets are in ``folder``; returns how many ran."""
    hosts = live_hosts(folder)
    for _socket, pid in hosts:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while live_hosts(folder) and time.monotonic() < deadline:
        time.sleep(0.05)
    for _socket, pid in live_hosts(folder):
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return len(hosts)


@pytest.fixture(scope="session", autouse=True)
def _session_engines() -> Iterator[None]:
    """Daemons started outside a test (by module-scoped fixtures) get a folder too."""
    folder = _engine_folder()
    saved = {name: os.environ.get(name) for name in (RUNTIME_DIR_ENV, IDLE_SECONDS_ENV)}
    os.environ[RUNTIME_DIR_ENV] = str(folder)
    os.environ[IDLE_SECONDS_ENV] = TEST_IDLE_SECONDS
    yield
    stop_engines(folder)
    shutil.rmtree(folder, ignore_errors=True)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def engine_folder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This test's runtime folder: its daemons' engine processes, and theirs alone."""
    folder = _engine_folder()
    monkeypatch.setenv(RUNTIME_DIR_ENV, str(folder))
    yield folder
    stop_engines(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _quiet_llama() -> None:
    from fim.llama.log import quiet_llama

    quiet_llama()


#: Fixtures that bring up the real model, directly or through a real daemon.
MODEL_FIXTURES = {"model_path", "client", "raw_client", "engine", "daemon"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the real model, so `-m "not model"` is the fast slice."""
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)
