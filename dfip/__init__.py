"""DFIP composition root: shared Kafka connection settings and the `dfip` command line."""

__all__ = ["__version__"]
__version__ = "0.1.0"
