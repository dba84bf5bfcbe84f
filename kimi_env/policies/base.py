"""The policy interface: anything that turns the conversation so far into the next turn's text.

A policy gets the latest observation and the ``info`` dict of the environment (``info["messages"]`` is the whole
chat history, ``info["task"]`` the public task) and returns its turn as a string. Language-model policies, scripted
policies and humans all fit.

Three forms, each with a default built on the one before, so a policy writes only the one it needs:

* ``act(observation, info) -> str``: the plain synchronous form (scripted policies, people);
* ``await aact(observation, info) -> str | Action``: the awaitable form the rollout engine uses, so a remote or
  batched model serves many episodes at once (default: calls ``act``);
* ``act_batch(observations, infos) -> list[str]``: the batch form (default: ``act`` in a loop).

Concurrent rollouts need per-episode state that does not leak between episodes: the engine calls
:meth:`Policy.episode` once per episode and talks to the :class:`EpisodePolicy` it returns. The default copies the
policy and calls its :meth:`reset`, which is right for scripted policies whose state lives in attributes set by
``reset``; language-model policies return their own episode object that keeps the episode's token context.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Action:
    """A turn with its provenance. Text-only policies leave the token fields empty.

    ``prompt_ids`` is the exact context the model conditioned on, ``completion_ids`` the sampled tokens and
    ``logprobs`` their log-probabilities under the sampling distribution (see :mod:`kimi_env.trajectory`).
    """

    text: str
    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    stop_reason: str = ""


class EpisodePolicy:
    """One episode's view of a policy (what the rollout engine calls)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    async def aact(self, observation: str, info: dict[str, Any]) -> Action:
        out = self.policy.aact(observation, info)
        if inspect.isawaitable(out):
            out = await out
        return out if isinstance(out, Action) else Action(text=out)

    def close(self) -> None:
        """Release what the episode holds (a language model's KV cache, a remote session)."""


class Policy:
    """Base class. Override :meth:`act`; override :meth:`reset` if the policy keeps per-episode state."""

    name: str = "policy"

    def reset(self, info: dict[str, Any]) -> None:
        """Called with the ``info`` of ``env.reset`` at the start of every episode."""

    def act(self, observation: str, info: dict[str, Any]) -> str:
        raise NotImplementedError(f"{type(self).__name__} must implement act() or aact()")

    async def aact(self, observation: str, info: dict[str, Any]) -> str | Action:
        """The awaitable form. Default: :meth:`act` (a sync policy is accepted as it is)."""
        return self.act(observation, info)

    def act_batch(self, observations: Sequence[str], infos: Sequence[dict[str, Any]]) -> list[str]:
        """The batch form. Default: :meth:`act` on each."""
        return [self.act(o, i) for o, i in zip(observations, infos)]

    def episode(self, info: dict[str, Any], *, exclusive: bool = False) -> EpisodePolicy:
        """A per-episode policy for the episode that ``env.reset`` returned ``info`` for. With ``exclusive`` (one
        episode at a time, as in :func:`~kimi_env.rollout.run_episode`) the policy itself is reset and used, so
        state it keeps stays readable afterwards; otherwise a shallow copy is, so concurrent episodes never share
        per-episode state."""
        twin = self if exclusive else copy.copy(self)
        twin.reset(info)
        return EpisodePolicy(twin)

    #: what the trajectory record names as the model (LM policies: the model id)
    model_name: str = ""

    def sampling_settings(self) -> dict[str, Any]:
        """Sampling settings recorded with every trajectory (LM policies override)."""
        return {}

    def __call__(self, observation: str, info: dict[str, Any]) -> str:
        return self.act(observation, info)


class FunctionPolicy(Policy):
    """Wrap a function ``(observation, info) -> str`` as a policy."""

    def __init__(self, fn: Callable[[str, dict[str, Any]], str], name: str = "function") -> None:
        self._fn = fn
        self.name = name

    def act(self, observation: str, info: dict[str, Any]) -> str:
        return self._fn(observation, info)
