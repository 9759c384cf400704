"""``fim-lsp bench context``: time to build the context for one keystroke.

A keystroke here is what the daemon does on the event loop between a ``didChange`` and
the prompt: apply the change to the document (tree edit included), re-parse
incrementally, cut prefix and suffix, decide the mode. The file is generated (about
``--lines`` lines of ordinary code in the chosen language) and edited the way people
type: open a new line under a random statement and type a statement into it character
by character, insert inside a line, delete with backspace. Every keystroke is timed;
the first context of the file (full parse, token-ratio calibration) is reported apart.

Without ``--model`` tokens are counted by a character estimate; with it, by the model's
own tokenizer (loaded vocabulary-only), which the daemon uses.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from fim.context import Budgets, Document, build_context
from fim.languages import LANGUAGES, language_named
from fim.positions import PositionEncoding, units_of
from harness.report import machine, percentile, write_json

#: One unit of generated code per language; ``{n}`` makes every copy distinct.
_CHUNKS: dict[str, str] = {
    "python": '''
@dataclass
class Widget{n}(Base):
    """A widget with a size and some items."""

    size: int = {n}

    def area(self, scale: float = 1.0) -> float:
        if self.size > 10:
            return self.size ** 2 * scale / 3.0
        total = 0
        for item in self.items[: self.size]:
            total += item.weight  # heavy items count more
        return float(total)

''',
    "javascript": """
export function widget{n}(size, items) {{
  const total = items.filter((item) => item.size > {n}).reduce((a, b) => a + b.weight, 0);
  if (size > 10) {{
    return {{ area: size * size, total }};
  }}
  // small widgets are drawn inline
  return render(<Widget size={{size}} total={{total}} />);
}}
""",
    "typescript": """
export interface Shape{n} {{
  size: number;
  items: Array<{{ weight: number }}>;
}}

export function area{n}(shape: Shape{n}, scale = 1): number {{
  const total = shape.items.reduce((sum, item) => sum + item.weight, {n});
  if (shape.size > 10) {{
    return shape.size ** 2 * scale;
  }}
  return total;
}}
""",
    "tsx": """
export const Panel{n} = ({{ title, items }}: Props) => {{
  const [open, setOpen] = useState(false);
  const visible = items.filter((item) => item.size > {n});
  return (
    <section className="panel" onClick={{() => setOpen(!open)}}>
      <h2>{{title}}</h2>
      {{open && visible.map((item) => <Row key={{item.id}} item={{item}} />)}}
    </section>
  );
}};
""",
    "go": """
// Area{n} returns the area of a widget.
func Area{n}(w *Widget, scale float64) (float64, error) {{
\tif w == nil {{
\t\treturn 0, errors.New("nil widget")
\t}}
\ttotal := 0.0
\tfor _, item := range w.Items {{
\t\ttotal += item.Weight * scale
\t}}
\treturn total + float64({n}), nil
}}
""",
    "rust": """
/// The area of widget {n}.
pub fn area_{n}(widget: &Widget, scale: f64) -> Result<f64, Error> {{
    let total: f64 = widget.items.iter().map(|item| item.weight).sum();
    match widget.size {{
        0 => Err(Error::Empty),
        1..=10 => Ok(total * scale),
        _ => {{
            let size = widget.size as f64;
            Ok(size * size + {n}.0)
        }}
    }}
}}
""",
    "c": """
/* area of widget {n} */
static double area_{n}(const struct widget *w, double scale)
{{
    double total = 0.0;
    for (size_t i = 0; i < w->count; i++) {{
        total += w->items[i].weight * scale;
    }}
    if (w->size > MAX_SIZE) {{
        return -1.0;
    }}
    return total + {n};
}}
""",
    "cpp": """
