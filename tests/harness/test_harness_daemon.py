"""The benchmarks end to end on a small slice, against the real daemon and the real model.

The peer (llama-server) is only exercised when ``make peer`` has built it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.peer.server import DEFAULT_BINARY
from harness.quality.bench import main as quality_main
from harness.quality.tasks import load_tasks
from harness.replay.latency import main as latency_main
from harness.replay.traces import Event, Trace, final_text
from harness.runner import SHARED_DATA

ROOT = Path(__file__).resolve().parents[2]
SINGLE_LINE = SHARED_DATA / "HumanEval-SingleLineInfilling.jsonl.gz"
LATENCY_KEYS = {"p50_ms", "p90_ms", "max_ms", "exact_match", "answered", "requests"}
QUALITY_KEYS = {"tasks", "pass_at_1"}
needs_data = pytest.mark.skipif(not SINGLE_LINE.is_file(), reason="../shared/data is not present")
needs_peer = pytest.mark.skipif(
    not DEFAULT_BINARY.is_file(), reason=f"{DEFAULT_BINARY} is not built (run `make peer`)"
)
pytestmark = pytest.mark.model


def tiny_trace(path: Path) -> Path:
    """Re-type the end of ``return sum(values) / len(values)`` in fixtures/src/stats.py."""
    text = (ROOT / "fixtures" / "src" / "stats.py").read_text()
    line = text.split("\n").index("    return sum(values) / len(values)")
    expected = "urn sum(values) / len(values)"
    trace = Trace(
        "tiny",
        "stats.py",
        "python",
        text,
        [
            Event("goto", delay_ms=0, line=line, column=4),
            Event("delete", delay_ms=100, line=line, column=len("    return sum(values) / len(values)")),
            Event("type", delay_ms=300, text="r"),
            Event("type", delay_ms=120, text="e"),
            Event("type", delay_ms=150, text="t"),
            Event("pause", ms=1500, expected=expected, kind="line"),
            Event("insert", delay_ms=200, text=expected),
        ],
    )
    assert final_text(trace) == text
    trace.save(path)
    return path


def test_latency_replay_answers_every_request(tmp_path: Path, model_path: Path) -> None:
    out = tmp_path / "latency.json"
    code = latency_main(
        ["--trace", str(tiny_trace(tmp_path / "tiny.json")), "--json", str(out), "--model", str(model_path)]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert report.keys() >= LATENCY_KEYS
    [pause] = report["per_pause"]
    # The delete and three keystrokes: four changes, four automatic requests.
    assert pause["requests"] == 4
    assert report["requests"] == report["answered"] == 4
    assert pause["cancel_sent"] <= 3
    assert not pause["timed_out"] and pause["errors"] == 0
    # The final state's suggestion arrived and was shown.
    assert pause["answer_ms"] is not None and pause["shown"] and pause["suggestion"].strip()
    assert report["p50_ms"] == pytest.approx(pause["latency_ms"], abs=0.1)
    assert pause["tokens_evaluated"] + pause["tokens_reused"] > 0
    assert 0.0 <= pause["edit_similarity"] <= 1.0
    assert "| tiny | ours |" in report["markdown"]


def test_latency_replay_tells_the_daemon_of_jumps_as_the_plugins_do(tmp_path: Path, model_path: Path) -> None:
    trace = str(tiny_trace(tmp_path / "tiny.json"))
    reports = []
    for extra in ([], ["--cursor-moves"]):
        out = tmp_path / f"latency{len(extra)}.json"
        assert latency_main(["--trace", trace, "--json", str(out), "--model", str(model_path), *extra]) == 0
        reports.append(json.loads(out.read_text()))
    plain, plugins = reports
    # The trace's one jump (a goto) reaches the daemon only when asked to, as from a plugin.
    assert plain["cursor_moves"] is False and plain["daemon_cursor_moves"] == 0
    assert plugins["cursor_moves"] is True and plugins["daemon_cursor_moves"] == 1
    assert plugins["answered"] == plugins["requests"] == 4


@needs_data
def test_quality_on_three_single_line_tasks_and_resume(tmp_path: Path, model_path: Path) -> None:
    out = tmp_path / "quality.json"
    argv = ["--dataset", str(SINGLE_LINE), "--limit", "3", "--json", str(out), "--model", str(model_path)]
    assert quality_main(argv) == 0
    report = json.loads(out.read_text())
    assert report.keys() >= QUALITY_KEYS
    assert report["tasks"] == 3 and report["resumed"] == 0
    lines = (tmp_path / "quality.tasks.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines[1:]]
    expected_ids = [task.id for task in load_tasks(SINGLE_LINE)[:3]]
    assert [record["task_id"] for record in records] == expected_ids
    assert all(record["system"] == "ours" for record in records)
    assert all(record["status"] in ("passed", "failed", "timeout") for record in records)
    assert all(record["passed"] == (record["status"] == "passed") for record in records)
    assert report["passed"] == sum(record["passed"] for record in records)
    assert report["pass_at_1"] == round(report["passed"] / 3, 4)
    assert report["passed_first_line"] == sum(record["first_line_passed"] for record in records)
    # A second run finds every task in the results file and asks nothing again.
    assert quality_main(argv) == 0
    again = json.loads(out.read_text())
    assert again["resumed"] == 3
    assert again["pass_at_1"] == report["pass_at_1"]
    assert len((tmp_path / "quality.tasks.jsonl").read_text().splitlines()) == len(lines)


@needs_peer
def test_latency_against_the_peer(tmp_path: Path, model_path: Path) -> None:
    out = tmp_path / "latency.json"
    trace = str(tiny_trace(tmp_path / "tiny.json"))
    code = latency_main(["--trace", trace, "--json", str(out), "--model", str(model_path), "--peer", "auto"])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["peer"].keys() >= LATENCY_KEYS
    assert report["peer"]["requests"] >= 1
    assert report["peer"]["requests"] == report["peer"]["answered"]
    assert report["peer"]["errors"] == 0


@needs_peer
@needs_data
def test_quality_against_the_peer(tmp_path: Path, model_path: Path) -> None:
    out = tmp_path / "quality.json"
    argv = ["--dataset", str(SINGLE_LINE), "--limit", "2", "--json", str(out), "--model", str(model_path)]
    assert quality_main([*argv, "--peer", "auto"]) == 0
    report = json.loads(out.read_text())
    assert report["peer"]["tasks"] == 2
    records = [json.loads(line) for line in (tmp_path / "quality.tasks.jsonl").read_text().splitlines()[1:]]
    peer_records = [record for record in records if record["system"] == "peer"]
    assert report["peer"]["passed"] == sum(record["passed"] for record in peer_records)
