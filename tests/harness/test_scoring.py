"""Scoring pieces: the sandbox, percentiles, edit similarity, task documents, SantaCoder rule."""

from __future__ import annotations

import pytest

from harness.quality.bench import parse_sweep
from harness.quality.sandbox import run_program
from harness.quality.tasks import (
    Answer,
    Task,
    first_line_only,
    first_line_santacoder,
    humaneval_program,
    load_tasks,
    score_task,
    select,
)
from harness.replay.replayer import score
from harness.report import edit_similarity, levenshtein, percentile
from harness.runner import SHARED_DATA, BenchError


def test_sandbox_passes_and_fails() -> None:
    assert run_program("assert 1 + 1 == 2\n").passed
    failed = run_program("assert 1 + 1 == 3\n")
    assert not failed.passed and failed.status == "failed" and "AssertionError" in failed.detail


def test_sandbox_times_out_an_endless_loop() -> None:
    outcome = run_program("while True:\n    pass\n", timeout=1.5)
    assert outcome.status == "timeout" and not outcome.passed


def test_sandbox_has_empty_environment_and_temporary_cwd() -> None:
    program = (
        "import os, sys\n"
        "assert not any(k.startswith(('HOME', 'PATH', 'PYTHON')) for k in os.environ), dict(os.environ)\n"
        "assert 'fim-sandbox-' in os.getcwd()\n"
        "assert sys.flags.isolated == 1\n"
    )
    assert run_program(program).passed


def test_sandbox_limits_memory() -> None:
    outcome = run_program("x = bytearray(3 * 1024 ** 3)\n")
    assert not outcome.passed and "MemoryError" in outcome.detail


def test_percentile_and_similarity() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([float(v) for v in range(1, 11)], 0.9) == pytest.approx(9.1)
    assert levenshtein("kitten", "sitting") == 3
    assert edit_similarity("abc", "abc") == 1.0
    assert edit_similarity("abcd", "abce") == 0.75


def test_latency_score_ignores_trailing_space_only() -> None:
    assert score("um(values)  \n", "um(values)").exact_match
    wrong = score("um(values) + 1", "um(values)")
    assert not wrong.exact_match and wrong.first_line_match is False and 0 < wrong.edit_similarity < 1
    block = score("a = 1\nb = 3", "a = 1\nb = 2")
    assert not block.exact_match and block.first_line_match


def test_santacoder_first_line_rule() -> None:
    assert first_line_santacoder("\n        return False\n    x") == "        return False"
    assert first_line_santacoder(" \n  y = 1") == "  y = 1"
    assert first_line_santacoder("abc\ndef") == "abc"
    assert first_line_only("\n    x = 1\n    y = 2", "") == "    x = 1"
    assert first_line_only("1)\nz", "f(") == "1)"


def _humaneval_task() -> Task:
    return Task(
        id="SingleLineInfilling/HumanEval/0/L0",
        suite="humaneval",
        language="py",
        prompt="def add(a, b):\n",
        suffix="    return c\n",
        canonical="    c = a + b\n",
        test="def check(candidate):\n    assert candidate(2, 3) == 5\n",
        entry_point="add",
    )


def test_line_holes_open_an_empty_line() -> None:
    task = _humaneval_task()
    text, cursor = task.document()
    assert text == "def add(a, b):\n\n    return c\n"
    assert text[cursor:] == "\n    return c\n"
    span = Task(**{**task.__dict__, "id": "RandomSpanInfilling/HumanEval/0/1"})
    assert span.document() == ("def add(a, b):\n    return c\n", len(task.prompt))


