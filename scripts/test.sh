#!/usr/bin/env bash
# The test command: set up (idempotent) and run the default test suite (slow tests excluded; see docs/testing).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the slow tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Headless Chromium for the browser-rendered tests (the viewer; tests/test_web_serve_chromium.py, a person browsing
# `kimi-env serve`). Idempotent: does nothing when chromium is installed. Without root/apt it warns and those tests
# skip; under CI (CI set) it fails.
ensure_chromium() {
  command -v chromium >/dev/null 2>&1 && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && \
     ($sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium) >/dev/null 2>&1; then
    return 0
  fi
  echo "test.sh: could not install chromium (apt-get install -y chromium); the browser tests will skip" >&2
  [ -z "${CI:-}" ] || exit 1
}

ensure_chromium
# KIMI_ENV_EXTRAS: the extras to install (default: everything the tests exercise: dev, train, dense, sb3)
bash scripts/setup.sh "${KIMI_ENV_EXTRAS:-dev,train,dense,sb3}"
exec .venv/bin/python -m pytest "$@"
