"""Policies: the interface, no-tool baselines and the scripted oracle agent."""

from __future__ import annotations

from typing import Any

from ..errors import unknown_name
from .base import FunctionPolicy, Policy
from .baselines import NoToolPolicy

__all__ = ["Policy", "FunctionPolicy", "NoToolPolicy", "OraclePolicy", "get_policy", "POLICIES"]

POLICIES = ("oracle", "no-tool")


def __getattr__(name: str) -> Any:
    if name == "OraclePolicy":
        from .oracle import OraclePolicy

        return OraclePolicy
    raise AttributeError(name)


def get_policy(name: str | Policy, **kwargs: Any) -> Policy:
    """A policy by name (``oracle``, ``no-tool``) or the instance itself."""
    if isinstance(name, Policy):
        return name
    if name == "no-tool":
        return NoToolPolicy(**kwargs)
    if name == "oracle":
        from .oracle import OraclePolicy

        return OraclePolicy(**kwargs)
    raise unknown_name("policy", str(name), POLICIES)
