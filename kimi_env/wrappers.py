"""Asynchronous stepping through Gymnasium wrappers, and the environment's own calls through them.

``gym.make`` returns the environment inside wrappers (``PassiveEnvChecker``, ``OrderEnforcing``, ``TimeLimit``,
the user's own), and Gymnasium wrappers have no ``astep``; ``env.unwrapped.astep`` would skip their checks and
transformations. These functions walk the wrapper chain instead:

* :func:`astep` / :func:`areset`: a wrapper that defines ``astep``/``areset`` itself is awaited; Gymnasium's
  ``OrderEnforcing``, ``PassiveEnvChecker`` and ``TimeLimit`` and every ``ObservationWrapper``, ``ActionWrapper`` and
  ``RewardWrapper`` get the same treatment as in their ``step``/``reset``; a wrapper that does not override
  ``step``/``reset`` is passed through. Any other wrapper raises :class:`~kimi_env.errors.InvalidArgumentError`
  naming it and the fix (give it ``async def astep``), instead of silently skipping it.
* :func:`aclose`, :func:`truncate`, :func:`privileged_task`: the base environment's methods.

>>> import asyncio, gymnasium as gym, kimi_env
>>> env = gym.make("kimi_env/Calculator-v0")
>>> obs, info = asyncio.run(kimi_env.areset(env, seed=0))
>>> asyncio.run(kimi_env.astep(env, "<answer>1</answer>"))[2]
True
>>> env.close()
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.error import ResetNeeded

from .errors import InvalidArgumentError

StepResult = tuple[Any, float, bool, bool, dict[str, Any]]


def _base(env: Any) -> Any:
    from .env import ToolEnv

    base = getattr(env, "unwrapped", env)
    if not isinstance(base, ToolEnv):
        raise InvalidArgumentError(
            f"expected a kimi_env.ToolEnv (or a Gymnasium wrapper around one), got {type(base).__name__}. "
            "Fix: pass the environment from gym.make('kimi_env/...') or your ToolEnv subclass."
        )
    return base


def _overrides(wrapper: gym.Wrapper, name: str) -> bool:
    return getattr(type(wrapper), name) is not getattr(gym.Wrapper, name)


def _unsupported(wrapper: Any, what: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{type(wrapper).__name__} overrides {what}() but has no async {'a' + what}(), so kimi_env.{'a' + what} "
        f"cannot pass through it without skipping its logic. Fix: give {type(wrapper).__name__} an "
        f"`async def a{what}(self, ...)` that awaits kimi_env.a{what}(self.env, ...), or call env.{what}() instead."
    )


async def astep(env: Any, action: Any) -> StepResult:
    """``await env.astep(action)`` through any Gymnasium wrappers (see the module docstring)."""
    own = getattr(type(env), "astep", None)
    if own is not None:
        return await env.astep(action)
    if not isinstance(env, gym.Wrapper):
        raise InvalidArgumentError(
            f"{type(env).__name__} has no astep(). Fix: pass a kimi_env environment (gym.make('kimi_env/...'))."
        )
    from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit

    if isinstance(env, OrderEnforcing):
        if not env._has_reset:
            raise ResetNeeded("Cannot call env.step() before calling env.reset()")
        return await astep(env.env, action)
    if isinstance(env, PassiveEnvChecker):
        env.checked_step = True
        env.checked_data_reuse = True
        return await astep(env.env, action)
    if isinstance(env, TimeLimit):
        obs, reward, terminated, truncated, info = await astep(env.env, action)
        env._elapsed_steps += 1
        if env._elapsed_steps >= env._max_episode_steps:
            truncated = True
        return obs, reward, terminated, truncated, info
    if isinstance(env, gym.ActionWrapper):
        return await astep(env.env, env.action(action))
    if isinstance(env, gym.ObservationWrapper):
        obs, reward, terminated, truncated, info = await astep(env.env, action)
        return env.observation(obs), reward, terminated, truncated, info
    if isinstance(env, gym.RewardWrapper):
        obs, reward, terminated, truncated, info = await astep(env.env, action)
        return obs, env.reward(reward), terminated, truncated, info
    if not _overrides(env, "step"):
        return await astep(env.env, action)
    raise _unsupported(env, "step")


async def areset(env: Any, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
    """``await env.areset(...)`` through any Gymnasium wrappers (see the module docstring)."""
    own = getattr(type(env), "areset", None)
    if own is not None:
        return await env.areset(seed=seed, options=options)
    if not isinstance(env, gym.Wrapper):
        raise InvalidArgumentError(
            f"{type(env).__name__} has no areset(). Fix: pass a kimi_env environment (gym.make('kimi_env/...'))."
        )
    from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit

    if isinstance(env, (OrderEnforcing, PassiveEnvChecker, TimeLimit, gym.ActionWrapper, gym.RewardWrapper)):
        obs, info = await areset(env.env, seed=seed, options=options)
        if isinstance(env, OrderEnforcing):
            env._has_reset = True
        elif isinstance(env, PassiveEnvChecker):
            env.checked_reset = True
        elif isinstance(env, TimeLimit):
            env._elapsed_steps = 0
        return obs, info
    if isinstance(env, gym.ObservationWrapper):
        obs, info = await areset(env.env, seed=seed, options=options)
        return env.observation(obs), info
    if not _overrides(env, "reset"):
        return await areset(env.env, seed=seed, options=options)
    raise _unsupported(env, "reset")


async def aclose(env: Any) -> None:
    """Close the environment without blocking the caller's event loop (the wrappers hold nothing to close)."""
    await _base(env).aclose()


def truncate(env: Any, reason: str) -> StepResult:
    """``env.unwrapped.truncate(reason)``: end the episode under the environment's budget rule."""
    return _base(env).truncate(reason)


def privileged_task(env: Any) -> dict[str, Any] | None:
    """``env.unwrapped.privileged_task``: the current task with its privileged metadata (hop plan, evidence URLs),
    for scripted policies such as the oracle. A learning policy must not be given it."""
    return _base(env).privileged_task
