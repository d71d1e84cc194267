"""Reading a small file a setting or an option names (a key, a password, a map, a mapping).

Such a path may point anywhere: at /dev/zero (read for ever, memory without bound), at a FIFO
nobody writes to (``open`` blocks for ever) or at a folder. The file is opened without
blocking and must be a regular file, so each of those is an ``OSError`` naming what it is,
at once, instead of a hang.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["read_regular_file"]


def read_regular_file(path: Path | str) -> bytes:
    """The bytes of a regular file; ``OSError`` (with ``strerror``) for anything else."""
    # O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a writer;
    # it changes nothing for a regular file
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (a device or a pipe)", str(path))
        with os.fdopen(fd, "rb", closefd=True) as f:
            fd = -1
            return f.read()
    finally:
        if fd >= 0:
            os.close(fd)
