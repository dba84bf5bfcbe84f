"""Every code example in README.md and docs/**/*.md runs as written (issue 14 item 1).

Pages are found by glob, so a new page's examples are covered without touching this file. For each page, its fenced
blocks run in document order in one fresh working directory that holds copies of ``tests/data/docs_examples/``
(the ``saved_pages/``, ``pages.jsonl`` and ``my_questions.jsonl`` the examples name), with this session's private
``$KIMI_ENV_CACHE``:

* ```` ```python ```` blocks are executed, all blocks of a page in one namespace (a later block may use an earlier
  one's names). Tracebacks point at the page's own lines. An example shows what it claims with ``assert``.
* ```` ```bash ```` (``sh``, ``shell``, ``console``) blocks: every ``kimi-env ...`` command runs through the real
  console script (``python -m kimi_env`` when there is none) and must exit 0. Any other command must carry a
  marker, below.
* Any other block (output, JSON, HTML, diagrams) is not code and is not run; but an untagged block that holds a
  ``kimi-env`` command fails the test: tag it ``bash`` so it runs.

Markers, visible to every reader of the page (a marker without a reason fails the test):

* ``# not run: <reason>`` as a block's first line: the block is not run. At the end of a bash command line (in its
  comment): that command is not run. Each is reported as a pytest skip with the page, line and reason.
* ``# requires: pkg, pkg`` as a python block's first line: the block runs only when those modules import (else a
  skip naming them), for pages about optional extras.

``test_world_md_funnel_figures_match_a_fresh_run`` also checks the funnel figures printed in docs/world.md against a
fresh ``kimi-env synth`` run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "data" / "docs_examples"
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("**/*.md")])

PYTHON = {"python", "py", "python3"}
SHELL = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})\s*([^`\s]*)[^`]*$")
NOT_RUN = re.compile(r"#.*?\bnot run:(.*)$")
NOT_RUN_PAREN = re.compile(r"#.*?\(not run:(.*)\)\s*$")  # "# comment (not run: reason)"
REQUIRES = re.compile(r"^\s*#\s*requires:(.*)$")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the first code line (after the fence)
    lang: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def parse_blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page (CommonMark fences: ``` or ~~~, indented up to 3 spaces)."""
    blocks: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = len(m.group(1)), m.group(2), m.group(3).lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence[0] * len(fence))
                                      and lines[j].strip().strip(fence[0]) == ""):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        if j >= len(lines):
            raise AssertionError(f"{page.relative_to(ROOT)}:{i + 1}: code fence never closed")
        blocks.append(Block(page, i + 2, lang, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def _first_line(block: Block) -> str:
    return next((line for line in block.code.splitlines() if line.strip()), "")


def _marker_reason(block: Block, text: str) -> str | None:
    m = NOT_RUN_PAREN.search(text) or NOT_RUN.search(text)
    if not m:
        return None
    reason = m.group(1).strip()
    assert reason, f"{block.where}: a 'not run:' marker must say why"
    return reason


def shell_commands(block: Block) -> list[tuple[int, str]]:
    """(line, command) of a shell block: continuation lines joined, blank and comment-only lines dropped."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for n, raw in enumerate(block.code.splitlines()):
        line = raw.rstrip()
        if not pending:
            start = block.line + n
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line.lstrip().startswith("$ "):
                line = line.lstrip()[2:]
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    if pending:
        out.append((start, pending))
    return out


def kimi_env_command() -> list[str]:
    script = Path(sys.executable).with_name("kimi-env")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kimi_env"]


def run_python(block: Block, namespace: dict) -> None:
    # pad with blank lines so tracebacks show the page's own line numbers
    code = compile("\n" * (block.line - 1) + block.code, str(block.page), "exec")
    exec(code, namespace)  # noqa: S102 - the examples are this repository's own documentation


def _block_marker(block: Block) -> str | None:
    """The reason of a whole-block ``# not run:`` marker, or of a missing ``# requires:`` module; else None."""
    first = _first_line(block)
    if first.lstrip().startswith("#"):
        reason = _marker_reason(block, first)
        if reason is not None:
            return reason
    m = REQUIRES.match(first) if block.lang in PYTHON else None
    missing = [mod for mod in (x.strip() for x in (m.group(1).split(",") if m else [])) if mod
               and importlib.util.find_spec(mod) is None]
    return f"needs {', '.join(missing)} (not installed)" if missing else None


def marked_examples() -> list[tuple[str, str]]:
    """(page:line, reason) of every example that is not run, over every page."""
    out = []
    for page in PAGES:
        for block in parse_blocks(page):
            if block.lang not in PYTHON | SHELL:
                continue
            reason = _block_marker(block)
            if reason is not None:
                out.append((block.where, f"{block.lang} block not run: {reason}"))
            elif block.lang in SHELL:
                for line, command in shell_commands(block):
                    reason = _marker_reason(block, command)
                    if reason is not None:
                        what = command.split("#")[0].strip()
                        out.append((f"{_page_id(page)}:{line}", f"`{what}` not run: {reason}"))
    return out


def run_shell(block: Block, cwd: Path) -> int:
    ran = 0
    for line, command in shell_commands(block):
        where = f"{block.page.relative_to(ROOT)}:{line}"
        if _marker_reason(block, command) is not None:
            continue
        argv = shlex.split(command, comments=True)
        assert argv and argv[0] == "kimi-env", (
            f"{where}: `{command}` is not a kimi-env command, so the doc test cannot run it. Fix: end the line "
            "with `# not run: <why>` (or make the whole block `# not run: <why>`)."
        )
        proc = subprocess.run([*kimi_env_command(), *argv[1:]], cwd=cwd, capture_output=True, text=True,
                              timeout=600, env={**os.environ, "KIMI_ENV_PROGRESS": "0"})
        assert proc.returncode == 0, f"{where}: `{command}` exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        ran += 1
    return ran


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_the_pages_are_found() -> None:
    names = {_page_id(p) for p in PAGES}
    assert {"README.md", "docs/env-api.md", "docs/envs.md", "docs/world.md", "docs/web.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_examples_run_as_written(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = parse_blocks(page)
    for block in blocks:  # an untagged block with a command would silently escape the test
        if block.lang not in PYTHON | SHELL:
            commands = [c for _, c in shell_commands(block) if c.split()[:1] == ["kimi-env"]]
            assert block.lang or not commands, (
                f"{block.where}: an untagged code block holds the command {commands[0]!r}. Fix: tag it ```bash "
                "so that the doc test runs it."
            )
    runnable = [b for b in blocks if b.lang in PYTHON | SHELL and _block_marker(b) is None]
    for item in FIXTURES.iterdir():
        if item.name != "README.md":
            (shutil.copytree if item.is_dir() else shutil.copy)(item, tmp_path / item.name)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs_example__"}
    try:
        for block in runnable:
            if block.lang in PYTHON:
                run_python(block, namespace)
            else:
                run_shell(block, tmp_path)
    finally:
        import gymnasium as gym

        for value in list(namespace.values()):
            if isinstance(value, gym.Env):
                value.close()


MARKED = marked_examples() or [("(none)", "")]


@pytest.mark.parametrize(("where", "reason"), MARKED, ids=[where for where, _ in MARKED])
def test_marked_examples_are_reported_as_not_run(where: str, reason: str) -> None:
    """One skip per example a page marks as not run: visible in `pytest -ra`, never counted as a pass."""
    if where == "(none)":
        return
    pytest.skip(f"{where}: {reason}")


def test_markers_are_found_and_need_a_reason(tmp_path: Path) -> None:
    """The parser and the markers themselves (so a typo cannot make a block silently vanish)."""
    page = tmp_path / "p.md"
    page.write_text(
        "text\n```python\n# not run: needs a GPU\nx = 1\n```\n\n```bash\nkimi-env envs   # list\n"
        "kimi-env serve --corpus c   # runs forever (not run: until Ctrl-C)\nkimi-env eval \\\n  X --json\n```\n"
        "~~~\nkimi-env envs\n~~~\n"
    )
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        py, sh, plain = parse_blocks(page)
        assert (py.lang, py.line, sh.lang, plain.lang) == ("python", 3, "bash", "")
        assert _marker_reason(py, _first_line(py)) == "needs a GPU"
        cmds = shell_commands(sh)
        assert [c for _, c in cmds][2] == "kimi-env eval    X --json" and cmds[2][0] == 10
        assert _marker_reason(sh, cmds[0][1]) is None and _marker_reason(sh, cmds[1][1]) == "until Ctrl-C"
        assert [c for _, c in shell_commands(plain)] == ["kimi-env envs"]
        with pytest.raises(AssertionError, match="must say why"):
            _marker_reason(py, "# not run:   ")
    finally:
        ROOT = saved


def _funnel_block(text: str) -> list[str]:
    m = re.search(r"`kimi-env synth (--n \d+ --seed \d+)`[^\n]*:\n\n```\n(.*?)```", text, re.S)
    assert m, "docs/world.md: the funnel figures block after `kimi-env synth --n N --seed S` was not found"
    return [m.group(1), *[line.rstrip() for line in m.group(2).strip().splitlines()]]


def test_world_md_funnel_figures_match_a_fresh_run(tmp_path: Path) -> None:
    """The funnel counts printed in docs/world.md are what `kimi-env synth` prints today (issue 14 item 6)."""
    args, *expected = _funnel_block((ROOT / "docs" / "world.md").read_text(encoding="utf-8"))
    proc = subprocess.run([*kimi_env_command(), "synth", *args.split(), "--out", str(tmp_path / "t.jsonl")],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "KIMI_ENV_PROGRESS": "0"})
    assert proc.returncode == 0, proc.stderr
    printed = [line.rstrip() for line in proc.stderr.strip().splitlines()]
    assert printed == expected, "docs/world.md's funnel block differs from a fresh run:\n" + "\n".join(printed)
