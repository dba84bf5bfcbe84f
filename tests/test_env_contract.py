"""Contract tests over every registered environment (after Gymnasium's tests/envs/test_envs.py).

For each id in ``kimi_env.list_envs()``: ``gym.make`` works, Gymnasium's ``check_env`` passes, the same seed and the
same actions give the same observations, ``step`` before ``reset`` is a clear error, and 2,000 hostile actions never
make an exception escape nor an observation leave the observation space.
"""

from __future__ import annotations

import json
import re

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kimi_env
from kimi_env.errors import ResetNeededError

ENV_IDS = kimi_env.list_envs()
HOSTILE_ACTIONS_PER_ENV = 2000


@pytest.fixture(scope="module", params=ENV_IDS)
def env_id(request):
    return request.param


def _tool_names(env) -> list[str]:
    return [t.name for t in env.unwrapped.tools]


def test_make_with_module_prefix_and_check_env(env_id):
    env = gym.make("kimi_env:" + env_id)
    try:
        check_env(env.unwrapped, skip_render_check=False)
    finally:
        env.close()


SAMPLE_ARGS = {
    "search": {"queries": ["founded capital", "population census"]},
    "python": {"code": "import random\nprint(sorted({3, 1, 2}), random.random())"},
    "calculator": {"expression": "2 * 21"},
    "open_box": {"box": 2},
}


def _call(name: str, args: dict) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': args})}</tool_call>"


def _play(env_id: str, seed: int) -> list:
    """Reset, then real calls of every tool (browse opens the first URL search returned), then an answer."""
    env = gym.make(env_id)
    try:
        obs, info = env.reset(seed=seed)
        out = [obs, info["task"]]
        url = None
        for name in _tool_names(env):
            if name == "browse":
                if url is None:
                    continue
                args = {"url": url}
            else:
                args = SAMPLE_ARGS[name]
            obs, reward, term, trunc, info = env.step(_call(name, args))
            assert info["format_errors"] == 0, (name, obs[:300])
            found = re.search(r"^(https?://\S+)$", obs, re.M)
            url = url or (found.group(1) if found else None)
            out.append((obs, reward, term, trunc, info["tool_calls"], info["urls_visited"]))
        obs, reward, term, trunc, info = env.step("<answer>42</answer>")
        out.append((obs, reward, term, trunc, info["reward_breakdown"]))
        return out
    finally:
        env.close()


def test_same_seed_same_actions_same_observations(env_id):
    first = _play(env_id, 7)
    assert first == _play(env_id, 7)
    assert len(first) >= 3  # the reset, at least one real tool call, the answer
    others = [_play(env_id, seed)[:2] for seed in (8, 9, 10)]
    assert any(o != first[:2] for o in others), "different seeds should pose different tasks"


def test_step_before_reset_is_a_clear_error(env_id):
    env = gym.make(env_id).unwrapped
    try:
        with pytest.raises(ResetNeededError, match="reset"):
            env.step("<answer>x</answer>")
        env.reset(seed=0)
        env.step("<answer>x</answer>")
        with pytest.raises(ResetNeededError, match="ended"):
            env.step("<answer>x</answer>")
    finally:
        env.close()


def _hostile(tools: list) -> st.SearchStrategy[str]:
    tool_names = [t.name for t in tools]
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=10,
    )
    known = st.sampled_from(tool_names)
    hostile_values = st.one_of(
        st.none(), st.just(float("nan")), st.just(float("inf")), st.integers(min_value=-(10**30), max_value=10**30),
        st.text(max_size=40), st.just("x" * 100_000), st.lists(st.text(max_size=5), max_size=30),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=3), st.booleans(),
    )
    call_known = st.builds(
        lambda n, a: f'<tool_call>{json.dumps({"name": n, "arguments": a})}</tool_call>',
        known, st.dictionaries(st.text(max_size=12), json_values, max_size=3),
    )
    return st.one_of(
        st.text(max_size=300),
        st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=("Cs",)),
                max_size=200),
        st.builds(lambda t: f"<tool_call>{t}</tool_call>", st.text(max_size=200)),
        st.builds(lambda n: f'<tool_call>{{"name": {json.dumps(n)}, "arguments": {{}}}}</tool_call>',
                  st.text(max_size=40)),
        call_known,
        st.builds(lambda a: f"<tool_call><tool_call>{a}</tool_call></tool_call>", call_known),
        st.builds(lambda a: f"<answer><answer>{a}</answer>", st.text(max_size=50)),
        st.builds(lambda a: f"<think>{a}", call_known),
        st.builds(lambda a, b: f"{a}<answer>{b}</answer>", call_known, st.text(max_size=20)),
        st.just("[" * 50_000),
        st.just('<tool_call>{"name": "x", "arguments": ' + "[" * 20_000 + "</tool_call>"),
        st.just("A" * 1_000_000),
        st.builds(lambda n: f'<tool_call>{{"name": "{n}", "arguments": {{"x": "{"B" * 1_000_000}"}}}}</tool_call>',
                  known),
        st.just("<tool_call>" * 1000),
        *[  # the tool's real parameter names with hostile values: these reach Tool.run when they validate
            st.builds(lambda args, n=t.name: _call(n, args),
                      st.dictionaries(st.sampled_from(sorted(t.parameters["properties"])), hostile_values, max_size=4))
            for t in tools if t.parameters.get("properties")
        ],
    )


def test_hostile_actions_never_escape(env_id):
    env = gym.make(env_id)
    space = env.observation_space
    counter = {"steps": 0, "episodes": 0}
    env.reset(seed=0)
    strategy = st.lists(_hostile(env.unwrapped.tools), min_size=8, max_size=8)

    @settings(max_examples=HOSTILE_ACTIONS_PER_ENV // 8, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(actions=strategy)
    def run(actions):
        for action in actions:
            obs, reward, terminated, truncated, info = env.step(action)
            counter["steps"] += 1
            assert space.contains(obs), f"observation outside the space after {action[:80]!r}"
            assert isinstance(reward, float)
            assert {"num_turns", "format_errors", "reward_breakdown", "messages"} <= set(info)
            if terminated or truncated:
                counter["episodes"] += 1
                env.reset(seed=counter["episodes"])

    try:
        run()
        assert counter["steps"] >= HOSTILE_ACTIONS_PER_ENV
        obs, info = env.reset(seed=123)
        assert space.contains(obs) and info["num_turns"] == 0 and info["format_errors"] == 0
        # the env is still fully usable: a well-formed answer ends the episode cleanly
        _, _, terminated, _, info = env.step("<answer>x</answer>")
        assert terminated and info["format_errors"] == 0
    finally:
        env.close()
