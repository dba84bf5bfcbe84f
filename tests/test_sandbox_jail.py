"""The process jail alone (RestrictedPython switched off, test-only) must still contain hostile plain Python."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from kimi_env.sandbox import SandboxConfig
from kimi_env.sandbox.testing import check_postconditions, snapshot
from kimi_env.tools import PythonTool

ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def tool():
    t = PythonTool(timeout=3.0, sandbox=SandboxConfig(memory_mb=384), _unsafe_plain_python_for_tests=True)
    yield t
    t.close()


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory):
    d = tmp_path_factory.mktemp("jail-sentinel")
    (d / "keep.txt").write_text("intact")
    return d


def attack(tool, sentinel, code, statuses):
    before = snapshot(sentinel)
    result = tool.call(code=code.replace("SENTINEL", str(sentinel)))
    assert result.status in statuses, f"expected {statuses}, got {result.status}: {result.content[:500]}"
    tool.reset()
    check_postconditions(tool, sentinel, before)
    return result


def test_plain_tier_really_is_plain(tool):
    assert tool.call(code="import os\nos.getpid() > 0").content == "True"


def test_infinite_loop_killed(tool, sentinel):
    attack(tool, sentinel, "while True:\n    pass", {"timeout"})


def test_loop_ignoring_signals_killed(tool, sentinel):
    code = "import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):\n    signal.signal(s, signal.SIG_IGN)\n"
    code += "while True:\n    try:\n        pass\n    except BaseException:\n        pass"
    attack(tool, sentinel, code, {"timeout"})


def test_memory_bomb_stopped(tool, sentinel):
    attack(tool, sentinel, "x = bytearray(4 * 1024**3)", {"resource_limit"})
    attack(tool, sentinel, "import mmap\nm = mmap.mmap(-1, 2 * 1024**3)", {"model_error", "resource_limit"})


def test_fork_bomb_contained(tool, sentinel):
    r = attack(tool, sentinel, "import os\nwhile True:\n    os.fork()", {"model_error"})
    assert "BlockingIOError" in r.content or "Resource temporarily unavailable" in r.content


def test_subprocess_and_threads_refused(tool, sentinel):
    attack(tool, sentinel, "import subprocess\nsubprocess.run(['id'])", {"model_error"})
    attack(tool, sentinel, "import threading\nthreading.Thread(target=print).start()", {"model_error"})


def test_write_outside_workdir_denied(tool, sentinel):
    attack(tool, sentinel, "open('SENTINEL/keep.txt', 'w').write('pwned')", {"model_error"})
    attack(tool, sentinel, "import os\nos.remove('SENTINEL/keep.txt')", {"model_error"})
    attack(tool, sentinel, "open('/etc/kimi-sandbox-test', 'w').write('x')", {"model_error"})
    assert not os.path.exists("/etc/kimi-sandbox-test")


def test_workdir_is_private_and_removed(tool):
    tool.reset()
    r = tool.call(code="import os\nopen('f.txt', 'w').write('hi')\nos.getcwd()")
    workdir = r.content.strip("'")
    assert r.ok and os.path.basename(workdir).startswith("kimi-py-")
    assert oct(os.stat(workdir).st_mode & 0o777) == "0o700"
    tool.reset()  # plain-tier workers are never reused: the worker and its directory go
    tool.call(code="1")
    import time

    deadline = time.monotonic() + 20  # a bound against hanging, not a speed requirement
    while os.path.exists(workdir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(workdir)


def test_file_size_limit(tool, sentinel):
    r = attack(tool, sentinel, "open('big', 'wb').write(b'0' * (64 * 1024 * 1024))", {"model_error"})
    assert "File too large" in r.content


def test_network_refused(tool, sentinel):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted = []

    def accept():
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    th = threading.Thread(target=accept)
    th.start()
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)"
    r = attack(tool, sentinel, code, {"model_error"})
    th.join()
    server.close()
    assert not accepted and ("OSError" in r.content or "Error" in r.content)


@pytest.mark.skipif(not ROOT, reason="privilege drop only happens when the host is root")
def test_runs_unprivileged(tool, sentinel):
    r = tool.call(code="import os\nos.getuid(), os.geteuid()")
    assert r.content == "(65534, 65534)"
    attack(tool, sentinel, "import os\nos.setuid(0)", {"model_error"})
    attack(tool, sentinel, f"import os\nos.kill({os.getpid()}, 9)", {"model_error"})


def test_environment_scrubbed(tool, monkeypatch):
    monkeypatch.setenv("KIMI_TEST_SECRET", "hunter2")
    tool.reset()
    r = tool.call(code="import os\nsorted(os.environ)")
    assert "KIMI_TEST_SECRET" not in r.content
    assert r.content == "['LANG', 'LC_ALL', 'PATH', 'PYTHONHASHSEED']"


def test_jail_report(tool):
    tool.call(code="1")
    report = tool.jail_report
    for key in ("rlimit_as", "rlimit_fsize", "rlimit_nofile", "rlimit_core", "nproc"):
        assert report[key], report
    if ROOT:
        assert report["netns"] and report["dropped_privileges"] and report["uid"] == 65534


# -- cross-episode reach (issue 8, item 2): each worker has its own PID namespace and its own /tmp ---------------

REACH_PROBE = """
import os
try:
    os.kill(-1, 0)
    reached = True
except ProcessLookupError:
    reached = False
