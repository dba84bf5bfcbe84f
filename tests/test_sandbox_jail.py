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

    deadline = time.monotonic() + 3
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
