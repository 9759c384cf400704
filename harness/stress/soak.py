"""``fim-lsp bench soak``: a day of typing, compressed, with the daemon's memory watched.

Twenty real source files (modules of Python's own standard library, the same on every
machine with this Python) are opened, edited and closed in turn, at most five open at
once. An edit retypes a line of code: the line is cleared, then typed again character
by character, each keystroke a ``didChange`` and an automatic inline request that
cancels the one before it (as VS Code does); at the end of the line the answer is
awaited, as when a user pauses. This goes on until ``--requests`` requests were sent.

Every ``--sample-every`` requests the daemon's resident memory (RSS), with its engine
process's added (``sharedEngine``, where the model is), and open file descriptors are
read from /proc. RSS after the warm-up (``--warmup`` requests) must not
grow by more than ``--max-growth-mb``. At the end every document is closed and the
daemon must hold no document state: no open documents, no document streams in the
KV cache, no per-document entries in the completion service.
"""

from __future__ import annotations

import argparse
import random
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.report import emit_report, machine, markdown_table, percentile, round_or_none
from harness.runner import add_common_options, our_options
from harness.stress.wire import RawConnection, rss_bytes

#: Standard-library modules used as the documents (real code, present with every Python).
MODULES = (
    "textwrap.py",
    "shlex.py",
    "fnmatch.py",
    "glob.py",
    "heapq.py",
    "bisect.py",
    "colorsys.py",
    "csv.py",
    "difflib.py",
    "fractions.py",
    "getopt.py",
    "gettext.py",
    "graphlib.py",
    "ipaddress.py",
    "netrc.py",
    "numbers.py",
    "pprint.py",
    "queue.py",
    "sched.py",
    "statistics.py",
)
MAX_OPEN = 5
LINES_PER_VISIT = 4


def soak_documents(count: int = len(MODULES)) -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    found = [stdlib / name for name in MODULES if (stdlib / name).is_file()]
    return found[:count]


def editable_lines(text: str) -> list[int]:
    """Lines worth retyping: indented code of a reasonable length, not comments."""
    lines = text.split("\n")
    return [
        index
        for index, line in enumerate(lines)
        if line.startswith("    ")
        and 12 <= len(line.strip()) <= 70
        and not line.strip().startswith("#")
        and line.isascii()
    ]


@dataclass
class Sample:
    requests: int
    seconds: float
    #: The daemon's RSS plus its engine process's (sharedEngine): what the session holds.
    rss_mb: float | None
    fds: int | None
    #: The engine process's part of ``rss_mb`` (None: the model runs in the daemon).
    engine_rss_mb: float | None = None


