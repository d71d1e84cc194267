"""Local copies of the changelog, so a restart does not replay it from the beginning.

The changelog topic stays the source of truth. A local store only remembers the changelog
records up to some offset; a restore applies them and then reads the topic from that offset
on, which also picks up whatever another worker wrote while it owned the partition.

- ``memory://``: nothing kept; every restore replays the topic (tests, small deployments).
- ``rocksdb://``: one RocksDB database per partition under the data folder (rocksdict),
  written after each committed transaction (StatefulSet volumes keep it across restarts).
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["LocalStore", "MemoryStore", "RocksStore", "open_store"]

_NEXT_OFFSET = b"\x00next-offset"


class LocalStore(ABC):
    """Per-partition copy of the changelog prefix [0, next_offset)."""

    @abstractmethod
    def load(self, partition: int) -> tuple[Iterator[tuple[bytes, bytes]], int]:
        """(records to apply, changelog offset to continue reading from)."""

    @abstractmethod
    def save(
        self, partition: int, records: Sequence[tuple[bytes, bytes | None]], next_offset: int
    ) -> None:
        """Remember committed changelog records and the offset after them."""

    @abstractmethod
    def drop(self, partition: int) -> None:
        """Forget a partition (its copy would go stale while another worker owns it)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


class MemoryStore(LocalStore):
    def load(self, partition: int) -> tuple[Iterator[tuple[bytes, bytes]], int]:
        return iter(()), 0

    def save(
        self, partition: int, records: Sequence[tuple[bytes, bytes | None]], next_offset: int
    ) -> None:
        return None

    def drop(self, partition: int) -> None:
        return None


class RocksStore(LocalStore):
    def __init__(self, folder: Path) -> None:
        from rocksdict import Rdict

        self._rdict = Rdict
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._dbs: dict[int, object] = {}

    def _db(self, partition: int):  # type: ignore[no-untyped-def]
        db = self._dbs.get(partition)
        if db is None:
            db = self._dbs[partition] = self._rdict(str(self.folder / f"partition-{partition}"))
        return db

    def load(self, partition: int) -> tuple[Iterator[tuple[bytes, bytes]], int]:
        db = self._db(partition)
        raw = db.get(_NEXT_OFFSET)
        if raw is None:
            return iter(()), 0
        items = ((k, v) for k, v in db.items() if k != _NEXT_OFFSET)
        return items, int(raw)

    def save(
        self, partition: int, records: Sequence[tuple[bytes, bytes | None]], next_offset: int
    ) -> None:
        from rocksdict import WriteBatch

        db = self._db(partition)
        batch = WriteBatch()
        for key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(_NEXT_OFFSET, str(next_offset).encode())
        db.write(batch)

    def drop(self, partition: int) -> None:
        db = self._dbs.pop(partition, None)
        if db is not None:
            db.close()  # type: ignore[attr-defined]
        shutil.rmtree(self.folder / f"partition-{partition}", ignore_errors=True)

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()  # type: ignore[attr-defined]
        self._dbs.clear()


def open_store(url: str, data_dir: Path) -> LocalStore:
    if url.startswith("rocksdb://"):
        return RocksStore(data_dir / "state")
    return MemoryStore()
