"""Stable-Baselines3 adapter: SB3's own ``check_env`` on the wrapped SearchQA, BrowseQA and CodeQA; macro-actions
are real tool calls through the environment; a wrap-time error for environments SB3 spaces cannot express; and the
PPO baseline's report (short in the default suite, the learning check under ``slow``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from stable_baselines3.common.env_checker import check_env  # noqa: E402

import kimi_env  # noqa: E402
from kimi_env.errors import InvalidArgumentError  # noqa: E402
from kimi_env.integrations.sb3 import MacroActionWrapper, evaluate_policy_fn, main  # noqa: E402


@pytest.mark.parametrize("env_id,tools", [
    ("kimi_env/SearchQA-v0", {"search"}),
    ("kimi_env/BrowseQA-v0", {"search", "browse"}),
    ("kimi_env/CodeQA-v0", {"search", "python"}),
])
def test_check_env_passes_on_wrapped_world_envs(env_id, tools):
    env = MacroActionWrapper(kimi_env.make(env_id, split="train"))
    try:
        check_env(env, warn=True)
        used = {m.tool for m in env.macros if m.tool is not None}
        assert used == tools
        obs, _ = env.reset(seed=1)
        assert obs.shape == env.observation_space.shape and obs.dtype == np.float32
    finally:
        env.close()


def test_macros_are_real_tool_calls_and_answers_come_from_tool_results():
    env = MacroActionWrapper(kimi_env.make("kimi_env/SearchQA-v0", split="train"))
    names = env.action_names()
    try:
        _, info = env.reset(seed=3)
        question = info["task"]["question"]
        obs, reward, term, trunc, info = env.step(names.index("search_entity_with_field"))
        assert info["tool_calls"] == {"search": 1} and info["format_errors"] == 0
        assert info["action_text"].startswith('<tool_call>{"name": "search"')
        assert not (term or trunc) and reward == 0.0
        assert env._candidates, "search results should yield candidates"
        for cand in env._candidates:  # every candidate was read from what the tool returned
            assert cand.value in info["messages"][-1]["content"]
        assert obs[:env.vocab_dim].sum() > 0 and obs[env.vocab_dim:2 * env.vocab_dim].sum() > 0
        _, reward, term, _, info = env.step(names.index("answer_1"))
        assert term and info["answer"] == env._ranked()[0].value and question
    finally:
        env.close()


def test_an_environment_without_macro_tools_fails_at_wrap_time_with_the_reason():
    with pytest.raises(InvalidArgumentError, match="has tools \\['calculator'\\].*cannot express"):
        MacroActionWrapper(kimi_env.make("kimi_env/Calculator-v0"))
    import gymnasium as gym

    with pytest.raises(InvalidArgumentError, match="wraps kimi-env environments"):
        MacroActionWrapper(gym.make("CartPole-v1"))


def test_bad_action_names_the_valid_range():
    env = MacroActionWrapper(kimi_env.make("kimi_env/SearchQA-v0", split="train"))
    try:
        env.reset(seed=0)
        with pytest.raises(InvalidArgumentError, match=r"integer in \[0, 9\)"):
            env.step(99)
    finally:
        env.close()


def test_scripted_macro_strategy_beats_random_macros():
    """The macro-actions carry a learnable strategy: search with field words, then answer the best candidate."""
    env = MacroActionWrapper(kimi_env.make("kimi_env/SearchQA-v0", split="train"))
    names = env.action_names()
    plan = ["search_entity_with_field", "search_candidate_with_field", "answer_1"]
    try:
        scripted = evaluate_policy_fn(env, lambda o, e: names.index(plan[min(e._turn, 2)]), episodes=100, seed=0)
        rng = np.random.default_rng(0)
        rand = evaluate_policy_fn(env, lambda o, e: int(rng.integers(e.action_space.n)), episodes=100, seed=0)
    finally:
        env.close()
    assert scripted["success_rate"] > rand["ci95"][1], (scripted, rand)


def test_ppo_report_through_main(capsys):
    rc = main(["--env", "kimi_env/SearchQA-v0", "--timesteps", "256", "--n-steps", "128", "--episodes", "5",
               "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for name in ("ppo", "random_macro", "no_tool"):
        r = report[name]
        assert r["episodes"] == 5 and 0.0 <= r["success_rate"] <= 1.0 and r["ci95"][0] <= r["ci95"][1]
    assert report["eval_split"] == "test" and report["train_split"] == "train"


def test_sb3_ppo_is_a_cli_command_through_the_plugin_group(capsys):
    from kimi_env.cli import main as cli

    rc = cli(["sb3-ppo", "--env", "kimi_env/SearchQA-v0", "--timesteps", "128", "--n-steps", "64", "--episodes",
              "3", "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out.strip().splitlines()[-1])["algo"] == "sb3-ppo"


@pytest.mark.slow
def test_ppo_learns_a_tool_strategy_above_random_macros(capsys):
    rc = main(["--env", "kimi_env/SearchQA-v0", "--timesteps", "20000", "--episodes", "300", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["ppo"]["ci95"][0] > report["random_macro"]["ci95"][1], report
    assert report["ppo"]["ci95"][0] > report["no_tool"]["ci95"][1], report
