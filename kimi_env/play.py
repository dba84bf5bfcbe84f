"""``kimi-env play``: a person is the policy, in the terminal.

The environment's observations are printed; the player types each turn. A turn is either raw protocol text (ended by
an empty line or end of input), or one line of shorthand that is written in the environment's protocol for you:

    /search Vurmark head of state        a call with the text as the tool's first argument
    /browse {"url": "https://..."}       a call with JSON arguments
    /answer Calbaeszein Vainoxander      the final answer
    /tools  /prompt  /help  /quit

Reading from a pipe works the same (``printf '/answer 42\\n' | kimi-env play kimi_env/Calculator-v0``), which is how
the tests drive it.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from .errors import KimiEnvError
from .policies.base import Policy
from .policies.random_policy import detect_protocol, format_call

HELP = """Type a turn, then an empty line. Or one line of shorthand:
  /<tool> TEXT        call <tool> with TEXT as its first argument
  /<tool> {JSON}      call <tool> with these arguments
  /answer TEXT        give the final answer (ends the episode)
  /tools              list the tools     /prompt   show the full system prompt
  /help               this help          /quit     stop"""


class PlayerQuit(KimiEnvError):
    """The player stopped (``/quit`` or end of input)."""


class HumanPolicy(Policy):
    """Reads each turn from ``stdin`` (a person at a terminal, or a pipe) and prints observations to ``stdout``."""

    name = "human"

    def __init__(self, stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> None:
        self.stdin = stdin if stdin is not None else sys.stdin
        self.stdout = stdout if stdout is not None else sys.stdout
        self._tools: list[dict[str, Any]] = []
        self._protocol = "hermes"
        self._prompt = ""
        self._first = True

    def _print(self, text: str = "") -> None:
        print(text, file=self.stdout, flush=True)

    def reset(self, info: dict[str, Any]) -> None:
        self._tools = [t.get("function", t) for t in info.get("tools") or [] if isinstance(t, dict)]
        self._protocol = detect_protocol(info)
        messages = info.get("messages") or []
        self._prompt = str(messages[0].get("content", "")) if messages else ""
        self._first = True

    def _tool_lines(self) -> str:
        lines = []
        for fn in self._tools:
            props = (fn.get("parameters") or {}).get("properties") or {}
            required = set((fn.get("parameters") or {}).get("required") or ())
            args = ", ".join(f"{k}{'' if k in required else '?'}: {v.get('type', 'any')}" for k, v in props.items())
            lines.append(f"  /{fn.get('name')} ({args}): {str(fn.get('description', '')).splitlines()[0][:100]}")
        return "\n".join(lines) or "  (no tools)"

    def act(self, observation: str, info: dict[str, Any]) -> str:
        if self._first:
            task = info.get("task") or {}
            self._print(f"Question: {task.get('question', observation)}")
            self._print(f"Tools ({self._protocol} protocol):\n{self._tool_lines()}")
            self._print("(/help for the shorthand)")
            self._first = False
        else:
            self._print("----- observation -----")
            self._print(observation)
        while True:
            self._print(f"----- your turn {int(info.get('num_turns', 0)) + 1} -----")
            turn = self._read_turn()
            if turn is not None:
                return turn

    def _read_turn(self) -> str | None:
        lines: list[str] = []
        while True:
            line = self.stdin.readline()
            if not line:  # end of input
                if lines:
                    return "\n".join(lines)
                raise PlayerQuit("the player stopped (end of input)")
            line = line.rstrip("\n")
            if not lines and line.startswith("/"):
                return self._shorthand(line.strip())
            if not line.strip():
                if lines:
                    return "\n".join(lines)
                continue
            lines.append(line)

    def _shorthand(self, line: str) -> str | None:
        name, _, rest = line[1:].partition(" ")
        rest = rest.strip()
        if name in ("quit", "q", "exit"):
            raise PlayerQuit("the player stopped (/quit)")
        if name == "help":
            self._print(HELP)
            return None
        if name == "tools":
            self._print(self._tool_lines())
            return None
        if name == "prompt":
            self._print(self._prompt)
            return None
        if name == "answer":
            return f"<answer>{rest}</answer>"
        fn = next((f for f in self._tools if f.get("name") == name), None)
        if fn is None:
            names = ", ".join(f"/{f.get('name')}" for f in self._tools)
            self._print(f"no tool named {name!r}; tools: {names or '(none)'}; /answer TEXT to answer; /help.")
            return None
        if rest.startswith("{"):
            try:
                args = json.loads(rest)
            except ValueError as exc:
                self._print(f"not valid JSON ({exc.msg}); write /{name} {{\"arg\": value}} or /{name} TEXT.")
                return None
        else:
            params = fn.get("parameters") or {}
            props = params.get("properties") or {}
            first = (params.get("required") or list(props) or [None])[0]
            if first is None:
                args = {}
            else:
                args = {first: [rest] if props.get(first, {}).get("type") == "array" else rest}
        return format_call(self._protocol, name, args)


def play(env_id: str, *, seed: int | None = None, episodes: int = 1, env_kwargs: dict[str, Any] | None = None,
         out: str | None = None, stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> list[Any]:
    """Play ``episodes`` episodes of ``env_id`` as a person; return their trajectories (and write them to ``out``)."""
    from .registration import make
    from .rollout import run_episode
    from .trajectory import TrajectoryWriter

    policy = HumanPolicy(stdin, stdout)
    env = make(env_id, **(env_kwargs or {}))
    writer = TrajectoryWriter(out) if out else None
    trajs = []
    try:
        for i in range(episodes):
            traj = run_episode(env, policy, seed=None if seed is None else seed + i)
            traj.env_id = traj.env_id or env_id
            trajs.append(traj)
            quit_ = traj.error is not None and "PlayerQuit" in traj.error
            if traj.turns and traj.turns[-1].observation and not quit_:
                policy._print("----- observation -----")
                policy._print(traj.turns[-1].observation)
            policy._print("===== episode over =====")
            if quit_:
                policy._print("stopped by the player")
            answers = " | ".join(traj.answers) if traj.answers else "(not recorded)"
            policy._print(f"end reason: {traj.end_reason}   reward: {traj.reward:g}   turns: {traj.num_turns}")
            policy._print(f"your answer: {traj.answer if traj.answer is not None else '(none)'}   ground truth: {answers}")
            if writer is not None:
                writer.write(traj)
            if quit_:
                break
    finally:
        env.close()
        if writer is not None:
            writer.close()
    return trajs
