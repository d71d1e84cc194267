"""Property tests: parsers never crash on damaged input, and amounts survive exactly."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from conftest import FIXTURES, KEY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import AccountDirectory, ParseContext, Rejected, get_parser

ACCOUNTS = AccountDirectory.load(FIXTURES / "accounts.toml", KEY)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(fmt: str, path: Path, **context: object) -> list:
    parser = get_parser(fmt)(ParseContext("TEST-BANK", ACCOUNTS, **context))  # type: ignore[arg-type]
    return list(parser.parse(path))


def ids(results: list) -> list[str]:
    return [r.event_id for r in results if not isinstance(r, Rejected)]


CAMT = (FIXTURES / "camt053_v02_icbc.xml").read_bytes()
CAMT_IDS = ids(run("camt", FIXTURES / "camt053_v02_icbc.xml"))


@PROPERTY
@given(cut=st.integers(min_value=0, max_value=len(CAMT)))
def test_truncated_camt_yields_a_prefix(tmp_path_factory, cut: int) -> None:
    path = tmp_path_factory.mktemp("cut") / "cut.xml"
    path.write_bytes(CAMT[:cut])
    results = run("camt", path)
    got = ids(results)
    assert got == CAMT_IDS[: len(got)]  # what was complete before the cut, nothing else
    documents = [r for r in results if isinstance(r, Rejected) and r.field == "(document)"]
    assert len(documents) <= 1


SAMPLES = {
    "mt940": ("mt940_boc_envelope.sta", {}),
    "csv": ("hk_utf8_statement.csv", {"mapping": Path("hk_utf8_signed")}),
    "loans": ("loans.jsonl", {}),
    "scores": ("scores.csv", {}),
    "psd2": ("psd2_abn_transactions.json", {}),
    "camt": ("camt053_v08_ccb_usd.xml", {}),
}


@PROPERTY
@given(
    fmt=st.sampled_from(sorted(SAMPLES)),
    edits=st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=0, max_size=4)), max_size=4),
)
def test_damaged_input_never_crashes(tmp_path_factory, fmt: str, edits: list) -> None:
    name, context = SAMPLES[fmt]
    data = bytearray((FIXTURES / name).read_bytes())
    for where, replacement in edits:
        at = int(where * len(data))
        data[at : at + max(1, len(replacement))] = replacement  # replace or delete bytes
    path = tmp_path_factory.mktemp("bad") / name
    path.write_bytes(bytes(data))
    for result in run(fmt, path, **context):  # every result is an event or a Rejected
        if isinstance(result, Rejected):
            assert result.location.startswith(str(path))
            assert result.field
            assert result.reason


amounts = st.decimals(
    min_value=Decimal("0.01"), max_value=Decimal("999999999999.99"), places=2, allow_nan=False
)


@PROPERTY
@given(amount=amounts, credit=st.booleans())
def test_camt_amounts_are_exact(tmp_path_factory, amount: Decimal, credit: bool) -> None:
    text = (
        '<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">'
        "<BkToCstmrStmt><Stmt><Id>S</Id><Acct><Id><Othr><Id>1202021109900123456</Id></Othr></Id>"
        f'</Acct><Ntry><Amt Ccy="CNY">{amount}</Amt><CdtDbtInd>{"CRDT" if credit else "DBIT"}'
        "</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2024-03-05</Dt></BookgDt></Ntry>"
        "</Stmt></BkToCstmrStmt></Document>"
    )
    path = tmp_path_factory.mktemp("amt") / "a.xml"
    path.write_text(text, encoding="utf-8")
    [event] = run("camt", path)
    assert event.amount == amount
    assert event.direction == ("credit" if credit else "debit")


@PROPERTY
@given(amount=amounts)
def test_mt940_amounts_are_exact(tmp_path_factory, amount: Decimal) -> None:
    swift = str(amount).replace(".", ",")
    text = (
        ":20:R\n:25:BKCHCNBJ300/350055667788\n:28C:1/1\n:60F:C240304CNY0,00\n"
        f":61:2403050305D{swift}NTRFNONREF//B1\n:86:/REMI/x\n"
    )
    path = tmp_path_factory.mktemp("amt") / "a.sta"
    path.write_text(text, encoding="utf-8")
    [event] = run("mt940", path)
    assert event.amount == amount
