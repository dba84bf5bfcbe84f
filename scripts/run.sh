#!/usr/bin/env bash
# The main job. Sets up .venv, builds the embedded default world (2,000 pages, cached), and reports pass@1 on the
# test split of every environment for the no-tool baseline and the oracle agent (which solves tasks only through
# the real tools). Until the RL trainer lands this evaluates scripted policies; it becomes "pass@1 before and after
# training" when it does. Extra arguments go to scripts/main_job.py (e.g. --episodes 50).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
exec .venv/bin/python scripts/main_job.py "$@"
