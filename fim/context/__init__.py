"""What the model sees: a document's prefix and suffix around the cursor, and the mode.

``build_context`` (``build``) cuts the prompt for one keystroke from a ``Document``
(``document``), which keeps an open document's text and a tree-sitter window over the
lines around the cursor. The parts it uses: the cursor's scope (``scope``), the mode
decision (``mode``), the prefix and suffix cuts (``cut``) and plain-text helpers
(``text``).
"""

from __future__ import annotations

from fim.context.build import Budgets, CompletionContext, build_context
from fim.context.document import Document, SyntaxWindow, TokenCounter
from fim.context.mode import Mode
from fim.context.text import detect_indent_unit, indent_width, leading_whitespace

__all__ = [
    "Budgets",
    "CompletionContext",
    "Document",
    "Mode",
    "SyntaxWindow",
    "TokenCounter",
    "build_context",
    "detect_indent_unit",
    "indent_width",
    "leading_whitespace",
]
