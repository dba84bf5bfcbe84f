"""Test-session setup: a private cache for corpora, indexes and task pools (built once per session)."""

from __future__ import annotations

import os
import tempfile


def pytest_configure(config):
    if not os.environ.get("KIMI_ENV_CACHE"):
        os.environ["KIMI_ENV_CACHE"] = tempfile.mkdtemp(prefix="kimi-env-test-cache-")