@dataclass
class Soak:
    connection: RawConnection
    total_requests: int
    sample_every: int
    keystroke_gap: float
    pause_timeout: float
    rng: random.Random
    requests: int = 0
    pauses: int = 0
    pauses_with_suggestion: int = 0
    unanswered: int = 0
    pause_latencies_ms: list[float] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    opened: int = 0
    closed: int = 0
    started: float = field(default_factory=time.perf_counter)

    def sample(self) -> None:
        rss = self.connection.rss()
        # The model's memory is in the engine process by default: a leak there counts too.
        engine_pid = self.connection.status().get("sharedEnginePid")
        engine = rss_bytes(engine_pid) if isinstance(engine_pid, int) else None
        total = (rss or 0) + (engine or 0)
        self.samples.append(
            Sample(
                self.requests,
                round(time.perf_counter() - self.started, 1),
                round(total / 2**20, 1) if rss else None,
                self.connection.fds(),
                round(engine / 2**20, 1) if engine else None,
            )
        )

    def retype_line(self, uri: str, text: str, line: int, version: int) -> tuple[str, int]:
        """Clear ``line``'s code and type it again; returns the text and version after."""
        lines = text.split("\n")
        content = lines[line]
        indent = len(content) - len(content.lstrip())
        version += 1
        self.connection.change(uri, version, (line, indent), (line, len(content)), "")
        previous = None
        for column in range(indent, len(content)):
            version += 1
            self.connection.change(uri, version, (line, column), (line, column), content[column])
            request_id = self.connection.inline(uri, line, column + 1)
            if previous is not None:
                self.connection.cancel(previous)
            previous = request_id
            self.requests += 1
            if self.requests % self.sample_every == 0:
                self.sample()
            time.sleep(self.keystroke_gap)
            if self.requests >= self.total_requests:
                break
        if previous is not None:
            # The user pauses at the end of the line: the answer is awaited.
            answer = self.connection.wait(previous, self.pause_timeout)
            sent = self.connection.sent_at(previous)
            self.pauses += 1
            if answer is None:
                self.unanswered += 1
            else:
                if sent is not None:
                    self.pause_latencies_ms.append((answer.at - sent) * 1000)
                result = answer.result if isinstance(answer.result, dict) else {}
                self.pauses_with_suggestion += bool(result.get("items"))
        return text, version

    def run(self, documents: list[Path]) -> None:
        open_documents: dict[str, tuple[str, int]] = {}
        order = list(documents)
        turn = 0
        self.sample()
        while self.requests < self.total_requests:
            path = order[turn % len(order)]
            turn += 1
            uri = f"file:///fim-soak/{path.name}"
            if uri not in open_documents:
                if len(open_documents) >= MAX_OPEN:
                    oldest = next(iter(open_documents))
                    self.connection.close_document(oldest)
                    del open_documents[oldest]
                    self.closed += 1
                text = path.read_text(encoding="utf-8")
                self.connection.open(uri, text)
                open_documents[uri] = (text, 1)
                self.opened += 1
            text, version = open_documents[uri]
            candidates = editable_lines(text)
            for line in self.rng.sample(candidates, min(LINES_PER_VISIT, len(candidates))):
                text, version = self.retype_line(uri, text, line, version)
                if self.requests >= self.total_requests:
                    break
            open_documents[uri] = (text, version)
        for uri in list(open_documents):
            self.connection.close_document(uri)
            self.closed += 1
        time.sleep(1.0)
        self.sample()


def growth_figures(samples: list[Sample], warmup: int) -> dict[str, Any]:
    """RSS at the end of the warm-up, at the end, and the largest growth after the warm-up."""
    rss = [(sample.requests, sample.rss_mb) for sample in samples if sample.rss_mb is not None]
    after = [value for requests, value in rss if requests >= warmup]
    if not after:
        return {"rss_warm_mb": None, "rss_end_mb": None, "rss_growth_mb": None, "rss_max_growth_mb": None}
    base = after[0]
    return {
        "rss_warm_mb": base,
        "rss_end_mb": after[-1],
        "rss_growth_mb": round(after[-1] - base, 1),
        "rss_max_growth_mb": round(max(after) - base, 1),
    }


