"""Expected, user-facing failures: printed as one line by the CLI, never as a traceback."""

from __future__ import annotations

__all__ = ["DfipError"]


class DfipError(Exception):
    """Something the user can fix: says what failed, where, and what to do."""

    def __init__(self, what: str, *, hint: str = "", exit_code: int = 1) -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.what} — {self.hint}" if self.hint else self.what
