"""FX in, on the real broker: a USD entry is converted once its day's rate is ingested.

`dfip ingest fx` puts the CFETS central parity on `dfip.fx`; a worker then converts a USD
statement entry at the rate in force (docs/metrics.md): the entry is booked on 5 March
(midnight Beijing time, before that day's 09:15 fixing), so the 4 March parity applies.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from adapters import AccountDirectory, ParseContext, get_parser
from adapters.ingest import KafkaSink, ingest_files
from adapters.producer import EventProducer
from core.kafka_config import KafkaSettings
from schemas import to_fen
from tests.support.workers import WorkerProcess, scrape, total, wait_for, wait_ready

KEY = b"test-key-dfip-adapters-0123456789"
USCC = "91330106MA2H3K4P70"
RATES = (
    "日期,USD/CNY,100JPY/CNY,CNY/MYR\n"
    "2024-03-04,7.1020,4.7431,0.65828\n"
    "2024-03-05,7.1050,4.7402,0.65811\n"
)
STATEMENT = """:20:FXTEST1
:25:NL69INGB0123456789EUR
:28C:00001
:60F:C240304USD0,00
:61:2403050305C1234,56NTRFNONREF//FX-0001
:86:/REMI/USTD//Invoice 88/
:62F:C240305USD1234,56
"""


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def worker(kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[WorkerProcess]:
    w = WorkerProcess(kafka_settings, "fx-in", tmp_path).start()
    try:
        wait_ready(w)
        yield w
    finally:
        w.stop()


def ingest(settings: KafkaSettings, fmt: str, path: Path, institution: str) -> None:
    accounts = AccountDirectory(KEY)
    accounts.add(account="NL69INGB0123456789", uscc=USCC)
    parser = get_parser(fmt)(ParseContext(institution, accounts))
    with EventProducer(settings, client_id="dfip-fx-test") as producer:
        summary = ingest_files(parser, [path], KafkaSink(producer, institution))
        report = producer.flush(timeout=60)
    assert summary.rejected == 0
    assert report.failed == 0


def test_usd_entry_is_converted_after_the_rate_is_ingested(
    kafka_settings: KafkaSettings, worker: WorkerProcess, tmp_path: Path
) -> None:
    rates = tmp_path / "cfets.csv"
    rates.write_text(RATES, encoding="utf-8")
    statement = tmp_path / "usd.sta"
    statement.write_text(STATEMENT, encoding="utf-8")
    ingest(kafka_settings, "fx", rates, "cfets")  # the rate first, as docs/adapters.md says
    ingest(kafka_settings, "mt940", statement, "TEST-BANK")

    expected = to_fen(Decimal("1234.56"), Decimal("7.1020"))
    assert expected == 876785  # 1,234.56 USD × 7.1020 = 8,767.845 12 CNY → 876,785 fen

    def converted() -> bool:
        figures = scrape([worker])
        assert total(figures, "dfip_events_deadlettered_total") == 0, worker.tail()
        return total(figures, "dfip_transaction_amount_yuan_total") == expected

    wait_for(converted, timeout=180, interval=1.0, what="the USD entry converted at 7.1020")
    figures = scrape([worker])
    assert total(figures, "dfip_transactions_total") == 1
