"""The cross-file benchmark's holes: lines that use a name another file of the package defines."""

from __future__ import annotations

from pathlib import Path

from harness.quality.crossfile import holes_in, package_roots


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
