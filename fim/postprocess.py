"""Streaming stop and trim rules applied to the model's raw output.

``StreamFilter.should_stop`` is called with the text generated so far and tells the
engine to stop as soon as the answer is complete; ``finish`` trims the final text.
"""

from __future__ import annotations

from fim.context import CompletionContext, Mode


class StreamFilter:
    def __init__(self, context: CompletionContext, mode: Mode | None = None) -> None:
        self.context = context
        self.mode = mode or context.mode

    def _body(self, text: str) -> str:
        # A completion at the end of a line may open with the line break itself.
        if not self.context.line_prefix.strip() or self.mode is Mode.SINGLE_LINE:
            return text
        return text

    def should_stop(self, text: str) -> bool:
        if self.mode is Mode.SINGLE_LINE:
            stripped = text.lstrip("\n") if not self.context.line_prefix.strip() else text
            return "\n" in stripped
        lines = text.split("\n")
        block = self.context.block_indent or ""
        return any(line.strip() and len(line) - len(line.lstrip()) <= len(block) for line in lines[1:-1])

    def finish(self, text: str) -> str:
        if self.mode is Mode.NONE:
            return ""
        if self.mode is Mode.SINGLE_LINE:
            if not self.context.line_prefix.strip():
                text = text.lstrip("\n")
            line = text.split("\n", 1)[0].rstrip()
            suffix_line = self.context.line_suffix.strip()
            if suffix_line and line.endswith(suffix_line):
                line = line[: -len(suffix_line)].rstrip()
            return line if line.strip() else ""
        block = self.context.block_indent or ""
        kept: list[str] = []
        for index, line in enumerate(text.split("\n")):
            if index > 0 and line.strip() and len(line) - len(line.lstrip()) <= len(block):
                break
            kept.append(line)
        return "\n".join(kept).rstrip()
