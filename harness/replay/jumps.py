"""``fim-lsp bench jumps``: cold jumps into real files that are not ours.

The shipped traces mostly measure type-through and the cache. This replay measures
the other case: the user opens a file, jumps to a line somewhere in it, types a few
characters (120 ms apart) and waits. Each jump is a trace event sequence of the usual
format (``goto``, ``delete`` the rest of the line, ``type`` × N, ``pause``, ``insert``
to restore the line), so the latency replay and its peer comparison run unchanged.
With ``--mid-line`` the user rewrites the start of a line and keeps its end: only a
piece up to a word boundary before the end is deleted, so code stays right of the
cursor (an edit inside a line, where the suggestion must end where that code begins).

The files come from real open-source packages fetched from the package registries into
a cache folder (``--corpus``; pip and npm do the download, nothing is committed), or
from ``--files``. Only files of 200–1,000 lines are used. The same seed makes the same
jumps.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from fim.context.text import is_word_char
from harness import runner
from harness.client import language_id_for
from harness.replay import latency
from harness.replay.traces import Event, Trace, final_text

#: Sources with real, hand-written code in several languages, pinned so that a corpus is
#: the same everywhere. (pip sdists, npm tarballs)
PYPI_SDISTS = ("click==8.1.7", "attrs==24.2.0", "requests==2.32.3")
NPM_PACKAGES = ("rxjs@7.8.1", "express@4.21.1")
SUFFIXES = {".py": "python", ".ts": "typescript", ".js": "javascript", ".go": "go"}
MIN_LINES, MAX_LINES = 200, 1000
TYPED_CHARS = 4
KEY_DELAY_MS = 120
#: The user reads for a moment after a jump before deleting and typing.
LOOK_MS = 400
PAUSE_MS = 2500


def default_corpus_dir(name: str = "corpus") -> Path:
    from fim.models import cache_dir

    return cache_dir().parent / name


def _extract(archive: Path, target: Path) -> None:
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as handle:
            handle.extractall(target)
        return
    with tarfile.open(archive) as handle:
        handle.extractall(target, filter="data")


def fetch_corpus(
    folder: Path, sdists: tuple[str, ...] = PYPI_SDISTS, npm_packages: tuple[str, ...] = NPM_PACKAGES
) -> Path:
    """Download the pinned packages' sources into ``folder`` (once) and return it."""
    done = folder / ".complete"
    if done.is_file():
        return folder
    downloads = folder / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    print(f"fetching the corpus into {folder} …", file=sys.stderr, flush=True)
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
    subprocess.run([*pip, "-d", str(downloads), *sdists], check=True)
    for package in npm_packages:
        subprocess.run(["npm", "pack", "--silent", package], cwd=downloads, check=True, capture_output=True)
    for archive in sorted(downloads.iterdir()):
        _extract(archive, folder / "src" / archive.name)
    done.write_text("ok\n")
    return folder


def corpus_files(folder: Path, per_language: int) -> list[Path]:
    """Up to ``per_language`` source files of 200–1,000 lines per language, largest first."""
    chosen: list[Path] = []
    for suffix in SUFFIXES:
        sized = []
        for path in sorted((folder / "src").rglob(f"*{suffix}")):
            generated = {"dist", "build", "node_modules"} & set(path.parts)
            if generated or path.name.endswith(".d.ts") or any("test" in part for part in path.parts[-3:]):
                continue
            lines = path.read_text(encoding="utf-8", errors="replace").count("\n")
            if MIN_LINES <= lines <= MAX_LINES:
                sized.append((lines, str(path)))
        chosen += [Path(name) for _lines, name in sorted(sized, reverse=True)[:per_language]]
    return chosen


#: With --mid-line, at least this many characters of code stay right of the cursor.
KEPT_RIGHT_CHARS = 4


def _mid_line_ends(code: str) -> list[int]:
    """Where a mid-line hole in ``code`` (a line without its indentation) may end: word
    boundaries that leave at least KEPT_RIGHT_CHARS of code after them and TYPED_CHARS + 4
    characters before them."""
    return [
        end
        for end in range(TYPED_CHARS + 4, len(code))
        if len(code[end:].strip()) >= KEPT_RIGHT_CHARS
        and not code[end].isspace()
        and is_word_char(code[end - 1], "") != is_word_char(code[end], "")
    ]


