"""Line-at-a-time decoding of text inputs, keeping each record's raw bytes and line number.

Decoding line by line (not the whole file) means a line in the wrong encoding costs only
its own record, and memory stays constant however large the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_PROBE_BYTES = 64 << 10


def cr_only(path: Path) -> bool:
    """Whether `path` ends its lines with a lone CR (classic Mac, Excel "CSV (Macintosh)").

    Read as usual such a file is one line: every record in it would be lost at once.
    """
    with path.open("rb") as fh:
        head = fh.read(_PROBE_BYTES)
    return b"\r" in head and b"\n" not in head


class CrLines:
    """`readline()` and iteration over a binary file whose lines end in a lone CR."""

    def __init__(self, fh: BinaryIO, chunk: int = _PROBE_BYTES) -> None:
        self._fh = fh
        self._chunk = chunk
        self._buffer = b""
        self._eof = False

    def readline(self) -> bytes:
        while True:
            end = self._buffer.find(b"\r")
            if end >= 0:
                line, self._buffer = self._buffer[: end + 1], self._buffer[end + 1 :]
                return line
            if self._eof:
                line, self._buffer = self._buffer, b""
                return line
            data = self._fh.read(self._chunk)
            self._eof = not data
            self._buffer += data

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


def text_lines(fh: BinaryIO, path: Path) -> BinaryIO:
    """`fh` itself, or a CR-splitting view of it for a file with lone-CR line ends."""
    return CrLines(fh) if cr_only(path) else fh  # type: ignore[return-value]


__all__ = ["CrLines", "DecodedLines", "cr_only", "text_lines"]


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
