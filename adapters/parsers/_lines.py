"""Line-at-a-time decoding of text inputs, keeping each record's raw bytes and line number.

Decoding line by line (not the whole file) means a line in the wrong encoding costs only
its own record, and memory stays constant however large the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

__all__ = ["DecodedLines"]


class DecodedLines:
    """Iterator of decoded lines; `start_record()` begins collecting a record's raw bytes."""

    def __init__(self, fh: BinaryIO, encoding: str) -> None:
        self._fh = fh
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
