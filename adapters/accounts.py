"""Account → enterprise (USCC) mapping and account pseudonymisation.

Raw account numbers are read here and nowhere else is one kept: the mapping is stored by
pseudonymised reference (keyed HMAC, `schemas.ids.pseudonymise_account`), so neither the
directory nor any event, error message or log line holds a raw account number.

Mapping files (TOML or CSV) are described in docs/adapters.md; an entry gives either the raw
`account` or its `account_ref` (so a mapping can be shared without raw account numbers).
"""

from __future__ import annotations

import csv
import io
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.files import read_regular_file
from schemas import SUPPORTED_CURRENCIES, SchemaError, normalize_uscc
from schemas import pseudonymise_account as _schemas_pseudonymise
from schemas.ids import normalise_account

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "MIN_KEY_BYTES",
    "AccountDirectory",
    "AccountMapError",
    "AmbiguousAccount",
    "MissingKeyError",
    "account_candidates",
    "account_hash_key",
    "pseudonymise_account",
]

KEY_ENV = "DFIP_ACCOUNT_HASH_KEY"
KEY_FILE_ENV = "DFIP_ACCOUNT_HASH_KEY_FILE"
MIN_KEY_BYTES = 16  # a short key would make the keyed hash guessable


class MissingKeyError(ValueError):
    """No (usable) pseudonymisation key is configured."""


class AccountMapError(ValueError):
    """An account mapping file cannot be used; the message names file, line and field."""


class AmbiguousAccount(ValueError):
    """Equally specific forms of one account map to different enterprises."""

    def __init__(self, written_ref: str, candidates: list[str]) -> None:
        self.written_ref = written_ref
        self.candidates = candidates
        super().__init__(
            f"account {written_ref} is ambiguous: the account map has "
            f"{' and '.join(candidates)} for it, owned by different enterprises; "
            f"map {written_ref} itself to say which"
        )


_IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")
_DE_BANK_ACCOUNT = re.compile(r"^([0-9]{8})/([0-9]{1,10})$")
# A bare domestic account number, digits grouped by dots as Dutch giro and bank numbers
# were written before IBAN (`1567.50.961`, `3462.483.153`).
_BARE_NUMBER = re.compile(r"^[0-9][0-9.]*[0-9]$")


def _iban_check(country: str, bban: str) -> str:
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{98 - int(digits) % 97:02d}"


def account_candidates(raw: str, scheme: str | None = None) -> list[list[str]]:
    """Tiers of forms to look a statement's account up with, most specific first.

    1. With a scheme (camt `Acct/Id/Othr/SchmeNm`): `<scheme>:<id>`.
    2. The identifier as written; an IBAN, a German `bankcode/account` or a bare account
       number followed by its currency (`NL…0123456789EUR` as ING and Rabobank write
       `:25:`, `12345678/0123456789EUR` as BNP Paribas Germany does, `1567.50.961EUR` and
       `3462.483.153 EUR` in old Rabobank statements) also without it; a German
       `bankcode/account` also as its IBAN (the same account either way).
    3. Fall-backs, only when no full form is mapped: the account number after the last
       `/` of `BIC/number` or `bankcode/number`, as written and without leading zeros.
    """
    text = normalise_account(raw).lstrip("/")  # Polish banks write :25:/PL61…
    tiers: list[list[str]] = []
    if scheme:
        tiers.append([f"{normalise_account(scheme)}:{text}"])
    exact = [text]
    bare = text  # the account without a currency written straight after it
    if len(text) > 3 and text[-3:].isalpha():
        head = text[:-3]
        if _IBAN.match(head) or (
            text[-3:] in SUPPORTED_CURRENCIES
            and (_DE_BANK_ACCOUNT.match(head) or _BARE_NUMBER.match(head))
        ):
            bare = head  # `12345678/0123456789EUR`: BNP Paribas Germany
            exact.append(bare)
    german = _DE_BANK_ACCOUNT.match(bare)
    if german:
        bban = german.group(1) + german.group(2).rjust(10, "0")
        exact.append(f"DE{_iban_check('DE', bban)}{bban}")
    fallbacks: list[str] = []
    if "/" in bare:
        tail = bare.rsplit("/", 1)[1]
        for form in (tail, tail.lstrip("0")):
            if form and form not in exact and form not in fallbacks:
                fallbacks.append(form)
    tiers.append(exact)
    if fallbacks:
        tiers.append(fallbacks)
    return tiers


def account_hash_key(env: Mapping[str, str] | None = None) -> bytes:
    """The account pseudonymisation key from `DFIP_ACCOUNT_HASH_KEY_FILE` or `..._KEY`.

    The file wins (secrets in files stay off command lines and process listings); one
    trailing newline is ignored. Raises `MissingKeyError` with a one-line explanation.
    """
    env = os.environ if env is None else env
    key_file = env.get(KEY_FILE_ENV)
    if key_file:
        try:
            key = read_regular_file(key_file).removesuffix(b"\n").removesuffix(b"\r")
        except OSError as exc:
            raise MissingKeyError(f"{KEY_FILE_ENV}={key_file}: {exc.strerror}") from None
        source = KEY_FILE_ENV
    elif env.get(KEY_ENV):
        key = env[KEY_ENV].encode("utf-8")
        source = KEY_ENV
    else:
        raise MissingKeyError(
            f"no account pseudonymisation key: set {KEY_ENV} or {KEY_FILE_ENV} "
            f"(at least {MIN_KEY_BYTES} bytes, the same for every adapter run)"
        )
    if len(key) < MIN_KEY_BYTES:
        raise MissingKeyError(f"{source}: key is shorter than {MIN_KEY_BYTES} bytes")
    return key