namespace shapes {{
template <typename T>
double area_{n}(const Widget<T>& widget, double scale) {{
    double total = 0.0;
    for (const auto& item : widget.items()) {{
        total += item.weight() * scale;
    }}
    return widget.size() > {n} ? total : -1.0;
}}
}}  // namespace shapes
""",
    "java": """
    /** Area of widget {n}. */
    @Override
    public double area{n}(Widget widget, double scale) {{
        double total = 0.0;
        for (Item item : widget.getItems()) {{
            total += item.getWeight() * scale;
        }}
        if (widget.getSize() > {n}) {{
            return -1.0;
        }}
        return total;
    }}
""",
    "lua": """
-- area of widget {n}
local function area_{n}(widget, scale)
  local total = 0
  for _, item in ipairs(widget.items) do
    total = total + item.weight * scale
  end
  if widget.size > {n} then
    return -1
  end
  return total
end
""",
}

_HEADERS = {"go": "package widgets\n", "java": "public class Widgets {\n", "rust": "use std::fmt;\n"}
_FOOTERS = {"java": "}\n"}
_EXTENSIONS = {spec.name: spec.extensions[0] for spec in LANGUAGES}
#: What gets typed on a new line, per language.
_STATEMENTS = {
    "python": "value = compute(item.weight, scale)",
    "lua": "local value = compute(item.weight, scale)",
    "go": "value := compute(item.Weight, scale)",
    "rust": "let value = compute(item.weight, scale);",
    "javascript": "const value = compute(item.weight, scale);",
    "typescript": "const value: number = compute(item.weight, scale);",
    "tsx": "const value = compute(item.weight, scale);",
}
_DEFAULT_STATEMENT = "double value = compute(item.weight, scale);"


def generate(language: str, lines: int) -> str:
    """About ``lines`` lines of code in ``language``."""
    chunk = _CHUNKS[language]
    parts = [_HEADERS.get(language, "")]
    count = parts[0].count("\n")
    number = 0
    while count < lines:
        piece = chunk.format(n=number)
        parts.append(piece)
        count += piece.count("\n")
        number += 1
    parts.append(_FOOTERS.get(language, ""))
    return "".join(parts)


def _position(doc: Document, offset: int) -> tuple[int, int]:
    """The LSP position an editor would send (computed as the editor would, untimed)."""
    line = doc.line_of(offset)
    return line, units_of(doc.text[doc.line_start(line) : offset], PositionEncoding.UTF16)


class Keystrokes:
    """Drives one document like a typing user and times each keystroke's context."""

    def __init__(self, doc: Document, budgets: Budgets, count_tokens: Callable[[str], int]) -> None:
        self.doc = doc
        self.budgets = budgets
        self.count_tokens = count_tokens
        self.times_ms: list[float] = []

    def _change(self, start: int, end: int, text: str) -> int:
        """One didChange (LSP UTF-16 range) and the context at the resulting cursor; timed."""
        doc = self.doc
        start_position, end_position = _position(doc, start), _position(doc, end)
        began = time.perf_counter()
        doc.apply_change((start_position, end_position), text, PositionEncoding.UTF16)
        cursor = start + len(text)
        build_context(doc, cursor, self.budgets, self.count_tokens)
        self.times_ms.append((time.perf_counter() - began) * 1000)
        return cursor

    def type_new_line(self, line: int, statement: str) -> None:
        doc = self.doc
        end = doc.line_end(line)
        indent = doc.line_text(line)[: len(doc.line_text(line)) - len(doc.line_text(line).lstrip())]
        cursor = self._change(end, end, "\n" + indent)
        for char in statement:
            cursor = self._change(cursor, cursor, char)

    def type_inside(self, line: int, rng: random.Random) -> None:
        text = self.doc.line_text(line)
        if not text.strip():
            return
        cursor = self.doc.line_start(line) + rng.randrange(len(text) + 1)
        for char in "_tmp":
            cursor = self._change(cursor, cursor, char)
        for _ in range(4):
            cursor = self._change(cursor - 1, cursor, "")


