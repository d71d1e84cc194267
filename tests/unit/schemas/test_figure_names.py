"""Figure names are constants that cannot drift from the figure list."""

from __future__ import annotations

import pytest

from schemas import figure_names, figures


def test_every_figure_has_a_constant_and_every_constant_a_figure() -> None:
    declared = {getattr(figure_names, c) for c in figure_names.__all__}
    assert declared == set(figures.FIGURES_BY_NAME)


def test_a_misspelt_constant_is_refused_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(figure_names, "TRANSACTIONS_TOTAL", "dfip_transaction_total")
    with pytest.raises(RuntimeError, match="only in figure_names \\['dfip_transaction_total'\\]"):
        figures._check_names()
