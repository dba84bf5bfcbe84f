"""Tools an agent can call: the :class:`Tool` contract and the built-in search, browse and python tools.

The built-in tools are imported lazily so that ``import kimi_env`` stays light.
"""

from __future__ import annotations

from typing import Any

from .base import FunctionTool, Tool, ToolResult, ToolStatus, function_tool, truncate

__all__ = [
    "Tool",
    "ToolResult",
    "ToolStatus",
    "FunctionTool",
    "function_tool",
    "truncate",
    "SearchTool",
    "BrowseTool",
    "PythonTool",
]

_LAZY = {
    "SearchTool": "kimi_env.tools.search",
    "BrowseTool": "kimi_env.tools.browse",
    "PythonTool": "kimi_env.tools.python",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kimi_env.tools' has no attribute {name!r}")
