"""One line on stderr per first-run build stage (corpus, search index, task pool).

The first world environment of a fresh cache builds its corpus, index and task pool (about 20 s of CPU time on two
cores for the default 2,000-page world); later processes read them from the cache in well under a second and print
nothing. Each stage that really builds something writes one line to ``sys.stderr``::

    kimi-env: building the search index of 2006 documents (first use only, cached) ... done in 1.5 s

Silence it with ``KIMI_ENV_PROGRESS=0`` in the environment or ``kimi_env.progress.enabled = False``. This module
prints directly (no logging configuration), and only around work that takes seconds.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator

#: set to False to silence the build lines of this process (``KIMI_ENV_PROGRESS=0`` does the same)
enabled = True


def _on() -> bool:
    return enabled and os.environ.get("KIMI_ENV_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


#: stages whose line is still open (a stage may run inside another: the task pool's oracle check builds an index)
_open: list[dict] = []


@contextlib.contextmanager
def stage(what: str) -> Iterator[None]:
    """Write ``kimi-env: <what> ...`` to stderr, run the block, then end the line with ``done in N s`` (or
    ``failed``). One line per stage; a stage that starts inside another ends the outer line first, and the outer
    stage then reports on a line of its own. Nothing when disabled."""
    if not _on():
        yield
        return
    stream = sys.stderr
    if _open and not _open[-1]["broken"]:
        stream.write("\n")
        _open[-1]["broken"] = True
    stream.write(f"kimi-env: {what} ... ")
    stream.flush()
    entry = {"what": what, "broken": False}
    _open.append(entry)
    start = time.perf_counter()
    outcome = "failed"
    try:
        yield
        outcome = f"done in {time.perf_counter() - start:.1f} s"
    finally:
        _open.remove(entry)
        prefix = f"kimi-env: {what} ... " if entry["broken"] else ""
        stream.write(f"{prefix}{outcome}\n")
        stream.flush()
