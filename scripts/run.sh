#!/usr/bin/env bash
# The main job: set up, then report pass@1 of the baselines on the default environments.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
for policy in no-tool oracle; do
  .venv/bin/kimi-env eval kimi_env/Calculator-v0 --policy "$policy" --episodes 50 --json
done
