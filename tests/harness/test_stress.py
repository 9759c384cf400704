"""The stress tools against a real daemon with the real model, on small runs.

The full runs are benchmarks (``fim-lsp bench fuzz|soak|storm|hostile|crash``) whose
figures the README quotes; here each runs small and what it must never see is asserted:
an unanswered request, a crash, document state left after every document is closed, a
session that ends with the engine process.
"""

from __future__ import annotations

from pathlib import Path

from harness.stress.crash import crash_session
from harness.stress.fuzz import FUZZ_OPTIONS, fuzz_session
from harness.stress.hostile import hostile_session
from harness.stress.soak import soak_session
from harness.stress.storm import storm_session

#: Content, not speed: a generous budget keeps the answers the same on a busy machine.
OPTIONS = {"timeBudgetMs": 60000}


def test_fuzzed_traffic_gets_every_request_answered(model_path: Path) -> None:
    report = fuzz_session(dict(FUZZ_OPTIONS), messages=300, batch_size=50, seed=0, answer_timeout=180)
    assert report["crashes"] == 0
    assert report["unanswered"] == 0, report["unanswered_examples"]
    assert report["answered"] >= report["requests"] > 100
    assert report["bodies_not_json_rpc"] > 0 and report["answered_with_error"] > 0
    # After it all, a real completion is still the right one.
    assert "% 2 == 0" in report["reference_after"]
    assert report["reference_same"]


def test_a_short_soak_frees_every_document(model_path: Path) -> None:
    report = soak_session(
        OPTIONS, requests=400, documents=4, warmup=50, sample_every=50, keystroke_gap=0.01, seed=0
    )
    assert report["crashes"] == 0 and report["unanswered_pauses"] == 0
    assert report["opened"] >= 4 and report["closed"] == report["opened"]
    assert report["final_open_documents"] == 0
    assert report["final_document_streams_held"] == 0
    assert report["final_document_state"] == {"suggestions": 0, "requestNumbers": 0, "prefixStarts": 0}
    assert all(sample["rss_mb"] and sample["fds"] for sample in report["samples"])
    # The model is in the engine process (sharedEngine): its memory is watched with the daemon's.
    engine = [sample["engine_rss_mb"] for sample in report["samples"]]
    assert all(engine) and all(s["rss_mb"] > e for s, e in zip(report["samples"], engine, strict=True))


def test_a_short_storm_leaves_nothing_hung(model_path: Path) -> None:
    report = storm_session(OPTIONS, rate=300, seconds=2, answer_timeout=180)
    assert report["crashes"] == 0
    assert report["hung"] == 0 and report["answered"] == report["requests"] == 600
    assert report["last_state_completed"], report["last_suggestion"]
    assert report["engine_busy_after_last_answer"] is False


def test_hostile_documents_are_all_answered(model_path: Path) -> None:
    # What is checked is that every request is answered and the daemon lives: a short
    # prefix keeps 30 cold prompts on hostile text within the test's time on a busy machine.
    options = {**OPTIONS, "prefixTokens": 256}
    report = hostile_session(options, str(model_path), scale=0.02, scaling=False)
    assert report["crashes"] == 0 and report["unanswered"] == 0
    assert all(row["alive"] for row in report["lsp"])
    # A normal file still gets suggestions after them: the end of a file may rightly get
    # none, so any of its three cursors counts.
    after = report["normal_after"]
    assert any(after[f"complete_{where}_chars"] > 0 for where in ("end", "middle", "start")), after


def test_the_session_outlives_engine_crashes(model_path: Path) -> None:
    report = crash_session(OPTIONS, kills=2)  # a SIGSEGV, then a SIGKILL, mid-request
    assert report["session_alive"]
    assert [row["signal"] for row in report["kills"]] == ["SIGSEGV", "SIGKILL"]
    assert all(row["request_answered_s"] is not None for row in report["kills"])
    assert all(row["new_engine_s"] is not None for row in report["kills"])
    assert report["never_right_again"] == 0
    assert report["messages_shown"] == 2  # once per crash
