"""Local changelog copies: RocksDB keeps records and the resume offset; memory keeps none."""

from pathlib import Path

from streams.state.local import MemoryStore, RocksStore, open_store


def test_rocks_store_round_trip(tmp_path: Path) -> None:
    store = RocksStore(tmp_path)
    store.save(3, [(b"ctr", b"[1]"), (b"loan:a", b"{}")], 7)
    store.save(3, [(b"loan:a", None), (b"ck", b"{}")], 12)
    store.close()
    reopened = RocksStore(tmp_path)
    records, start = reopened.load(3)
    assert start == 12
    assert dict(records) == {b"ctr": b"[1]", b"ck": b"{}"}
    assert reopened.load(4)[1] == 0
    reopened.drop(3)
    assert reopened.load(3)[1] == 0
    reopened.close()


def test_memory_store_keeps_nothing(tmp_path: Path) -> None:
    store = open_store("memory://", tmp_path)
    assert isinstance(store, MemoryStore)
    store.save(0, [(b"k", b"v")], 5)
    records, start = store.load(0)
    assert (list(records), start) == ([], 0)