def run(
    language: str, lines: int, sessions: int, seed: int, count_tokens: Callable[[str], int]
) -> dict[str, Any]:
    text = generate(language, lines)
    doc = Document(f"file:///bench/widgets{_EXTENSIONS[language]}", text, language)
    # The library's former defaults, kept so figures stay comparable across versions.
    budgets = Budgets(prefix_tokens=1536, suffix_tokens=16)
    began = time.perf_counter()
    build_context(doc, len(text) // 2, budgets, count_tokens)
    first_ms = (time.perf_counter() - began) * 1000
    driver = Keystrokes(doc, budgets, count_tokens)
    rng = random.Random(seed)
    statement = _STATEMENTS.get(language, _DEFAULT_STATEMENT)
    for session in range(sessions):
        line = rng.randrange(doc.line_count // 10, doc.line_count * 9 // 10)
        while not doc.line_text(line).strip():
            line += 1
        if session % 3 == 2:
            driver.type_inside(line, rng)
        else:
            driver.type_new_line(line, statement)
    times = driver.times_ms
    return {
        "language": language,
        "lines": doc.line_count,
        "chars": len(doc.text),
        "keystrokes": len(times),
        "first_context_ms": round(first_ms, 2),
        "p50_ms": round(percentile(times, 0.5) or 0.0, 3),
        "p95_ms": round(percentile(times, 0.95) or 0.0, 3),
        "p99_ms": round(percentile(times, 0.99) or 0.0, 3),
        "max_ms": round(max(times), 3),
    }


def _model_counter(path: str) -> Callable[[str], int]:
    """The model's tokenizer, vocabulary only (no weights are loaded)."""
    import llama_cpp as llama

    llama.llama_backend_init()
    params = llama.llama_model_default_params()
    params.vocab_only = True
    model = llama.llama_model_load_from_file(path.encode(), params)
    if not model:
        raise SystemExit(f"fim-lsp bench context: cannot load the vocabulary of {path}")
    vocab = llama.llama_model_get_vocab(model)

    def count(text: str) -> int:
        data = text.encode("utf-8", "surrogatepass")
        capacity = len(data) + 8
        tokens = (llama.llama_token * capacity)()
        return int(llama.llama_tokenize(vocab, data, len(data), tokens, capacity, False, False))

    count.model = model  # type: ignore[attr-defined]  # keeps the model alive with the counter
    return count


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="fim-lsp bench context",
        description="Time to build the completion context for one keystroke (edit, re-parse, cut, mode).",
    )
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    parser.add_argument(
        "--lines", type=int, default=10_000, help="size of the generated file (default 10000)"
    )
    parser.add_argument(
        "--language",
        default="python",
        help=f"one of {', '.join(sorted(_CHUNKS))}, or 'all' (default python)",
    )
    parser.add_argument("--sessions", type=int, default=24, help="editing sessions per file (default 24)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", metavar="GGUF", help="count tokens with this model's tokenizer")
    args = parser.parse_args(argv)
    names = sorted(_CHUNKS) if args.language == "all" else [args.language]
    unknown = [name for name in names if name not in _CHUNKS or not language_named(name).has_grammar]
    if unknown:
        print(f"fim-lsp bench context: unknown language {unknown[0]!r}", file=sys.stderr)
        return 2
    count_tokens = _model_counter(args.model) if args.model else (lambda text: len(text) * 2 // 7 + 1)
    results = []
    for name in names:
        result = run(name, args.lines, args.sessions, args.seed, count_tokens)
        results.append(result)
        print(
            f"{name:10} {result['lines']:6} lines  {result['keystrokes']:4} keystrokes  "
            f"p50 {result['p50_ms']:.2f} ms  p95 {result['p95_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms  "
            f"(first context {result['first_context_ms']:.0f} ms)"
        )
    if args.json:
        worst = max(results, key=lambda result: result["p95_ms"])
        write_json(
            args.json,
            {
                "benchmark": "context",
                "lines": worst["lines"],
                "p50_ms": worst["p50_ms"],
                "p95_ms": worst["p95_ms"],
                "tokenizer": "model" if args.model else "estimate",
                "languages": results,
                "machine": machine(),
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
