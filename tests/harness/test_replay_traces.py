"""The trace format and generator: deterministic, realistic, and they restore the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.bench import main as bench_main
from harness.replay.jumps import make_jump_trace
from harness.replay.traces import (
    KEY_DELAY_MS,
    EditorState,
    Event,
    Trace,
    final_text,
    load_trace,
    make_trace,
    offset_of,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "fixtures" / "src"
TRACES = ROOT / "fixtures" / "traces"


def test_same_seed_same_trace_other_seed_other_trace() -> None:
    text = (SOURCES / "inventory.py").read_text()
    first = make_trace(text, "inventory.py", seed=7)
    again = make_trace(text, "inventory.py", seed=7)
    other = make_trace(text, "inventory.py", seed=8)
    assert first.to_json() == again.to_json()
    assert first.to_json()["events"] != other.to_json()["events"]


@pytest.mark.parametrize("name", ["inventory.py", "ratelimit.ts", "wordfreq.go", "stats.py"])
def test_generated_trace_replays_back_to_the_source(name: str) -> None:
    text = (SOURCES / name).read_text()
    trace = make_trace(text, name, seed=3, holes=6)
    assert trace.pauses >= 3
    assert final_text(trace) == text


def test_pause_expects_exactly_the_deleted_text_minus_what_was_typed() -> None:
    text = (SOURCES / "wordfreq.go").read_text()
    trace = make_trace(text, "wordfreq.go", seed=11, holes=5)
    state = EditorState(trace.text)
    for event in trace.events:
        state.apply(event)
        if event.op == "pause":
            # The real file continues, from the cursor, with exactly the expected text.
            assert event.expected
            assert text[state.cursor : state.cursor + len(event.expected)] == event.expected
            assert state.text[state.cursor] in "\n"  # the hole runs to the end of a line
            assert not state.line_prefix.isspace() or event.kind == "block"


@pytest.mark.parametrize("mid_line", [False, True])
def test_jump_traces_restore_the_file_and_keep_code_right_of_the_cursor_when_asked(mid_line: bool) -> None:
    text = (SOURCES / "inventory.py").read_text()
    trace = make_jump_trace(text, "inventory.py", jumps=12, seed=5, mid_line=mid_line)
    assert final_text(trace) == text
    state = EditorState(trace.text)
    pauses = 0
    for event in trace.events:
        state.apply(event)
        if event.op == "pause":
            pauses += 1
            assert event.expected
            assert text[state.cursor - len(state.line_prefix) :].startswith(
                state.line_prefix + event.expected
            )
            right = state.text[state.cursor :].split("\n", 1)[0]
            if mid_line:
                assert len(right.strip()) >= 4, right  # code stays right of the cursor
            else:
                assert right == ""
    assert pauses == 12


def test_keystrokes_use_realistic_delays() -> None:
    text = (SOURCES / "ratelimit.ts").read_text()
    trace = make_trace(text, "ratelimit.ts", seed=5)
    keys = [event for event in trace.events if event.op == "type"]
    assert keys and all(len(event.text) == 1 for event in keys)
    # After the first key of a hole (a think time), keys come 80-200 ms apart.
    follow_ups = [b for a, b in zip(trace.events, trace.events[1:], strict=False) if a.op == b.op == "type"]
    assert follow_ups
    assert all(KEY_DELAY_MS[0] <= event.delay_ms <= KEY_DELAY_MS[1] for event in follow_ups)
    assert all(event.ms >= 1500 for event in trace.events if event.op == "pause")


@pytest.mark.parametrize("path", sorted(TRACES.glob("*.json")), ids=lambda path: path.name)
def test_shipped_traces_are_valid_and_restore_their_source(path: Path) -> None:
    trace = load_trace(path)
    assert trace.pauses >= 5
    assert trace.language_id in ("python", "typescript", "go")
    assert trace.source is not None
    assert final_text(trace) == (ROOT / trace.source).read_text()


def test_shipped_traces_cover_three_languages() -> None:
    languages = {load_trace(path).language_id for path in TRACES.glob("*.json")}
    assert {"python", "typescript", "go"} <= languages


def test_round_trip_through_json(tmp_path: Path) -> None:
    trace = Trace(
        "tiny",
        "tiny.py",
        "python",
        "x = 1\n",
        [
            Event("goto", line=0, column=4),
            Event("type", delay_ms=100, text="2"),
            Event("pause", ms=10, expected=""),
        ],
    )
    trace.save(tmp_path / "tiny.json")
    loaded = load_trace(tmp_path / "tiny.json")
    assert loaded.to_json() == trace.to_json()
    assert final_text(loaded) == "x = 21\n"


def test_offset_of_clamps_to_the_line() -> None:
    text = "ab\ncdef\n"
    assert offset_of(text, 1, 2) == 5
    assert offset_of(text, 0, 99) == 2
    assert offset_of(text, 9, 0) == len(text)


def test_make_trace_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "stats.trace.json"
    summary = tmp_path / "summary.json"
    code = bench_main(
        [
            "make-trace",
            str(SOURCES / "stats.py"),
            "--seed",
            "4",
            "--holes",
            "3",
            "-o",
            str(out),
            "--json",
            str(summary),
        ]
    )
    assert code == 0
    trace = load_trace(out)
    assert trace.seed == 4
    assert json.loads(summary.read_text())["pauses"] == trace.pauses
    assert "pauses" in capsys.readouterr().out


def test_bench_dispatcher_rejects_unknown_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["nope"]) == 2
    assert "unknown subcommand" in capsys.readouterr().err
    assert bench_main(["--help"]) == 0
    assert "make-trace" in capsys.readouterr().out
