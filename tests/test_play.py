"""``kimi-env play``: a person is the policy; driven here through the real command with piped stdin."""

from __future__ import annotations

import io
import subprocess
import sys

import kimi_env
from kimi_env.play import HumanPolicy, play
from kimi_env.trajectory import read_trajectories

KIMI_ENV = [sys.executable, "-c", "import sys; from kimi_env.cli import main; sys.exit(main())"]


def _task(seed: int) -> tuple[str, str]:
    env = kimi_env.make("kimi_env/Calculator-v0")
    try:
        obs, info = env.reset(seed=seed)
        expr = info["task"]["question"].split("What is ", 1)[1].split("?")[0]
        return expr, env.unwrapped.task.answers[0]
    finally:
        env.close()


def test_a_person_solves_an_episode_through_piped_stdin(tmp_path):
    expr, answer = _task(3)
    stdin = f"/help\n/nosuch x\n/calculator {expr}\n/answer {answer}\n"
    out = tmp_path / "played.jsonl"
    proc = subprocess.run(KIMI_ENV + ["play", "kimi_env/Calculator-v0", "--seed", "3", "--out", str(out)],
                          input=stdin, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert f"Question: What is {expr}?" in text and "/calculator (expression: string)" in text
    assert "/answer TEXT" in text and "no tool named 'nosuch'" in text  # help and a typo do not cost a turn
    assert f"<tool_response>\n{{\"name\": \"calculator\"}}\n{answer}\n</tool_response>" in text
    assert "end reason: answer   reward: 1   turns: 2" in text
    (traj,) = read_trajectories(out)
    assert traj.policy == "human" and traj.reward == 1.0 and traj.env_id == "kimi_env/Calculator-v0"
    assert traj.turns[0].action == f'<tool_call>{{"name": "calculator", "arguments": {{"expression": "{expr}"}}}}</tool_call>'


def test_raw_protocol_text_xml_shorthand_and_end_of_input():
    expr, answer = _task(4)
    stdout = io.StringIO()
    raw = f'<tool_call>{{"name": "calculator",\n "arguments": {{"expression": "{expr}"}}}}</tool_call>\n\n'
    (traj,) = play("kimi_env/Calculator-v0", seed=4, stdin=io.StringIO(raw), stdout=stdout)
    assert traj.turns[0].observation.strip().endswith("</tool_response>") and answer in traj.turns[0].observation
    assert traj.end_reason == "policy_error" and "end of input" in traj.error  # then the pipe ran dry
    assert "stopped by the player" in stdout.getvalue()
    # under the XML protocol the same shorthand is written as XML tags
    stdout = io.StringIO()
    (traj,) = play("kimi_env/Calculator-v0", seed=4, env_kwargs={"protocol": "xml"},
                   stdin=io.StringIO(f"/calculator {expr}\n/answer {answer}\n"), stdout=stdout)
    assert traj.turns[0].action == f'<calculator>{{"expression": "{expr}"}}</calculator>' and traj.reward == 1.0


def test_shorthand_wraps_text_for_array_parameters():
    p = HumanPolicy(io.StringIO(), io.StringIO())
    p.reset({"protocol": "hermes", "messages": [], "tools": [{"type": "function", "function": {
        "name": "search", "description": "d", "parameters": {
            "type": "object", "properties": {"queries": {"type": "array", "items": {"type": "string"}}},
            "required": ["queries"]}}}]})
    assert p._shorthand("/search Vurmark head") == '<tool_call>{"name": "search", "arguments": {"queries": ["Vurmark head"]}}</tool_call>'
    assert p._shorthand('/search {"queries": ["a", "b"]}').endswith('{"queries": ["a", "b"]}}</tool_call>')
    assert p._shorthand("/search {bad") is None  # reported, asked again
