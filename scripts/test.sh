#!/usr/bin/env bash
# Set up (see setup.sh), lint (ruff) and run the whole test suite, slow tests included. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not slow"` for the quick ones.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
ruff check --quiet . && ruff format --check --quiet .  # lint and format, configured in pyproject.toml
exec python -m pytest "$@"
