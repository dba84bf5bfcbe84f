"""The test session's own setup: its private cache directory is removed when the session ends."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def test_the_session_cache_is_created_and_removed(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(
        "import os, pathlib\n"
        "def test_probe():\n"
        "    path = pathlib.Path(os.environ['KIMI_ENV_CACHE'])\n"
        "    assert path.is_dir()\n"
        "    (path / 'built').write_text('x')\n"
        f"    pathlib.Path({str(tmp_path / 'where')!r}).write_text(str(path))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KIMI_ENV_CACHE"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    cache = Path((tmp_path / "where").read_text())
    assert cache.name.startswith("kimi-env-test-cache-") and not cache.exists()
    # a cache the user gave is never removed
    mine = tmp_path / "mine"
    mine.mkdir()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env={**env, "KIMI_ENV_CACHE": str(mine)}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and (mine / "built").is_file()
