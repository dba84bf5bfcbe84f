"""The environment as a substrate for LM rollouts (issue 13): concurrency and cancellation, the transcript,
budgets, episode-end hooks, Gymnasium conformance, privileged data, tool timing and neutralized output."""

from __future__ import annotations

import asyncio
import json
import pickle
import threading

import gymnasium as gym
import pytest

import kimi_env
from kimi_env import (HermesProtocol, InvalidArgumentError, ResetNeededError, StepInProgressError, Task, Tool,
                      ToolEnv, ToolResult, ToolStatus, execution_started)


def call(name, **args):
    return f"<tool_call>{json.dumps({'name': name, 'arguments': args})}</tool_call>"


class GateTool(Tool):
    """A call waits until the test opens the gate (an asyncio.Event on the background loop)."""

    name = "gate"

    def __init__(self) -> None:
        super().__init__(timeout=30.0)
        self.entered = threading.Event()
        self.gate: asyncio.Event | None = None
        self.finished = 0

    async def run(self, text: str) -> str:
        """Wait at the gate.

        Args:
            text: echoed back
        """
        self.gate = self.gate or asyncio.Event()
        self.entered.set()
        await self.gate.wait()
        self.finished += 1
        return f"passed: {text}"


class EchoTool(Tool):
    name = "echo"

    async def run(self, text: str) -> str:
        """Echo text back.

        Args:
            text: what to echo
        """
        return text


class EndCounter(Tool):
    """Counts on_episode_end calls and remembers the seeds its reset got."""

    name = "counter"

    def __init__(self) -> None:
        super().__init__()
        self.ends = 0
        self.seeds: list[int | None] = []

    def reset(self, seed: int | None = None) -> None:
        self.seeds.append(seed)

    def on_episode_end(self) -> None:
        self.ends += 1

    async def run(self, n: int) -> str:
        """Count.

        Args:
            n: a number
        """
        return str(n)


class SubEnv(ToolEnv):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def _make_tools(self):
        return [GateTool(), EchoTool(), EndCounter()]

    def _sample_task(self):
        n = int(self.np_random.integers(0, 1000))
        return Task(id=f"t{n}", question=f"What is item {n}?", answers=("blue",),
                    metadata={"kind": "demo", "plan": [{"op": "answer", "args": ["blue"]}], "evidence_urls": ["u"]})


def _tool(env, name):
    return next(t for t in env.unwrapped.tools if t.name == name)


# ---------------------------------------------------------------- 13.1 concurrency-safe astep
def test_overlapping_astep_is_refused_and_the_first_step_completes():
    env = SubEnv()
    env.reset(seed=0)
    gate = _tool(env, "gate")

    async def main():
        first = asyncio.ensure_future(env.astep(call("gate", text="a")))
        await asyncio.to_thread(gate.entered.wait, 10)
        with pytest.raises(StepInProgressError, match="still running"):
            await env.astep(call("echo", text="b"))
        with pytest.raises(StepInProgressError):
            env.reset(seed=1)
        with pytest.raises(StepInProgressError):
            env.truncate("max_tokens")
        kimi_env.aio.get_loop().call_soon_threadsafe(gate.gate.set)
        return await first

    obs, reward, term, trunc, info = asyncio.run(main())
    assert "passed: a" in obs and info["num_turns"] == 1 and not term and not trunc
    assert [m["role"] for m in info["messages"]] == ["system", "user", "assistant", "tool"]
    env.close()


def test_a_cancelled_astep_leaves_the_environment_as_before():
    env = SubEnv()
    _, info0 = env.reset(seed=0)
    gate = _tool(env, "gate")

    async def cancelled():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(env.astep(call("gate", text="never")), timeout=0.2)

    asyncio.run(cancelled())
    assert env.messages == info0["messages"]  # nothing appended
    assert gate.finished == 0  # the tool call itself was cancelled, not left running
    obs, _, term, trunc, info = env.step(call("echo", text="again"))  # still active, same turn count
    assert info["num_turns"] == 1 and not term and not trunc and "again" in obs
    assert [m["role"] for m in info["messages"]] == ["system", "user", "assistant", "tool"]
    env.close()


