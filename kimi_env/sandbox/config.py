"""Limits and switches of the python sandbox, in one frozen, hashable record (pools are shared per config)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import InvalidArgumentError


@dataclass(frozen=True)
class SandboxConfig:
    """Every limit of the sandbox, with its default. See ``docs/sandbox.md`` for what each one defends.

    Attributes:
        memory_mb: RLIMIT_AS of a worker (address space, MiB). Allocations beyond it raise MemoryError.
        cpu_per_call_s: RLIMIT_CPU soft limit added before each call (CPU seconds); the kernel kills the worker when
            a call spends more. A backstop: the wall-clock limit of the tool usually fires first.
        file_size_mb: RLIMIT_FSIZE (largest file the worker may write, MiB).
        max_open_files: RLIMIT_NOFILE.
        max_processes: RLIMIT_NPROC, set after privileges are dropped (root ignores it). 1 means: no fork, no threads.
        user: Account to run workers as when the host is root (``"nobody"``), a numeric uid, or None to keep root
            (not recommended). Ignored when the host is not root.
        isolate_network: Unshare a network namespace (no interfaces) at worker start-up.
        isolate_processes: Run the code in its own PID namespace (it sees and can signal no other process; the
            namespace dies with the worker) when the kernel allows it.
        private_tmp: Give the worker its own mount namespace with a small tmpfs over ``/tmp``, ``/var/tmp`` and
            ``/dev/shm`` (nothing it writes there reaches the host or another worker) when the kernel allows it.
        tmp_mb: Size of each private tmpfs (MiB).
        require_isolation: Refuse to run code when a requested isolation (network, process or ``/tmp`` namespace)
            or the privilege drop did not take effect (otherwise they are best effort and reported in
            ``PythonTool.jail_report``).
        recursion_limit: ``sys.setrecursionlimit`` in the worker.
        max_source_chars: Longest code accepted.
        max_stdout_chars: Printed text kept per call; printing more stops the code with status ``resource_limit``.
        max_value_chars: Longest repr of the last expression's value.
        max_error_chars: Longest error text.
        max_reply_bytes: Largest reply frame the host accepts from a worker (a bigger one is a protocol failure).
        start_timeout_s: Seconds a worker may take to start (not counted in a call's time).
        max_calls_per_worker: A worker is replaced after this many calls.
        recycle_timeout_s: Seconds a worker may take, at the end of an episode, to drop the episode's state (its
            objects' finalizers run then) and check itself; slower or not clean, it is stopped instead of reused.
        min_idle: Warm workers kept ready for the next episode.
        max_idle: Idle workers kept at most; extra released workers are stopped.
        max_workers: Workers alive at most per pool (leased + idle + starting); further acquisitions wait.
        idle_timeout_s: Idle workers unused for this many seconds are stopped (the pool shrinks to zero while
            nobody calls; the next call starts a worker again). 0 keeps them until the last tool closes.
        plain_python: TEST ONLY. Run ordinary Python (no RestrictedPython) so tests can check that the process jail
            alone contains hostile code. Never enable for model-written code.
    """

    memory_mb: int = 1024
    cpu_per_call_s: int = 30
    file_size_mb: int = 16
    max_open_files: int = 64
    max_processes: int = 1
    user: str | int | None = "nobody"
    isolate_network: bool = True
    isolate_processes: bool = True
    private_tmp: bool = True
    tmp_mb: int = 16
    require_isolation: bool = False
    recursion_limit: int = 1000
    max_source_chars: int = 20_000
    max_stdout_chars: int = 100_000
    max_value_chars: int = 20_000
    max_error_chars: int = 2_000
    max_reply_bytes: int = 4 * 1024 * 1024
    start_timeout_s: float = 20.0
    max_calls_per_worker: int = 200
    recycle_timeout_s: float = 2.0
    min_idle: int = 1
    max_idle: int = 4
    max_workers: int = 64
    idle_timeout_s: float = 60.0
    plain_python: bool = False

    def __post_init__(self) -> None:
        positive = [
            "memory_mb", "cpu_per_call_s", "file_size_mb", "max_open_files", "max_processes", "recursion_limit",
            "max_source_chars", "max_stdout_chars", "max_value_chars", "max_error_chars", "max_reply_bytes",
            "start_timeout_s", "max_calls_per_worker", "max_workers", "recycle_timeout_s", "tmp_mb",
        ]  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise InvalidArgumentError(f"SandboxConfig.{name} must be a positive number, got {value!r}.")
        if self.memory_mb < 128:
            raise InvalidArgumentError(
                f"SandboxConfig.memory_mb must be >= 128 (the interpreter needs it to start), got {self.memory_mb}."
            )
        if self.max_open_files < 16:
            raise InvalidArgumentError(f"SandboxConfig.max_open_files must be >= 16, got {self.max_open_files}.")
        for name in ("min_idle", "max_idle"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgumentError(f"SandboxConfig.{name} must be an int >= 0, got {value!r}.")
        value = self.idle_timeout_s
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InvalidArgumentError(
                f"SandboxConfig.idle_timeout_s must be seconds >= 0 (0: never shrink while a tool is open), "
                f"got {value!r}."
            )
        if self.min_idle > self.max_idle:
            raise InvalidArgumentError(
                f"SandboxConfig.min_idle ({self.min_idle}) must be <= max_idle ({self.max_idle})."
            )

    def replace(self, **changes: object) -> SandboxConfig:
        """A copy with some fields changed (unknown names raise with the valid ones listed)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise InvalidArgumentError(
                f"SandboxConfig has no field(s) {unknown}; valid fields: {', '.join(sorted(names))}."
            )
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
