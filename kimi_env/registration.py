"""Registration of the environments in ``envs/`` with Gymnasium, under the namespace ``kimi_env``.

Entry points are strings (``"kimi_env.envs.calculator:CalculatorEnv"``), so registering imports nothing heavy and the import
direction stays ``envs -> kimi_env``. ``import kimi_env`` registers them all, which is why
``gym.make("kimi_env:kimi_env/Calculator-v0")`` works without a prior import (Gymnasium imports the module named
before the colon first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from .errors import unknown_name

NAMESPACE = "kimi_env"


@dataclass(frozen=True)
class EnvEntry:
    """One registered environment: its id (without namespace), entry point, default kwargs and a summary."""

    name: str
    entry_point: str
    summary: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{NAMESPACE}/{self.name}"


ENVS: tuple[EnvEntry, ...] = (
    EnvEntry("Calculator-v0", "kimi_env.envs.calculator:CalculatorEnv",
             "Arithmetic questions over large numbers with a calculator tool (the contract's smallest example)."),
    EnvEntry("SearchQA-v0", "kimi_env.envs.world_qa:SearchQAEnv",
             "Questions over the generated world answerable from search results (search tool)."),
    EnvEntry("BrowseQA-v0", "kimi_env.envs.world_qa:BrowseQAEnv",
             "Facts deep in pages, lists, conflicting sources, long chains (search and browse)."),
    EnvEntry("CodeQA-v0", "kimi_env.envs.world_qa:CodeQAEnv",
             "Aggregations over several entities that need computing (search and python)."),
    EnvEntry("DeepResearch-v0", "kimi_env.envs.world_qa:DeepResearchEnv",
             "Every tool and every task kind of the generated world, mixed and long-horizon."),
    EnvEntry("ColorBox-v0", "kimi_env.envs.toy:ColorBoxEnv",
             "Which color is in box k? One tool call and a copy: a tiny model learns it (trainer tests, smoke runs)."),
    EnvEntry("MathCode-v0", "kimi_env.envs.mathcode:MathCodeEnv",
             "Generated math and logic tasks checked by value, with the python sandbox tool."),
)


def register_envs() -> None:
    """Register every entry of :data:`ENVS` with Gymnasium (idempotent)."""
    for entry in ENVS:
        if entry.id not in gym.registry:
            gym.register(id=entry.id, entry_point=entry.entry_point, kwargs=dict(entry.kwargs),
                         disable_env_checker=False, order_enforce=True)


def list_envs() -> list[str]:
    """Ids of every kimi-env environment, e.g. ``"kimi_env/Calculator-v0"``."""
    return [entry.id for entry in ENVS]


def describe_envs() -> list[EnvEntry]:
    return list(ENVS)


def make(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` with a friendlier error for unknown ids (lists them and suggests the closest).

    Accepts ``"kimi_env/Name-v0"``, ``"kimi_env:kimi_env/Name-v0"`` or just ``"Name-v0"``.
    """
    register_envs()
    short = env_id.split(":", 1)[1] if env_id.startswith(f"{NAMESPACE}:") else env_id
    if "/" not in short:
        short = f"{NAMESPACE}/{short}"
    if short not in list_envs():
        raise unknown_name("environment", env_id, list_envs())
    return gym.make(short, **kwargs)
