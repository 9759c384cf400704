"""Figures and output shared by the benchmarks: percentiles, similarity, tables, JSON, plots.

Everything here is pure (no daemon, no model) so the latency, quality and micro
benchmarks report in one format, and tests can check the arithmetic.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = math.ceil(position)
    weight = position - low
    return float(ordered[low] * (1 - weight) + ordered[high] * weight)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert, delete, substitute), O(len(a) * len(b)) with two rows."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def edit_similarity(a: str, b: str) -> float:
    """1 - distance / longer length: 1.0 for equal strings, 0.0 for nothing in common."""
    if not a and not b:
        return 1.0
    return 1.0 - levenshtein(a, b) / max(len(a), len(b))


def normalize_code(text: str) -> str:
    """Trailing spaces and trailing blank lines do not make two completions differ."""
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def round_or_none(value: float | None, digits: int = 1) -> float | None:
    """A figure for a report (milliseconds to a tenth by default); None stays None."""
    return None if value is None else round(value, digits)


def rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def fmt_ratio(ours: float | None, peer: float | None) -> str:
    """How many times faster (or better) we are: peer / ours for times."""
    if ours is None or peer is None or ours <= 0:
        return "-"
    return f"{peer / ours:.2f}x"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Where and under what load a figure was taken (2 shared cores: load matters)."""
    try:
        load = [round(value, 2) for value in os.getloadavg()]
    except OSError:
        load = []
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "loadavg": load,
    }


def write_json(path: Path | str, data: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def cdf_plot(
    curves: dict[str, Sequence[float]],
    path: Path | str,
    title: str,
    totals: dict[str, int] | None = None,
) -> Path | None:
    """One latency CDF per system on a single PNG; None if matplotlib is not installed.

    With ``totals`` the fractions are of all pauses, so a system that showed nothing at
    some pauses never reaches 1.0.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for label, values in curves.items():
        if not values:
            continue
        ordered = sorted(values)
        total = max(len(ordered), (totals or {}).get(label, len(ordered)))
        fractions = [(index + 1) / total for index in range(len(ordered))]
        axes.step(ordered, fractions, where="post", label=f"{label} ({len(ordered)} of {total} pauses)")
    axes.set_xlabel("time from last keystroke to suggestion shown (ms)")
    axes.set_ylabel("fraction of pauses with a suggestion shown")
    axes.set_ylim(0, 1.02)
    axes.set_xlim(left=0)
    axes.grid(True, alpha=0.3)
    axes.set_title(title)
    axes.legend(loc="lower right")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def emit_report(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Print a bench command's markdown table and write its --markdown and --json files."""
    print(report["markdown"])
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report["markdown"] + "\n", encoding="utf-8")
    if args.json:
        write_json(args.json, report)
        print(f"\nwrote {args.json}")
