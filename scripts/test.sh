#!/usr/bin/env bash
# The test command: set up (idempotent) and run the default test suite (slow tests excluded; see docs/testing).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the slow tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,train
exec .venv/bin/python -m pytest "$@"
