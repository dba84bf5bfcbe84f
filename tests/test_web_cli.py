"""`kimi-env corpus import|info` and `kimi-env serve` through web.cli.register on a local argparse parser."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_web_fixtures import HTML_PAGES  # noqa: E402

from kimi_env.cli import main  # noqa: E402
from kimi_env.web.cli import register  # noqa: E402
from kimi_env.web.corpus import Corpus  # noqa: E402


def _run(argv: list[str]) -> int:
    """Through the real `kimi-env` entry point (which prints our errors and returns 2)."""
    return main(argv)


def test_register_adds_the_commands_to_any_parser() -> None:
    parser = argparse.ArgumentParser(prog="kimi-env")
    register(parser.add_subparsers(dest="command", required=True))
    assert parser.parse_args(["serve", "--corpus", "c"]).func.__name__ == "_cmd_serve"


def test_import_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text(json.dumps({"url": "https://a.test/x", "title": "X", "text": "hello world"}) + "\n")
    assert _run(["corpus", "import", str(src), "--out", str(tmp_path / "c"), "--index"]) == 0
    out = capsys.readouterr().out
    assert "Wrote 1 document to" in out and "Search index at" in out
    assert Corpus.open(tmp_path / "c").get("https://a.test/x").text == "hello world"
    assert _run(["corpus", "info", str(tmp_path / "c")]) == 0
    assert '"count": 1' in capsys.readouterr().out


def test_import_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"url": "https://a.test/x", "text": "ok"}\n{"url": 3}\n')
    assert _run(["corpus", "import", str(src), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:2" in err and "Fix:" in err
    assert not (tmp_path / "c").exists()
    assert _run(["corpus", "info", str(tmp_path)]) == 2


def test_import_html_dir(tmp_path: Path) -> None:
    out = tmp_path / "pages"
    assert _run(["corpus", "import", str(HTML_PAGES), "--out", str(out), "--base-url", "https://cities.example.net/"]) == 0
    assert len(Corpus.open(out)) == 4


def test_serve(tmp_path: Path) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text(json.dumps({"url": "https://a.test/x", "title": "X", "text": "served text"}) + "\n")
    assert _run(["corpus", "import", str(src), "--out", str(tmp_path / "c")]) == 0
    code = (
        "import argparse; from kimi_env.web.cli import register; p = argparse.ArgumentParser(); "
        "register(p.add_subparsers(dest='c')); a = p.parse_args(); raise SystemExit(a.func(a))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--corpus", str(tmp_path / "c"), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "Serving 1 page of" in line, line + proc.stderr.read()
        base = line.split(" at ")[1].split("/ ")[0]
        deadline = time.time() + 10
        while True:
            try:
                with urllib.request.urlopen(f"{base}/page?url=https://a.test/x", timeout=5) as resp:
                    assert "served text" in resp.read().decode()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
