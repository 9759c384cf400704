"""The cross-file benchmark's holes: lines that use a name another file of the package defines."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.quality.crossfile import holes_in, main, package_roots, select_holes, typed


def test_holes_are_code_lines_using_an_imported_name_of_another_file(tmp_path: Path) -> None:
    package = tmp_path / "src" / "shop"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    money = "def round_cents(amount: float) -> int:\n    return int(amount * 100)\n"
    (package / "money.py").write_text(money)
    (package / "cart.py").write_text(
        "from .money import round_cents\n"
        "\n"
        "\n"
        "def total(prices: list[float]) -> int:\n"
        '    """Uses round_cents on every price."""\n'
        "    # round_cents rounds\n"
        "    return sum(round_cents(price) for price in prices)\n"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "__init__.py").write_text("")
    assert package_roots(tmp_path) == [tmp_path / "src"]
    holes = holes_in(tmp_path / "src")
    assert [(str(hole.path), hole.name, hole.answer) for hole in holes] == [
        ("shop/cart.py", "round_cents", "round_cents(price) for price in prices)")
    ]
    hole = holes[0]
    # The answer is gone from the document; the cursor sits where it started.
    assert hole.text[: hole.cursor].endswith("    return sum(")
    assert "round_cents(price)" not in hole.text
    # Once the user has typed "rou", the rest is the answer.
    begun = typed(hole, 3)
    assert begun.text[: begun.cursor].endswith("    return sum(rou")
    assert begun.answer == "nd_cents(price) for price in prices)"
    assert begun.text[: begun.cursor] + begun.answer + begun.text[begun.cursor :] == (
        hole.text[: hole.cursor] + hole.answer + hole.text[hole.cursor :]
    )


def _package(root: Path, name: str, uses: int) -> None:
    """A package whose ``main.py`` has ``uses`` lines, each calling a helper of ``tools.py``."""
    package = root / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tools.py").write_text("def helper_value(n: int) -> int:\n    return n\n")
    calls = "".join(f"    total += helper_value({n})\n" for n in range(uses))
    (package / "main.py").write_text(
        f"from .tools import helper_value\n\n\ndef run() -> int:\n    total = 0\n{calls}    return total\n"
    )


def test_a_draw_takes_the_packages_in_turn_and_is_the_same_for_a_seed(tmp_path: Path) -> None:
    # Two sdists: one package with many holes, one with few; a short draw holds both.
    _package(tmp_path / "big-1.0" / "src", "big", uses=4)
    _package(tmp_path / "small-1.0" / "src", "small", uses=2)
    drawn = select_holes(tmp_path, 4, seed=3)
    assert [hole.path.parts[0] for hole in drawn] == ["big", "small", "big", "small"]
    assert [hole.id for hole in drawn] == [hole.id for hole in select_holes(tmp_path, 4, seed=3)]
    assert all(hole.answer.startswith("helper_value(") for hole in drawn)


def test_typescript_holes_use_a_name_imported_from_another_module_of_src(tmp_path: Path) -> None:
    src = tmp_path / "package" / "src"
    src.mkdir(parents=True)
    (tmp_path / "package" / "package.json").write_text('{"name": "shop"}\n')
    (src / "money.ts").write_text("export function roundCents(n: number): number {\n  return n;\n}\n")
    (src / "cart.ts").write_text(
        "import { roundCents } from './money';\n"
        "import { parse as parseLine } from './text';\n"
        "\n"
        "// roundCents rounds\n"
        "export function total(prices: number[]): number {\n"
        "  const label = 'roundCents';\n"
        "  return prices.map((price) => roundCents(price)).length;\n"
        "}\n"
    )
    (src / "text.ts").write_text("export const parse = (line: string): string => line;\n")
    assert package_roots(tmp_path) == [src]
    holes = holes_in(src)
    assert [(str(hole.path), hole.name, hole.answer, hole.language) for hole in holes] == [
        ("cart.ts", "roundCents", "roundCents(price)).length;", "typescript")
    ]
    assert holes[0].text[: holes[0].cursor].endswith("prices.map((price) => ")


def test_a_negative_typed_chars_is_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--typed-chars", "-2"])
    assert exited.value.code == 2
    assert "--typed-chars must be 0 or more, not -2" in capsys.readouterr().err