def plot(samples: list[Sample], warmup: int, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, memory = plt.subplots(figsize=(8, 4.5))
    requests = [sample.requests for sample in samples]
    memory.plot(requests, [sample.rss_mb or 0.0 for sample in samples], color="tab:blue", label="RSS (MB)")
    memory.set_xlabel("requests sent")
    memory.set_ylabel("resident memory (MB)", color="tab:blue")
    memory.axvline(warmup, color="grey", linestyle="--", linewidth=1, label="end of warm-up")
    descriptors = memory.twinx()
    descriptors.plot(requests, [sample.fds or 0 for sample in samples], color="tab:orange", label="open fds")
    descriptors.set_ylabel("open file descriptors", color="tab:orange")
    memory.set_title("fim-lsp soak: keystroke replay over 20 documents")
    memory.grid(True, alpha=0.3)
    memory.legend(loc="upper left")
    descriptors.legend(loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def soak_session(
    options: dict[str, Any],
    *,
    requests: int,
    documents: int,
    warmup: int,
    sample_every: int,
    keystroke_gap: float,
    seed: int,
) -> dict[str, Any]:
    connection = RawConnection()
    connection.start()
    try:
        connection.initialize_ready(options)
        soak = Soak(connection, requests, sample_every, keystroke_gap, 60.0, random.Random(seed))
        soak.run(soak_documents(documents))
        final = connection.status()
    finally:
        exit_code = connection.shutdown()
    fds = [sample.fds for sample in soak.samples if sample.fds is not None]
    return {
        "machine": machine(),
        "requests": soak.requests,
        "documents": documents,
        "opened": soak.opened,
        "closed": soak.closed,
        "pauses": soak.pauses,
        "pauses_with_suggestion": soak.pauses_with_suggestion,
        "pause_p50_ms": round_or_none(percentile(soak.pause_latencies_ms, 0.5)),
        "pause_p90_ms": round_or_none(percentile(soak.pause_latencies_ms, 0.9)),
        "unanswered_pauses": soak.unanswered,
        "warmup_requests": warmup,
        **growth_figures(soak.samples, warmup),
        "fds_min": min(fds) if fds else None,
        "fds_max": max(fds) if fds else None,
        "fds_end": fds[-1] if fds else None,
        "final_open_documents": final.get("openDocuments"),
        "final_document_streams_held": final.get("documentStreamsHeld"),
        "final_document_state": final.get("documentState"),
        "final_cache_entries": final.get("cacheEntries"),
        "seconds": round(time.perf_counter() - soak.started, 1),
        "samples": [sample.__dict__ for sample in soak.samples],
        "crashes": 0 if exit_code == 0 else 1,
    }


def markdown(report: dict[str, Any]) -> str:
    rows = [
        (
            "requests / documents opened / closed",
            f"{report['requests']} / {report['opened']} / {report['closed']}",
        ),
        ("pauses with a suggestion", f"{report['pauses_with_suggestion']} of {report['pauses']}"),
        ("pause answer p50 / p90 ms", f"{report['pause_p50_ms']} / {report['pause_p90_ms']}"),
        ("RSS after warm-up / at the end, MB", f"{report['rss_warm_mb']} / {report['rss_end_mb']}"),
        (
            "RSS growth after warm-up (end / largest), MB",
            f"{report['rss_growth_mb']} / {report['rss_max_growth_mb']}",
        ),
        ("open fds (min / max / end)", f"{report['fds_min']} / {report['fds_max']} / {report['fds_end']}"),
        (
            "after closing every document: open / streams held / per-document state",
            f"{report['final_open_documents']} / {report['final_document_streams_held']} / "
            f"{report['final_document_state']}",
        ),
        ("crashes", report["crashes"]),
        ("seconds", report["seconds"]),
    ]
    return markdown_table(["soak figure", "value"], rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fim-lsp bench soak", description=__doc__.split("\n\n")[0])
    add_common_options(parser)
    parser.add_argument("--requests", type=int, default=5000, help="inline requests to send (default 5000)")
    parser.add_argument("--documents", type=int, default=20, help="documents to cycle through (default 20)")
    parser.add_argument("--warmup", type=int, default=1000, help="requests before RSS growth is counted")
    parser.add_argument("--sample-every", type=int, default=50, help="requests between samples")
    parser.add_argument("--keystroke-ms", type=float, default=30.0, help="time between keystrokes")
    parser.add_argument("--max-growth-mb", type=float, default=20.0, help="RSS growth allowed after warm-up")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, default=None, help="write the RSS and fd curve here (PNG)")
    args = parser.parse_args(argv)
    options = {"timeBudgetMs": 4000, **our_options(args)}
    report = soak_session(
        options,
        requests=args.requests,
        documents=args.documents,
        warmup=args.warmup,
        sample_every=args.sample_every,
        keystroke_gap=args.keystroke_ms / 1000,
        seed=args.seed,
    )
    samples = [Sample(**sample) for sample in report["samples"]]
    if args.plot is not None:
        written = plot(samples, args.warmup, args.plot)
        report["plot"] = str(written) if written else None
    report["markdown"] = markdown(report)
    emit_report(args, report)
    growth = report["rss_max_growth_mb"]
    ok = report["crashes"] == 0 and growth is not None and growth <= args.max_growth_mb
    ok = ok and report["final_open_documents"] == 0 and report["final_document_streams_held"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
