"""Splitting text inputs into lines at lone CRs and FinTS `@@`, whatever the chunking."""

from __future__ import annotations

import io

import pytest

from adapters.parsers._lines import CrLines


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64])
def test_lines_keep_their_ends_across_chunk_boundaries(chunk: int) -> None:
    data = b"@@:20:A@@:25:B\n:61:C@@x@y@@"
    lines = list(CrLines(io.BytesIO(data), chunk=chunk, ends=(b"@@", b"\n")))
    assert lines == [b"@@", b":20:A@@", b":25:B\n", b":61:C@@", b"x@y@@"]
    assert b"".join(lines) == data
    cr = list(CrLines(io.BytesIO(b"a\rbb\r\rc"), chunk=chunk))
    assert cr == [b"a\r", b"bb\r", b"\r", b"c"]


@pytest.mark.parametrize("chunk", [2, 7, 64])
def test_a_line_longer_than_the_limit_comes_in_pieces_of_the_limit(chunk: int) -> None:
    lines = CrLines(io.BytesIO(b"x" * 20 + b"\rtail\r"), chunk=chunk)
    assert lines.readline(8) == b"x" * 8  # no line end within 8 bytes: 8 bytes
    assert lines.readline(100) == b"x" * 12 + b"\r"
    assert lines.readline(100) == b"tail\r"
    assert lines.readline(100) == b""