def test_async_judge_is_awaited_and_a_blocking_judge_runs_off_the_loop():
    async def async_judge(question, prediction, answers):
        await asyncio.sleep(0)
        return 0.75

    env = SubEnv(judge=async_judge)
    env.reset(seed=0)
    assert asyncio.run(env.astep("<answer>x</answer>"))[1] == 0.75
    env.reset(seed=0)
    assert env.step("<answer>x</answer>")[1] == 0.75  # the sync path runs the coroutine too

    ticked = threading.Event()

    def blocking_judge(question, prediction, answers):
        # Only the caller's event loop can set this; if the judge blocked that loop it would wait in vain.
        return 1.0 if ticked.wait(20) else 0.0

    env = SubEnv(judge=blocking_judge)
    env.reset(seed=0)

    async def main():
        async def ticker():
            await asyncio.sleep(0.05)
            ticked.set()

        result, _ = await asyncio.gather(env.astep("<answer>x</answer>"), ticker())
        return result

    assert asyncio.run(main())[1] == 1.0


def test_areset_and_aclose():
    env = SubEnv()
    obs, info = asyncio.run(env.areset(seed=5))
    assert obs == SubEnv().reset(seed=5)[0] and info["num_turns"] == 0
    asyncio.run(env.aclose())
    with pytest.raises(ResetNeededError, match="closed"):
        env.reset(seed=0)


def test_astep_through_gymnasium_wrappers():
    env = gym.make("kimi_env/Calculator-v0", max_episode_steps=3)
    with pytest.raises(gym.error.ResetNeeded):  # OrderEnforcing's check is kept
        asyncio.run(kimi_env.astep(env, "<answer>1</answer>"))
    obs, info = asyncio.run(kimi_env.areset(env, seed=0))
    assert obs == gym.make("kimi_env/Calculator-v0").reset(seed=0)[0]
    expression = kimi_env.privileged_task(env)["metadata"]["plan"][0]["expression"]
    obs, *_ = asyncio.run(kimi_env.astep(env, call("calculator", expression=expression)))
    assert "Error" not in obs
    assert env.get_wrapper_attr("_elapsed_steps") == 1  # TimeLimit counted the async step

    class Upper(gym.ObservationWrapper):
        def observation(self, observation):
            return observation.upper()

    class Opaque(gym.Wrapper):
        def step(self, action):
            return self.env.step(action)

    upper = Upper(gym.make("kimi_env/Calculator-v0"))
    asyncio.run(kimi_env.areset(upper, seed=0))
    obs, *_ = asyncio.run(kimi_env.astep(upper, "no action here"))
    assert obs == obs.upper() and "FORMAT ERROR" in obs
    opaque = Opaque(gym.make("kimi_env/Calculator-v0"))
    opaque.reset(seed=0)
    with pytest.raises(InvalidArgumentError, match="Opaque overrides step"):
        asyncio.run(kimi_env.astep(opaque, "<answer>1</answer>"))
    for e in (env, upper, opaque):
        e.close()


# ---------------------------------------------------------------- 13.2 one transcript the trainer can trust
def test_new_messages_are_exactly_what_each_step_appended():
    env = SubEnv()
    obs, info = env.reset(seed=0)
    assert info["new_messages"] == info["messages"] and len(info["messages"]) == 2
    history = info["messages"]
    for action in (call("echo", text="a") + call("echo", text="b"), "no action", "<answer>blue</answer>"):
        obs, _, term, _, info = env.step(action)
        assert info["messages"] == history + info["new_messages"]
        assert info["new_messages"][0] == {"role": "assistant", "content": action}
        history = info["messages"]
    assert term and [m["role"] for m in info["new_messages"]] == ["assistant"]
    assert {m["role"] for m in history} <= {"system", "user", "assistant", "tool"}


