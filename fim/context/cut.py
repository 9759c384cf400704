"""Where the prompt's prefix starts and its suffix ends, and the span a completion is checked in.

* The prefix ends at the cursor and starts at a line start. It starts at offset 0 when
  the file up to the cursor fits the prefix budget. Otherwise it starts at the earliest
  syntactic boundary that fits: a top-level statement or definition, else one inside
  the definition holding the cursor, else a line on a coarse grid. The start only moves
  when the budget forces it, so successive prompts share a long common prefix and the
  engine reuses its KV cache.
* The suffix is the rest of the cursor's line and then whole lines of the enclosing
  block, up to and including the line that closes it, within the suffix budget and cut
  back to the end of a statement. The block is found by indentation, which agrees with
  the tree for formatted code and stays stable while the line being typed does not
  parse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fim.context.text import indent_width, leading_whitespace

if TYPE_CHECKING:
    from tree_sitter import Node

    from fim.context.document import Document, TokenCounter
    from fim.context.scope import CursorSyntax
    from fim.languages import LanguageSpec

#: Prefix starts fall on multiples of this many lines when no syntactic boundary fits.
GRID_LINES = 32


def _first_line_at_or_after(doc: Document, offset: int) -> int:
    """The first line starting at or after ``offset`` (``line_count`` if none)."""
    line = doc.line_of(offset)
    return line + 1 if doc.line_start(line) < offset else line


def _first_child_ending_after(node: Node, byte: int) -> int:
    """Index of the first child of ``node`` that ends after ``byte`` (``child_count`` if none).

    A binary search over ``child(i)``: ``Node.first_child_for_byte`` returns invalid
    nodes in py-tree-sitter 0.25 (reading them crashes the process).
    """
    low, high = 0, node.child_count
    while low < high:
        middle = (low + high) // 2
        child = node.child(middle)
        if child is not None and child.end_byte <= byte:
            low = middle + 1
        else:
            high = middle
    return low


def _syntactic_start(
    doc: Document, syntax: CursorSyntax, threshold: int, cursor_line_start: int
) -> int | None:
    """Earliest line start at or after ``threshold`` where a node begins, outermost level first."""
    window = syntax.window
    if threshold < window.start:
        return None
    threshold_byte = window.byte_of(threshold)
    cursor_byte = window.byte_of(cursor_line_start)
    chain = syntax.chain
    for level, container in enumerate(chain):
        # Children of this node that start before the cursor's own child (or the cursor).
        limit = chain[level + 1].start_byte if level + 1 < len(chain) else cursor_byte
        if limit < threshold_byte:
            continue  # the cursor's own node at this level starts too early: look inside it
        index = _first_child_ending_after(container, threshold_byte)
        count = container.child_count
        while index < count:
            child = container.child(index)
            if child is None or child.start_byte > limit:
                break
            if child.start_byte >= threshold_byte:
                start = doc.line_start(doc.line_of(window.offset_of(child.start_byte)))
                if threshold <= start <= cursor_line_start:
                    return start
            index += 1
    return None


def _paragraph_start(doc: Document, spec: LanguageSpec, first_line: int, cursor_line: int) -> int | None:
    """Without a tree: the first unindented line after a blank one, at or after ``first_line``."""
    for line in range(max(1, first_line), cursor_line + 1):
        text = doc.line_text(line)
        if text[:1] in ("", " ", "\t") or spec.is_closer_line(text):
            continue
        if not doc.line_text(line - 1).strip():
            return doc.line_start(line)
    return None


def find_prefix_start(
    doc: Document,
    spec: LanguageSpec,
    syntax: CursorSyntax | None,
    cursor: int,
    cursor_line: int,
    budget_chars: float,
) -> int:
    """Start offset of the prefix: the earliest boundary that keeps it within ``budget_chars``."""
    if cursor <= budget_chars:
        return 0
    threshold = cursor - int(budget_chars)
    cursor_line_start = doc.line_start(cursor_line)
    first_line = _first_line_at_or_after(doc, threshold)
    found: int | None
    if syntax is not None:
        found = _syntactic_start(doc, syntax, threshold, cursor_line_start)
    else:
        found = _paragraph_start(doc, spec, first_line, cursor_line)
    if found is not None:
        return found
    grid_line = -(-first_line // GRID_LINES) * GRID_LINES
    if grid_line <= cursor_line:
        return doc.line_start(grid_line)
    if first_line <= cursor_line:
        return doc.line_start(first_line)
    # The cursor's line alone is over the budget: cut inside it, on a coarse grid.
    return min(cursor, -(-threshold // 64) * 64)


def find_suffix_end(
    doc: Document,
    spec: LanguageSpec,
    cursor: int,
    cursor_line: int,
    floor: int,
    budget_tokens: int,
    ratio: float,
    count_tokens: TokenCounter,
) -> int:
    """End offset of the suffix: whole lines of the cursor's block, within the budget."""
    if budget_tokens <= 0:
        return cursor
    budget_chars = budget_tokens * ratio
    line_end = doc.line_end(cursor_line)
    if line_end - cursor > budget_chars:
        return cursor + int(budget_chars)
    end = line_end
    # Ends of lines where the suffix can stop without cutting a statement, in order.
    boundaries = [line_end]
    sibling_indent: int | None = None
    line = cursor_line + 1
    while line < doc.line_count and doc.line_start(line) - cursor <= budget_chars:
        content = doc.line_text(line)
        stripped = content.strip()
        if not stripped:
            line += 1
            continue
        line_end_offset = doc.line_start(line) + len(content)
        width = indent_width(leading_whitespace(content))
        fits = line_end_offset - cursor <= budget_chars
        closes = spec.is_closer_line(stripped) or spec.is_continuation_line(stripped)
        if width < floor:
            if closes and fits:
                end = line_end_offset
                boundaries.append(end)
            break
        if sibling_indent is None:
            sibling_indent = width
        elif (width < sibling_indent or (width == sibling_indent and not closes)) and boundaries[-1] != end:
            # This line starts a statement, or it closes or continues an enclosing one
            # from further left ("else:" after a block): the statement above ended. A
            # closer at the statement's own indentation (a call's ")") is still part of it.
            boundaries.append(end)
        if not fits:
            end = boundaries[-1]
            break
        end = line_end_offset
        line += 1
    else:
        boundaries.append(end)
    if boundaries[-1] != end:
        boundaries.append(end)
    # Check the estimate with the real tokenizer: the suffix is short, and the same
    # suffix comes back keystroke after keystroke while the user types on the line.
    while len(boundaries) > 1 and doc.count_tokens_cached(count_tokens, doc.text[cursor:end]) > budget_tokens:
        boundaries.pop()
        end = boundaries[-1]
    return end


def find_check_window(doc: Document, syntax: CursorSyntax, cursor: int, cursor_line: int) -> tuple[int, int]:
    """The text a completion is re-parsed in: the top-level nodes around the cursor.

    The node holding the cursor and its neighbours on both sides: while code is being
    typed the tree is often broken into fragments, and the fragment holding the cursor
    alone can be a block whose opener sits in the fragment before it.
    """
    window = syntax.window
    cursor_byte = window.byte_of(cursor)
    root = syntax.root
    count = root.child_count
    index = _first_child_ending_after(root, cursor_byte)
    holder = root.child(index) if index < count else None
    first = index - 1
    last = index + 1 if holder is not None and holder.start_byte <= cursor_byte else index
    start, end = doc.line_start(cursor_line), doc.line_end(cursor_line)
    first_node = root.child(max(0, first)) if count else None
    last_node = root.child(min(count - 1, last)) if count else None
    if first_node is not None and last_node is not None:
        start = min(start, doc.line_start(doc.line_of(window.offset_of(first_node.start_byte))))
        end = max(end, doc.line_end(doc.line_of(window.offset_of(last_node.end_byte))))
    return max(start, window.start), min(end, window.end)