def _jump_lines(lines: list[str], count: int, rng: random.Random, mid_line: bool = False) -> list[int]:
    """Lines worth jumping to: code with at least TYPED_CHARS + 4 characters, spread out."""
    candidates = [
        index
        for index, line in enumerate(lines)
        if len(line.strip()) >= TYPED_CHARS + 4
        and not line.lstrip().startswith(("#", "//", "*", "/*"))
        and (not mid_line or _mid_line_ends(line.strip()))
    ]
    return sorted(rng.sample(candidates, min(count, len(candidates))))


def make_jump_trace(
    text: str, filename: str, *, jumps: int, seed: int, name: str | None = None, mid_line: bool = False
) -> Trace:
    """Open, then ``jumps`` times: go to a random line, retype its start, pause, restore it.

    ``mid_line``: retype only a piece of the line's start; its end stays right of the cursor.
    """
    rng = random.Random(seed)
    trace = Trace(
        name=name or f"jumps-{Path(filename).stem}",
        filename=Path(filename).name,
        language_id=language_id_for(filename),
        text=text,
        source=filename,
        seed=seed,
    )
    lines = text.split("\n")
    for line in _jump_lines(lines, jumps, rng, mid_line):
        content = lines[line]
        column = len(content) - len(content.lstrip())
        end = len(content)
        if mid_line:
            end = column + rng.choice(_mid_line_ends(content[column:].rstrip()))
        missing = content[column:end]
        typed = missing[:TYPED_CHARS]
        events = trace.events
        events.append(Event("goto", delay_ms=LOOK_MS, line=line, column=column))
        events.append(Event("delete", delay_ms=LOOK_MS, line=line, column=end))
        events += [Event("type", delay_ms=KEY_DELAY_MS, text=char) for char in typed]
        events.append(Event("pause", ms=PAUSE_MS, expected=missing[len(typed) :], kind="line"))
        events.append(Event("insert", delay_ms=LOOK_MS, text=missing[len(typed) :]))
    return trace


def build_traces(
    files: list[Path], jumps: int, seed: int, folder: Path, mid_line: bool = False
) -> list[Path]:
    paths = []
    for index, path in enumerate(files):
        text = path.read_text(encoding="utf-8", errors="replace")
        trace = make_jump_trace(text, path.name, jumps=jumps, seed=seed + index, mid_line=mid_line)
        if final_text(trace) != text:
            raise runner.BenchError(f"{path}: the jump trace does not restore the file")
        target = folder / f"{index:02d}-{path.stem}.json"
        trace.save(target)
        paths.append(target)
    return paths


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="fim-lsp bench jumps",
        description="Cold jumps into real files: open, jump to a line, type 4 characters, pause.",
    )
    parser.add_argument("--files", type=Path, nargs="+", default=None, help="source files to jump in")
    parser.add_argument(
        "--corpus", type=Path, default=None, help="where to fetch the package sources (default: cache)"
    )
    parser.add_argument("--per-language", type=int, default=2, help="files per language from the corpus")
    parser.add_argument("--jumps-per-file", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, default=None, help="latency CDF as PNG (needs matplotlib)")
    parser.add_argument("--keep-traces", type=Path, default=None, help="write the generated traces here")
    parser.add_argument(
        "--pure-lsp",
        action="store_true",
        help="send no fim/didMoveCursor on jumps (the editor plugins send it; pure LSP clients do not)",
    )
    parser.add_argument(
        "--mid-line",
        action="store_true",
        help="retype a piece of each line's start and keep its end right of the cursor",
    )
    runner.add_common_options(parser)
    args = parser.parse_args(argv)
    files = args.files
    if files is None:
        try:
            folder = fetch_corpus(args.corpus or default_corpus_dir())
        except (subprocess.CalledProcessError, OSError) as error:
            print(f"{parser.prog}: could not fetch the corpus ({error}); pass --files", file=sys.stderr)
            return 2
        files = corpus_files(folder, args.per_language)
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        print(f"{parser.prog}: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    known = [path for path in files if path.suffix in SUFFIXES]
    if not known:
        print(f"{parser.prog}: none of the files has a known suffix ({', '.join(SUFFIXES)})", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fim-jumps-") as scratch:
        folder = args.keep_traces or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            args.trace = build_traces(known, args.jumps_per_file, args.seed, folder, args.mid_line)
        except runner.BenchError as error:
            print(f"{parser.prog}: {error}", file=sys.stderr)
            return 2
        args.repeat = 1
        args.peer_speculative = False
        args.cursor_moves = not args.pure_lsp
        print(
            f"{len(args.trace)} files, {len(args.trace) * args.jumps_per_file} jumps: "
            + ", ".join(path.name for path in known),
            file=sys.stderr,
        )
        return runner.run_command(parser.prog, args, latency.run)
