"""The leaf every layer builds on: Kafka connection settings, user-facing errors, the Kafka
admin helpers (connect with one-line errors, create topics) and the version.

It imports nothing of ours but `schemas`; `adapters`, `streams` and the `dfip` command line
import it, never the other way round (an import-linter contract in `make lint` holds this).
"""

__all__: list[str] = []
