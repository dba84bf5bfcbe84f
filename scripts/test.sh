#!/usr/bin/env bash
# The test command: set up (idempotent) and run the default test suite (slow tests excluded; see docs/testing).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the slow tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# headless Chromium for the browser-rendered tests (viewer, serve page); idempotent, skipped if present
ensure_chromium() {
  command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) || \
    echo "test.sh: could not install chromium; the browser tests will skip" >&2
}
ensure_chromium
bash scripts/setup.sh dev,train
exec .venv/bin/python -m pytest "$@"
