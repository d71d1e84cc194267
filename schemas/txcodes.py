"""Which bank transaction codes mean cash: the one table the rules (and the oracle) read.

`TransactionEvent.bank_tx_code` holds what the adapter found (adapters/parsers/):
- camt.052/053/054: `Domn-Fmly-SubFmly` from `BkTxCd/Domn` (e.g. `PMNT-CNTR-CWDL`), else
  `BkTxCd/Prtry/Cd`; other producers also write the three codes with slashes
  (`PMNT/CNTR/CWDL`, as docs/events.md's example does): both spellings are read alike;
- MT940/MT942: the `:61:` transaction type (`N`/`S`/`F` + 3 characters, e.g. `NTRF`);
- CSV exports: the mapped `tx_code` column; PSD2 `bankTransactionCode`; OBIE
  `BankTransactionCode`.

Sources:
- ISO 20022 External Code Sets, ExternalBankTransactionDomain/Family/SubFamily ("Bank
  Transaction Code" list, iso20022.org): family `CNTR` (counter transactions) and `CCRD` /
  `MCRD` (card) with sub-families `CDPT` cash deposit, `CWDL` cash withdrawal, `BCDP` branch
  deposit, `BCWD` branch withdrawal, `FCDP`/`FCWD` foreign currency deposit/withdrawal;
  family `CASH` as named in the `CAMT` domain by some banks' proprietary mappings (issue #15).
- SWIFT MT940 `:61:` subfield 6 has no standard cash identification code (SWIFT's list of
  `Nxxx` codes covers transfers, cheques, charges...): banks that mark cash use a
  proprietary code; the ones below are those DFIP's CSV mappings and the simulator use.
- Chinese bank CSV exports: the 摘要/交易类型 column's words for cash (现金, 存现, 取现, ATM取款).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

__all__ = ["CASH_FAMILIES", "CASH_PROPRIETARY", "CASH_SUBFAMILIES", "is_cash"]

CASH_SUBFAMILIES: Final = frozenset({"CDPT", "CWDL", "BCDP", "BCWD", "FCDP", "FCWD"})
"""ISO 20022 sub-families that are cash in families `CNTR`, `CCRD` and `MCRD`."""
_CASH_SUB_FAMILIES_OF: Final = frozenset({"CNTR", "CCRD", "MCRD"})
CASH_FAMILIES: Final = frozenset({"CASH"})
"""ISO-shaped family codes that are cash whatever the domain and sub-family."""
CASH_PROPRIETARY: Final = frozenset(
    {"CASH", "CSH", "NCSH", "NCAS", "现金", "存现", "取现", "现金存入", "现金支取", "ATM取款"}
)
"""Proprietary codes (MT940 `:61:` type, camt `Prtry/Cd`, CSV) that mean cash."""


@lru_cache(maxsize=1024)  # a feed uses a handful of codes; this runs once per transaction
def is_cash(code: str | None) -> bool:
    """True when `bank_tx_code` marks a cash deposit or withdrawal."""
    if not code:
        return False
    text = code.strip().upper()
    if text in CASH_PROPRIETARY:
        return True
    parts = text.replace("/", "-").split("-")
    if len(parts) != 3:
        return False
    _, family, sub = parts
    return family in CASH_FAMILIES or (family in _CASH_SUB_FAMILIES_OF and sub in CASH_SUBFAMILIES)
