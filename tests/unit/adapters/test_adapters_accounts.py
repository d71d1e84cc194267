"""Account pseudonymisation and the account → enterprise map."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import KEY

from adapters.accounts import (
    AccountDirectory,
    AccountMapError,
    MissingKeyError,
    account_hash_key,
    pseudonymise_account,
)

USCC = "91330106MA2H3K4P70"


def test_key_from_env_and_file(tmp_path: Path) -> None:
    assert account_hash_key({"DFIP_ACCOUNT_HASH_KEY": "k" * 16}) == b"k" * 16
    key_file = tmp_path / "key"
    key_file.write_bytes(b"file-key-0123456789abcdef\n")
    env = {"DFIP_ACCOUNT_HASH_KEY_FILE": str(key_file), "DFIP_ACCOUNT_HASH_KEY": "x" * 20}
    assert account_hash_key(env) == b"file-key-0123456789abcdef"  # the file wins


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "set DFIP_ACCOUNT_HASH_KEY"),
        ({"DFIP_ACCOUNT_HASH_KEY": "short"}, "shorter than 16 bytes"),
        ({"DFIP_ACCOUNT_HASH_KEY_FILE": "/nonexistent/key"}, "DFIP_ACCOUNT_HASH_KEY_FILE"),
    ],
)
def test_missing_or_weak_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(MissingKeyError, match=message):
        account_hash_key(env)


def test_pseudonym_is_keyed_normalised_and_opaque() -> None:
    ref = pseudonymise_account("1202 0211 0990 0123 456", KEY)
    assert ref == pseudonymise_account("1202021109900123456", KEY)  # spaces do not matter
    assert ref == pseudonymise_account("1202021109900123456")  # key from the environment
    assert ref != pseudonymise_account("1202021109900123456", b"another-key-0123456789")
    assert ref.startswith("acct_")
    assert len(ref) == 37
    assert "1202021109900123456" not in ref


def test_directory_maps_raw_accounts_and_references(tmp_path: Path) -> None:
    ref = pseudonymise_account("6222020200000000001", KEY)
    mapping = tmp_path / "accounts.toml"
    mapping.write_text(
        f'[[account]]\naccount = "DE89 3704 0044 0532 0130 00"\nuscc = "{USCC.lower()}"\n'
        f'[[account]]\naccount_ref = "{ref}"\nuscc = "91330203MA2B7Q1X6F"\n',
        encoding="utf-8",
    )
    directory = AccountDirectory.load(mapping, KEY)
    assert len(directory) == 2
    assert directory.uscc_for("DE89370400440532013000") == USCC  # normalised on load
    assert directory.uscc_for("6222020200000000001") == "91330203MA2B7Q1X6F"
    assert directory.uscc_for("0000") is None
    assert "DE89" not in repr(directory._by_ref)  # only references are kept


def test_csv_mapping_file(tmp_path: Path) -> None:
    mapping = tmp_path / "accounts.csv"
    mapping.write_text(f"account,uscc,name\n350055667788,{USCC},Yunqi\n", encoding="utf-8")
    assert AccountDirectory.load(mapping, KEY).uscc_for("350055667788") == USCC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[account]]\naccount = "1"\nuscc = "91330106MA2H3K4P71"\n',
            r"account\[1\]: uscc: USCC check",
        ),
        ('[[account]]\nuscc = "91330106MA2H3K4P70"\n', "exactly one of account or account_ref"),
        ('[[account]]\naccount_ref = "acct_zz"\nuscc = "91330106MA2H3K4P70"\n', "acct_<32 hex>"),
        ("[[account]\n", "not valid TOML"),
    ],
)
def test_bad_mapping_files_name_the_entry(tmp_path: Path, text: str, message: str) -> None:
    mapping = tmp_path / "bad.toml"
    mapping.write_text(text, encoding="utf-8")
    with pytest.raises(AccountMapError, match=message):
        AccountDirectory.load(mapping, KEY)


def test_bad_csv_mapping_names_the_line(tmp_path: Path) -> None:
    mapping = tmp_path / "bad.csv"
    mapping.write_text("account,uscc\n1,91330106MA2H3K4P70\n2,XYZ\n", encoding="utf-8")
    with pytest.raises(AccountMapError, match=r"bad.csv:3: uscc"):
        AccountDirectory.load(mapping, KEY)
    header = tmp_path / "header.csv"
    header.write_text("acct,enterprise\n", encoding="utf-8")
    with pytest.raises(AccountMapError, match="header needs"):
        AccountDirectory.load(header, KEY)


def test_shipped_example_map_loads() -> None:
    example = (
        Path(__file__).resolve().parents[3] / "adapters" / "mappings" / "accounts.example.toml"
    )
    assert len(AccountDirectory.load(example, KEY)) == 2


OTHER = "91330302MA2CXW5D79"


def directory(**mapping: str) -> AccountDirectory:
    d = AccountDirectory(KEY)
    for account, uscc in mapping.items():
        d.add(account=account.replace("_", "/"), uscc=uscc)
    return d


def test_full_identifier_wins_over_the_bare_number() -> None:
    """Issue 12: :25:87052000/123456789 must not go to another bank's bare 123456789."""
    d = AccountDirectory(KEY)
    d.add(account="87052000/123456789", uscc=USCC)
    d.add(account="123456789", uscc=OTHER)
    assert d.resolve("87052000/123456789") == (d.ref("87052000/123456789"), USCC)
    # Only the bare number is mapped: the documented fall-back finds it.
    assert d.resolve("11111111/123456789") == (d.ref("123456789"), OTHER)
    assert d.resolve("11111111/0123456789") == (d.ref("123456789"), OTHER)


