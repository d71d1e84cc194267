"""Every figure that streams/aggregate/ and streams/rules/ write is named by a constant
(schemas/figure_names.py, the window figures of streams/aggregate/windows.py): a figure name
spelt out as a string is counted and changelogged but, misspelt, never exported."""

from __future__ import annotations

import ast
from pathlib import Path

from schemas.figures import FIGURES_BY_NAME
from streams.aggregate.windows import WINDOW_FIGURES
from streams.rules.overdue import OPEN

ROOT = Path(__file__).resolve().parents[4]
PACKAGES = ("streams/aggregate", "streams/rules")
NAMES = set(FIGURES_BY_NAME) | WINDOW_FIGURES | {OPEN}
# where each constant that is not in schemas/figure_names.py is defined
DEFINITIONS = {("streams/aggregate/windows.py", name) for name in WINDOW_FIGURES} | {
    ("streams/rules/overdue.py", OPEN)
}


def figure_strings(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal that is a figure name or looks like one."""
    strings = (
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    )
    return [(line, text) for line, text in strings if text in NAMES or text.startswith("dfip_")]


def test_figure_names_appear_as_strings_only_where_their_constant_is_defined() -> None:
    bare = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for line, text in figure_strings(path.read_text(encoding="utf-8")):
                if (rel, text) not in DEFINITIONS:
                    bare.append(f"{rel}:{line}: {text!r}")
    assert bare == []


def test_the_check_finds_a_bare_name() -> None:
    source = 'c.add("dfip_loans_active", labels, 1)\nrows = (("tx_count", ib, 1),)\n'
    assert figure_strings(source) == [(1, "dfip_loans_active"), (2, "tx_count")]
