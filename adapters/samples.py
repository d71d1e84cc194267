"""Synthetic statement files of any size, for the constant-memory tests and the benchmarks.

The documents are realistic in shape (headers, balances, remittance texts, a batched entry
every `batch_every` entries) but their content is generated, so their size is free.
"""

from __future__ import annotations

# ruff: noqa: UP031 - %-formatting keeps the JSON braces of the templates readable
from pathlib import Path

__all__ = [
    "SAMPLE_ACCOUNT",
    "SAMPLE_USCC",
    "write_camt053",
    "write_camt053_balances",
    "write_csv_hk",
    "write_loans",
    "write_mt940",
    "write_obie",
    "write_psd2",
]

SAMPLE_ACCOUNT = "1202021109900123456"
SAMPLE_USCC = "91330106MA2H3K4P70"

_CAMT_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version:02d}">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>BENCH-{version}</MsgId><CreDtTm>2024-03-05T18:00:00+08:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>BENCH-STMT-1</Id>
      <Acct>
        <Id><Othr><Id>{account}</Id></Othr></Id>
        <Ccy>CNY</Ccy>
        <Ownr><Id><OrgId><Othr>
          <Id>{uscc}</Id><SchmeNm><Prtry>USCC</Prtry></SchmeNm>
        </Othr></OrgId></Id></Ownr>
      </Acct>
      <Bal>
        <Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="CNY">1000000.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2024-03-05</Dt></Dt>
      </Bal>
