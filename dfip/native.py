"""The worker's hot modules compiled with mypyc: build them, and tell a stale build.

The modules listed in pyproject.toml (``[tool.dfip.native] modules``: the processor, the
aggregates, the rules, the partition state, the changelog) are compiled by ``make install``
(``python -m dfip.native build``) into C extensions next to their sources, in one mypyc group
whose shared library is ``streams/native__mypyc.*.so``. Python imports an extension before the
``.py`` of the same name, so a source edited after the build would be silently ignored: the
build records each source's SHA-256 in ``streams/native.json``, and :func:`stale` names the
modules whose source no longer matches (``make`` rebuilds them; the test session refuses to
start on a stale build; the worker logs a warning).

Nothing needs them: without a C compiler, or with ``DFIP_COMPILE=0``, the build removes
whatever it built before and the same sources run as plain Python (identical results, more
CPU per event).

``python -m dfip.native build [--root DIR] [--config-file FILE]`` builds in DIR (the project
by default; the Docker image builds in its site-packages); ``python -m dfip.native status``
prints what is compiled and whether it is current.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import logging
import os
import subprocess
import sys
import tomllib
from pathlib import Path

__all__ = ["GROUP", "MANIFEST", "build", "compiled_files", "modules", "stale", "warn_if_stale"]

log = logging.getLogger(__name__)

#: the mypyc group: its shared library is streams/native__mypyc.<abi>.so (inside a package,
#: so the editable install's finder, which maps only the project's packages, finds it)
GROUP = "streams.native"
#: source hashes of the last build, relative to the root
MANIFEST = "streams/native.json"
_ROOT = Path(__file__).resolve().parents[1]


def modules(pyproject: Path = _ROOT / "pyproject.toml") -> list[str]:
    """The compiled modules' source paths (relative to the project root), as configured."""
    with pyproject.open("rb") as f:
        paths: list[str] = tomllib.load(f)["tool"]["dfip"]["native"]["modules"]
    return paths


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compiled_files(root: Path = _ROOT) -> list[Path]:
    """Every extension the build made under ``root``'s packages (and the group library)."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    found: list[Path] = []
    for pkg in ("streams", "schemas", "core"):
        base = root / pkg
        if base.is_dir():
            found += [p for p in base.rglob("*.so") if p.name.endswith(suffixes)]
    return sorted(found)


def _source_of(so: Path) -> Path:
    """The ``.py`` an extension was built from (the group library has none: it does not exist)."""
    return so.with_name(so.name.split(".", 1)[0] + ".py")


def _extension_of(source: Path) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        so = source.with_name(source.stem + suffix)
        if so.exists():
            return so
    return None


def stale(root: Path = _ROOT) -> list[str]:
    """Sources (relative to ``root``) whose compiled module was not built from their current
    text: Python would run the old code. Empty when everything is current or nothing is
    compiled."""
    try:
        built: dict[str, str] = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        built = {}
    out: list[str] = []
    for so in compiled_files(root):
        source = _source_of(so)
        if not source.exists():  # the group library has no source of its own
            continue
        rel = source.relative_to(root).as_posix()
        if built.get(rel) != _digest(source):
            out.append(rel)
    return out


def warn_if_stale() -> None:
    """One log line at worker start: a stale compiled module, or no compiled module at all."""
    old = stale()
    if old:
        log.warning(
            "compiled modules older than their sources (%s): Python runs the old code; "
            "run `make install` to rebuild them",
            ", ".join(old),
        )
    elif _extension_of(_ROOT / "streams" / "processor.py") is None:
        log.info("hot modules not compiled: running pure Python (see `make install`)")


def _clean(root: Path, *, final: bool) -> None:
    """No compiled module. ``final``: recorded as such (an empty record: ``make`` does not
    retry a failed build until a source changes); otherwise no record, so an interrupted
    build is made again."""
    for so in compiled_files(root):
        so.unlink()
    if final:
        (root / MANIFEST).write_text("{}\n")
    else:
        (root / MANIFEST).unlink(missing_ok=True)


def build(root: Path, config_file: Path, sources: list[str]) -> bool:
    """Compile ``sources`` in place under ``root`` with mypyc (C extensions next to them).

    False when compiling is off (``DFIP_COMPILE=0``) or fails: any previous build is removed
    then, so the sources run as pure Python rather than an old build."""
    _clean(root, final=False)
    if os.environ.get("DFIP_COMPILE", "1") == "0":
        _clean(root, final=True)
        print("dfip: DFIP_COMPILE=0: hot modules not compiled (pure Python)")
        return False
    # in a directory of its own (kept: mypy's cache makes a rebuild shorter): setuptools
    # would read the project's pyproject.toml (its metadata) in the current directory
    work = root / "build" / "native"
    work.mkdir(parents=True, exist_ok=True)
    paths = [str(root / s) for s in sources]
    args = ["build_ext", "--build-lib", str(root), "--build-temp", str(work / "temp")]
    script = (
        "from setuptools import setup\n"
        "from mypyc.build import mypycify\n"
        f"setup(name='dfip-native', script_args={args!r},\n"
        f"      ext_modules=mypycify(['--config-file', {str(config_file)!r}, *{paths!r}],\n"
        f"                           group_name={GROUP!r}, target_dir={str(work / 'c')!r}))\n"
    )
    (work / "setup.py").write_text(script)
    log_path = work / "build.log"
    with log_path.open("w") as out:
        done = subprocess.run(
            [sys.executable, "setup.py"],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        _clean(root, final=True)
        print(f"dfip: compiling the hot modules failed (see {log_path}): running pure Python")
        return False
    manifest = {s: _digest(root / s) for s in sources}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"dfip: {len(sources)} hot modules compiled with mypyc")
    return True


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dfip.native")
    parser.add_argument("command", choices=["build", "status"])
    parser.add_argument("--root", type=Path, default=_ROOT, help="where the sources are")
    parser.add_argument("--config-file", type=Path, default=_ROOT / "pyproject.toml")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    if args.command == "build":
        build(root, args.config_file.resolve(), modules(args.config_file))
        return 0  # pure Python is a working install: the build never fails `make install`
    old = stale(root)
    done = [p for p in compiled_files(root) if _source_of(p).exists()]
    print(
        f"{len(done)} compiled modules under {root}" + (f"; stale: {', '.join(old)}" if old else "")
    )
    return 1 if old else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
