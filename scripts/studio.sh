#!/usr/bin/env bash
# Set up (see setup.sh) and serve the studio on http://127.0.0.1:7860. Extra arguments go to `rlhf-studio ui`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
exec rlhf-studio ui "$@"
