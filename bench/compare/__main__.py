"""`python -m bench.compare …` — see bench/compare/README.md."""

from __future__ import annotations

import sys

from bench.compare.cli import main

if __name__ == "__main__":
    sys.exit(main())
