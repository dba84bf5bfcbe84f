"""The oracle agent: a scripted policy that solves a task by following its hop plan through the real tools.

It never reads answers: it gets every fact by calling a tool and parsing what the tool returned. It is the funnel's
solvability check and the source of cold-start demonstrations. Each plan op is a small generator that yields turns
(tool calls) and receives observations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator
from typing import Any

from .base import Policy

Script = Generator[str, str, str]


def tool_call(name: str, **arguments: Any) -> str:
    """The Hermes-format text of one tool call."""
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + "</tool_call>"


def response_body(observation: str) -> str:
    """The content of the first ``<tool_response>`` block (without its name line)."""
    m = re.search(r"<tool_response>\n[^\n]*\n(.*?)\n</tool_response>", observation, re.DOTALL)
    return m.group(1) if m else observation


class OracleError(RuntimeError):
    """The oracle could not follow the plan (the task is unsolvable through the tools as they answered)."""


class OraclePolicy(Policy):
    """Follows ``info["task"]["metadata"]["plan"]``. When it cannot, it answers ``unknown`` (and scores 0)."""

    name = "oracle"

    def __init__(self) -> None:
        self._script: Script | None = None
        self._pending: str | None = None
        self.failure: str | None = None

    def reset(self, info: dict[str, Any]) -> None:
        task = info.get("task") or {}
        self.failure = None
        self._script = self._run_plan(task)
        self._pending = None

    def act(self, observation: str, info: dict[str, Any]) -> str:
        if self._script is None:
            self.reset(info)
        assert self._script is not None
        try:
            turn = next(self._script) if self._pending is None else self._script.send(observation)
        except StopIteration as stop:
            return f"<answer>{stop.value}</answer>"
        except OracleError as exc:
            self.failure = str(exc)
            return "<answer>unknown</answer>"
        self._pending = turn
        return turn

    def _run_plan(self, task: dict[str, Any]) -> Script:
        plan = (task.get("metadata") or {}).get("plan") or []
        if not plan:
            raise OracleError("the task has no plan")
        results: list[Any] = []
        for step in plan:
            op = step.get("op")
            handler = getattr(self, f"_op_{op}", None)
            if handler is None:
                raise OracleError(f"unknown plan op {op!r}")
            value = yield from handler(step, results)
            results.append(value)
        return str(results[-1])

    # ---- ops ---------------------------------------------------------------------------------------------------
    def _op_python(self, step: dict[str, Any], results: list[Any]) -> Script:
        obs = yield tool_call("python", code=step["code"])
        body = response_body(obs).strip()
        if body.startswith("Error") or not body:
            raise OracleError(f"python failed: {body[:200]}")
        return body.splitlines()[-1].strip()

    def _op_calculate(self, step: dict[str, Any], results: list[Any]) -> Script:
        obs = yield tool_call("calculator", expression=step["expression"])
        body = response_body(obs).strip()
        if body.startswith("Error"):
            raise OracleError(body)
        return body