reached
"""


def _kernel_allows_namespaces() -> bool:
    """Whether this host lets a process unshare mount and PID namespaces (as root, or in a user namespace)."""
    import subprocess
    import sys

    flags = 0x00020000 | 0x20000000 | (0 if ROOT else 0x10000000)  # NEWNS | NEWPID (| NEWUSER)
    code = f"import ctypes, os\nos._exit(0 if ctypes.CDLL(None, use_errno=True).unshare({flags}) == 0 else 1)"
    return subprocess.run([sys.executable, "-c", code], check=False, timeout=30).returncode == 0


def _require(tool, key):
    """Skip only where the kernel itself refuses the namespaces; where it allows them the sandbox must use them."""
    tool.call(code="1")
    if not tool.jail_report.get(key) and not _kernel_allows_namespaces():
        pytest.skip("this kernel refuses mount/PID namespaces: the documented fallback applies (docs/sandbox.md)")
    assert tool.jail_report.get(key), f"the kernel allows namespaces but the worker has no {key}: {tool.jail_report}"


def test_code_cannot_signal_other_workers(tool):
    """os.kill(-1, ...) signals every process the caller may signal: with the jail alone, every worker of the
    sandbox user. In its own PID namespace the code reaches no process at all, and another episode survives."""
    _require(tool, "pidns")
    other = PythonTool(timeout=3.0, sandbox=SandboxConfig(memory_mb=384), _unsafe_plain_python_for_tests=True)
    try:
        assert other.call(code="x = 'alive'\nx").content == "'alive'"
        other_pid = other.call(code="1").meta["worker_pid"]
        tool.reset()
        r = tool.call(code=REACH_PROBE)
        assert r.ok and r.content == "False", f"the code could signal other processes: {r.content}"
        r = tool.call(code="import os, signal\nos.kill(-1, signal.SIGKILL)")
        assert r.status == "model_error" and "ProcessLookupError" in r.content
        assert other.call(code="x").content == "'alive'"  # same worker, variables intact
        assert other.call(code="1").meta["worker_pid"] == other_pid
        if tool.jail_report.get("private_proc"):  # it cannot even see them
            r = tool.call(code="import os\nsorted(int(p) for p in os.listdir('/proc') if p.isdigit())")
            assert r.content == "[1, 2]", r.content
            assert str(other_pid) not in r.content
    finally:
        other.close()
    tool.reset()
    check_postconditions(tool)


def test_tmp_is_private_to_the_worker(tool, tmp_path):
    """A file written to /tmp (or /var/tmp, /dev/shm) inside lands in the worker's own tmpfs: the host and other
    workers never see it, and it is gone with the worker."""
    _require(tool, "private_tmp")
    import uuid

    name = f"kimi-sandbox-probe-{uuid.uuid4().hex}"
    dirs = [d for d in ("/tmp", "/var/tmp", "/dev/shm") if os.path.isdir(d) and not os.path.islink(d)]
    code = "\n".join(f"open('{d}/{name}', 'w').write('from the sandbox')" for d in dirs)
    code += f"\nimport os\nsorted(d for d in {dirs!r} if os.path.exists(d + '/{name}'))"
    tool.reset()
    r = tool.call(code=code)
    assert r.ok and r.content == repr(sorted(dirs)), r.content  # writable inside, like a normal /tmp
    for d in dirs:
        assert not os.path.exists(f"{d}/{name}"), f"{d}/{name} reached the host"
    other = PythonTool(timeout=3.0, sandbox=SandboxConfig(memory_mb=384), _unsafe_plain_python_for_tests=True)
    try:
        r = other.call(code=f"import os\n[d for d in {dirs!r} if os.path.exists(d + '/{name}')]")
        assert r.content == "[]", f"another worker saw the file: {r.content}"
    finally:
        other.close()
    # a host file in /tmp is not visible inside either (the tmpfs hides the host's /tmp)
    host_file = f"/tmp/{name}-host"
    with open(host_file, "w") as f:
        f.write("host")
    try:
        assert tool.call(code=f"import os\nos.path.exists('{host_file}')").content == "False"
    finally:
        os.remove(host_file)
    tool.reset()
    check_postconditions(tool)


def test_workdir_under_a_private_tmp_is_still_the_host_directory(tool):
    # the worker's own directory lives in the host's /tmp: it is bound back at the same path inside
    _require(tool, "private_tmp")
    tool.reset()
    r = tool.call(code="import os\nopen('note.txt', 'w').write('hi')\nos.getcwd()")
    workdir = r.content.strip("'")
    assert r.ok and os.path.isfile(os.path.join(workdir, "note.txt"))


def test_without_namespaces_the_jail_still_runs():
    """The fallback (kernel refuses the namespaces, or they are switched off) runs code with the weaker guarantee
    that docs/sandbox.md describes, and the report says so."""
    cfg = SandboxConfig(memory_mb=384, isolate_processes=False, private_tmp=False)
    t = PythonTool(timeout=3.0, sandbox=cfg, _unsafe_plain_python_for_tests=True)
    try:
        r = t.call(code="import os\nos.getpid() > 2")
        assert r.ok and r.content == "True"
        assert not t.jail_report["pidns"] and not t.jail_report["private_tmp"]
    finally:
        t.close()


def test_leaving_the_session_does_not_escape_the_kill(tool, sentinel):
    # in a PID namespace the code process is not a session leader, so setsid() works and it leaves the group the
    # host kills; the namespace's init still dies with the group, and the kernel then kills the code process
    attack(tool, sentinel, "import os\nos.setsid()\nwhile True:\n    pass", {"timeout", "model_error"})