def test_score_task_runs_the_tests() -> None:
    task = _humaneval_task()
    text, cursor = task.document()
    good = text[:cursor] + "    c = a + b" + text[cursor:]
    bad = text[:cursor] + "    c = a - b" + text[cursor:]
    passed = score_task(task, Answer("    c = a + b", good, good, 1.0, {}), timeout=10)
    assert passed["passed"] and passed["first_line_passed"]
    failed = score_task(task, Answer("    c = a - b", bad, good, 1.0, {}), timeout=10)
    assert not failed["passed"] and failed["first_line_passed"]
    assert humaneval_program(good, task).endswith("check(add)\n")


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not present")
def test_dataset_loading_and_selection() -> None:
    single = load_tasks(SHARED_DATA / "HumanEval-SingleLineInfilling.jsonl.gz")
    assert len(single) == 1033 and single[0].suite == "humaneval"
    chosen = select(single, languages=None, every=4, limit=None)
    assert len(chosen) == 259 and chosen[1] is single[4]
    santa = load_tasks(SHARED_DATA / "santacoder-fim-task_qwen-hm_fim.jsonl.gz")
    assert len({task.id for task in santa}) == len(santa) == 4792
    python = select(santa, languages=["py"], every=1, limit=None)
    assert len(python) == 1043 and all(task.language == "py" for task in python)
    for task in python[:50]:
        # The hole is a line of its own: an empty one, between the prompt and the suffix.
        text, cursor = task.document()
        assert text[cursor - 1] == "\n" and text[cursor] == "\n", task.id
        assert text[:cursor].rstrip("\n") == task.prompt.rstrip("\n")
        assert text[cursor + 1 :] == task.suffix.removeprefix("\n")
        assert task.document(qwen_layout=True) == (task.prompt + task.suffix, len(task.prompt))


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not present")
def test_canonical_solutions_pass_in_the_sandbox() -> None:
    # The scoring itself must be right: the reference answers pass, as the editor applies them.
    tasks = []
    for name in ("HumanEval-SingleLineInfilling.jsonl.gz", "HumanEval-RandomSpanInfillingLight.jsonl.gz"):
        tasks += select(load_tasks(SHARED_DATA / name), languages=None, every=40, limit=None)
    for task in tasks:
        text, cursor = task.document()
        completion = task.canonical.removesuffix("\n") if task.opens_line else task.canonical
        document = text[:cursor] + completion + text[cursor:]
        assert score_task(task, Answer(completion, document, document, 0.0, {}), timeout=20)["passed"], (
            task.id
        )


def test_sweep_values_parse_as_json_and_bad_specs_are_named() -> None:
    assert parse_sweep("suffixTokens=0,16,256") == ("suffixTokens", [0, 16, 256])
    assert parse_sweep("multiline=never,auto") == ("multiline", ["never", "auto"])
    for bad in ("suffixTokens", "=1,2", "suffixTokens="):
        with pytest.raises(BenchError, match="expected OPTION=VALUE"):
            parse_sweep(bad)


def test_humaneval_multi_line_holes_are_whole_lines_and_pass_their_tests(tmp_path) -> None:
    import json

    from harness.quality.multiline import humaneval_records

    body = "    total = 0\n    for x in xs:\n        total += x\n\n    return total\n"
    record = {
        "task_id": "SingleLineInfilling/HumanEval/7/L0",
        "entry_point": "total",
        "prompt": 'def total(xs):\n    """Sum."""\n\n',  # one blank line too many, as the data has
        "canonical_solution": body.split("\n", 1)[0] + "\n",
        "suffix": body.split("\n", 1)[1],
        "test": "def check(f):\n    assert f([1, 2]) == 3\n",
    }
    source = tmp_path / "single.jsonl"
    source.write_text(json.dumps(record) + "\n")
    (made,) = humaneval_records(source)
    assert made["task_id"].startswith("MultiLineInfilling/HumanEvalOwn/7/L")
    assert 2 <= made["lines"] <= 5
    whole_solution = made["prompt"] + made["canonical_solution"] + made["suffix"]
    assert whole_solution.rstrip("\n") == 'def total(xs):\n    """Sum."""\n' + body.rstrip("\n")
    hole = made["canonical_solution"].split("\n")
    assert hole[0].strip() and hole[-2].strip(), "a hole starts and ends on a line of code"
    task = load_tasks_from(tmp_path, made)
    text, cursor = task.document()
    assert task.opens_line and text[cursor - 1 : cursor + 1] == "\n\n"
    whole = text[:cursor] + made["canonical_solution"].rstrip("\n") + text[cursor:]
    assert run_program(humaneval_program(whole, task)).passed


def load_tasks_from(folder, record) -> Task:
    import json

    path = folder / "made.jsonl"
    path.write_text(json.dumps(record) + "\n")
    (task,) = load_tasks(path)
    return task


def test_interleaved_suites_advance_together() -> None:
    from harness.quality.multiline import _interleaved

    order = list(_interleaved([["a1", "a2", "a3", "a4"], ["b1", "b2"]]))
    assert [item for _, item in order] == ["a1", "b1", "a2", "a3", "b2", "a4"]
    half = [item for _, item in order[:3]]
    assert half.count("b1") == 1 and "a2" in half
