"""``fim-lsp model list|info|rm`` and ``--version``, run as a user runs them (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fim import __version__, models

FIM_LSP = [sys.executable, "-m", "cli"]


def run(*args: str, cache: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "FIM_LSP_OPTIONS"}
    if cache is not None:
        environment["FIM_LSP_CACHE"] = str(cache)
    environment.update(env)
    return subprocess.run([*FIM_LSP, *args], capture_output=True, text=True, env=environment, timeout=120)


@pytest.fixture
def cache_with_default(tmp_path: Path, model_path: Path) -> Path:
    """A cache holding the real default model (a hard link: no second copy) and its stamp."""
    folder = tmp_path / "cache" / "models"
    folder.mkdir(parents=True)
    entry = models.REGISTRY[models.DEFAULT_MODEL]
    os.link(model_path, folder / entry.filename)
    stamp = models.stamp_path(model_path)
    if stamp.is_file():
        (folder / stamp.name).write_text(stamp.read_text())
    return tmp_path / "cache"


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"fim-lsp {__version__}"
    assert __version__ != "0+unknown", "fim-lsp is not installed (pip install -e .)"


def test_list_shows_cached_and_missing_with_sizes(cache_with_default: Path) -> None:
    rows = json.loads(run("model", "list", "--json", cache=cache_with_default).stdout)
    by_name = {row["name"]: row for row in rows}
    assert set(by_name) == set(models.REGISTRY)
    default = by_name[models.DEFAULT_MODEL]
    assert default["cached"] and default["default"] and default["size"] == 491_400_064
    assert not by_name["qwen2.5-coder-7b"]["cached"] and not by_name["qwen2.5-coder-7b"]["size_exact"]
    text = run("model", "list", cache=cache_with_default).stdout
    assert "491.4 MB" in text and "~4.7 GB" in text and "(default)" in text
    assert "fim-lsp model rm NAME" in text


def test_info_of_a_cached_model(cache_with_default: Path) -> None:
    options = '{"nCtx": 4096, "kvCacheType": "q8_0", "documentStreams": 1}'
    done = run(
        "model", "info", models.DEFAULT_MODEL, "--json", "--options", options, cache=cache_with_default
    )
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["sha256"] == models.REGISTRY[models.DEFAULT_MODEL].sha256 and info["verified"] is True
    assert info["fim_template"] == "qwen2.5-coder" and info["context_length"] == 32768
    memory = info["memory"]
    assert memory["kv_cache_bytes"] == 24 * 4096 * 2 * (64 + 64) * 34 // 32
    assert (memory["n_ctx"], memory["kv_cache_type"], memory["sequences"]) == (4096, "q8_0", 2)
    text = run("model", "info", models.DEFAULT_MODEL, cache=cache_with_default).stdout
    for expected in (
        "sha256:",
        "FIM template:    qwen2.5-coder",
        "context length:  32768",
        "KV cache",
        "total",
    ):
        assert expected in text


def test_info_of_a_model_not_downloaded(tmp_path: Path) -> None:
    info = json.loads(run("model", "info", "qwen2.5-coder-7b", "--json", cache=tmp_path).stdout)
    assert info["cached"] is False and info["sha256"] is None
    assert info["memory_from"] == "from registry figures; not downloaded"
    assert info["memory"]["kv_cache_bytes"] == 28 * 8192 * 4 * 256 * 2
    text = run("model", "info", "qwen2.5-coder-7b", cache=tmp_path).stdout
    assert (
        "taken from the hub when it is downloaded" in text and "fim-lsp model pull qwen2.5-coder-7b" in text
    )


def test_info_of_a_local_file_and_of_bad_input(model_path: Path, tmp_path: Path) -> None:
    info = json.loads(run("model", "info", str(model_path), "--json").stdout)
    assert info["gguf"]["layers"] == 24 and info["fim_template"] == "qwen2.5-coder"
    missing = run("model", "info", str(tmp_path / "absent.gguf"))
    assert missing.returncode == 1 and "model file not found" in missing.stderr
    unknown = run("model", "info", "no-such-model")
    assert unknown.returncode == 1 and "unknown model 'no-such-model'" in unknown.stderr
    bad = run("model", "info", models.DEFAULT_MODEL, "--options", "{not json")
    assert "--options" in bad.stderr and "not valid JSON" in bad.stderr


def test_rm_removes_the_file_and_its_record(cache_with_default: Path, model_path: Path) -> None:
    done = run("model", "rm", models.DEFAULT_MODEL, cache=cache_with_default)
    assert done.returncode == 0 and "removed" in done.stdout and "491.4 MB" in done.stdout
    assert list((cache_with_default / "models").iterdir()) == []
    assert model_path.is_file(), "the real cache must not be touched"
    again = run("model", "rm", models.DEFAULT_MODEL, cache=cache_with_default)
    assert "is not cached" in again.stdout
    refused = run("model", "rm", str(model_path), cache=cache_with_default)
    assert refused.returncode == 2 and "only registry models are removed" in refused.stderr
    assert model_path.is_file()


def test_model_list_into_a_closed_pipe_is_quiet() -> None:
    """`fim-lsp model list | head -1`: no traceback when the reader leaves."""
    shell = f"{sys.executable} -m cli model list | head -1"
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("NAME") and "Traceback" not in done.stderr