"""
_CAMT_ENTRY = """      <Ntry>
        <NtryRef>{n}</NtryRef>
        <Amt Ccy="CNY">{amount}</Amt>
        <CdtDbtInd>{cdi}</CdtDbtInd>
        <RvslInd>false</RvslInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><Dt>2024-03-05</Dt></BookgDt>
        <ValDt><Dt>2024-03-05</Dt></ValDt>
        <AcctSvcrRef>SVC{n:012d}</AcctSvcrRef>
        <BkTxCd>
          <Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>DMCT</SubFmlyCd></Fmly></Domn>
          <Prtry><Cd>HVPS-A100</Cd><Issr>CNAPS</Issr></Prtry>
        </BkTxCd>
        <NtryDtls>
          <TxDtls>
            <Refs>
              <MsgId>HVPS{n:016d}</MsgId>
              <AcctSvcrRef>SVC{n:012d}</AcctSvcrRef>
              <PmtInfId>PMT-{n:010d}</PmtInfId>
              <InstrId>INS-{n:010d}</InstrId>
              <EndToEndId>E2E-{n:010d}</EndToEndId>
              <UETR>8a562c67-ca16-48ba-b074-{n:012d}</UETR>
              <TxId>TX{n:014d}</TxId>
              <ClrSysRef>CNAPS{n:015d}</ClrSysRef>
            </Refs>
            <Amt Ccy="CNY">{amount}</Amt>
            <CdtDbtInd>{cdi}</CdtDbtInd>
            <AmtDtls>
              <InstdAmt><Amt Ccy="CNY">{amount}</Amt></InstdAmt>
              <TxAmt><Amt Ccy="CNY">{amount}</Amt></TxAmt>
            </AmtDtls>
            <RltdPties>
              <InitgPty><Pty><Nm>宁波港湾跨境电子商务有限公司财务部</Nm></Pty></InitgPty>
              <Dbtr>
                <Pty>
                  <Nm>宁波港湾跨境电子商务有限公司</Nm>
                  <PstlAdr>
                    <StrtNm>保税南区新契路</StrtNm>
                    <BldgNb>{building}</BldgNb>
                    <PstCd>315800</PstCd>
                    <TwnNm>宁波</TwnNm>
                    <CtrySubDvsn>浙江省</CtrySubDvsn>
                    <Ctry>CN</Ctry>
                  </PstlAdr>
                  <Id><OrgId><Othr><Id>91330203MA2B7Q1X6F</Id><SchmeNm><Cd>TXID</Cd></SchmeNm></Othr></OrgId></Id>
                </Pty>
              </Dbtr>
              <DbtrAcct><Id><Othr><Id>33050110612700001234</Id></Othr></Id><Nm>基本存款账户</Nm></DbtrAcct>
              <UltmtDbtr><Pty><Nm>NINGBO HARBOUR CROSS-BORDER E-COMMERCE</Nm></Pty></UltmtDbtr>
              <Cdtr>
                <Pty>
                  <Nm>杭州云栖智造科技有限公司</Nm>
                  <PstlAdr>
                    <StrtNm>西湖区云栖小镇云栖路</StrtNm>
                    <BldgNb>88</BldgNb>
                    <PstCd>310024</PstCd>
                    <TwnNm>杭州</TwnNm>
                    <Ctry>CN</Ctry>
                  </PstlAdr>
                </Pty>
              </Cdtr>
              <CdtrAcct><Id><Othr><Id>1202021109900123456</Id></Othr></Id></CdtrAcct>
            </RltdPties>
            <RltdAgts>
              <DbtrAgt>
                <FinInstnId>
                  <BICFI>PCBCCNBJNBX</BICFI>
                  <ClrSysMmbId><ClrSysId><Cd>CNAPS</Cd></ClrSysId><MmbId>105332000012</MmbId></ClrSysMmbId>
                  <Nm>中国建设银行股份有限公司宁波分行</Nm>
                </FinInstnId>
              </DbtrAgt>
              <CdtrAgt>
                <FinInstnId>
                  <BICFI>ICBKCNBJZJP</BICFI>
                  <ClrSysMmbId><ClrSysId><Cd>CNAPS</Cd></ClrSysId><MmbId>102331000013</MmbId></ClrSysMmbId>
                  <Nm>中国工商银行股份有限公司杭州分行</Nm>
                </FinInstnId>
              </CdtrAgt>
            </RltdAgts>
            <Purp><Cd>GDDS</Cd></Purp>
            <RmtInf>
              <Ustrd>货款 INV-2024-{n:08d} 订单批次 {n:08d} 合同号 HT-{n:08d}</Ustrd>
{invoices}            </RmtInf>
            <RltdDts>
              <AccptncDtTm>2024-03-05T09:{minute:02d}:00+08:00</AccptncDtTm>
              <IntrBkSttlmDt>2024-03-05</IntrBkSttlmDt>
            </RltdDts>
          </TxDtls>
        </NtryDtls>
        <AddtlNtryInf>大额支付系统来账 HVPS CREDIT</AddtlNtryInf>
      </Ntry>
"""
_CAMT_INVOICE = """              <Strd>
                <RfrdDocInf>
                  <Tp><CdOrPrtry><Cd>CINV</Cd></CdOrPrtry></Tp>
                  <Nb>INV-2024-{n:08d}-{k:02d}</Nb>
                  <RltdDt><Dt>2024-02-{day:02d}</Dt></RltdDt>
                </RfrdDocInf>
                <RfrdDocAmt><DuePyblAmt Ccy="CNY">{amount}</DuePyblAmt></RfrdDocAmt>
                <CdtrRefInf>
                  <Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp>
                  <Ref>RF18{n:010d}{k:02d}</Ref>
                </CdtrRefInf>
              </Strd>
"""
_CAMT_BATCH = """      <Ntry>
        <NtryRef>{n}</NtryRef>
        <Amt Ccy="CNY">300.00</Amt>
        <CdtDbtInd>DBIT</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><Dt>2024-03-05</Dt></BookgDt>
        <AcctSvcrRef>SVC{n:012d}</AcctSvcrRef>
        <NtryDtls>
          <TxDtls><Amt Ccy="CNY">100.00</Amt><RmtInf><Ustrd>工资 {n}-1</Ustrd></RmtInf></TxDtls>
          <TxDtls><Amt Ccy="CNY">200.00</Amt><RmtInf><Ustrd>工资 {n}-2</Ustrd></RmtInf></TxDtls>
        </NtryDtls>
      </Ntry>
