"""Sampling profile of a running worker with py-spy (optional: `pip install py-spy`).

`py-spy record --format raw` writes collapsed stacks ("frame;frame;frame count"); this module
sums them into the functions with the most samples on top of the stack (self) and anywhere
on it (inclusive), which is what the report shows.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Profile", "collapse", "finish_profile", "py_spy", "start_profile"]


_THREAD = re.compile(r"^(process \d+:|thread \(0x)")
# frames every sample shares (event loop, CLI, service framework): left out of "inclusive"
_TRUNK = ("asyncio/", "typer/", "click/", "<frozen", "mode/", "dfip/cli.py", "selectors.py")


@dataclass
class Profile:
    samples: int
    self_top: list[tuple[str, int]]
    inclusive_top: list[tuple[str, int]]
    raw_path: Path
    seconds: float = 0.0
    rate: int = 100

    @property
    def busy(self) -> float | None:
        """Share of the wall time the worker's threads were on the CPU (not idle)."""
        possible = self.seconds * self.rate
        return self.samples / possible if possible > 0 else None

    def render(self, n: int = 15) -> str:
        def rows(items: list[tuple[str, int]]) -> list[str]:
            return [
                f"| {100 * c / max(1, self.samples):.1f} % | `{name}` |" for name, c in items[:n]
            ]

        busy = self.busy
        share = f", i.e. busy {100 * busy:.0f} % of the wall time" if busy is not None else ""
        return "\n".join(
            [
                f"{self.samples:,} non-idle samples at {self.rate} Hz over {self.seconds:.0f} s"
                f"{share} (py-spy; idle = waiting in the event loop); raw stacks: "
                f"`{self.raw_path}`",
                "",
                "| self | function (top of stack) |",
                "|---:|---|",
                *rows(self.self_top),
                "",
                "| inclusive | function (anywhere on the stack; event loop and CLI left out) |",
                "|---:|---|",
                *rows(self.inclusive_top),
            ]
        )


def _frame(frame: str) -> str:
    # py-spy frames look like "function (path/to/file.py:123)"; keep function + short path
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name


def collapse(text: str) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, self counts, inclusive counts) from py-spy's raw collapsed-stack output."""
    samples = 0
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if f]
        # the first frame is the thread name, e.g. "process 123:\"python\"" or "thread (0x…)"
        frames = [f for f in frames if not _THREAD.match(f)]
        if not frames:
            continue
        samples += n
        own[frames[-1]] += n
        for f in set(frames):
            if not any(t in f for t in _TRUNK):
                inclusive[f] += n
    return samples, own, inclusive


def py_spy() -> str | None:
    exe = Path(sys.executable).with_name("py-spy")
    return str(exe) if exe.exists() else shutil.which("py-spy")


def start_profile(
    pid: int, seconds: float, out: Path, rate: int = 100
) -> subprocess.Popen[bytes] | None:
    """Start `py-spy record` on `pid` for `seconds`; None when py-spy is not installed."""
    exe = py_spy()
    if exe is None:
        return None
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def finish_profile(
    proc: subprocess.Popen[bytes], out: Path, seconds: float, timeout: float = 120
) -> Profile | None:
    """Wait for py-spy (it stops early when the worker exits) and summarise its output.

    `seconds` is the time the worker actually ran under the profiler (for the busy share).
    """
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    try:
        text = out.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    samples, own, inclusive = collapse(text)
    if samples == 0:
        return None
    return Profile(samples, own.most_common(25), inclusive.most_common(40), out, seconds)
