"""dfip/native.py's staleness check: a compiled module whose source changed since the build is
named (pytest refuses to start, the worker warns); no extension at all is pure Python, fine."""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
from pathlib import Path

import pytest

from dfip import native

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _tree(tmp_path: Path, *, compiled: bool, record: bool) -> Path:
    src = tmp_path / "streams" / "rules" / "base.py"
    src.parent.mkdir(parents=True)
    src.write_text("X = 1\n")
    if compiled:
        src.with_name("base" + SUFFIX).write_bytes(b"")
        (tmp_path / "streams" / ("native__mypyc" + SUFFIX)).write_bytes(b"")
    if record:
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        (tmp_path / native.MANIFEST).write_text(json.dumps({"streams/rules/base.py": digest}))
    return src


def test_a_build_of_the_current_sources_is_not_stale(tmp_path: Path) -> None:
    _tree(tmp_path, compiled=True, record=True)
    assert native.stale(tmp_path) == []


def test_an_edited_source_is_stale(tmp_path: Path) -> None:
    src = _tree(tmp_path, compiled=True, record=True)
    src.write_text("X = 2\n")
    assert native.stale(tmp_path) == ["streams/rules/base.py"]


def test_an_extension_without_a_record_is_stale(tmp_path: Path) -> None:
    _tree(tmp_path, compiled=True, record=False)
    assert native.stale(tmp_path) == ["streams/rules/base.py"]


def test_pure_python_is_never_stale(tmp_path: Path) -> None:
    src = _tree(tmp_path, compiled=False, record=True)
    src.write_text("X = 2\n")
    assert native.stale(tmp_path) == []


def test_compile_off_removes_a_previous_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(tmp_path, compiled=True, record=True)
    monkeypatch.setenv("DFIP_COMPILE", "0")
    assert not native.build(tmp_path, tmp_path / "pyproject.toml", ["streams/rules/base.py"])
    assert native.compiled_files(tmp_path) == []
    assert json.loads((tmp_path / native.MANIFEST).read_text()) == {}
    assert native.stale(tmp_path) == []


def test_the_listed_modules_exist() -> None:
    root = Path(native.__file__).resolve().parents[1]
    listed = native.modules()
    assert "streams/processor.py" in listed
    assert all((root / m).is_file() for m in listed)
