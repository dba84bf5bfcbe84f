"""Registration, listing, the CLI's `envs` and `eval`, and the lightness of `import kimi_env`."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys

import gymnasium as gym
import pytest

import kimi_env
import kimi_env.envs as envs
from kimi_env import InvalidArgumentError, ToolEnv, UnknownNameError
from kimi_env.cli import main


def test_every_env_class_in_envs_is_registered():
    registered = {gym.spec(i).entry_point for i in kimi_env.list_envs()}
    found = set()
    for mod in pkgutil.iter_modules(envs.__path__):
        module = importlib.import_module(f"kimi_env.envs.{mod.name}")
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, ToolEnv) and obj.__module__ == module.__name__ and not inspect.isabstract(obj) \
                    and not name.startswith("_") and getattr(obj, "registered", True):
                found.add(f"{module.__name__}:{name}")
    assert found and found <= registered, found - registered


def test_packages_install_under_our_namespace():
    """envs/ and trainers/ install as kimi_env.envs and kimi_env.trainers (a user's own `envs/` folder never shadows
    them), and every package folder of the tree is listed in pyproject.toml."""
    import pathlib
    import tomllib

    root = pathlib.Path(__file__).resolve().parents[1]
    conf = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = conf["package-dir"]
    on_disk = set()
    for init in root.glob("**/__init__.py"):
        rel = init.parent.relative_to(root)
        if rel.parts and rel.parts[0] in ("kimi_env", "envs", "trainers") and ".venv" not in rel.parts:
            name = ".".join(rel.parts)
            for pkg, folder in dirs.items():
                if name == folder or name.startswith(folder + "."):
                    name = pkg + name[len(folder):]
            on_disk.add(name)
    assert on_disk == set(conf["packages"]), on_disk ^ set(conf["packages"])
    assert envs.__name__ == "kimi_env.envs"


def test_gym_make_works_in_a_fresh_interpreter_without_prior_import():
    code = (
        "import gymnasium as gym, sys\n"
        "env = gym.make('kimi_env:kimi_env/Calculator-v0')\n"
        "obs, info = env.reset(seed=0)\n"
        "assert 'calculator' in obs\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'bm25s', 'RestrictedPython') if m in sys.modules]\n"
        "print('OK', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "OK []"


def test_import_kimi_env_imports_nothing_heavy():
    code = (
        "import sys, kimi_env\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'bm25s', 'aiohttp', 'bs4', 'RestrictedPython',"
        " 'datasets', 'envs') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_unknown_kwargs_list_valid_ones_and_suggest():
    with pytest.raises(InvalidArgumentError) as err:
        gym.make("kimi_env/Calculator-v0", max_turn=3)
    msg = str(err.value)
    assert "Did you mean 'max_turns'?" in msg and "operands" in msg and "format_penalty" in msg


def test_unknown_env_id_suggests():
    with pytest.raises(UnknownNameError, match="Did you mean 'kimi_env/Calculator-v0'"):
        kimi_env.make("kimi_env/Calculater-v0")
    env = kimi_env.make("Calculator-v0", max_turns=2)
    assert env.unwrapped.max_turns == 2
    env.close()


def test_cli_envs_lists_every_env(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    for env_id in kimi_env.list_envs():
        assert env_id in out


def test_cli_eval_prints_json_last_line(capsys):
    assert main(["eval", "kimi_env/Calculator-v0", "--policy", "oracle", "--episodes", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("pass@1", "episodes", "avg_turns", "tool_calls", "urls_visited", "format_error_rate"):
        assert key in report
    assert report["pass@1"] == 1.0 and report["episodes"] == 5 and report["avg_turns"] == 2.0
    assert main(["eval", "kimi_env/Calculator-v0", "--policy", "no-tool", "--episodes", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["pass@1"] == 0.0


def test_cli_eval_bad_env_is_a_clean_error(capsys):
    assert main(["eval", "kimi_env/Nope-v0", "--episodes", "1"]) == 2
    assert "Unknown environment" in capsys.readouterr().err


def test_cli_demos_writes_successful_oracle_episodes_as_chat(tmp_path, capsys):
    out = tmp_path / "demos.jsonl"
    assert main(["demos", "kimi_env/Calculator-v0", "--out", str(out), "--episodes", "4"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["written"] == 4
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    roles = [m["role"] for m in rows[0]["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert rows[0]["tools"][0]["function"]["name"] == "calculator" and rows[0]["reward"] == 1.0
    assert rows[0]["messages"][-1]["content"].startswith("<answer>")
    # a policy that never succeeds writes nothing
    assert main(["demos", "kimi_env/Calculator-v0", "--out", str(out), "--episodes", "3", "--policy", "no-tool"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["written"] == 0 and out.read_text() == ""
