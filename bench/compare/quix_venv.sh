#!/usr/bin/env bash
# A separate venv for Quix Streams (bench/compare/.venv-quix): quixstreams cannot share the
# main install (it requires pydantic<2.14; constraints.txt pins 2.14.4).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-quix"
test -x "$venv/bin/python" || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r "$here/quix-requirements.txt"
echo "$venv/bin/python"
