#!/usr/bin/env bash
# The main job: set up .venv (with the train extra: torch pinned, CPU build), build the embedded default world, then
# `kimi-env train --preset cpu-smollm2`: SFT cold start of SmolLM2-135M on oracle demonstrations, REINFORCE with
# per-turn gamma-decayed credit, and held-out test pass@1 before and after RL (multi-hop and one-hop, paired test).
# The run directory (runs/cpu-smollm2 by default) gets report.md, results.json, metrics.jsonl, TensorBoard logs and
# learning_curve.png. Extra arguments go to `kimi-env train` (e.g. --preset cpu-tiny for a smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,train
if [ "$#" -eq 0 ]; then
  set -- --preset cpu-smollm2
fi
exec .venv/bin/kimi-env train "$@"
