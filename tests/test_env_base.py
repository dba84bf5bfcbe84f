"""The base class's rules: reward, budgets, order checks, concurrency of tool calls, info contents."""

from __future__ import annotations

import asyncio
import json

import pytest

from kimi_env import InvalidArgumentError, ResetNeededError, Task, Tool, ToolEnv, ToolResult, UnknownNameError


class EchoTool(Tool):
    name = "echo"

    async def run(self, text: str) -> str:
        """Echo text back.

        Args:
            text: what to echo
        """
        return f"echo: {text}"


class RendezvousTool(Tool):
    """Two calls of this tool only finish if they run at the same time (each waits for the other)."""

    name = "meet"

    def __init__(self) -> None:
        super().__init__(timeout=2.0)
        self.arrived: dict[str, asyncio.Event] = {}

    def reset(self) -> None:
        self.arrived = {}

    async def run(self, me: str, other: str) -> str:
        """Wait for another caller.

        Args:
            me: my name
            other: who to wait for
        """
        self.arrived.setdefault(me, asyncio.Event()).set()
        await self.arrived.setdefault(other, asyncio.Event()).wait()
        return f"{me} met {other}"


class VisitTool(Tool):
    name = "visit"

    async def run(self, url: str) -> ToolResult:
        """Visit a page.

        Args:
            url: page address
        """
        return ToolResult.success(f"visited {url}", urls=[url])


class TinyEnv(ToolEnv):
    def __init__(self, *, answer: str = "blue", **kwargs):
        self.answer = answer
        super().__init__(**kwargs)

    def _make_tools(self):
        return [EchoTool(), RendezvousTool(), VisitTool()]

    def _sample_task(self):
        n = int(self.np_random.integers(0, 1000))
        return Task(id=f"t{n}", question=f"What colour is item {n}?", answers=(self.answer, "azure"))


def call(name, **args):
    return f"<tool_call>{json.dumps({'name': name, 'arguments': args})}</tool_call>"