def test_per_call_tool_messages_carry_raw_content_and_call_ids():
    env = SubEnv(protocol=HermesProtocol(tool_messages="per_call"))
    env.reset(seed=0)
    obs, *_, info = env.step(call("echo", text="first") + call("echo", text="second") + call("nope"))
    tool_msgs = [m for m in info["new_messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_msgs] == ["first", "second"]  # raw, not wrapped
    assert [m["name"] for m in tool_msgs] == ["echo", "echo"]
    assert [m["tool_call_id"] for m in tool_msgs] == [c["id"] for c in info["step_calls"]] == ["call_1_0", "call_1_1"]
    assert info["new_messages"][-1]["role"] == "user" and "unknown_tool" in info["new_messages"][-1]["content"]
    assert "<tool_response>" in obs and "first" in obs  # the observation text still shows every result
    *_, info = env.step(call("echo", text="third"))
    assert info["new_messages"][1]["tool_call_id"] == "call_2_0"  # ids are unique within the episode


def test_per_call_messages_share_the_observation_bound():
    env = SubEnv(protocol=HermesProtocol(tool_messages="per_call"), max_observation_chars=1000)
    env.reset(seed=0)
    *_, info = env.step(call("echo", text="x" * 900) + call("echo", text="y" * 900) + call("echo", text="z"))
    contents = [m["content"] for m in info["new_messages"][1:]]
    assert sum(map(len, contents)) <= 1000 and contents[2] == "z" and "characters of tool output cut" in contents[0]


def test_schema_free_instructions():
    with_schemas = SubEnv().reset(seed=0)[0]
    without = SubEnv(protocol=HermesProtocol(tools_in_prompt=False)).reset(seed=0)[0]
    assert '"name": "echo"' in with_schemas and "<tools>" in with_schemas
    assert "echo" not in without and "<tools>" not in without and "<answer>" in without


def test_the_reset_observation_is_exactly_the_first_two_messages():
    env = SubEnv(max_observation_chars=1000)
    for question in ("Short?", "Q" * 700 + "?", "L" * 5000 + "?"):
        obs, info = env.reset(options={"task": {"question": question, "answer": "blue"}})
        system, user = info["messages"]
        assert obs == system["content"] + "\n\n" + user["content"] and len(obs) <= 1000
    assert "characters of question cut" in obs  # the 5,000-character question was cut, and messages say so too


def test_a_cut_action_is_reported_in_info():
    env = SubEnv(max_action_chars=200)
    env.reset(seed=0)
    *_, info = env.step("x" * 500)
    assert info["action_cut_chars"] > 0 and len(info["messages"][-2]["content"]) <= 200
    assert any("turn_too_long" in e for e in info["last_errors"])
    *_, info = env.step(call("echo", text="ok"))
    assert info["action_cut_chars"] == 0


def test_truncate_ends_the_episode_under_the_budget_rule():
    env = SubEnv(format_penalty=-0.3)
    env.reset(seed=0)
    env.step(call("echo", text="a"))
    counter = _tool(env, "counter")
    ends = counter.ends
    obs, reward, term, trunc, info = env.truncate("max_tokens")
    assert (reward, term, trunc) == (-0.3, False, True) and info["end_reason"] == "max_tokens"
    assert info["new_messages"] == [] and info["reward_breakdown"]["format_penalty_applied"]
    assert counter.ends == ends + 1
    with pytest.raises(ResetNeededError):
        env.step("<answer>blue</answer>")
    with pytest.raises(ResetNeededError):
        env.truncate("again")
    env.reset(seed=0)
    with pytest.raises(InvalidArgumentError, match="short non-empty str"):
        env.truncate("")
    assert kimi_env.truncate(gym.wrappers.TimeLimit(env, 5), "tokens")[3] is True  # through wrappers


def test_budget_in_tokens_with_a_caller_supplied_counter():
    words = lambda text: len(text.split())  # noqa: E731 - a stand-in tokenizer: one token per word
    env = SubEnv(max_context_tokens=60, token_counter=words, max_context_chars=10**9)
    env.reset(seed=0)
    truncated = False
    for i in range(20):
        _, reward, _, truncated, info = env.step(call("echo", text="w " * 10))
        if truncated:
            break
    assert truncated and info["end_reason"] == "context_overflow" and "tokens" in info["last_errors"][-1]
    assert reward == env.format_penalty
    with pytest.raises(InvalidArgumentError, match="go together"):
        SubEnv(max_context_tokens=10)
    bad = SubEnv(max_context_tokens=10, token_counter=lambda s: "many")
    with pytest.raises(InvalidArgumentError, match="token_counter must return an int"):
        bad.reset(seed=0)


# ---------------------------------------------------------------- on_episode_end
def test_on_episode_end_runs_once_whenever_an_episode_ends():
    env = SubEnv(max_turns=2)
    counter = _tool(env, "counter")
    env.reset(seed=0)
    env.step("<answer>blue</answer>")  # answer
    assert counter.ends == 1
    env.reset(seed=0)  # the previous episode had ended: nothing more
    assert counter.ends == 1
    env.step(call("echo", text="1"))
    env.step(call("echo", text="2"))  # max_turns
    assert counter.ends == 2
    env.reset(seed=0)
    env.step(call("echo", text="1"))
    env.reset(seed=1)  # abandons an unfinished episode
    assert counter.ends == 3
    env.close()  # closes an unfinished episode
    assert counter.ends == 4
    env.close()
    assert counter.ends == 4


# ---------------------------------------------------------------- 13.3 privileged data
def test_the_plan_is_not_in_info_but_behind_the_privileged_accessor():
    env = gym.make("kimi_env/Calculator-v0")
    obs, info = env.reset(seed=0)
    assert "plan" not in info["task"]["metadata"] and "plan" not in json.dumps(info)
    privileged = kimi_env.privileged_task(env)
    assert privileged["metadata"]["plan"] and privileged["id"] == info["task"]["id"]
    assert "answers" not in privileged and env.unwrapped.privileged_task == privileged
    env.close()


def test_oracle_reexport_and_both_protocols_on_calculator():
    from kimi_env.policies import OraclePolicy
    from kimi_env.rollout import run_episode
    from kimi_env.world.oracle import OraclePolicy as MovedOracle

    assert OraclePolicy is MovedOracle
    for protocol in ("hermes", "xml"):
        env = gym.make("kimi_env/Calculator-v0", protocol=protocol)
        for seed in range(3):
            traj = run_episode(env, OraclePolicy(), seed=seed)
            assert traj.reward == 1.0 and traj.info["tool_calls"] == {"calculator": 1}, (protocol, traj.turns)
        env.close()
    # without the privileged data the oracle cannot know the plan, and says so
    env = gym.make("kimi_env/Calculator-v0")
    obs, info = env.reset(seed=0)
    oracle = OraclePolicy()
    oracle.reset(info)
    assert oracle.act(obs, info) == "<answer>unknown</answer>" and "privileged_task" in oracle.failure
    env.close()


@pytest.mark.parametrize("env_id", ["SearchQA-v0", "BrowseQA-v0", "CodeQA-v0"])
def test_the_world_oracle_works_under_both_protocols(env_id):
    from kimi_env.policies import OraclePolicy
    from kimi_env.rollout import run_episode

    rewards = {}
    for protocol in ("hermes", "xml"):
        env = kimi_env.make(env_id, split="test", protocol=protocol)
        rewards[protocol] = [run_episode(env, OraclePolicy(), seed=s).reward for s in range(10)]
        env.close()
    assert rewards["xml"] == rewards["hermes"] and rewards["xml"].count(1.0) >= 9, rewards


# ---------------------------------------------------------------- 13.5 Gymnasium conformance
def test_error_classes_are_gymnasium_and_builtin_compatible():
    assert issubclass(ResetNeededError, gym.error.ResetNeeded)
    assert issubclass(InvalidArgumentError, ValueError) and issubclass(InvalidArgumentError, TypeError)
    env = gym.make("kimi_env/Calculator-v0")
    env.reset(seed=0)
    env.step("<answer>1</answer>")
    with pytest.raises(gym.error.ResetNeeded):  # after the end: ours, which is also Gymnasium's
        env.step("<answer>1</answer>")
    with pytest.raises(ValueError):
        SubEnv(max_turns=0)


def test_time_limit_goes_through_the_budget_rule():
    env = gym.make("kimi_env/Calculator-v0", max_episode_steps=2, format_penalty=-0.2)
    env.reset(seed=0)
    _, reward, _, truncated, info = env.step(call("calculator", expression="1+1"))
    assert not truncated and reward == 0.0
    _, reward, term, truncated, info = env.step(call("calculator", expression="1+2"))
    assert truncated and not term and reward == -0.2 and info["end_reason"] == "max_turns"
    with pytest.raises(ResetNeededError):  # the episode is over in the environment too
        env.step("<answer>3</answer>")

    async def through_async_helpers():  # the same rule when the wrappers are walked by kimi_env.areset/astep
        await kimi_env.areset(env, seed=1)
        await kimi_env.astep(env, "no action")
        return await kimi_env.astep(env, "no action")

    _, reward, _, truncated, info = asyncio.run(through_async_helpers())
    assert truncated and reward == -0.2 and info["end_reason"] == "max_turns"
    env.close()


def test_tool_randomness_follows_reset_seed():
    env = SubEnv()
    counter = _tool(env, "counter")
    env.reset(seed=1)
    env.reset(seed=2)
    env.reset(seed=1)
    first, second, again = counter.seeds
    assert first == again and first != second and isinstance(first, int)
    # the real sandbox: `random` follows reset(seed=...)
    math_env = gym.make("kimi_env/MathCode-v0")
    outs = []
    for seed in (1, 2, 1):
        math_env.reset(seed=seed)
        obs, *_ = math_env.step(call("python", code="import random\nprint(random.random())"))
        outs.append(obs)
    math_env.close()
    assert outs[0] == outs[2] and outs[0] != outs[1]


def test_spaces_are_light_to_pickle():
    env = gym.make("kimi_env/Calculator-v0")
    space = env.observation_space
    assert len(pickle.dumps(space)) < 2000 and pickle.loads(pickle.dumps(space)) == space
    assert len(pickle.dumps(env.unwrapped.action_space)) < 2000
    obs, _ = env.reset(seed=0)
    assert space.contains(obs) and not space.contains("bad\u202e") and not space.contains(b"bytes")
    flat = gym.spaces.flatten(space, "héllo\n")
    assert gym.spaces.unflatten(space, flat) == "héllo\n"
    assert space.contains(space.sample())
    env.close()


@pytest.mark.parametrize("env_id", kimi_env.list_envs())
def test_async_vector_envs_return_the_real_observations(env_id):
    from kimi_env.registration import make

    single = make(env_id)  # also builds the caches the workers then read
    expected = [single.reset(seed=s)[0] for s in (0, 1)]
    single.close()
    vec = gym.make_vec(env_id, num_envs=2, vectorization_mode="async")
    try:
        obs, _ = vec.reset(seed=0)
        assert list(obs) == expected
        obs, rewards, terminated, *_ = vec.step(["<answer>x</answer>", "no action"])
        assert list(terminated) == [True, False] and obs[0] == "Answer recorded; the episode is over."
        assert "no_action" in obs[1]  # each step's own observation, not the first one again
    finally:
        vec.close()


# ---------------------------------------------------------------- 13.7 tool timing about the work
class QueuedTool(Tool):
    """Waits for a shared one-slot semaphore (the queue), then works for ``work`` seconds."""

    name = "queued"
    queues = True

    def __init__(self, slot: asyncio.Semaphore, **kwargs) -> None:
        super().__init__(**kwargs)
        self.slot = slot

    async def run(self, work: float) -> str:
        """Work.

        Args:
            work: seconds of work
        """
        async with self.slot:
            execution_started()
            await asyncio.sleep(work)
            return "done"


def test_timeouts_count_from_execution_start_not_queueing():
    async def main():
        slot = asyncio.Semaphore(1)
        tool = QueuedTool(slot, timeout=0.3)
        await slot.acquire()  # someone else holds the only worker for longer than the timeout
        asyncio.get_running_loop().call_later(1.0, slot.release)
        queued = await tool.acall(work=0.0)
        slow = await tool.acall(work=5.0)  # the work itself is over the timeout
        impatient = QueuedTool(slot, timeout=0.3)
        impatient.max_queue_s = 0.2
        await slot.acquire()
        never = await impatient.acall(work=0.0)
        slot.release()
        return queued, slow, never

    queued, slow, never = asyncio.run(main())
    assert queued.ok and queued.content == "done" and queued.meta["queued_s"] >= 0.9
    assert slow.status == ToolStatus.TIMEOUT and "did not finish within 0.3 s" in slow.content
    assert never.status == ToolStatus.TIMEOUT and "waited 0.2 s" in never.content


def test_world_corpus_cache_is_found_without_rendering(tmp_path, monkeypatch):
    from kimi_env.world import generate_world, render
    from kimi_env.world.solvable import world_corpus

    built = world_corpus(generate_world(seed=5, n_pages=120), tmp_path)

    def no_rendering(*args, **kwargs):
        raise AssertionError("a page was rendered to find a cached corpus")

    monkeypatch.setattr(render, "render_entity", no_rendering)
    monkeypatch.setattr(render, "render_aux", no_rendering)
    again = world_corpus(generate_world(seed=5, n_pages=120), tmp_path)
    assert again.path == built.path and len(again) == len(built)
    assert generate_world(seed=6, n_pages=120).cache_key() != generate_world(seed=5, n_pages=120).cache_key()


# ---------------------------------------------------------------- issue 8.3: invisible characters
HOSTILE = "a\u202eb\u2066c\u2069d\u200be\u200ff\ufeffg\x07h\r\ni\x00j\u00adk"


class HostileTool(Tool):
    name = "hostile"

    async def run(self, fail: bool = False) -> ToolResult:
        """Return hostile text.

        Args:
            fail: return it as an error
        """
        return ToolResult.failure(HOSTILE) if fail else ToolResult.success(HOSTILE)


def test_format_and_control_characters_are_neutralized_at_the_tool_boundary():
    tool = HostileTool()
    clean = "abcdefg\ufffdh\ni\ufffdjk"
    assert tool.call().content == clean  # outside any environment
    assert tool.call(fail=True).error == clean

    class HostileEnv(SubEnv):
        def _make_tools(self):
            return [HostileTool()]

    env = HostileEnv()
    env.reset(options={"task": {"question": "Which\u202e way?", "answer": "x"}})
    obs, *_, info = env.step(call("hostile"))
    assert clean in obs and env.observation_space.contains(obs)
    for m in info["messages"]:
        assert not any(ch in m["content"] for ch in "\u202e\u2066\u2069\u200b\u200f\ufeff\x07\x00\r\u00ad")
