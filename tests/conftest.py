"""Shared test fixtures: the real model file and the daemon's command line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fim import models

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
