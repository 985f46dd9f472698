#!/usr/bin/env bash
# Set up (see setup.sh) and run the whole test suite, slow tests included. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not slow"` for the quick ones.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
exec python -m pytest "$@"
