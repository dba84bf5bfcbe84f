"""Test-session setup: a private cache for corpora, indexes and task pools (built once per session, removed at the
end of the session; a cache given in ``$KIMI_ENV_CACHE`` is the user's and is left alone)."""

from __future__ import annotations

import os
import shutil
import tempfile

_CREATED: list[str] = []


def pytest_configure(config):
    if not os.environ.get("KIMI_ENV_CACHE"):
        path = tempfile.mkdtemp(prefix="kimi-env-test-cache-")
        os.environ["KIMI_ENV_CACHE"] = path
        _CREATED.append(path)


def pytest_unconfigure(config):
    while _CREATED:
        path = _CREATED.pop()
        shutil.rmtree(path, ignore_errors=True)
        if os.environ.get("KIMI_ENV_CACHE") == path:
            del os.environ["KIMI_ENV_CACHE"]
