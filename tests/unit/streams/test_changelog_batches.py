"""Changelog rows sent as record batches: every row once, in order, and the last offset right
(the local store records how far the committed changelog reaches from it)."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine.committer import _send_rows


class _Meta:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class _Producer:
    """Assigns offsets as a broker would: one batch after the other in the partition."""

    def __init__(self) -> None:
        self.next_offset = 100
        self.rows: list[tuple[bytes, bytes | None]] = []

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        n = batch._relative_offset  # records appended to this batch
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(_Meta(self.next_offset))
        self.next_offset += n
        return fut


_ROWS = st.lists(
    st.tuples(
        st.binary(min_size=1, max_size=20),
        # tombstones, small values and values that fill a batch (256 kB) in a few rows
        st.sampled_from([None, b"", b"x", b"v" * 70_000, b"w" * 300_000]),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=30, deadline=None)
@given(_ROWS)
def test_last_offset_is_that_of_the_last_row(rows: list[tuple[bytes, bytes | None]]) -> None:
    async def go() -> None:
        producer = _Producer()
        sent: list[asyncio.Future[Any]] = []
        last, n = await _send_rows(
            producer,  # type: ignore[arg-type]
            "dfip.state",
            3,
            rows,
            sent,
            transactional=False,
        )
        assert last is sent[-1]
        # all rows went out: 100 .. 100 + len(rows) - 1, the last one in the last batch
        assert producer.next_offset == 100 + len(rows)
        assert last.result().offset + n - 1 == 100 + len(rows) - 1

    asyncio.run(go())
