"""Text from a file or a topic, made safe to print on a terminal.

A bank file or a record on a topic can hold control characters: ESC sequences clear the
screen, rewrite what was printed before or set the window title (OSC), and a carriage return
hides the start of a line. Rejection reasons quote what they read, and dead letters keep the
original bytes, so both would reach the analyst's terminal as written. Each control character
is shown as a visible escape (``\\x1b``) instead.
"""

from __future__ import annotations

__all__ = ["printable"]


def _table(keep: str) -> dict[int, str]:
    controls = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
    return {c: f"\\x{c:02x}" for c in controls if chr(c) not in keep}


_ONE_LINE = _table("\t")
_LINES = _table("\t\n")


def printable(text: str, *, lines: bool = False) -> str:
    """`text` with control characters escaped; `lines` keeps its line ends (``\\n``)."""
    return text.translate(_LINES if lines else _ONE_LINE)
