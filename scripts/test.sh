#!/usr/bin/env bash
# Set up (see setup.sh), lint (ruff) and run the whole test suite, slow tests included. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not slow"` for the quick ones, or TEST_WORKERS=0 for one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
ruff check --quiet . && ruff format --check --quiet .  # lint and format, configured in pyproject.toml
# Two test processes (pytest-xdist), each taking whole test files; the files that share a trained session fixture
# go to the same process, and start first (tests/conftest.py, SHARED_TRAINING_FILES). TEST_WORKERS=0 runs in this
# process. One math thread per process: the tiny model's matrices gain nothing from more, and two processes each
# spinning two threads on two cores slow each other down several times over.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec python -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
