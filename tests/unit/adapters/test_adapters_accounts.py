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
        ("[[account]\n", "not valid UTF-8 TOML"),
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