def test_equivalent_full_forms() -> None:
    d = AccountDirectory(KEY)
    d.add(account="NL69INGB0123456789", uscc=USCC)
    d.add(account="DE89370400440532013000", uscc=OTHER)
    assert d.resolve("NL69INGB0123456789EUR")[1] == USCC  # ING/Rabobank :25: IBAN + currency
    assert d.resolve("37040044/532013000")[1] == OTHER  # German bankcode/account = its IBAN
    assert d.resolve("37040044/0532013000")[1] == OTHER
    d.add(account="3462.483.153", uscc=USCC)  # old Rabobank: dotted number, then currency
    assert d.resolve("3462.483.153 EUR")[1] == USCC
    assert d.resolve("3462.483.153EUR")[1] == USCC
    assert d.resolve("3462.483.153XYZ")[1] is None  # not a currency: not stripped


def test_ambiguous_forms_are_refused_naming_both_by_reference() -> None:
    from adapters.accounts import AmbiguousAccount

    d = AccountDirectory(KEY)
    d.add(account="NL69INGB0123456789", uscc=USCC)
    d.add(account="NL69INGB0123456789EUR", uscc=OTHER)
    with pytest.raises(AmbiguousAccount) as info:
        d.resolve("NL69INGB0123456789EUR")
    message = str(info.value)
    assert d.ref("NL69INGB0123456789") in message
    assert d.ref("NL69INGB0123456789EUR") in message
    assert "0123456789" not in message.replace(d.ref("NL69INGB0123456789"), "")


def test_scheme_qualified_other_id_comes_first() -> None:
    d = AccountDirectory(KEY)
    d.add(account="BBAN:12345678", uscc=USCC)
    d.add(account="12345678", uscc=OTHER)
    assert d.resolve("12345678", "BBAN")[1] == USCC
    assert d.resolve("12345678", "CUID")[1] == OTHER
    assert d.resolve("12345678")[1] == OTHER


MT940 = """:20:S1
:25:87052000/123456789
:28C:1/1
:60F:C240304EUR0,00
:61:2403050305C10,00NTRFNONREF//A1
:62F:C240305EUR10,00
"""


def test_mt940_statement_goes_to_the_full_account(tmp_path: Path, parse) -> None:
    d = AccountDirectory(KEY)
    d.add(account="87052000/123456789", uscc=USCC)
    d.add(account="123456789", uscc=OTHER)
    path = tmp_path / "s.sta"
    path.write_text(MT940, encoding="utf-8")
    [event] = parse("mt940", path, accounts=d).events
    assert event.enterprise_uscc == USCC
    assert event.account_ref == d.ref("87052000/123456789")


def test_mt940_ambiguous_account_is_a_rejection(tmp_path: Path, parse) -> None:
    d = AccountDirectory(KEY)
    d.add(account="123456789", uscc=USCC)
    d.add(account="0123456789", uscc=OTHER)  # the same number with and without a zero
    path = tmp_path / "s.sta"
    path.write_text(MT940.replace("87052000/123456789", "BANKDEFF/0123456789"), "utf-8")
    [rejected] = parse("mt940", path, accounts=d).rejected
    assert rejected.error_class == "ambiguous_account"
    assert rejected.field == ":25:"
    assert rejected.location.endswith("s.sta:5")
    assert d.ref("123456789") in rejected.reason
    assert d.ref("0123456789") in rejected.reason


@pytest.mark.parametrize("suffix", [".toml", ".csv"])
def test_a_gb18030_account_map_names_the_line_and_the_fix(tmp_path: Path, suffix: str) -> None:
    mapping = tmp_path / f"accounts{suffix}"
    text = (
        '[[account]]\naccount = "1"\nuscc = "91330106MA2H3K4P70"\n# 基本户\n'
        if suffix == ".toml"
        else "account,uscc\n1,91330106MA2H3K4P70\n# 基本户\n"
    )
    mapping.write_bytes(text.encode("gb18030"))
    line = 4 if suffix == ".toml" else 3
    with pytest.raises(AccountMapError, match=rf"accounts\{suffix}:{line}: not UTF-8 .*GB18030"):
        AccountDirectory.load(mapping, KEY)
