"""Shared helpers for the editor tests: real editors against the real daemon and model.

Generic on purpose (the Neovim, Emacs and VS Code tests all use it): where the daemon is,
the environment that lets an editor's daemon find the model cache, a throwaway home
directory laid out like a user's, the fixture file, and a polling wait with a clear
failure message. Nothing here skips: a missing editor, daemon or model is a failure.

Test modules get these helpers through the `editors` fixture (this module), so that no test
has to import a conftest by name.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fim import models

REPO = Path(__file__).resolve().parents[2]
DAEMON = REPO / ".venv" / "bin" / "fim-lsp"

# The fixture: typing TYPED at the end of line FIXTURE_LINE (0-based) has one right answer.
FIXTURE_NAME = "even.py"
FIXTURE_TEXT = 'def is_even(number):\n    """Return True when number is divisible by two."""\n    return \n'
FIXTURE_LINE = 2
TYPED = "num"
EXPECTED_FRAGMENT = "% 2 == 0"
TYPED_LINE = "    return " + TYPED

T = TypeVar("T")


def daemon_command() -> list[str]:
    """The command an editor runs to start the daemon (`.venv/bin/fim-lsp serve`)."""
    if not DAEMON.is_file() or not os.access(DAEMON, os.X_OK):
        pytest.fail(f"the daemon {DAEMON} is missing: run `make venv` (or `pip install -e .`) first")
    return [str(DAEMON), "serve"]


def require_model() -> Path:
    """The default model's file; fails (never skips) when it is not downloaded."""
    entry = models.REGISTRY[models.DEFAULT_MODEL]
    path = models.cached_path(entry)
    if not path.is_file():
        pytest.fail(f"model {entry.name} is not downloaded ({path}): run `make model`")
    return path


def require_executable(path_or_name: str | Path, how_to_get_it: str) -> str:
    """The full path of an editor binary, or a test failure that says how to install it."""
    found = shutil.which(str(path_or_name))
    if not found:
        pytest.fail(f"cannot start the editor: {path_or_name} not found; {how_to_get_it}")
    return found


def editor_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for an editor whose HOME is `home`; its daemon still finds the real model cache.

    XDG_* variables are dropped so the editor reads its configuration from `home` only.
    """
    require_model()
    env = {key: value for key, value in os.environ.items() if not key.startswith("XDG_")}
    env["HOME"] = str(home)
    env["FIM_LSP_CACHE"] = str(models.cache_dir().parent)
    # The editors run the daemon with its default options, time budget included, as users do.
    env.pop("FIM_LSP_OPTIONS", None)
    env.update(extra)
    return env


def make_home(base: Path) -> Path:
    """A fresh home directory with the repository at ~/fim-lsp, where the READMEs put it."""
    home = base / "home"
    home.mkdir(parents=True, exist_ok=True)
    link = home / "fim-lsp"
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    return home


def make_fixture(directory: Path) -> Path:
    """Write the fixture file into `directory` (a git-less project) and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FIXTURE_NAME
    path.write_text(FIXTURE_TEXT, encoding="utf-8")
    return path


def wait_until(
    probe: Callable[[], T], what: str, timeout: float = 90.0, interval: float = 0.1, describe: Any = None
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` and the last value."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not value:
        if time.monotonic() > deadline:
            detail = describe() if callable(describe) else value
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {detail!r}")
        time.sleep(interval)
        value = probe()
    return value


def wait_model_ready(status: Callable[[], dict[str, Any] | None], timeout: float = 300.0) -> dict[str, Any]:
    """Poll a `fim/status` getter until the model is ready; fail at once on state "error"."""

    last: dict[str, Any] = {}

    def probe() -> dict[str, Any] | None:
        nonlocal last
        current = status() or {}
        last = current
        if current.get("state") == "error":
            pytest.fail(f"the daemon could not load the model: {current.get('error')}")
        return current if current.get("state") == "ready" else None

    return wait_until(probe, 'fim/status state "ready"', timeout=timeout, interval=0.2, describe=lambda: last)


@pytest.fixture(scope="session")
def editors() -> Any:
    """This module: the helpers and constants above, for the editor tests."""
    return sys.modules[__name__]
