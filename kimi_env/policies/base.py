"""The policy interface: anything that turns the conversation so far into the next turn's text.

A policy gets the latest observation and the ``info`` dict of the environment (``info["messages"]`` is the whole
chat history, ``info["task"]`` the public task) and returns its turn as a string. Language-model policies, scripted
policies and humans all fit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Policy:
    """Base class. Override :meth:`act`; override :meth:`reset` if the policy keeps per-episode state."""

    name: str = "policy"

    def reset(self, info: dict[str, Any]) -> None:
        """Called with the ``info`` of ``env.reset`` at the start of every episode."""

    def act(self, observation: str, info: dict[str, Any]) -> str:
        raise NotImplementedError

    def __call__(self, observation: str, info: dict[str, Any]) -> str:
        return self.act(observation, info)


class FunctionPolicy(Policy):
    """Wrap a function ``(observation, info) -> str`` as a policy."""

    def __init__(self, fn: Callable[[str, dict[str, Any]], str], name: str = "function") -> None:
        self._fn = fn
        self.name = name

    def act(self, observation: str, info: dict[str, Any]) -> str:
        return self._fn(observation, info)
