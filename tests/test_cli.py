"""The ``kimi-env`` command-line conventions (issue 14 items 5 and 7), through the real entry point.

Every usage error: exit status 2 and one ``kimi-env: error:`` line; ``--help`` shows defaults; ``--version`` and
``python -m kimi_env``; comma lists; ``ENV_ID`` may name a module to import first (``mypkg:my/Env-v0``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kimi_env import InvalidArgumentError
from kimi_env.cli import USAGE_ERROR, error_text, main, make_env, parse_env_args, resolve_env_id


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``kimi-env ARGV`` in this process: (exit status, stdout, stderr); argparse's SystemExit included."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def run_subprocess(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kimi_env", *args], capture_output=True, text=True, timeout=300,
                          **kwargs)


def test_version_and_python_dash_m() -> None:
    from kimi_env import __version__

    proc = run_subprocess(["--version"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"kimi-env {__version__}"
    script = Path(sys.executable).with_name("kimi-env")  # the console script pip installed, when there is one
    if script.exists():
        proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
        assert proc.stdout.strip() == f"kimi-env {__version__}"


@pytest.mark.parametrize(("argv", "expected"), [
    (["eval", "--help"], ["(default: 20)", "(default: oracle)", "(default: 0)"]),
    (["demos", "--help"], ["(default: 100)", "(default: 1.0)"]),
    (["serve", "--help"], ["(default: 8080)"]),                        # a plugin command (kimi_env.web.cli)
    (["world", "build", "--help"], ["(default: 2000)", "(default: 0)"]),  # nested, plugin, options without help
    (["synth", "--help"], ["(default: 2000)"]),
])
def test_help_shows_defaults(argv: list[str], expected: list[str], capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli(argv, capsys)
    assert code == 0
    flat = " ".join(out.split())
    for text in expected:
        assert text in flat, (text, out)
    assert "(default: None)" not in flat and "(default: False)" not in flat


USAGE_ERRORS = [
    ["no-such-command"],
    ["eval"],                                                             # missing ENV_ID (argparse)
    ["eval", "kimi_env/Calculator-v0", "--episodes", "many"],            # bad type (argparse)
    ["eval", "kimi_env/Calculator-v0", "--env-arg", "max_turns"],         # malformed KEY=VALUE (exited 1 before)
    ["eval", "kimi_env/Calculator-v0", "--env-arg", "max_turns=2", "--env-arg", "max_turns=3"],
    ["eval", "kimi_env/Calculator-v0", "--env-arg", "max_turn=3"],       # unknown keyword (through gym.make)
    ["eval", "kimi_env/Calculator-v0", "--env-arg", "max_turns=-1"],
    ["eval", "kimi_env/Calculatr-v0"],
    ["eval", "no_such_module_xyz:my/Env-v0"],
    ["eval", "kimi_env/Calculator-v0", "--policy", "oracel"],
    ["synth", "--n", "5", "--out", "x.jsonl", "--split", "dev"],
    ["corpus", "import", "/no/such/path.jsonl", "--out", "c"],
    ["corpus", "info", "/no/such/dir"],
]


@pytest.mark.parametrize("argv", USAGE_ERRORS, ids=lambda a: " ".join(a))
def test_every_usage_error_has_one_exit_status_and_one_prefix(argv: list[str], capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _out, err = run_cli(argv, capsys)
    assert code == USAGE_ERROR, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("kimi-env: error: "), err
    assert lines[-1] == errors[0], err                      # the error is the last thing printed (after usage)
    assert "Traceback" not in err and "was raised from the environment creator" not in err, err
    assert len(errors[0]) < 600, err


def test_malformed_env_arg_through_the_real_entry_point() -> None:
    """It exited 1 with a bare message before; now 2 and the prefix, from a real process."""
    proc = run_subprocess(["eval", "kimi_env/Calculator-v0", "--env-arg", "oops"])
    assert proc.returncode == 2
    assert proc.stderr.startswith("kimi-env: error: --env-arg expects KEY=VALUE"), proc.stderr
    assert "Fix:" in proc.stderr


def test_gymnasium_tail_is_dropped_but_the_message_kept() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        make_env("kimi_env/Calculator-v0", ["max_turn=3"])
    assert "was raised from the environment creator" in str(err.value)   # Gymnasium's own text, for Python users
    text = error_text(err.value)
    assert "was raised from the environment creator" not in text and "kwargs" not in text
    assert "Did you mean 'max_turns'?" in text


def test_corpus_exists_error_is_written_for_a_shell_user(tmp_path: Path, capsys) -> None:
    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps({"url": "https://a.test/x", "title": "X", "text": "hi"}) + "\n")
    assert run_cli(["corpus", "import", str(src), "--out", str(tmp_path / "c")], capsys)[0] == 0
    code, _, err = run_cli(["corpus", "import", str(src), "--out", str(tmp_path / "c")], capsys)
    assert code == 2 and "add --overwrite" in err and "overwrite=True" not in err, err
    code, out, _ = run_cli(["corpus", "import", str(src), "--out", str(tmp_path / "c"), "--overwrite"], capsys)
    assert code == 0 and "Wrote 1 document to" in out


def test_env_args_accept_json_comma_lists_and_text() -> None:
    assert parse_env_args(["kinds=lookup,set", "difficulty=1,3", "split=test", "max_turns=4", "tools=[\"search\"]",
                           "x=a, b ,", "flag=true", "name=\"a,b\""]) == {
        "kinds": ["lookup", "set"], "difficulty": [1, 3], "split": "test", "max_turns": 4, "tools": ["search"],
        "x": ["a", "b"], "flag": True, "name": "a,b"}


def test_comma_list_reaches_the_environment_as_a_list() -> None:
    """`--env-arg kinds=lookup,set` was the string "lookup,set", iterated letter by letter ("Unknown task kind 'l'")."""
    env = make_env("kimi_env/SearchQA-v0", ["kinds=lookup,comparison", "split=test"])
    try:
        kinds = {t.metadata["kind"] for t in env.unwrapped.task_pool}
        assert kinds == {"lookup", "comparison"}
    finally:
        env.close()
    env = make_env("kimi_env/SearchQA-v0", ["kinds=lookup"])   # one item: a str, not its letters
    try:
        assert {t.metadata["kind"] for t in env.unwrapped.task_pool} == {"lookup"}
    finally:
        env.close()


def test_resolve_env_id_forms() -> None:
    assert resolve_env_id("kimi_env/Calculator-v0") == "kimi_env/Calculator-v0"
    assert resolve_env_id("kimi_env:kimi_env/Calculator-v0") == "kimi_env/Calculator-v0"
    assert resolve_env_id("Calculator-v0") == "kimi_env/Calculator-v0"
    with pytest.raises(InvalidArgumentError, match="Did you mean 'kimi_env/Calculator-v0'"):
        resolve_env_id("kimi_env/Calculater-v0")
    with pytest.raises(InvalidArgumentError, match="cannot import module 'no_such_mod_q'"):
        resolve_env_id("no_such_mod_q:my/Env-v0")


MYPKG = {
    "__init__.py": """
        import gymnasium as gym

        # registered when the package is imported; `kimi-env eval mypkg_docs_t:mypkg/Echo-v0` imports it first
        gym.register(id="mypkg/Echo-v0", entry_point="mypkg_docs_t.env:EchoEnv")
    """,
    "env.py": """
        from kimi_env import Task, ToolEnv, function_tool

        @function_tool
        def echo(text: str) -> str:
            \"\"\"Repeat the text.

            Args:
                text: What to repeat.
            \"\"\"
            return text

        class EchoEnv(ToolEnv):
            def _make_tools(self):
                return [echo]

            def _sample_task(self):
                return Task(id="t", question="Say 3.", answers=("3",), answer_type="number")
    """,
}


def test_eval_imports_the_named_module_and_finds_its_environments(tmp_path: Path) -> None:
    pkg = tmp_path / "mypkg_docs_t"
    pkg.mkdir()
    for name, text in MYPKG.items():
        (pkg / name).write_text(textwrap.dedent(text))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = run_subprocess(["eval", "mypkg_docs_t:mypkg/Echo-v0", "--policy", "no-tool", "--episodes", "3", "--json"],
                          env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["episodes"] == 3 and report["pass@1"] == 1.0   # the no-tool guess is the number in the question
    proc = run_subprocess(["eval", "mypkg/Echo-v0", "--episodes", "1"], env=env)   # not imported: not found
    assert proc.returncode == 2 and "Unknown environment 'mypkg/Echo-v0'" in proc.stderr
    assert "mypkg:my/Env-v0" in proc.stderr   # the fix names the module form


def test_a_broken_plugin_does_not_break_the_other_commands(monkeypatch, capsys) -> None:
    import kimi_env.cli as cli

    monkeypatch.setattr(cli, "_PLUGINS", (*cli._PLUGINS, "no_such_plugin_module_zz"))
    code, out, err = run_cli(["envs"], capsys)
    assert code == 0 and "kimi_env/Calculator-v0" in out
    assert "warning: the command plugin 'no_such_plugin_module_zz' failed to load" in err


HELLO = '''
def register(subparsers):
    p = subparsers.add_parser("hello", help="say hello")
    p.add_argument("--name", default="world", help="whom to greet")
    p.add_argument("--times", type=int, default=1)
    p.set_defaults(func=lambda args: print(" ".join([f"hello {args.name}"] * args.times)) or 0)
'''


def test_a_package_adds_a_command_through_the_entry_point_group(tmp_path: Path) -> None:
    """The mechanism kimi_env/cli.py documents: a module with register(subparsers), declared under the
    "kimi_env.cli" entry-point group of an installed distribution (here a real .dist-info on PYTHONPATH)."""
    (tmp_path / "hello_cmd.py").write_text(HELLO)
    info = tmp_path / "hello_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[kimi_env.cli]\nhello = hello_cmd\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = run_subprocess(["hello", "--name", "kimi", "--times", "2"], env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "hello kimi hello kimi", proc.stderr
    proc = run_subprocess(["hello", "--help"], env=env)
    flat = " ".join(proc.stdout.split())
    assert "whom to greet (default: world)" in flat and "--times TIMES (default: 1)" in flat, proc.stdout
    proc = run_subprocess(["hello", "--times", "x"], env=env)      # the plugin's usage errors follow the convention
    assert proc.returncode == 2 and proc.stderr.splitlines()[-1].startswith("kimi-env: error: argument --times")
