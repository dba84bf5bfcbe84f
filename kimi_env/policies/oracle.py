"""The oracle moved to :mod:`kimi_env.world.oracle` (next to the world whose pages it parses); this module
re-exports it so that ``from kimi_env.policies.oracle import OraclePolicy`` keeps working."""

from __future__ import annotations

from ..world.oracle import OracleError, OraclePolicy, response_bodies, response_body, tool_call

__all__ = ["OraclePolicy", "OracleError", "tool_call", "response_bodies", "response_body"]