def test_correct_answer_without_format_errors_scores_one():
    env = TinyEnv()
    obs, info = env.reset(seed=0)
    assert "What colour is item" in obs and "echo" in obs
    assert info["task"]["question"] in obs and "answers" not in info["task"]
    assert [t["function"]["name"] for t in info["tools"]] == ["echo", "meet", "visit"]
    obs, r, term, trunc, info = env.step(call("echo", text="hi"))
    assert (r, term, trunc) == (0.0, False, False) and "echo: hi" in obs
    obs, r, term, trunc, info = env.step("<think>the answer</think><answer>Azure</answer>")
    assert (r, term, trunc) == (1.0, True, False)
    assert info["reward_breakdown"] == {"correctness": 1.0, "format_errors": 0, "format_penalty_applied": False,
                                        "reward": 1.0}
    assert info["num_turns"] == 2 and info["tool_calls"] == {"echo": 1} and info["end_reason"] == "answer"
    roles = [m["role"] for m in info["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]


def test_wrong_answer_scores_zero():
    env = TinyEnv()
    env.reset(seed=0)
    _, r, term, _, info = env.step("<answer>red</answer>")
    assert term and r == 0.0 and info["reward_breakdown"]["correctness"] == 0.0


def test_a_format_error_turns_a_correct_answer_into_the_penalty():
    env = TinyEnv(format_penalty=-0.5)
    env.reset(seed=0)
    obs, r, term, trunc, info = env.step('<tool_call>{"name": "echo", "arguments": </tool_call>')
    assert not term and not trunc and r == 0.0
    assert "invalid_json" in obs and "expected" in obs
    assert info["format_errors"] == 1
    _, r, term, _, info = env.step("<answer>blue</answer>")
    assert term and r == -0.5
    assert info["reward_breakdown"]["correctness"] == 1.0 and info["reward_breakdown"]["format_penalty_applied"]


@pytest.mark.parametrize(
    "action, kind",
    [
        ('<tool_call>{"name": "nope", "arguments": {}}</tool_call>', "unknown_tool"),
        (call("echo", txt="x"), "invalid_arguments"),
        (call("echo", text=3), "invalid_arguments"),
        ("I will think about it.", "no_action"),
        ("", "no_action"),
        ("<tool_call>" + call("echo", text="a"), "unclosed_tag"),
        ("<answer>a</answer><answer>b</answer>", "multiple_answers"),
        (call("echo", text="a") + "<answer>blue</answer>", "answer_with_tool_calls"),
        ("x" * 20_001, "turn_too_long"),
    ],
)
def test_format_errors_are_observations_not_exceptions(action, kind):
    env = TinyEnv(max_action_chars=20_000)
    env.reset(seed=0)
    obs, r, term, trunc, info = env.step(action)
    assert not term and not trunc
    assert info["format_errors"] >= 1
    assert any(kind in e for e in info["last_errors"]), info["last_errors"]
    assert len(obs) <= env.max_observation_chars


def test_unknown_tool_suggests_the_closest():
    env = TinyEnv()
    env.reset(seed=0)
    obs, *_ = env.step('<tool_call>{"name": "ecko", "arguments": {"text": "a"}}</tool_call>')
    assert "Did you mean 'echo'?" in obs


def test_several_calls_in_one_turn_run_concurrently():
    env = TinyEnv()
    env.reset(seed=0)
    obs, *_ , info = env.step(call("meet", me="a", other="b") + call("meet", me="b", other="a"))
    assert "a met b" in obs and "b met a" in obs, obs
    assert info["tool_calls"] == {"meet": 2} and info["format_errors"] == 0


def test_max_turns_truncates_with_the_penalty():
    env = TinyEnv(max_turns=2)
    env.reset(seed=0)
    env.step(call("echo", text="1"))
    obs, r, term, trunc, info = env.step(call("echo", text="2"))
    assert trunc and not term and r == env.format_penalty
    assert info["end_reason"] == "max_turns" and "Turn limit" in obs
    with pytest.raises(ResetNeededError):
        env.step("<answer>blue</answer>")


def test_context_budget_truncates():
    env = TinyEnv(max_context_chars=20_000, max_observation_chars=16_000)
    env.reset(seed=0)
    truncated = False
    for _ in range(10):
        _, r, term, truncated, info = env.step(call("echo", text="z" * 6000))
        if truncated:
            break
    assert truncated and info["end_reason"] == "context_overflow" and r == env.format_penalty


def test_urls_are_collected_once_in_order():
    env = TinyEnv()
    env.reset(seed=0)
    env.step(call("visit", url="u1") + call("visit", url="u2"))
    *_, info = env.step(call("visit", url="u1"))
    assert info["urls_visited"] == ["u1", "u2"]


def test_observation_bound_and_sanitized():
    env = TinyEnv(max_observation_chars=1000)
    env.reset(seed=0)
    obs, *_ = env.step(call("echo", text="\x00\x07" + "y" * 5000))
    assert len(obs) <= 1000 and "\x00" not in obs and "characters of" in obs
    assert env.observation_space.contains(obs)


def test_reset_with_a_given_task_and_bad_options():
    env = TinyEnv()
    obs, info = env.reset(options={"task": {"question": "Sky colour?", "answer": "blue"}})
    assert "Sky colour?" in obs
    _, r, *_ = env.step("<answer>Blue.</answer>")
    assert r == 1.0
    with pytest.raises(InvalidArgumentError, match="task"):
        env.reset(options={"taks": 1})


def test_constructor_rejects_bad_values_and_unknown_kwargs():
    with pytest.raises(InvalidArgumentError, match="max_turns must be an int >= 1, got 0"):
        TinyEnv(max_turns=0)
    with pytest.raises(InvalidArgumentError, match="Did you mean 'max_turns'") as err:
        TinyEnv(max_turn=3)
    assert "answer" in str(err.value) and "protocol" in str(err.value)  # lists the valid names of every level
    with pytest.raises(UnknownNameError, match="Did you mean 'echo'"):
        TinyEnv(tools=["ecko"])
    with pytest.raises(UnknownNameError, match="protocol"):
        TinyEnv(protocol="json")
    with pytest.raises(InvalidArgumentError, match="action must be"):
        env = TinyEnv()
        env.reset(seed=0)
        env.step(b"<answer>x</answer>")


def test_tool_subset_and_timeout_override():
    env = TinyEnv(tools=["echo"], tool_timeout=0.5)
    obs, info = env.reset(seed=0)
    assert [t["function"]["name"] for t in info["tools"]] == ["echo"]
    assert env.tools[0].timeout == 0.5
    obs, *_ = env.step(call("visit", url="x"))
    assert "unknown_tool" in obs


def test_judge_replaces_the_scorer_and_a_broken_judge_scores_zero():
    env = TinyEnv(judge=lambda q, p, a: 0.5)
    env.reset(seed=0)
    assert env.step("<answer>anything</answer>")[1] == 0.5
    env = TinyEnv(judge=lambda q, p, a: 1 / 0)
    env.reset(seed=0)
    assert env.step("<answer>blue</answer>")[1] == 0.0


def test_xml_protocol_end_to_end():
    env = TinyEnv(protocol="xml")
    obs, _ = env.reset(seed=0)
    assert "<echo>" in obs
    obs, *_ = env.step("<think>hmm</think><echo>hello there</echo>")
    assert "<information>" in obs and "echo: hello there" in obs
    obs, *_ = env.step('<meet>{"me": "a", "other": "a"}</meet>')
    assert "a met a" in obs
    _, r, term, *_ = env.step("<answer>blue</answer>")
    assert term and r == 1.0


def test_render_modes():
    env = TinyEnv(render_mode="ansi")
    env.reset(seed=0)
    env.step(call("echo", text="hi"))
    text = env.render()
    assert "[assistant]" in text and "echo: hi" in text


def test_close_is_idempotent_and_reset_after_close_fails():
    env = TinyEnv()
    env.reset(seed=0)
    env.close()
    env.close()
    with pytest.raises(ResetNeededError, match="closed"):
        env.reset(seed=0)


def test_reset_cuts_the_tool_descriptions_never_the_question():
    env = TinyEnv(max_observation_chars=1000)
    env.reset(seed=0)
    question = "Q" * 500 + "?"
    obs, _ = env.reset(options={"task": {"question": question, "answer": "blue"}})
    assert obs.endswith(question) and len(obs) <= 1000 and "characters of system prompt cut" in obs


def test_astep_lets_one_program_step_many_environments_concurrently():
    first, second = TinyEnv(), TinyEnv()
    first.reset(seed=0)
    second.reset(seed=0)
    second.tools[1].arrived = first.tools[1].arrived  # both environments' meet tools share one rendezvous

    async def both():
        return await asyncio.gather(first.astep(call("meet", me="a", other="b")),
                                    second.astep(call("meet", me="b", other="a")))

    (obs_a, *_), (obs_b, *_) = asyncio.run(both())
    assert "a met b" in obs_a and "b met a" in obs_b
    # and astep gives what step gives
    sync_env, async_env = TinyEnv(), TinyEnv()
    sync_env.reset(seed=3)
    async_env.reset(seed=3)
    for action in (call("echo", text="x"), call("echo", txt="x"), "<answer>blue</answer>"):
        assert sync_env.step(action) == asyncio.run(async_env.astep(action))
