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


@contextlib.contextmanager
def stage(what: str) -> Iterator[None]:
    """Write ``kimi-env: <what> ...`` to stderr, run the block, then end the line with ``done in N s`` (or
    ``failed``). One line per stage; nothing when disabled."""
    if not _on():
        yield
        return
    stream = sys.stderr
    stream.write(f"kimi-env: {what} ... ")
    stream.flush()
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        stream.write("failed\n")
        stream.flush()
        raise
    stream.write(f"done in {time.perf_counter() - start:.1f} s\n")
    stream.flush()
