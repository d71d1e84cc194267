"""What a file looks like: sniffing the input format from its first bytes.

`dfip ingest auto` picks the parser of every file from `sniff(path)`; an explicit format
is checked with `format_mismatch(format, path)`, so a camt file or random text given as
`mt940` is an error that says what the file is, instead of "0 entries, exit 0".
Only the start of the file is read (`SAMPLE_BYTES`): detection costs nothing on big files.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from adapters.encoding import bom_encoding
from adapters.parsers.csv_mapping import MappingError, load_mapping, shipped_mappings
from adapters.parsers.scores_csv import ALIASES as SCORE_ALIASES
from adapters.parsers.scores_csv import REQUIRED as SCORE_REQUIRED

__all__ = ["SAMPLE_BYTES", "Sniffed", "format_mismatch", "sniff"]

SAMPLE_BYTES = 64 << 10

_CAMT_NS = re.compile(rb"urn:iso:std:iso:20022:tech:xsd:(camt\.05[234])\.001\.(\d{2})")
_OTHER_NS = re.compile(rb"""xmlns(?::\w+)?=["']([^"']+)["']""")
_MT_TAG = re.compile(rb"^[ \t]*(?:\{4:)?:(20|25|28C?|60[FM]|61|86|34F|13D):", re.MULTILINE)
_MT942 = re.compile(rb"\{2:[IO]942|^[ \t]*:34F:|^[ \t]*:13D:", re.MULTILINE)
_ECB = re.compile(rb"gesmes:Envelope|eurofxref", re.IGNORECASE)
_TOML_TABLE = re.compile(rb"^\[\[?[A-Za-z_][\w.-]*\]\]?[ \t]*\r?$", re.MULTILINE)


@dataclass(frozen=True)
class Sniffed:
    """The format a file is in (`format` is a registered parser name, or None) and why."""

    format: str | None
    looks_like: str  # for messages: "camt.053.001.08 (ISO 20022 XML)", "random text"
    mapping: str | None = None  # CSV statements: the shipped mapping whose header matched
    text: bool = True  # False: binary, compressed or UTF-16 (no text table, whatever csv says)


# Bytes no text export contains (control characters other than tab, LF, CR, FF, Ctrl-Z).
_CONTROL = bytes([*range(0, 9), 11, *range(14, 26), *range(27, 32)])


def _binary(sample: bytes) -> bool:
    """More than 1 % control characters (or any NUL) in the first 8 KiB: not a text file."""
    sample = sample[:8192]
    controls = len(sample) - len(sample.translate(None, _CONTROL))
    return b"\x00" in sample or controls * 100 > len(sample)


def sniff(path: Path) -> Sniffed:
    """Best guess of the format of `path` from its first `SAMPLE_BYTES`."""
    with path.open("rb") as fh:
        head = fh.read(SAMPLE_BYTES)
    body = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not body:
        return Sniffed(None, "an empty file")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        # XML may be UTF-16 (Windows tools save camt so); the XML parser reads it as such.
        xml = _xml(head[: len(head) & ~1].decode("utf-16", errors="replace").encode())
        if xml.format == "camt":
            return Sniffed("camt", xml.looks_like.replace("XML)", "XML, UTF-16)"), text=False)
        return Sniffed(None, "UTF-16 text (save it as UTF-8 or GB18030)", text=False)
    if head.startswith(b"\x1f\x8b"):
        return Sniffed(None, "a gzip-compressed file (decompress it first)", text=False)
    if head.startswith(b"PK\x03\x04"):
        from adapters.parsers.fx_rates import (
            is_workbook,
            looks_like_cfets,
            workbook_lines,
            workbook_problem,
        )

        if is_workbook(path):
            if (problem := workbook_problem(path)) is not None:
                why = problem.removeprefix("not a readable .xlsx workbook: ")
                return Sniffed(None, f"an Excel workbook that cannot be read: {why}")
            if looks_like_cfets(workbook_lines(path)):
                return Sniffed("fx-cfets", "a CFETS central parity table (Excel)")
            return Sniffed(None, "an Excel workbook of no known kind")
        if not zipfile.is_zipfile(path):
            return Sniffed(
                None, "a zip archive that cannot be read (damaged or cut short)", text=False
            )
        # `dfip ingest` unpacks a zip archive it is given; a parser called on one says so.
        return Sniffed(None, "a zip archive (unpack it and ingest its files)", text=False)
    if _binary(body):
        return Sniffed(None, "binary data, not text, XML or an .xlsx workbook", text=False)
    if body.startswith(b"<"):
        return _xml(body)
    # Tags start lines; a file with classic-Mac line ends (lone CR) has them after a CR,
    # one from FinTS (German banks) after `@@`.
    lines = body.replace(b"\r", b"\n").replace(b"@@:", b"\n:")
    if _MT_TAG.search(lines) and (b":61:" in body or b":25:" in body):
        if _MT942.search(lines):
            return Sniffed("mt940", "SWIFT MT942 interim report")
        return Sniffed("mt940", "SWIFT MT940 statement")
    if _TOML_TABLE.match(body):  # `[[account]]`: an account map put among the statements
        return Sniffed(None, "a TOML file (an account map goes to --accounts)")
    if body.startswith((b"{", b"[")):
        return _json(body)
    return _csv(head)


def format_mismatch(format_name: str, path: Path) -> str | None:
    """Why `path` cannot be read as `format_name` (one line), or None if it may be.

    Only clear contradictions count: a CSV mapping or a camt message type is still checked
    by the parser itself, entry by entry.
    """
    if format_name == "auto":
        return None
    found = sniff(path)
    if found.looks_like == "an empty file":
        return None  # the parser reports an empty file as its own rejection
    family = format_name.split(".", 1)[0]
    if found.format is not None and found.format.split(".", 1)[0] == family:
        return None
    if family == "fx" and found.format in ("fx-cfets", "fx-ecb"):
        return None
    if found.format is None and family == "csv" and found.text:
        return None  # any text table may be a CSV export; its mapping decides
    if family == "csv" and found.format in ("scores", "fx-cfets"):
        return None
    suggestion = f" (use `{found.format}` or `auto`)" if found.format else ""
    return f"{path}: given as {format_name}, but it looks like {found.looks_like}{suggestion}"


def _xml(body: bytes) -> Sniffed:
    match = _CAMT_NS.search(body)
    if match:
        message, version = match.group(1).decode(), match.group(2).decode()
        return Sniffed("camt", f"{message}.001.{version} (ISO 20022 XML)")
    if _ECB.search(body):
        return Sniffed("fx-ecb", "an ECB euro foreign exchange reference rates document")
    namespace = _OTHER_NS.search(body)
    what = namespace.group(1).decode("utf-8", "replace")[:80] if namespace else "no namespace"
    return Sniffed(None, f"an XML document ({what})")


def _json(body: bytes) -> Sniffed:
    first_line = body.split(b"\n", 1)[0]
    if b'"event_type"' in first_line and first_line.rstrip().endswith(b"}"):
        return Sniffed("loans", "loan events as JSON lines")
    if b'"transactions"' in body and (b'"booked"' in body or b'"pending"' in body):
        return Sniffed("psd2", "a NextGenPSD2 transaction list (JSON)")
    if b'"Data"' in body and b'"Transaction"' in body:
        return Sniffed("obie", "an Open Banking OBReadTransaction document (JSON)")
    return Sniffed(None, "a JSON document of no known kind")


def _csv(head: bytes) -> Sniffed:
    text = _decode(head.removeprefix(b"\xef\xbb\xbf"))
    lines = [line for line in text.splitlines()[:200] if line.strip()]
    if not lines:
        return Sniffed(None, "an empty file")
    first = _cells(lines[0], ",")
    names = {SCORE_ALIASES.get(cell, cell) for cell in first}
    if set(SCORE_REQUIRED) <= names:
        return Sniffed("scores", "a digitalisation assessment CSV")
    from adapters.parsers.fx_rates import (  # late: fx imports this module's neighbours
        looks_like_cfets,
        looks_like_ecb_csv,
    )

    if looks_like_cfets(lines):
        return Sniffed("fx-cfets", "a CFETS central parity table (CSV)")
    if looks_like_ecb_csv(lines):
        return Sniffed("fx-ecb", "an ECB euro foreign exchange reference rates CSV")
    for name, path in shipped_mappings().items():
        if _mapping_matches(path, head):
            return Sniffed("csv", f"a CSV statement export (mapping {name})", name)
    if sum(1 for line in lines[:20] if line.count(",") >= 2 or line.count(";") >= 2) >= 2:
        return Sniffed(None, "a CSV table that no shipped mapping describes (give --mapping)")
    return Sniffed(None, "text that is no known bank format")


def _decode(data: bytes, encoding: str = "utf-8") -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return data.decode("gb18030", errors="replace")


def _cells(line: str, delimiter: str) -> list[str]:
    try:
        return [cell.strip() for cell in next(csv.reader(io.StringIO(line), delimiter=delimiter))]
    except (csv.Error, StopIteration):
        return []


def _mapping_matches(path: Path, head: bytes) -> bool:
    """Whether the header row `path`'s mapping looks for is there, with its columns."""
    try:
        m = load_mapping(path)
    except MappingError:
        return False
    # A UTF-8 byte-order mark wins over the mapping's encoding, as when the file is read.
    encoding = "utf-8-sig" if bom_encoding(head) else m.encoding
    lines = head.decode(encoding, errors="replace").splitlines()[: m.max_preamble_lines]
    header: str | None = None
    for number, line in enumerate(lines, start=1):
        if m.header_line is not None:
            if number == m.header_line:
                header = line
                break
        elif m.header_marker is not None:
            if m.header_marker in line:
                header = line
                break
        elif line.strip():
            header = line
            break
    if header is None:
        return False
    names = set(_cells(header, m.delimiter))
    wanted = [
        ref
        for ref in m.columns.model_dump().values()
        for ref in (ref if isinstance(ref, list) else [ref])
        if isinstance(ref, str)
    ]
    return bool(wanted) and all(ref in names for ref in wanted)
