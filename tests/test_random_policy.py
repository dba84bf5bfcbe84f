"""The ``random`` policy: well-formed turns in the environment's protocol, arguments valid against each schema,
seeded; and a load run through the rollout engine."""

from __future__ import annotations

import pytest

import kimi_env
from kimi_env.policies import get_policy
from kimi_env.policies.random_policy import RandomPolicy, detect_protocol
from kimi_env.rollout import EpisodeJob, RolloutEngine
from kimi_env.schema import validate_arguments

SCHEMA = {
    "type": "object",
    "properties": {
        "queries": {"type": "array", "items": {"type": "string", "maxLength": 12}, "minItems": 2, "maxItems": 4},
        "mode": {"type": "string", "enum": ["fast", "deep"]},
        "top_k": {"type": "integer", "minimum": 3, "maximum": 7},
        "ratio": {"type": "number", "minimum": -1.5, "maximum": 0.5},
        "exact": {"type": "boolean"},
        "page": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 3}, {"type": "string", "minLength": 5}]},
        "url": {"type": "string"},
        "opts": {"type": "object", "properties": {"n": {"type": "integer", "maximum": -4}}},
    },
    "required": ["queries", "mode", "top_k"],
}
TOOLS = [{"type": "function", "function": {"name": "probe", "description": "d", "parameters": SCHEMA}}]


def _info(protocol: str | None = "hermes", task_id: str = "t0") -> dict:
    info = {"task": {"id": task_id, "question": "Which river borders the capital of Vurmark?"}, "tools": TOOLS,
            "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}]}
    if protocol:
        info["protocol"] = protocol
    return info


def test_arguments_drawn_from_a_schema_pass_its_validation():
    policy = RandomPolicy(seed=3, p_answer=0.0, max_calls=1, p_optional=0.7)
    seen = set()
    for n in range(300):
        policy.reset(_info(task_id=f"t{n}"))
        args = policy._arguments(SCHEMA, ["https://kimiwiki.test/wiki/A"])
        assert validate_arguments(args, SCHEMA) is None, args
        seen.update(args)
        if "url" in args:
            assert args["url"] == "https://kimiwiki.test/wiki/A"
    assert seen == set(SCHEMA["properties"])  # every optional argument is drawn sometimes


def test_turns_follow_the_protocol_and_the_seed():
    env_h = kimi_env.make("kimi_env/Calculator-v0")
    env_x = kimi_env.make("kimi_env/Calculator-v0", protocol="xml")
    try:
        for env, tag in ((env_h, "<tool_call>"), (env_x, "<calculator>")):
            obs, info = env.reset(seed=0)
            policy = RandomPolicy(seed=1, p_answer=0.0)
            policy.reset(info)
            action = policy.act(obs, info)
            assert tag in action
            parsed = env.unwrapped.protocol.parse(action, env.unwrapped.tools)
            assert parsed.tool_calls and not parsed.errors, (action, parsed.errors)
    finally:
        env_h.close()
        env_x.close()
    # without info["protocol"], the system prompt says which protocol
    assert detect_protocol({"messages": [{"role": "system", "content": "write <tool_call>{...}</tool_call>"}]}) == "hermes"
    assert detect_protocol({"messages": [{"role": "system", "content": "inside <information></information>"}]}) == "xml"

    def actions(seed: int) -> list[str]:
        p = RandomPolicy(seed=seed, p_answer=0.3)
        out = []
        for n in range(5):
            p.reset(_info(task_id=f"t{n}"))
            out += [p.act("", {}) for _ in range(4)]
        return out

    assert actions(7) == actions(7)
    assert actions(7) != actions(8)
    both = "".join(actions(7))
    assert "<answer>" in both and "<tool_call>" in both


def test_random_episodes_make_no_format_errors_but_budget_ones():
    env = kimi_env.make("kimi_env/Calculator-v0", max_turns=6)
    policy = get_policy("random?seed=5&p_answer=0.25&max_calls=3")
    calls = answers = 0
    try:
        for seed in range(40):
            obs, info = env.reset(seed=seed)
            policy.reset(info)
            done = False
            while not done:
                action = policy.act(obs, info)
                obs, reward, terminated, truncated, info = env.step(action)
                done = terminated or truncated
                errors = [e for e in info["last_errors"] if not e.startswith("max_turns")]
                assert not errors, (action, errors)
            calls += sum(info["tool_calls"].values())
            answers += info["end_reason"] == "answer"
    finally:
        env.close()
    assert calls > 40 and answers > 10


def test_random_policy_drives_the_engine_on_deep_research():
    engine = RolloutEngine("kimi_env/DeepResearch-v0", get_policy("random?seed=0&p_answer=0.3"), concurrency=4,
                           env_kwargs={"max_turns": 4})
    trajs = engine.run([EpisodeJob(seed=s) for s in range(8)])
    assert len(trajs) == 8 and all(t.error is None for t in trajs)
    used = {name for t in trajs for name in t.tool_calls}
    assert {"search", "browse", "python"} & used
    schema_errors = tuple(f"Error: {name}: " for name in ("search", "browse", "python"))
    for t in trajs:  # parsed and schema-valid (a tool may still refuse a random combination, as it would a model's)
        for turn in t.turns:
            assert "Format error (" not in turn.observation, (turn.action, turn.observation[:300])
            assert not any(line.startswith(schema_errors) for line in turn.observation.splitlines()), turn.observation


def test_bad_settings_are_refused_with_the_fix():
    with pytest.raises(kimi_env.InvalidArgumentError, match="p_answer must be a probability"):
        get_policy("random?p_answer=2")
    with pytest.raises(kimi_env.InvalidArgumentError, match="protocol must be"):
        RandomPolicy(protocol="json")
