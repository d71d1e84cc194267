"""Line-at-a-time decoding of text inputs, keeping each record's raw bytes and line number.

Decoding line by line (not the whole file) means a line in the wrong encoding costs only
its own record, and memory stays constant however large the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_PROBE_BYTES = 64 << 10
# Far longer than any record of a line-based format (an MT940 :86: is 6 × 65 characters, a
# CSV row a few hundred bytes), so a broken row of tens of MB is still read and dead-lettered
# whole (tests/integration/test_ingest_deadletters.py); a longer line is hostile input, and
# reading it whole would cost its size in memory several times over.
MAX_LINE_BYTES = 64 << 20


class LineTooLong(Exception):
    """Line `lineno` is over MAX_LINE_BYTES; `head` is its start (the original kept)."""

    def __init__(self, lineno: int, head: bytes) -> None:
        super().__init__(f"line {lineno} is longer than {MAX_LINE_BYTES} bytes")
        self.lineno = lineno
        self.head = head


# MT940 as German banks deliver it over FinTS/HBCI (HKKAZ): `@@` in place of every line end
# (`@@:20:STARTUMS@@:25:72090900/…@@:61:…`), often the whole file on one line.
AT_LINE_END = b"@@"
_AT_TAG = re.compile(rb"@@:(?:20|25|28C?|60[FM]|61|86):")


def line_ends(path: Path) -> tuple[bytes, ...]:
    """What ends a line in `path`, when it is not plain `\n` / `\r\n`: a lone CR (classic
    Mac, Excel "CSV (Macintosh)": read as usual such a file is one line, and every record in
    it would be lost at once), or the FinTS `@@` (with `\n` too, for a file that mixes
    them); () for an ordinary file."""
    with path.open("rb") as fh:
        head = fh.read(_PROBE_BYTES)
    if _AT_TAG.search(head):
        return (AT_LINE_END, b"\n")
    if b"\r" in head and b"\n" not in head:
        return (b"\r",)
    return ()


class CrLines:
    """`readline()` and iteration over a binary file whose lines end in a lone CR (or in
    any of `ends`: a line keeps the bytes that end it, as with `\n`)."""

    def __init__(
        self, fh: BinaryIO, chunk: int = _PROBE_BYTES, ends: tuple[bytes, ...] = (b"\r",)
    ) -> None:
        self._fh = fh
        self._chunk = chunk
        self._ends = ends
        # A read position and a growing bytearray instead of slicing the rest of the buffer
        # off for every line (quadratic in the chunk), or copying it for every chunk added
        # to a long line (quadratic in the line).
        self._buffer = bytearray()
        self._pos = 0  # where the next line starts in the buffer
        self._scanned = 0  # no line end starts before this index (at or after `_pos`)
        self._eof = False

    def _line_end(self) -> int:
        """Index just past the first line end at or after the read position, or -1."""
        start = max(self._pos, self._scanned - max(len(end) for end in self._ends) + 1)
        found = [at + len(end) for end in self._ends if (at := self._buffer.find(end, start)) >= 0]
        if not found:
            self._scanned = len(self._buffer)
            return -1
        return min(found)

    def _take(self, end: int) -> bytes:
        line = bytes(self._buffer[self._pos : end])
        self._pos = self._scanned = end
        return line

    def readline(self, size: int = -1) -> bytes:
        while True:
            end = self._line_end()
            if end >= 0 and (size < 0 or end - self._pos <= size):
                return self._take(end)
            if 0 <= size <= len(self._buffer) - self._pos:  # no line end within `size` bytes
                return self._take(self._pos + size)
            if self._eof:
                return self._take(len(self._buffer))
            data = self._fh.read(self._chunk)
            self._eof = not data
            del self._buffer[: self._pos]
            self._scanned -= self._pos
            self._pos = 0
            self._buffer += data

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


class BoundedLines:
    """`readline()` and iteration that never read more than MAX_LINE_BYTES of one line:
    a longer line raises `LineTooLong` (`Parser.results` makes it the document's last
    rejection)."""

    def __init__(self, fh: BinaryIO | CrLines) -> None:
        self._fh = fh
        self.lineno = 0  # physical lines read

    def readline(self) -> bytes:
        limit = MAX_LINE_BYTES
        line = self._fh.readline(limit + 1)
        if line:
            self.lineno += 1
        if len(line) > limit:
            raise LineTooLong(self.lineno, line)
        return line

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


def text_lines(fh: BinaryIO, path: Path) -> BinaryIO:
    """`fh`'s lines, bounded, split at lone CRs for a file with lone-CR line ends (and at
    `@@` for an MT940 written with FinTS line ends)."""
    ends = line_ends(path)
    lines = CrLines(fh, ends=ends) if ends else fh
    return BoundedLines(lines)  # type: ignore[return-value]


__all__ = [
    "AT_LINE_END",
    "MAX_LINE_BYTES",
    "BoundedLines",
    "CrLines",
    "DecodedLines",
    "LineTooLong",
    "line_ends",
    "text_lines",
]


class DecodedLines:
    """Iterator of decoded lines; `start_record()` begins collecting a record's raw bytes."""

    def __init__(self, fh: BinaryIO, encoding: str) -> None:
        self._fh = fh if isinstance(fh, BoundedLines) else BoundedLines(fh)
        self.encoding = encoding
        self.lineno = 0
        self.raw: list[bytes] = []  # raw lines of the record being read
        self.undecodable = False
        self._again: list[bytes] = []  # lines given back to be read again (reversed)

    def start_record(self) -> None:
        self.raw = []
        self.undecodable = False

    @property
    def original(self) -> bytes:
        return b"".join(self.raw)

    def __iter__(self) -> Iterator[str]:
        return self

    def push_back(self, raw_lines: list[bytes], lineno: int) -> None:
        """Read `raw_lines` again next, as the lines after line `lineno`."""
        self._again.extend(reversed(raw_lines))
        self.lineno = lineno

    def __next__(self) -> str:
        raw = self._again.pop() if self._again else self._fh.readline()
        if not raw:
            raise StopIteration
        self.lineno += 1
        self.raw.append(raw)
        try:
            text = raw.decode(self.encoding)
        except UnicodeDecodeError:
            self.undecodable = True
            text = raw.decode(self.encoding, errors="replace")
        if self.lineno == 1:
            text = text.removeprefix("\ufeff")
        return text
