"""The LSP language id an editor would send for a file, from its extension."""

from __future__ import annotations

from pathlib import Path

LANGUAGE_IDS = {
    ".py": "python",
    ".js": "javascript",
    ".jsx": "javascriptreact",
    ".ts": "typescript",
    ".tsx": "typescriptreact",
    ".go": "go",
    ".rs": "rust",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".java": "java",
    ".lua": "lua",
}


def language_id_for(path: Path | str) -> str:
    return LANGUAGE_IDS.get(Path(path).suffix.lower(), "plaintext")