def pseudonymise_account(raw: str, key: bytes | None = None) -> str:
    """`acct_…` reference of a raw account number (key from the environment if not given)."""
    return _schemas_pseudonymise(raw, key if key is not None else account_hash_key())


@dataclass
class AccountDirectory:
    """Pseudonymised account reference → enterprise USCC, plus the key to compute references."""

    key: bytes
    _by_ref: dict[str, str] = field(default_factory=dict)
    _cache: dict[str, str] = field(default_factory=dict, repr=False)

    def ref(self, raw_account: str) -> str:
        """The pseudonymised reference of `raw_account` (cached: statements repeat accounts)."""
        ref = self._cache.get(raw_account)
        if ref is None:
            ref = _schemas_pseudonymise(raw_account, self.key)
            if len(self._cache) > 4096:  # bounded: a file may hold many accounts
                self._cache.clear()
            self._cache[raw_account] = ref
        return ref

    def uscc_for_ref(self, account_ref: str) -> str | None:
        return self._by_ref.get(account_ref)

    def uscc_for(self, raw_account: str) -> str | None:
        """USCC of the enterprise owning `raw_account`, or None if not mapped."""
        return self._by_ref.get(self.ref(raw_account))

    def resolve(self, raw_account: str, scheme: str | None = None) -> tuple[str, str | None]:
        """(account_ref, USCC or None) of a statement account, most specific form first.

        The first tier of `account_candidates` with a mapped form decides; the ref is that
        form's (or, if nothing is mapped, the ref of the account as written). Two forms of
        one tier mapped to different enterprises raise `AmbiguousAccount`: never a guess.
        """
        written = self.ref(raw_account)
        for tier in account_candidates(raw_account, scheme):
            found: dict[str, str] = {}
            for form in tier:
                ref = self.ref(form)
                uscc = self._by_ref.get(ref)
                if uscc is not None:
                    found.setdefault(ref, uscc)
            if len(set(found.values())) > 1:
                raise AmbiguousAccount(written, sorted(found))
            if found:
                ref, uscc = next(iter(found.items()))
                return ref, uscc
        return written, None

    def add(self, *, uscc: str, account: str | None = None, account_ref: str | None = None) -> None:
        if (account is None) == (account_ref is None):
            raise ValueError("give exactly one of account or account_ref")
        ref = self.ref(account) if account is not None else account_ref
        assert ref is not None
        self._by_ref[ref] = normalize_uscc(uscc)

    def __len__(self) -> int:
        return len(self._by_ref)

    @classmethod
    def load(cls, path: Path, key: bytes) -> AccountDirectory:
        """Read a `.toml` or `.csv` mapping file; raises `AccountMapError`."""
        directory = cls(key)
        try:
            data = read_regular_file(path)
        except OSError as exc:
            raise AccountMapError(f"{path}: {exc.strerror}") from None
        rows = _toml_rows(path, data) if path.suffix.lower() == ".toml" else _csv_rows(path, data)
        for where, account, account_ref, uscc in rows:
            if not uscc:
                raise AccountMapError(f"{where}: uscc: missing")
            if bool(account) == bool(account_ref):
                raise AccountMapError(f"{where}: give exactly one of account or account_ref")
            if account_ref and not _is_ref(account_ref):
                raise AccountMapError(f"{where}: account_ref: not an acct_<32 hex> reference")
            try:
                directory.add(uscc=uscc, account=account or None, account_ref=account_ref or None)
            except SchemaError as exc:
                raise AccountMapError(f"{where}: uscc: {exc.errors[0].reason}") from None
        return directory


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _not_utf8(exc: UnicodeDecodeError) -> str:
    bad = exc.object[exc.start : exc.start + 4].hex(" ")
    return f"not UTF-8 (bytes {bad}: {exc.reason}; a GBK/GB18030 file? save it as UTF-8)"


def _is_ref(text: str) -> bool:
    body = text.removeprefix("acct_")
    return (
        text.startswith("acct_") and len(body) == 32 and all(c in "0123456789abcdef" for c in body)
    )


_Row = tuple[str, str, str, str]  # where, account, account_ref, uscc


def _toml_rows(path: Path, data: bytes) -> Iterator[_Row]:
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise AccountMapError(f"{path}:{_line_of(data, exc.start)}: {_not_utf8(exc)}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AccountMapError(f"{path}: not valid TOML: {exc}") from None
    entries = doc.get("account", [])
    if not isinstance(entries, list):
        raise AccountMapError(f"{path}: expected [[account]] tables")
    for i, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise AccountMapError(f"{path}#account[{i}]: expected a table")
        yield (
            f"{path}#account[{i}]",
            str(entry.get("account", "")).strip(),
            str(entry.get("account_ref", "")).strip(),
            str(entry.get("uscc", "")).strip(),
        )


def _csv_rows(path: Path, data: bytes) -> Iterator[_Row]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AccountMapError(f"{path}:{_line_of(data, exc.start)}: {_not_utf8(exc)}") from None
    reader = csv.DictReader(io.StringIO(text))
    names = set(reader.fieldnames or ())
    if "uscc" not in names or not names & {"account", "account_ref"}:
        raise AccountMapError(f"{path}:1: header needs uscc and account or account_ref")
    for row in reader:
        yield (
            f"{path}:{reader.line_num}",
            (row.get("account") or "").strip(),
            (row.get("account_ref") or "").strip(),
            (row.get("uscc") or "").strip(),
        )
