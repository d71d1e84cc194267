"""Which text encoding a bank file is in, when neither the format nor `--encoding` says.

Banks send MT940 (and other text exports) in UTF-8, in the Windows code page of their
country (CP1252 western Europe, CP852 Poland and Czechia, CP1251 Russia) or in GB18030
(China). The file is UTF-8 if its sample decodes as UTF-8; otherwise charset-normalizer
chooses among those code pages, judged on the lines that carry non-ASCII bytes.
"""

from __future__ import annotations

import re
from pathlib import Path

from charset_normalizer import from_bytes

__all__ = ["CANDIDATES", "SAMPLE_BYTES", "bom_encoding", "detect_encoding"]

CANDIDATES = ("cp1252", "cp852", "gb18030", "cp1251")
# A lone umlaut reads as one Cyrillic letter in CP1251 ("Müller" → "Mьller"); Russian text
# has whole words of them. CP1251 is only believed with a run of Cyrillic letters.
_CYRILLIC_WORD = re.compile(r"[\u0410-\u044f\u0401\u0451]{3,}")
SAMPLE_BYTES = 1 << 20  # read at most this much of a file to decide
_EVIDENCE_BYTES = 64 << 10  # non-ASCII lines handed to the detector


UTF8_BOM = b"\xef\xbb\xbf"


def bom_encoding(head: bytes) -> str | None:
    """`utf-8` for text that starts with the UTF-8 byte-order mark, else None.

    A BOM is the file's own statement of its encoding: Chinese banks that moved their
    exports from GB18030 to UTF-8 write one, so it wins over a mapping's `encoding`.
    """
    return "utf-8" if head.startswith(UTF8_BOM) else None


def detect_encoding(path: Path, default: str = "utf-8") -> str:
    """`utf-8` for ASCII/UTF-8 files, else the most coherent of `CANDIDATES`.

    Falls back to `default` when nothing decodes coherently (its undecodable lines are
    then rejected one by one, as with a declared encoding).
    """
    with path.open("rb") as fh:
        sample = fh.read(SAMPLE_BYTES)
    if len(sample) == SAMPLE_BYTES:  # do not judge a multi-byte character cut in two
        sample = sample[: sample.rfind(b"\n") + 1] or sample
    sample = sample.removeprefix(b"\xef\xbb\xbf")
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    # Lines are glued without their line ends: a bank that wraps text at a byte count (65
    # for MT940) can cut a GB18030 character in two, which would read as an invalid
    # sequence and rule GB18030 out; glued, the halves meet again.
    evidence = b"".join(line for line in sample.splitlines() if not line.isascii())
    matches = from_bytes(evidence[:_EVIDENCE_BYTES], cp_isolation=list(CANDIDATES))
    for match in matches:  # best first
        name = match.encoding.replace("_", "")
        if name not in CANDIDATES:
            continue
        if name == "cp1251" and not _CYRILLIC_WORD.search(str(match)):
            continue
        return name
    return default
