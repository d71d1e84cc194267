"""DFIP composition root: the `dfip` command line, which wires adapters and stream workers."""

from core.version import __version__

__all__ = ["__version__"]
