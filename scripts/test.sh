#!/usr/bin/env bash
# The test command: set up (idempotent) and run the default test suite (slow tests excluded; see docs/testing).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the slow tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# KIMI_ENV_EXTRAS: the extras to install (default dev); .ci/run adds dense so the hybrid-retrieval tests run.
bash scripts/setup.sh "${KIMI_ENV_EXTRAS:-dev}"
exec .venv/bin/python -m pytest "$@"
