"""``ToolEnv``: the multi-turn text environment every kimi-env environment derives from.

One episode is one task. The observation after ``reset`` is the rendered prompt (system prompt describing the tools,
then the question); each action is the policy's whole turn; the observation after a step is the tool responses
rendered as text. The base class owns everything that is the same for every environment (template method):

* turn counting, the turn budget (``max_turns``) and the context budget (``max_context_chars``);
* context management (``context_budget``, ``memory``): past a soft budget, older tool outputs become short stubs
  that keep their titles and URLs, so an episode of 60+ turns fits a fixed budget;
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
import sys
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import gymnasium as gym

from . import aio
from .errors import InvalidArgumentError, ResetNeededError, StepInProgressError, suggest, unknown_name
from .protocol import FormatError, ParsedTurn, Protocol, ToolCall, get_protocol
from .rewards import Judge, JudgeScorer, score_answer
from .spaces import neutralize, text_space
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


async def _aclose_tools(tools: list[Tool]) -> None:
    for tool in tools:
        try:
            await tool.aclose()
        except Exception:  # noqa: BLE001 - closing must not raise
            pass


def _takes_seed(tool: Tool) -> bool:
    try:
        return "seed" in inspect.signature(tool.reset).parameters
    except (TypeError, ValueError):
        return False


def _fit(contents: list[str], limit: int) -> list[str]:
    """Cut the longest of ``contents`` (each with a marker) until their total length fits ``limit``.

    >>> [len(c) <= 60 for c in _fit(["a" * 10, "b" * 200, "c" * 200], 130)]
    [True, True, True]
    >>> _fit(["short", "texts"], 100)
    ['short', 'texts']
    """
    if sum(map(len, contents)) <= limit:
        return list(contents)
    order = sorted(range(len(contents)), key=lambda i: len(contents[i]))
    out = list(contents)
    left, count = limit, len(contents)
    for i in order:  # water-filling: short ones keep everything, long ones share what remains equally
        share = max(left // count, 0)
        if len(out[i]) > share:
            out[i] = truncate(out[i], max(share, 1), "tool output")[0] if share >= 60 else out[i][: max(share, 0)]
        left -= len(out[i])
        count -= 1
    return out


def _stub(call: ToolCall, result: ToolResult) -> str:
    """A short stand-in for a tool output cut by context management: what it was, with its titles and URLs (the
    URLs only where the output showed them)."""
    meta, content = result.meta, result.content
    head = f"[{call.name} output cut to save context"

    def source(title: Any, url: Any) -> str:
        title = " ".join(str(title or "").split())[:80]
        shown = url and str(url) in content
        return f"{title} <{url}>" if shown and title else (title or (str(url) if shown else ""))

    if not result.ok:
        return f"{head}; it was an error.]"
    if meta.get("results"):
        items = [source(r.get("title"), r.get("url")) for r in meta["results"][:5]]
        return f"{head}. It listed: " + "; ".join(i for i in items if i) + "]"
    if meta.get("url") or meta.get("title"):
        return f"{head}. It showed: {source(meta.get('title'), meta.get('url'))}]"
    return f"{head} ({len(content)} characters).]"


class ToolEnv(gym.Env[str, str]):
    """Base class of kimi-env environments. See the module docstring for the contract.

    Args:
        max_turns: Policy turns per episode before truncation.
        max_context_chars: Budget on the whole conversation (every message, in characters); exceeding it truncates
            the episode.
        max_context_tokens: Budget on the whole conversation in tokens, counted with ``token_counter`` (replaces
            ``max_context_chars`` when given; pass both or neither).
        context_budget: Context management (Kimi-Researcher's): a soft budget, in the same unit, below the hard one.
            After a step leaves the conversation above it, the oldest tool outputs are replaced by short stubs that
            keep their titles and URLs (``[search output cut to save context. It listed: ...]``), oldest first,
            until it fits; if stubs alone are too much, the oldest shrink to ``[search output cut]``. The step's own
            outputs and pinned ones (``memory``) are never cut. The history is then no
            longer append-only: ``info["context_rewritten"]`` is True on that step and a policy re-reads
            ``info["messages"]``. None (default): append-only, the hard budget alone.
        memory: Add the ``memory`` tool (:class:`~kimi_env.tools.memory.MemoryTool`): notes the agent keeps, which
            stay in context verbatim.
        token_counter: ``str -> int``, the number of tokens of a message's content (your tokenizer).
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
        max_context_tokens: int | None = None,
        token_counter: Callable[[str], int] | None = None,
        context_budget: int | None = None,
        memory: bool = False,
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
        if (max_context_tokens is None) != (token_counter is None):
            problems.append("max_context_tokens and token_counter go together (a budget in tokens needs a counter), "
                            f"got max_context_tokens={max_context_tokens!r}, token_counter={token_counter!r}")
        elif max_context_tokens is not None:
            if isinstance(max_context_tokens, bool) or not isinstance(max_context_tokens, int) or max_context_tokens < 1:
                problems.append(f"max_context_tokens must be an int >= 1, got {max_context_tokens!r}")
            if not callable(token_counter):
                problems.append(f"token_counter must be a callable str -> int, got {type(token_counter).__name__}")
        hard = max_context_tokens if max_context_tokens is not None else max_context_chars
        if context_budget is not None and (isinstance(context_budget, bool) or not isinstance(context_budget, int)
                                           or context_budget < 1 or (isinstance(hard, int) and context_budget >= hard)):
            unit = "max_context_tokens" if max_context_tokens is not None else "max_context_chars"
            problems.append(f"context_budget must be an int >= 1 below the hard budget {unit}={hard!r} (stubs need "
                            f"room to work before the episode is cut), got {context_budget!r}")
        if not isinstance(memory, bool):
            problems.append(f"memory must be True or False, got {memory!r}")
        if problems:
            raise InvalidArgumentError(f"{type(self).__name__}: " + "; ".join(problems) + ".")
        self.context_budget = context_budget
        self.max_turns = max_turns
        self.max_context_chars = max_context_chars
        self.max_context_tokens = max_context_tokens
        self.token_counter = token_counter
        self._context_limit = max_context_tokens if max_context_tokens is not None else max_context_chars
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
        if memory and "memory" not in {t.name for t in self.tools}:
            from .tools.memory import MemoryTool

            self.tools.append(MemoryTool())
        if tool_timeout is not None:
            for tool in self.tools:
                tool.set_timeout(float(tool_timeout))
        self._tools_by_name = {t.name: t for t in self.tools}
        self._seeded_tools = {t for t in self.tools if _takes_seed(t)}
        # Close the tools (sessions, servers, workers) even if the user never calls close(): at garbage
        # collection or at interpreter exit, whichever comes first.
        self._finalizer = weakref.finalize(self, _close_tools, list(self.tools))

        self.observation_space = text_space(max_observation_chars)
        self.action_space = text_space(max_action_chars)

        self._task: Task | None = None
        self._active = False
        self._closed = False
        self._in_flight = False
        self._episode = 0
        self._time_limit: int | None = None
        self._messages: list[dict[str, Any]] = []
        self._sizes: list[int] = []
        # context management: message index -> (its stubs, how many of them are applied)
        self._stubs: dict[int, tuple[tuple[str, ...], int]] = {}
        self._cut: set[int] = set()
        self._context_used = 0
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
        """Start an episode. ``options={"task": Task | dict}`` poses a given task instead of sampling one.

        Resetting an unfinished episode ends it first (the tools' :meth:`~kimi_env.Tool.on_episode_end` runs)."""
        self._check_not_in_flight("reset")
        if self._closed:
            raise ResetNeededError(f"{type(self).__name__} is closed; create a new environment.")
        options = dict(options or {})
        task = options.pop("task", None)
        if options:
            raise InvalidArgumentError(
                f"reset() got unknown options {sorted(options)}; the only option is 'task' (a Task or a dict)."
            )
        if task is not None and not isinstance(task, (Task, Mapping)):
            raise InvalidArgumentError(f"options['task'] must be a Task or a dict, got {type(task).__name__}.")
        if isinstance(task, Mapping):
            task = Task.from_dict(task, default_id="custom")
        super().reset(seed=seed)
        if self._active:
            self._end_episode()
        self._adopt_time_limit()
        if task is None:
            task = self._sample_task()
        self._task = task
        for tool in self.tools:
            if tool in self._seeded_tools:
                tool.reset(seed=int(self.np_random.integers(2**31 - 1)))
            else:
                tool.reset()
        self._reset_stats()
        system, user = self._prompt_parts(self.protocol.instructions(self.tools), self._task_prompt(task))
        self._messages = []
        self._sizes = []
        self._stubs = {}
        self._cut = set()
        self._context_used = 0
        self._append({"role": "system", "content": system})
        self._append({"role": "user", "content": user})
        self._active = True
        self._episode += 1
        obs = f"{system}\n\n{user}"
        info = self._info(new=2)
        info["tools"] = [t.schema for t in self.tools]
        info["protocol"] = self.protocol.name
        return obs, info

    async def areset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """:meth:`reset` for asynchronous callers (it does no blocking work; through wrappers use
        :func:`kimi_env.areset`)."""
        return self.reset(seed=seed, options=options)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        parsed = self._begin_step(action)
        try:
            outcomes = self._run_calls(parsed.tool_calls) if parsed.tool_calls else []
            correctness = None
            if parsed.answer is not None and self._task is not None:
                correctness = float(self.score(self._task, parsed.answer))
            return self._finish_step(action, parsed, outcomes, correctness)
        finally:
            self._in_flight = False

    async def astep(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """``step`` for asynchronous rollouts: awaitable from any event loop, so one program can step many
        environments at once (their tool calls overlap). Same semantics and results as :meth:`step`.

        One step at a time per environment: a second ``astep`` (or ``step``/``reset``) while one is running raises
        :class:`~kimi_env.errors.StepInProgressError`. Cancelling it (``asyncio.wait_for``, ``task.cancel()``)
        leaves the environment as it was before the step: no turn counted, nothing appended to the transcript (the
        cancelled tool calls are cancelled too; side effects a tool already had, such as a page it opened, stay).
        The answer is scored with :meth:`ascore`, so an LLM judge never blocks the event loop. Through Gymnasium
        wrappers, use :func:`kimi_env.astep`."""
        parsed = self._begin_step(action)
        try:
            outcomes = []
            if parsed.tool_calls:
                try:
                    outcomes = await aio.arun(self._gather(parsed.tool_calls))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - acall never raises; this guards the event loop itself
                    outcomes = self._loop_failure(parsed.tool_calls, exc)
            correctness = None
            if parsed.answer is not None and self._task is not None:
                correctness = float(await self.ascore(self._task, parsed.answer))
            if self._closed:
                raise ResetNeededError(f"{type(self).__name__} was closed while this step ran; its result is lost.")
            return self._finish_step(action, parsed, outcomes, correctness)
        finally:
            self._in_flight = False

    async def ascore(self, task: Task, answer: str) -> float:
        """:meth:`score` for asynchronous callers: an ``async`` judge is awaited, a plain judge or an overridden
        ``score`` runs in a worker thread, so neither blocks the event loop."""
        if self._judge is not None:
            return await self._judge.acall(task.question, answer, task.answers)
        if type(self).score is ToolEnv.score:
            return self.score(task, answer)
        return await asyncio.to_thread(self.score, task, answer)

    def truncate(self, reason: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """End the running episode now, under the environment's budget rule, as ``max_turns`` would: truncated,
        no answer, reward ``format_penalty``, ``info["end_reason"] == reason``. A rollout engine calls this when the
        policy runs out of its own budget (tokens, time). Returns ``(observation, reward, terminated=False,
        truncated=True, info)`` like the step that would have ended it; nothing is appended to the transcript."""
        self._check_not_in_flight("truncate")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 100:
            raise InvalidArgumentError(
                f"truncate(reason) expects a short non-empty str (at most 100 characters), got {reason!r:.120}. "
                "Fix: env.truncate('max_tokens')."
            )
        if not self._active:
            raise ResetNeededError(
                "truncate() called before reset() or after the episode ended "
                f"(end reason: {self._end_reason or 'never reset'}). Fix: call env.reset() first."
            )
        note = f"The episode was cut ({reason}) without an answer."
        self._end_reason = reason.strip()
        self._format_errors += 1
        self._last_errors = [f"{self._end_reason}: {note}"]
        self._action_cut = 0
        reward = self._final_reward()
        self._end_episode()
        return note, reward, False, True, self._info(new=0)

    def _check_not_in_flight(self, what: str) -> None:
        if self._in_flight:
            raise StepInProgressError(
                f"{what}() called on {type(self).__name__} while its previous astep() is still running. One "
                "environment runs one step at a time. Fix: await the running step first, or use one environment per "
                "concurrent episode."
            )

    def _begin_step(self, action: str) -> ParsedTurn:
        """Checks and parsing only: no episode state changes before the tool calls have returned."""
        self._check_not_in_flight("step")
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
        parsed = self._parse(action)
        turn = self._turn + 1
        parsed.tool_calls = [replace(c, id=f"call_{turn}_{i}") for i, c in enumerate(parsed.tool_calls)]
        self._in_flight = True
        return parsed

    def _finish_step(
        self, action: str, parsed: ParsedTurn, results: list[tuple[ToolCall, ToolResult]],
        correctness: float | None,
    ) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Commit the step (no awaits in here: a cancelled step never gets this far)."""
        before = len(self._messages)
        self._rewritten = 0
        self._turn += 1
        self._format_errors += len(parsed.errors)
        self._last_errors = [f"{e.kind}: {e.message}" for e in parsed.errors]
        for call, result in results:
            self._tool_calls[call.name] += 1
            if result.status == ToolStatus.INVALID_ARGUMENTS:
                self._format_errors += 1
                self._last_errors.append(f"invalid_arguments: {result.error}")
            for url in result.meta.get("urls", ()):
                if url not in self._urls_seen:
                    self._urls_seen.add(url)
                    self._urls.append(url)
        stored_action, self._action_cut = truncate(action, self.max_action_chars, "turn")
        self._append({"role": "assistant", "content": stored_action})
        self._step_calls = [
            {"id": c.id, "name": c.name, "arguments": c.arguments, "status": r.status, "ok": r.ok}
            for c, r in results
        ]

        terminated = truncated = False
        reward = 0.0
        if parsed.answer is not None:
            terminated = True
            self._end_reason = "answer"
            self._answer = parsed.answer
            self._correctness = correctness
            obs = "Answer recorded; the episode is over."
        else:
            obs = self._bound(self.protocol.render_results(results, parsed.errors))
            messages = self._observation_messages(results, parsed.errors, obs)
            for message, stub in zip(messages, self._stub_texts(results, len(messages))):
                if stub is not None:
                    self._stubs[len(self._messages)] = (tuple(neutralize(x) for x in stub), 0)
                self._append(message)
            self._manage_context(keep_from=before)
            over = self._budget_exceeded()
            if over is not None:
                truncated, self._end_reason = True, "context_overflow"
                note = f"\nContext budget exceeded ({over}); the episode is over without an answer."
            elif self._turn >= self._turn_limit():
                truncated, self._end_reason = True, "max_turns"
                note = f"\nTurn limit reached ({self._turn_limit()} turns); the episode is over without an answer."
            if truncated:
                self._format_errors += 1
                self._last_errors.append(f"{self._end_reason}: {note.strip()}")
                obs = self._bound(obs + note)
        if terminated or truncated:
            reward = self._final_reward()
            self._end_episode()
        info = self._info(new=len(self._messages) - before)
        if self.render_mode == "human":
            print(self.render_text(last_only=True))
        return obs, reward, terminated, truncated, info

    def _observation_messages(
        self, results: list[tuple[ToolCall, ToolResult]], errors: list[FormatError], obs: str
    ) -> list[dict[str, Any]]:
        """The messages a step's observation adds: the protocol's own split (one per call), or one message."""
        split = getattr(self.protocol, "result_messages", None)
        messages = split(results, errors) if split is not None else None
        if not messages:
            return [{"role": self.protocol.observation_role, "content": obs}]
        contents = _fit([neutralize(str(m.get("content", ""))) for m in messages], self.max_observation_chars)
        return [{**m, "content": c} for m, c in zip(messages, contents)]

    def _stub_texts(self, results: list[tuple[ToolCall, ToolResult]],
                    n_messages: int) -> list[tuple[str, str] | None]:
        """The stubs of each observation message of a step (None: never cut), for context management: the first
        keeps titles and URLs, the second (for when even stubs do not fit) only the tool name."""
        if self.context_budget is None:
            return [None] * n_messages
        stubs = [None if r.meta.get("pin") else (_stub(c, r), f"[{c.name} output cut]") for c, r in results]
        if n_messages == len(results):  # one message per call
            return stubs
        # one message for the whole step: cut it only if nothing in it is pinned
        if not stubs or any(st is None for st in stubs):
            return [None] * n_messages
        return [("\n".join(a for a, _ in stubs), " ".join(b for _, b in stubs))] + [None] * (n_messages - 1)

    def _manage_context(self, keep_from: int) -> None:
        """Past ``context_budget``, replace the oldest tool outputs (before message ``keep_from``) by their stubs;
        if the stubs alone are still too much, shorten the oldest stubs to the tool name."""
        if self.context_budget is None:
            return
        for level in (0, 1):
            for idx in sorted(self._stubs):
                if self._context_used <= self.context_budget:
                    return
                if idx >= keep_from:
                    break
                stubs, done = self._stubs[idx]
                if done > level:
                    continue
                stub = stubs[level]
                self._stubs[idx] = (stubs, level + 1)
                size = self._size(stub)
                if size >= self._sizes[idx]:
                    continue
                self._cut.add(idx)
                self._messages[idx] = {**self._messages[idx], "content": stub}
                self._context_used += size - self._sizes[idx]
                self._sizes[idx] = size
                self._rewritten += 1

    def _end_episode(self) -> None:
        """The episode is over (answer, budget, truncate, close, abandoning reset): tell the tools, once."""
        self._active = False
        for tool in self.tools:
            try:
                tool.on_episode_end()
            except Exception:  # noqa: BLE001 - a tool's cleanup must not break the environment
                pass

    def _turn_limit(self) -> int:
        return min(self.max_turns, self._time_limit) if self._time_limit else self.max_turns

    def _adopt_time_limit(self) -> None:
        """Route a Gymnasium ``TimeLimit`` wrapped around this environment (``gym.make(..., max_episode_steps=N)``)
        through the environment's own budget rule: it acts as ``max_turns=min(max_turns, N)``, so the last step
        is truncated with ``format_penalty`` and ``end_reason="max_turns"`` instead of a bare ``truncated=True``.
        The wrapper is found among the callers of ``reset`` (``TimeLimit.reset`` calls down to us)."""
        from gymnasium.wrappers import TimeLimit

        self._time_limit = None
        frame = sys._getframe(2)
        for _ in range(16):
            if frame is None:
                break
            for name in ("self", "env"):  # a wrapper's own reset, or kimi_env.areset walking the chain
                wrapper = frame.f_locals.get(name)
                if isinstance(wrapper, TimeLimit) and wrapper.unwrapped is self:
                    self._time_limit = int(wrapper._max_episode_steps)
                    return
            frame = frame.f_back

    def _budget_exceeded(self) -> str | None:
        if self._context_used > self._context_limit:
            unit = "tokens" if self.token_counter is not None else "characters"
            return f"{self._context_used} > {self._context_limit} {unit}"
        return None

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
        if self._active:
            self._end_episode()
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer()
        super().close()

    async def aclose(self) -> None:
        """:meth:`close` for asynchronous callers: the tools close on the background loop without blocking yours."""
        if self._closed:
            return
        self._closed = True
        if self._active:
            self._end_episode()
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer.detach()
        await aio.arun(_aclose_tools(list(self.tools)))
        super().close()

    # ------------------------------------------------------------------ helpers
    @property
    def task(self) -> Task | None:
        """The current task (with answers: for programs, not for policies)."""
        return self._task

    @property
    def privileged_task(self) -> dict[str, Any] | None:
        """The current task as ``info["task"]`` plus its privileged metadata (the hop ``plan``, ``evidence_urls``):
        the explicit accessor for scripted policies such as the oracle. No answers, no ``_`` keys. Through
        wrappers: :func:`kimi_env.privileged_task`."""
        return self._task.privileged() if self._task is not None else None

    @property
    def messages(self) -> list[dict[str, Any]]:
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
        self._action_cut = 0
        self._step_calls: list[dict[str, Any]] = []
        self._rewritten = 0

    def _append(self, message: dict[str, Any]) -> None:
        self._messages.append(message)
        self._sizes.append(self._size(message["content"]))
        self._context_used += self._sizes[-1]

    def _size(self, text: str) -> int:
        if self.token_counter is None:
            return len(text)
        try:
            n = self.token_counter(text)
        except Exception as exc:
            raise InvalidArgumentError(
                f"token_counter raised {type(exc).__name__}: {str(exc)[:200]}. Fix: pass a callable str -> int "
                "(e.g. lambda s: len(tokenizer(s).input_ids))."
            ) from exc
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidArgumentError(
                f"token_counter must return an int >= 0, got {n!r}. Fix: return the number of tokens of the text."
            )
        return n

    def _prompt_parts(self, system: str, user: str) -> tuple[str, str]:
        """The system and user text of the reset observation, cut so that ``system + "\\n\\n" + user`` fits the
        observation bound: the tool descriptions first, never below 200 characters, then the question."""
        system, user = neutralize(system), neutralize(user)
        room = self.max_observation_chars - len(user) - 2
        if len(system) > room:
            system = truncate(system, max(room, 200), "system prompt")[0]
            room = self.max_observation_chars - len(system) - 2
            if len(user) > room:
                user = truncate(user, room, "question")[0]
        return system, user

    def _bound(self, text: str) -> str:
        return truncate(neutralize(text), self.max_observation_chars, "observation")[0]

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
        self._reward = self._correctness if (self._format_errors == 0 and self._correctness is not None) \
            else self.format_penalty
        return self._reward

    def _info(self, new: int) -> dict[str, Any]:
        return {
            "task": self._task.public() if self._task else None,
            "messages": self.messages,
            "new_messages": [dict(m) for m in self._messages[len(self._messages) - new:]] if new else [],
            "step_calls": [dict(c) for c in self._step_calls],
            "action_cut_chars": self._action_cut,
            "context_rewritten": self._rewritten > 0,
            "context_stubs": len(self._cut),
            "context_used": self._context_used,
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
