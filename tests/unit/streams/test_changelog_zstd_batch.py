"""The changelog's record batches, compressed by the committer itself (zstd level 1): every
row read back as written by aiokafka's and kafka-python's readers, with a valid CRC, and
the header naming zstd."""

from __future__ import annotations

from aiokafka.record.default_records import DefaultRecordBatch as AioBatch
from aiokafka.record.memory_records import MemoryRecords
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch as KpBatch

from streams.engine.committer import _changelog_batch, _output_batch

_ROWS = st.lists(
    st.tuples(
        st.binary(min_size=1, max_size=30),
        st.one_of(st.none(), st.binary(max_size=300), st.sampled_from([b"x" * 5_000])),
    ),
    min_size=1,
    max_size=40,
)


def _built(rows: list[tuple[bytes, bytes | None]], *, transactional: bool) -> bytes:
    batch = _changelog_batch(transactional)
    left = batch.fill(iter([(1_767_225_600_000, k, v, []) for k, v in rows]))
    assert left is None
    batch._set_producer_state(7, 1, 0)
    return bytes(batch._build())


@settings(max_examples=40, deadline=None)
@given(_ROWS, st.booleans())
def test_rows_read_back_by_both_clients(
    rows: list[tuple[bytes, bytes | None]], transactional: bool
) -> None:
    raw = _built(rows, transactional=transactional)
    records = MemoryRecords(raw)
    rb = records.next_batch()
    assert not records.has_next()
    assert rb.compression_type == AioBatch.CODEC_ZSTD
    assert rb.validate_crc()
    assert rb.is_transactional == transactional
    assert rb.producer_id == 7
    assert [(r.key, r.value) for r in rb] == rows
    kp = KpBatch(raw)
    assert kp.validate_crc()
    assert kp.compression_type == KpBatch.CODEC_ZSTD
    assert [(r.key, r.value) for r in kp] == rows


def test_a_full_batch_hands_back_the_row_that_did_not_fit() -> None:
    batch = _output_batch(False)
    rows = [(1, b"k%d" % i, b"v" * 6_000, []) for i in range(5)]
    left = batch.fill(iter(rows))
    assert left == rows[2]  # 16 KiB: two of 6 kB fit
    assert batch.record_count() == 2
    rb = MemoryRecords(bytes(batch._build())).next_batch()
    assert rb.compression_type == AioBatch.CODEC_NONE
    assert [r.key for r in rb] == [b"k0", b"k1"]
