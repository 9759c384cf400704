"""``fim-lsp demo`` where the repository's fixture file is not at hand, as in a user install."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import demo


def test_demo_without_the_repository_says_what_to_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "DEMO_FILE", tmp_path / "fixtures" / "src" / "stats.py")
    assert demo.run_demo() == 2
    said = capsys.readouterr().out
    assert "stats.py is missing" in said and "make demo" in said and "fim-lsp complete" in said
