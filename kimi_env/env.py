"""``ToolEnv``: the multi-turn text environment every kimi-env environment derives from.

One episode is one task. The observation after ``reset`` is the rendered prompt (system prompt describing the tools,
then the question); each action is the policy's whole turn; the observation after a step is the tool responses
rendered as text. The base class owns everything that is the same for every environment (template method):

* turn counting, the turn budget (``max_turns``) and the context budget (``max_context_chars``);
* order checks: ``step`` before ``reset`` or after the episode ended raises :class:`~kimi_env.errors.ResetNeededError`;
* parsing turns with the protocol, running a turn's tool calls concurrently, bounding and sanitizing observations;
* the reward rule and the episode statistics in ``info``.

A subclass writes only what differs: :meth:`_make_tools` (its tool set), :meth:`_sample_task` (task sampling from
``self.np_random``) and, optionally, :meth:`score` (correctness of an answer).

**Terminated vs truncated** (credit assignment depends on it). ``terminated=True`` when the policy gave a final
answer: the episode reached a true end and the reward is the outcome. ``truncated=True`` when the episode was cut by a
budget (``max_turns`` reached, or the conversation exceeded ``max_context_chars``): no answer was given; the final
reward is ``format_penalty`` (Kimi-Researcher treats running past the turn or context limit as a format error), and a
value-based learner should not bootstrap through it as if it were a natural end.

**Reward.** 0 on every non-final step. At the end: the correctness score in [0, 1] if the episode had no format error,
else ``format_penalty``. ``info["reward_breakdown"]`` says which applied.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym

from . import aio
from .errors import InvalidArgumentError, ResetNeededError, suggest, unknown_name
from .protocol import FormatError, ParsedTurn, Protocol, ToolCall, get_protocol
from .rewards import Judge, JudgeScorer, score_answer
from .spaces import sanitize, text_space
from .tasks import Task
from .tools.base import Tool, ToolResult, ToolStatus, truncate


def _init_keywords(cls: type) -> tuple[set[str], bool]:
    """Keyword names accepted by ``cls(...)`` across the ``__init__`` chain; (names, accepts_anything)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        params = inspect.signature(init).parameters.values()
        names.update(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self")
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names, False
        if klass is ToolEnv:
            return names, False
    return names, True


def _close_tools(tools: list[Tool]) -> None:
    for tool in tools:
        tool.close()


class ToolEnv(gym.Env[str, str]):
    """Base class of kimi-env environments. See the module docstring for the contract.

    Args:
        max_turns: Policy turns per episode before truncation.
        max_context_chars: Budget on the whole conversation (every message, in characters); exceeding it truncates
            the episode.
        max_observation_chars: Upper bound of every observation (also the observation space's ``max_length``).
        max_action_chars: Longest turn parsed; a longer turn is a format error (it is stored cut, with a marker).
        format_penalty: Final reward of an episode with any format error or that hit a budget.
        protocol: ``"hermes"`` (default), ``"xml"`` or a :class:`~kimi_env.protocol.Protocol` instance.
        tools: Names of the environment's tools to enable (default: all of them).
        tool_timeout: Per-call timeout in seconds for every tool (default: each tool's own).
        judge: Optional callable ``(question, prediction, answers) -> score`` replacing the default scorer.
        render_mode: ``"ansi"`` (``render()`` returns the transcript) or ``"human"`` (prints it).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "human"], "render_fps": 1}

    def __new__(cls, *args: Any, **kwargs: Any) -> ToolEnv:
        if args:
            raise InvalidArgumentError(
                f"{cls.__name__} takes keyword arguments only, got {len(args)} positional. "
                f"Fix: {cls.__name__}(max_turns=..., ...)."
            )
        names, open_ended = _init_keywords(cls)
        if not open_ended:
            for key in kwargs:
                if key not in names:
                    raise InvalidArgumentError(
                        f"{cls.__name__} got an unexpected keyword argument {key!r}.{suggest(key, names)} "
                        f"Valid keyword arguments: {', '.join(sorted(names))}."
                    )
        return super().__new__(cls)

    def __init__(
        self,
        *,
        max_turns: int = 12,
        max_context_chars: int = 120_000,
        max_observation_chars: int = 16_000,
        max_action_chars: int = 16_000,
        format_penalty: float = -0.1,
        protocol: str | Protocol | None = None,
        tools: Sequence[str] | None = None,
        tool_timeout: float | None = None,
        judge: Judge | None = None,
        render_mode: str | None = None,
    ) -> None:
        problems = []
        if not isinstance(max_turns, int) or max_turns < 1:
            problems.append(f"max_turns must be an int >= 1, got {max_turns!r}")
        if not isinstance(max_observation_chars, int) or max_observation_chars < 1000:
            problems.append(f"max_observation_chars must be an int >= 1000, got {max_observation_chars!r}")
        if not isinstance(max_action_chars, int) or max_action_chars < 100:
            problems.append(f"max_action_chars must be an int >= 100, got {max_action_chars!r}")
        if not isinstance(max_context_chars, int) or max_context_chars < max_observation_chars:
            problems.append(
                f"max_context_chars must be an int >= max_observation_chars ({max_observation_chars!r}), "
                f"got {max_context_chars!r}"
            )
        if not isinstance(format_penalty, (int, float)) or not -1.0 <= format_penalty <= 0.0:
            problems.append(f"format_penalty must be a number in [-1, 0], got {format_penalty!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            problems.append(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if tool_timeout is not None and not (isinstance(tool_timeout, (int, float)) and tool_timeout > 0):
            problems.append(f"tool_timeout must be a positive number of seconds, got {tool_timeout!r}")
        if problems:
            raise InvalidArgumentError(f"{type(self).__name__}: " + "; ".join(problems) + ".")
        self.max_turns = max_turns
        self.max_context_chars = max_context_chars
        self.max_observation_chars = max_observation_chars
        self.max_action_chars = max_action_chars
        self.format_penalty = float(format_penalty)
        self.render_mode = render_mode
        self.protocol = get_protocol(protocol)
        self._judge = JudgeScorer(judge) if judge is not None else None

        available = list(self._make_tools())
        by_name = {t.name: t for t in available}
        if tools is not None:
            if isinstance(tools, str):
                tools = [tools]
            for name in tools:
                if name not in by_name:
                    raise unknown_name("tool", name, by_name)
            self.tools: list[Tool] = [by_name[name] for name in tools]
            for tool in available:
                if tool not in self.tools:
                    tool.close()
        else:
            self.tools = available
        if tool_timeout is not None:
            for tool in self.tools:
                tool.set_timeout(float(tool_timeout))
        self._tools_by_name = {t.name: t for t in self.tools}
        # Close the tools (sessions, servers, workers) even if the user never calls close(): at garbage
        # collection or at interpreter exit, whichever comes first.
        self._finalizer = weakref.finalize(self, _close_tools, list(self.tools))

        self.observation_space = text_space(max_observation_chars)
        self.action_space = text_space(max_action_chars)

        self._task: Task | None = None
        self._active = False
        self._closed = False
        self._messages: list[dict[str, str]] = []
        self._reset_stats()

    # ------------------------------------------------------------------ what subclasses write
    def _make_tools(self) -> Sequence[Tool]:
        """Return the environment's tools (fresh instances; the env owns them)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _make_tools()")

    def _sample_task(self) -> Task:
        """Return the next task, drawing any randomness from ``self.np_random``."""
        raise NotImplementedError(f"{type(self).__name__} must implement _sample_task()")

    def score(self, task: Task, answer: str) -> float:
        """Correctness of ``answer`` for ``task`` in [0, 1]. Default: by answer type (see :mod:`kimi_env.rewards`);
        numbers match within ``task.metadata["rel_tol"]`` (default 1e-4)."""
        if self._judge is not None:
            return self._judge(task.question, answer, task.answers)
        rel_tol = float(task.metadata.get("rel_tol", 1e-4))
        return score_answer(answer, task.answers, task.answer_type, rel_tol=rel_tol)

    def _task_prompt(self, task: Task) -> str:
        """The user message that poses the task."""
        return task.question

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Start an episode. ``options={"task": Task | dict}`` poses a given task instead of sampling one."""
        super().reset(seed=seed)
        if self._closed:
            raise ResetNeededError(f"{type(self).__name__} is closed; create a new environment.")
        options = dict(options or {})
        task = options.pop("task", None)
        if options:
            raise InvalidArgumentError(
                f"reset() got unknown options {sorted(options)}; the only option is 'task' (a Task or a dict)."
            )
        if task is None:
            task = self._sample_task()
        elif isinstance(task, Mapping):
            task = Task.from_dict(task, default_id="custom")
        elif not isinstance(task, Task):
            raise InvalidArgumentError(f"options['task'] must be a Task or a dict, got {type(task).__name__}.")
        self._task = task
        for tool in self.tools:
            tool.reset()
        self._reset_stats()
        system = self.protocol.instructions(self.tools)
        user = self._task_prompt(task)
        self._messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        self._context_chars = len(system) + len(user)
        self._active = True
        room = self.max_observation_chars - len(user) - 2
        if len(system) > room and room >= 200:  # cut the tool descriptions, never the question
            system = truncate(system, room, "system prompt")[0]
        obs = self._bound(f"{system}\n\n{user}")
        info = self._info()
        info["tools"] = [t.schema for t in self.tools]
        return obs, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        parsed = self._begin_step(action)
        outcomes = self._run_calls(parsed.tool_calls) if parsed.tool_calls else []
        return self._finish_step(action, parsed, outcomes)

    async def astep(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """``step`` for asynchronous rollouts: awaitable from any event loop, so one program can step many
        environments at once (their tool calls overlap). Same semantics and results as :meth:`step`."""
        parsed = self._begin_step(action)
        outcomes = []
        if parsed.tool_calls:
            try:
                outcomes = await aio.arun(self._gather(parsed.tool_calls))
            except Exception as exc:  # noqa: BLE001 - acall never raises; this guards the event loop itself
                outcomes = self._loop_failure(parsed.tool_calls, exc)
        return self._finish_step(action, parsed, outcomes)

    def _begin_step(self, action: str) -> ParsedTurn:
        if not self._active:
            raise ResetNeededError(
                "step() called before reset() or after the episode ended "
                f"(end reason: {self._end_reason or 'never reset'}). Fix: call env.reset() first."
            )
        if not isinstance(action, str):
            raise InvalidArgumentError(
                f"action must be the policy's turn as a str, got {type(action).__name__}. "
                "Fix: decode the model's tokens to text before calling step()."
            )
        self._turn += 1
        parsed = self._parse(action)
        self._format_errors += len(parsed.errors)
        self._last_errors = [f"{e.kind}: {e.message}" for e in parsed.errors]
        return parsed

    def _finish_step(
        self, action: str, parsed: ParsedTurn, results: list[tuple[ToolCall, ToolResult]]
    ) -> tuple[str, float, bool, bool, dict[str, Any]]:
        for call, result in results:
            self._tool_calls[call.name] += 1
            if result.status == ToolStatus.INVALID_ARGUMENTS:
                self._format_errors += 1
                self._last_errors.append(f"invalid_arguments: {result.error}")
            for url in result.meta.get("urls", ()):
                if url not in self._urls_seen:
                    self._urls_seen.add(url)
                    self._urls.append(url)
        stored_action = truncate(action, self.max_action_chars, "turn")[0]
        self._append("assistant", stored_action)

        terminated = truncated = False
        reward = 0.0
        if parsed.answer is not None:
            terminated = True
            self._end_reason = "answer"
            self._answer = parsed.answer
            obs = self._bound("Answer recorded; the episode is over.")
        else:
            obs = self._bound(self.protocol.render_results(results, parsed.errors))
            self._append(self.protocol.observation_role, obs)
            if self._context_chars > self.max_context_chars:
                truncated, self._end_reason = True, "context_overflow"
                note = (f"\nContext budget exceeded ({self._context_chars} > {self.max_context_chars} characters); "
                        "the episode is over without an answer.")
            elif self._turn >= self.max_turns:
                truncated, self._end_reason = True, "max_turns"
                note = f"\nTurn limit reached ({self.max_turns} turns); the episode is over without an answer."
            if truncated:
                self._format_errors += 1
                self._last_errors.append(f"{self._end_reason}: {note.strip()}")
                obs = self._bound(obs + note)
        if terminated or truncated:
            reward = self._final_reward()
            self._active = False
            for tool in self.tools:  # h-sandbox stopgap until h-env's Tool.on_episode_end hook lands on main
                getattr(tool, "on_episode_end", lambda: None)()
        info = self._info()
        if self.render_mode == "human":
            print(self.render_text(last_only=True))
        return obs, reward, terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self.render_text()
        if self.render_mode == "human":
            print(self.render_text())
        return None

    def render_text(self, last_only: bool = False) -> str:
        msgs = self._messages[-2:] if last_only else self._messages
        return "\n".join(f"[{m['role']}]\n{m['content']}" for m in msgs)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._active = False
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer()
        super().close()

    # ------------------------------------------------------------------ helpers
    @property
    def task(self) -> Task | None:
        """The current task (with answers: for programs, not for policies)."""
        return self._task

    @property
    def messages(self) -> list[dict[str, str]]:
        """A copy of the conversation so far."""
        return [dict(m) for m in self._messages]

    def _reset_stats(self) -> None:
        self._turn = 0
        self._tool_calls: Counter[str] = Counter()
        self._urls: list[str] = []
        self._urls_seen: set[str] = set()
        self._format_errors = 0
        self._last_errors: list[str] = []
        self._end_reason: str | None = None
        self._answer: str | None = None
        self._correctness: float | None = None
        self._reward: float | None = None
        self._context_chars = 0

    def _append(self, role: str, content: str) -> None:
        self._messages.append({"role": role, "content": content})
        self._context_chars += len(content)

    def _bound(self, text: str) -> str:
        return truncate(sanitize(text), self.max_observation_chars, "observation")[0]

    def _parse(self, action: str) -> ParsedTurn:
        if len(action) > self.max_action_chars:
            return ParsedTurn(errors=[FormatError(
                "turn_too_long",
                f"a turn may have at most {self.max_action_chars} characters, got {len(action)}; write shorter turns.",
            )])
        try:
            return self.protocol.parse(action, self.tools)
        except Exception as exc:  # noqa: BLE001 - a protocol bug must not kill the episode
            return ParsedTurn(errors=[FormatError("parse_failure", f"the turn could not be parsed ({type(exc).__name__}).")])

    async def _gather(self, calls: Sequence[ToolCall]) -> list[tuple[ToolCall, ToolResult]]:
        results = await asyncio.gather(*(self._tools_by_name[c.name].acall(**c.arguments) for c in calls))
        return list(zip(calls, results))

    @staticmethod
    def _loop_failure(calls: Sequence[ToolCall], exc: Exception) -> list[tuple[ToolCall, ToolResult]]:
        failure = ToolResult.failure(f"tool execution failed ({type(exc).__name__}).", ToolStatus.INTERNAL)
        return [(c, failure) for c in calls]

    def _run_calls(self, calls: Sequence[ToolCall]) -> list[tuple[ToolCall, ToolResult]]:
        try:
            return aio.run(self._gather(calls))
        except Exception as exc:  # noqa: BLE001 - acall never raises; this guards the event loop itself
            return self._loop_failure(calls, exc)

    def _final_reward(self) -> float:
        if self._end_reason == "answer" and self._task is not None and self._answer is not None:
            self._correctness = float(self.score(self._task, self._answer))
        self._reward = self._correctness if (self._format_errors == 0 and self._correctness is not None) \
            else self.format_penalty
        return self._reward

    def _info(self) -> dict[str, Any]:
        return {
            "task": self._task.public() if self._task else None,
            "messages": self.messages,
            "num_turns": self._turn,
            "tool_calls": dict(sorted(self._tool_calls.items())),
            "urls_visited": list(self._urls),
            "format_errors": self._format_errors,
            "last_errors": list(self._last_errors),
            "end_reason": self._end_reason,
            "answer": self._answer,
            "reward_breakdown": {
                "correctness": self._correctness,
                "format_errors": self._format_errors,
                "format_penalty_applied": self._reward is not None and self._reward == self.format_penalty
                and (self._format_errors > 0 or self._correctness is None),
                "reward": self._reward,
            },
        }
