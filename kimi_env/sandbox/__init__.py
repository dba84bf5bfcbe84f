"""The process jail and warm worker pool behind :class:`kimi_env.tools.PythonTool`.

Layers (see ``docs/sandbox.md``): RestrictedPython with a curated policy inside the worker; the worker process jailed
by resource limits, an empty network namespace, an unprivileged uid, a private temporary directory and a scrubbed
environment; a wall-clock limit enforced from outside by killing the worker's process group.

Importing this package starts nothing: workers start on the first call.
"""

from __future__ import annotations

from .config import SandboxConfig
from .pool import Worker, WorkerError, WorkerPool, all_pools, close_all_pools, get_pool

__all__ = ["SandboxConfig", "Worker", "WorkerError", "WorkerPool", "all_pools", "close_all_pools", "get_pool"]