"""
_CAMT_TAIL = """    </Stmt>
  </BkToCstmrStmt>
</Document>
"""


def write_camt053(
    path: Path,
    entries: int,
    *,
    version: int = 8,
    batch_every: int = 50,
    invoices: int = 8,
    account: str = SAMPLE_ACCOUNT,
    uscc: str = SAMPLE_USCC,
) -> int:
    """Write a camt.053 statement with `entries` entries; returns the number of events.

    Each entry carries `invoices` structured remittance blocks (a B2B payment settling
    several invoices): bytes the parser must stream through but never looks at.
    """
    events = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write(_CAMT_HEAD.format(version=version, account=account, uscc=uscc))
        chunk: list[str] = []
        for n in range(1, entries + 1):
            if batch_every and n % batch_every == 0:
                chunk.append(_CAMT_BATCH.format(n=n))
                events += 2
            else:
                amount = f"{(n * 7919) % 1_000_000 + 1}.{n % 100:02d}"
                chunk.append(
                    _CAMT_ENTRY.format(
                        n=n,
                        amount=amount,
                        cdi="CRDT" if n % 3 else "DBIT",
                        building=n % 500 + 1,
                        minute=n % 60,
                        invoices="".join(
                            _CAMT_INVOICE.format(n=n, k=k, day=k % 28 + 1, amount=amount)
                            for k in range(invoices)
                        ),
                    )
                )
                events += 1
            if len(chunk) >= 1000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))
        out.write(_CAMT_TAIL)
    return events


def write_mt940(path: Path, entries: int, *, per_statement: int = 500) -> int:
    """Write MT940 statements (FIN envelope) with `entries` statement lines in total."""
    with path.open("w", encoding="utf-8", newline="\r\n") as out:
        n = 0
        statement = 0
        while n < entries:
            statement += 1
            out.write(
                "{1:F01BKCHCNBJA300000000000}{2:O9401630240305BKCHCNBJAXXX00000000002403051630N}{4:\n"
                f":20:BENCH{statement:08d}\n:25:BKCHCNBJ300/{SAMPLE_ACCOUNT}\n"
                f":28C:{statement % 100000}/1\n:60F:C240304CNY1000000,00\n"
            )
            lines = []
            for _ in range(min(per_statement, entries - n)):
                n += 1
                mark = "C" if n % 3 else "D"
                lines.append(
                    f":61:2403050305{mark}{(n * 7919) % 100000 + 1},{n % 100:02d}"
                    f"NTRFREF{n:09d}//BOC{n:012d}\n"
                    f":86:/ORDP/HANGZHOU TRADING CO {n % 97}/CTRY/CN/REMI/货款 PO-{n:08d}\n"
                )
            out.write("".join(lines))
            out.write(":62F:C240305CNY1000000,00\n-}\n")
    return entries


def write_camt053_balances(path: Path, balances: int, entries: int = 10) -> int:
    """A camt.053 whose bulk is `balances` `Bal` siblings before a few entries (issue 19)."""
    bal = (
        "      <Bal><Tp><CdOrPrtry><Cd>ITBD</Cd></CdOrPrtry></Tp>"
        '<Amt Ccy="CNY">{n}.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        "<Dt><DtTm>2024-03-05T10:00:00+08:00</DtTm></Dt></Bal>\n"
    )
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write(_CAMT_HEAD.format(version=8, account=SAMPLE_ACCOUNT, uscc=SAMPLE_USCC))
        for start in range(0, balances, 1000):
            out.write("".join(bal.format(n=n) for n in range(start, min(start + 1000, balances))))
        out.write("".join(_CAMT_BATCH.format(n=n) for n in range(1, entries + 1)))
        out.write(_CAMT_TAIL)
    return 2 * entries


_REMITTANCE = "Invoice {n:08d} settlement for goods shipped from Yiwu, order PO-{n:08d}, lot {k}"


def write_psd2(path: Path, entries: int) -> int:
    """One NextGenPSD2 transaction list page with `entries` booked transactions."""
    with path.open("w", encoding="utf-8") as out:
        out.write('{"account": {"iban": "%s"}, "transactions": {"booked": [\n' % SAMPLE_ACCOUNT)
        for n in range(entries):
            sign = "-" if n % 3 == 0 else ""
            out.write(
                ("," if n else "") + '{"transactionId": "T%012d", "entryReference": "E%012d", '
                '"bookingDate": "2024-03-05", "valueDate": "2024-03-05", '
                '"transactionAmount": {"amount": "%s%d.%02d", "currency": "EUR"}, '
                '"debtorName": "Lyon Bazar SARL", '
                '"debtorAccount": {"iban": "FR7630006000011234567890189"}, '
                '"remittanceInformationUnstructured": "%s", '
                '"bankTransactionCode": "PMNT-RCDT-ESCT"}\n'
                % (n, n, sign, n % 100000 + 1, n % 100, _REMITTANCE.format(n=n, k=n % 7))
            )
        out.write('], "pending": []}}\n')
    return entries


def write_obie(path: Path, entries: int) -> int:
    """One Open Banking OBReadTransaction6 page with `entries` booked transactions."""
    with path.open("w", encoding="utf-8") as out:
        out.write('{"Data": {"Transaction": [\n')
        for n in range(entries):
            out.write(
                ("," if n else "")
                + '{"AccountId": "%s", "TransactionId": "T%012d", "Status": "Booked", '
                '"CreditDebitIndicator": "%s", '
                '"BookingDateTime": "2024-03-05T09:12:01+00:00", '
                '"Amount": {"Amount": "%d.%02d", "Currency": "GBP"}, '
                '"TransactionInformation": "%s", '
                '"BankTransactionCode": {"Code": "ReceivedCreditTransfer", '
                '"SubCode": "DomesticCreditTransfer"}}\n'
                % (
                    SAMPLE_ACCOUNT,
                    n,
                    "Debit" if n % 3 == 0 else "Credit",
                    n % 100000 + 1,
                    n % 100,
                    _REMITTANCE.format(n=n, k=n % 7),
                )
            )
        out.write(']}, "Links": {}, "Meta": {}}\n')
    return entries


def write_csv_hk(path: Path, entries: int) -> int:
    """A `hk_utf8_signed` CSV export with `entries` rows."""
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write(
            "Account Number,Transaction Date,Value Date,Description,Bank Reference,Amount,"
            "Currency,Balance,Counterparty Country\n"
        )
        rows = []
        for n in range(entries):
            sign = "-" if n % 3 == 0 else ""
            rows.append(
                f"{SAMPLE_ACCOUNT},05/03/2024,05/03/2024,"
                f'"{_REMITTANCE.format(n=n, k=n % 7)}",HK{n:012d},'
                f"{sign}{n % 100000 + 1}.{n % 100:02d},HKD,1000.00,HK\n"
            )
            if len(rows) >= 1000:
                out.write("".join(rows))
                rows.clear()
        out.write("".join(rows))
    return entries


def write_loans(path: Path, entries: int) -> int:
    """Loan repayment events as JSON lines (one loan per 100 lines)."""
    with path.open("w", encoding="utf-8") as out:
        lines = []
        for n in range(entries):
            lines.append(
                '{"event_type": "repayment", "occurred_at": "2024-03-05T10:00:00+08:00", '
                '"borrower_uscc": "%s", "loan_id": "L%08d", "event_ref": "R%012d", '
                '"channel": "online", "principal_amount": "100.00", "interest_amount": "3.50", '
                '"currency": "CNY", "days_past_due": 0, "officer": "%s"}\n'
                % (SAMPLE_USCC, n // 100, n, _REMITTANCE.format(n=n, k=n % 7))
            )
            if len(lines) >= 1000:
                out.write("".join(lines))
                lines.clear()
        out.write("".join(lines))
    return entries
