"""The top README shows exactly the editor snippets the editor tests run."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]


def test_editor_snippets_are_the_tested_files() -> None:
    text = (ROOT / "README.md").read_text()
    for snippet, fence in (
        ("editors/nvim/example/init.lua", "lua"),
        ("editors/emacs/example/init.el", "elisp"),
    ):
        content = (ROOT / snippet).read_text()
        assert f"```{fence}\n{content}```" in text, f"README must show {snippet} exactly"
    settings = (ROOT / "editors/vscode/examples/settings.json").read_text()
    assert settings.strip() in text, "README must show the VS Code settings snippet exactly"
