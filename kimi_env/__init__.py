"""kimi-env: offline multi-turn tool environments for end-to-end agentic RL, after Kimi-Researcher.

``import kimi_env`` registers every environment with Gymnasium (lazy entry points) and imports nothing heavy:
no torch, no search index, no server.
"""

from __future__ import annotations

from typing import Any

from .env import ToolEnv
from .errors import (InvalidArgumentError, KimiEnvError, ResetNeededError, StepInProgressError, ToolDefinitionError,
                     UnknownNameError)
from .protocol import FormatError, HermesProtocol, ParsedTurn, Protocol, ToolCall, XMLTagProtocol
from .registration import list_envs, make, register_envs
from .tasks import Task, load_tasks, save_tasks
from .tools.base import Tool, ToolResult, ToolStatus, execution_started, function_tool
from .wrappers import aclose, areset, astep, privileged_task, truncate

__version__ = "0.1.0"

__all__ = [
    "ToolEnv",
    "astep",
    "areset",
    "aclose",
    "truncate",
    "privileged_task",
    "execution_started",
    "Tool",
    "ToolResult",
    "ToolStatus",
    "function_tool",
    "Task",
    "load_tasks",
    "save_tasks",
    "Protocol",
    "HermesProtocol",
    "XMLTagProtocol",
    "ToolCall",
    "FormatError",
    "ParsedTurn",
    "list_envs",
    "make",
    "KimiEnvError",
    "InvalidArgumentError",
    "UnknownNameError",
    "ResetNeededError",
    "StepInProgressError",
    "ToolDefinitionError",
]

register_envs()


def __getattr__(name: str) -> Any:
    if name in ("SearchTool", "BrowseTool", "PythonTool"):
        from . import tools

        return getattr(tools, name)
    raise AttributeError(f"module 'kimi_env' has no attribute {name!r}")
