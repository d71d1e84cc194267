"""ISO 20022 camt.052/053/054 across versions: booked entries, batches, statuses, errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from conftest import money
from lxml import etree

from adapters import get_parser
from schemas import Direction, TxChannel, make_event_id

NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.{:02d}"


def camt(
    version: int, entries: str, *, account: str = "1202021109900123456", owner: str = ""
) -> str:
    """A minimal camt.053 of the given version around `entries` (Ntry elements)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="{NS.format(version)}"><BkToCstmrStmt>
<GrpHdr><MsgId>M1</MsgId><CreDtTm>2024-03-05T18:00:00+08:00</CreDtTm></GrpHdr>
<Stmt><Id>S1</Id><Acct><Id><Othr><Id>{account}</Id></Othr></Id>{owner}</Acct>
{entries}
</Stmt></BkToCstmrStmt></Document>
"""


def entry(
    amount: str = "100.00",
    *,
    ccy: str = "CNY",
    cdi: str = "CRDT",
    status: str = "<Sts>BOOK</Sts>",
    ref: str = "",
    extra: str = "",
) -> str:
    servicer = f"<AcctSvcrRef>{ref}</AcctSvcrRef>" if ref else ""
    return (
        f'<Ntry><Amt Ccy="{ccy}">{amount}</Amt><CdtDbtInd>{cdi}</CdtDbtInd>{status}'
        f"<BookgDt><Dt>2024-03-05</Dt></BookgDt>{servicer}{extra}</Ntry>"
    )


def write(tmp_path: Path, text: str, name: str = "doc.xml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_v02_statement(parse) -> None:
    parsed = parse("camt", "camt053_v02_icbc.xml")
    amounts = [(e.direction, e.amount) for e in parsed.events]
    assert amounts == [
        (Direction.credit, Decimal("150000.00")),
        (Direction.debit, Decimal("12000.00")),  # the batch of three, expanded
        (Direction.debit, Decimal("18800.00")),
        (Direction.debit, Decimal("15000.00")),
        (Direction.debit, Decimal("2350.50")),
    ]
    assert parsed.parser.stats.entries == 6
    assert parsed.parser.stats.not_booked == {"status PDNG": 1, "status INFO": 1}
    [reversal] = parsed.rejected
    assert reversal.error_class == "reversal"
    assert reversal.field == "RvslInd"
    assert reversal.location.endswith(
        "camt053_v02_icbc.xml:147#/Document/BkToCstmrStmt/Stmt[1]/Ntry[3]"
    )
    assert parsed.events[-1].channel is TxChannel.pos


def test_batched_entry_ids_follow_the_servicer_reference(parse, accounts) -> None:
    parsed = parse("camt", "camt053_v02_icbc.xml")
    account_ref = accounts.ref("1202021109900123456")
    batch = parsed.events[1:4]
    entry_money = f"debit:{sum(e.amount for e in batch).normalize():f}:CNY"
    assert [e.event_id for e in batch] == [
        make_event_id("TEST-BANK", account_ref, "ICBC24030500000245", entry_money, str(i))
        for i in range(3)
    ]
    first = parsed.events[0]
    assert first.event_id == make_event_id(
        "TEST-BANK", account_ref, "ICBC24030500000117", money(first)
    )


def test_ids_without_servicer_reference_use_statement_and_entry(tmp_path: Path, parse) -> None:
    text = camt(8, entry(extra="").replace("<Ntry>", "<Ntry><NtryRef>R9</NtryRef>") + entry("5.00"))
    parsed = parse("camt", write(tmp_path, text))
    assert [e.event_id for e in parsed.events] == [
        make_event_id("TEST-BANK", "S1", "R9"),
        make_event_id("TEST-BANK", "S1", "#2"),  # no reference at all: its position
    ]


def test_same_booking_in_052_053_054_has_one_id(parse) -> None:
    eod = parse("camt", "camt053_v02_icbc.xml").events[0]
    intraday = parse("camt", "camt052_v06_intraday.xml").events[0]
    assert intraday.event_id == eod.event_id
    statement = parse("camt", "camt053_v08_ccb_usd.xml").events[0]
    notification = parse("camt.054", "camt054_v08_ccb_usd.xml").events[0]
    assert notification == statement


def test_v08_owner_uscc_and_datetime(parse) -> None:
    parsed = parse("camt", "camt053_v08_ccb_usd.xml")
    first = parsed.events[0]
    assert first.enterprise_uscc == "91330203MA2B7Q1X6F"  # from Ownr/Id/OrgId/Othr (TXID)
    assert first.occurred_at.isoformat() == "2024-03-05T02:32:11+00:00"
    assert first.counterparty_country == "US"
    assert first.customs_mode == "9610"
    assert [e.counterparty_country for e in parsed.events[1:3]] == ["DE", "GB"]  # IBAN, BIC
    assert parsed.parser.stats.not_booked == {"status PDNG": 1}


def test_v13_two_statements(parse) -> None:
    parsed = parse("camt", "camt053_v13_multi.xml")
    assert [e.enterprise_uscc for e in parsed.events] == [
        "91330302MA2CXW5D79",
        "91330302MA2CXW5D79",
        "91330782MA28N9T37W",
    ]
    assert parsed.events[0].description == "Rechnung RE2024-0117 Schuhe Lieferung KW09"
    assert parsed.events[2].customs_mode == "1210"
    assert parsed.events[2].occurred_at.isoformat() == "2024-03-05T08:45:00+00:00"  # Beijing time


@pytest.mark.parametrize("version", [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13])
def test_every_version_from_02_to_13(tmp_path: Path, parse, version: int) -> None:
    status = "<Sts>BOOK</Sts>" if version < 6 else "<Sts><Cd>BOOK</Cd></Sts>"
    text = camt(version, entry("42.00", status=status, ref="X1"))
    [event] = parse("camt", write(tmp_path, text)).events
    assert event.amount == Decimal("42.00")


@pytest.mark.parametrize(
    ("namespace", "message"),
    [
        ("urn:iso:std:iso:20022:tech:xsd:camt.053.001.00", "not supported"),
        ("urn:iso:std:iso:20022:tech:xsd:camt.053.001.14", "not supported"),
        ("urn:iso:std:iso:20022:tech:xsd:pain.001.001.09", "not an ISO 20022 camt"),
    ],
)
def test_unsupported_documents(tmp_path: Path, parse, namespace: str, message: str) -> None:
    text = camt(8, entry()).replace(NS.format(8), namespace)
    [rejected] = parse("camt", write(tmp_path, text)).rejected
    assert message in rejected.reason
    assert rejected.error_class == "unsupported_version"


def test_message_type_restriction(parse) -> None:
    [rejected] = parse("camt.054", "camt053_v02_icbc.xml").rejected
    assert "expects camt.054" in rejected.reason


def test_bad_entries_are_rejected_alone(parse) -> None:
    parsed = parse("camt", "camt053_v08_bad_entries.xml")
    assert [e.amount for e in parsed.events] == [Decimal("5000.00"), Decimal("880.00")]
    fields = [(r.field, r.reason) for r in parsed.rejected]
    assert fields[0] == ("Amt", "not a plain decimal string like '1234.56' (got 1,234.00)")
    assert fields[1] == ("Amt/@Ccy", "not a supported currency (got XYZ)")
    assert fields[2][0] == "NtryDtls/TxDtls/Amt"
    assert "sum to 8500.00 CNY, entry amount is 9000.00 CNY" in fields[2][1]


def test_rejected_original_is_the_entry_element(parse) -> None:
    rejected = parse("camt", "camt053_v08_bad_entries.xml").rejected[0]
    element = etree.fromstring(rejected.original)
    assert etree.QName(element).localname == "Ntry"
    assert element.findtext("{*}NtryRef") == "0002"


def test_bad_owner_uscc_rejects_the_statement_entries(parse) -> None:
    parsed = parse("camt", "camt053_bad_uscc.xml")
    assert not parsed.events
    assert [r.field for r in parsed.rejected] == ["Stmt/Acct/Ownr/Id/OrgId/Othr/Id"] * 2
    assert all("check character" in r.reason for r in parsed.rejected)


def test_unmapped_account_without_owner_uscc(tmp_path: Path, parse) -> None:
    [rejected] = parse("camt", write(tmp_path, camt(8, entry(), account="9999"))).rejected
    assert rejected.error_class == "unknown_account"
    assert "9999" not in rejected.reason  # only the pseudonymised reference is named
    assert "acct_" in rejected.reason


def test_map_wins_over_owner_id(tmp_path: Path, parse) -> None:
    owner = (
        "<Ownr><Id><OrgId><Othr><Id>91330203MA2B7Q1X6F</Id><SchmeNm><Prtry>USCC</Prtry>"
        "</SchmeNm></Othr></OrgId></Id></Ownr>"
    )
    [event] = parse("camt", write(tmp_path, camt(8, entry(), owner=owner))).events
    assert event.enterprise_uscc == "91330106MA2H3K4P70"


def test_truncated_document_keeps_what_came_before(parse) -> None:
    parsed = parse("camt", "camt053_truncated.xml")
    assert [e.amount for e in parsed.events] == [Decimal("150000.00")]
    [broken] = parsed.rejected
    assert broken.field == "(document)"
    assert "Premature end of data" in broken.reason
    assert broken.original.lstrip().startswith(b"<Ntry>\n        <NtryRef>0002")  # unread tail


def test_wrong_encoding(parse) -> None:
    parsed = parse("camt", "camt053_gb18030_mislabelled.xml")
    assert len(parsed.events) == 1
    [broken] = parsed.rejected
    assert broken.error_class == "undecodable"
    assert broken.location.endswith(":24")


@pytest.mark.parametrize("content", [b"", b"   \n", b"<?xml version='1.0'?>"])
def test_empty_documents(tmp_path: Path, parse, content: bytes) -> None:
    path = tmp_path / "empty.xml"
    path.write_bytes(content)
    [rejected] = parse("camt", path).rejected
    assert rejected.field == "(document)"


def test_xxe_is_not_resolved(tmp_path: Path, parse) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET", encoding="utf-8")
    doctype = f'<!DOCTYPE d [<!ENTITY x SYSTEM "file://{secret}">]>'
    text = camt(8, entry(extra="<AddtlNtryInf>&x;</AddtlNtryInf>"))
    text = text.replace("<Document", doctype + "<Document", 1)
    parsed = parse("camt", write(tmp_path, text))
    assert all("TOPSECRET" not in (e.description or "") for e in parsed.events)


def test_reversal_pending_and_info_are_not_booked(tmp_path: Path, parse) -> None:
    entries = (
        entry("1.00", status="<Sts><Cd>PDNG</Cd></Sts>")
        + entry("2.00", status="<Sts><Cd>INFO</Cd></Sts>")
        + entry("3.00", extra="<RvslInd>true</RvslInd>")
        + entry("4.00", status="<Sts><Prtry>BOOK</Prtry></Sts>")
    )
    parsed = parse("camt", write(tmp_path, camt(9, entries)))
    assert [e.amount for e in parsed.events] == [Decimal("4.00")]
    assert [r.error_class for r in parsed.rejected] == ["reversal"]


NO_BOOKING = "<BookgDt><Dt>2024-03-05</Dt></BookgDt>"


def test_booking_date_falls_back_to_the_value_date(tmp_path: Path, parse) -> None:
    text = camt(8, entry().replace(NO_BOOKING, "<ValDt><Dt>2024-03-04</Dt></ValDt>"))
    [event] = parse("camt", write(tmp_path, text)).events
    assert event.booking_date.isoformat() == event.value_date.isoformat() == "2024-03-04"
    assert event.occurred_at.isoformat() == "2024-03-04T00:00:00+00:00"


def test_booking_date_falls_back_to_the_statement_creation(tmp_path: Path, parse) -> None:
    text = camt(8, entry().replace(NO_BOOKING, "")).replace(
        "<Id>S1</Id>", "<Id>S1</Id><CreDtTm>2024-03-06T01:00:00+08:00</CreDtTm>"
    )
    [event] = parse("camt", write(tmp_path, text)).events
    assert event.booking_date.isoformat() == "2024-03-06"  # the date as the bank wrote it
    # Without Stmt/CreDtTm: the message's GrpHdr/CreDtTm (2024-03-05T18:00:00+08:00).
    text = camt(8, entry().replace(NO_BOOKING, ""))
    [event] = parse("camt", write(tmp_path, text)).events
    assert event.booking_date.isoformat() == "2024-03-05"


def test_booked_entry_without_any_date_is_rejected(tmp_path: Path, parse) -> None:
    text = camt(8, entry().replace(NO_BOOKING, ""))
    text = text.replace("<CreDtTm>2024-03-05T18:00:00+08:00</CreDtTm>", "")
    [rejected] = parse("camt", write(tmp_path, text)).rejected
    assert rejected.field == "BookgDt"


def test_batch_without_transaction_amounts_is_one_event(tmp_path: Path, parse) -> None:
    details = (
        "<NtryDtls><Btch><NbOfTxs>3</NbOfTxs></Btch>"
        + "".join(f"<TxDtls><Refs><EndToEndId>E{i}</EndToEndId></Refs></TxDtls>" for i in range(3))
        + "</NtryDtls>"
    )
    text = camt(8, entry("300.00", ref="B1", extra=details))
    parsed = parse("camt", write(tmp_path, text))
    assert not parsed.rejected
    [event] = parsed.events
    assert event.amount == Decimal("300.00")
    # Some with an amount, some without: cannot be split, rejected.
    partial = details.replace("<TxDtls><Refs>", '<TxDtls><Amt Ccy="CNY">100.00</Amt><Refs>', 1)
    [rejected] = parse("camt", write(tmp_path, camt(8, entry("300.00", extra=partial)))).rejected
    assert rejected.field.endswith("TxDtls[2]/Amt")


def test_one_bad_transaction_of_a_batch(tmp_path: Path, parse) -> None:
    details = (
        "<NtryDtls>"
        '<TxDtls><Amt Ccy="CNY">60.00</Amt></TxDtls>'
        '<TxDtls><Amt Ccy="CNY">40.00</Amt><RltdPties><Dbtr><PstlAdr><Ctry>China</Ctry>'
        "</PstlAdr></Dbtr></RltdPties></TxDtls>"
        "</NtryDtls>"
    )
    parsed = parse("camt", write(tmp_path, camt(4, entry(ref="B1", extra=details))))
    assert [e.amount for e in parsed.events] == [Decimal("60.00")]
    [rejected] = parsed.rejected
    assert rejected.location.endswith("/Ntry[1]/NtryDtls/TxDtls[2]")
    assert rejected.field == "RltdPties/*/PstlAdr/Ctry"


def test_registry_names() -> None:
    assert get_parser("camt.053").message == "053"
    with pytest.raises(KeyError, match="known: camt"):
        get_parser("camt.055")
