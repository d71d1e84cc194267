"""Zip archives of statements: banks deliver camt.052/053/054 (and MT940) zipped, one file
per account and day. `dfip ingest` unpacks such an archive into a temporary folder for the
run and ingests each file in it as a document of its own.

Only what a statement archive holds is unpacked: regular files, by their base name (no
folders, so no path leads outside the temporary folder), hidden files and macOS `__MACOSX`
metadata left out. The unpacked size is bounded (a zip bomb stops at `MAX_UNPACKED_BYTES`,
counted as the bytes come out, whatever the archive's directory claims).
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

__all__ = ["MAX_MEMBERS", "MAX_UNPACKED_BYTES", "ArchiveError", "is_archive", "unpack"]

MAX_UNPACKED_BYTES = 4 << 30  # a year of daily camt.053 for many accounts is far less
MAX_MEMBERS = 100_000
_CHUNK = 1 << 20


class ArchiveError(ValueError):
    """A zip archive that cannot be unpacked (damaged, encrypted, too big); one line."""


def is_archive(path: Path) -> bool:
    """A zip archive of files to ingest (an .xlsx workbook is a zip too, but is one file)."""
    if not path.is_file():  # opening a FIFO would wait for a writer; the caller names it
        return False
    try:
        with path.open("rb") as fh:
            if fh.read(4) != b"PK\x03\x04":
                return False
        with zipfile.ZipFile(path) as archive:
            return not any(name.startswith("xl/") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def unpack(path: Path, into: Path) -> list[Path]:
    """The files of the archive at `path`, written under `into`, in member-name order."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = sorted(
                (info for info in archive.infolist() if _wanted(info)),
                key=lambda info: info.filename,
            )
            if len(members) > MAX_MEMBERS:
                raise ArchiveError(f"{path}: more than {MAX_MEMBERS} files in the archive")
            into.mkdir(parents=True, exist_ok=True)
            written: list[Path] = []
            unpacked = 0
            for info in members:
                target = _free_name(into, PurePosixPath(info.filename).name)
                with archive.open(info) as src, target.open("wb") as out:
                    while chunk := src.read(_CHUNK):
                        unpacked += len(chunk)
                        if unpacked > MAX_UNPACKED_BYTES:
                            raise ArchiveError(
                                f"{path}: unpacks to more than {MAX_UNPACKED_BYTES >> 30} GiB"
                            )
                        out.write(chunk)
                written.append(target)
            return written
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: a compression method
        raise ArchiveError(f"{path}: not a zip archive that can be unpacked ({exc})") from None
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot be unpacked: {exc.strerror or exc}") from None


def _wanted(info: zipfile.ZipInfo) -> bool:
    parts = PurePosixPath(info.filename).parts
    return (
        not info.is_dir()
        and bool(parts)
        and "__MACOSX" not in parts
        and not parts[-1].startswith(".")
    )


def _free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/2-name`… when two members share a base name."""
    target, n = folder / name, 1
    while target.exists():
        n += 1
        target = folder / f"{n}-{name}"
    return target
