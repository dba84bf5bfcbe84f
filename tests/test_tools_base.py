"""The Tool contract: derived schemas, validation, timeout, bounded output, never raising."""

from __future__ import annotations

import asyncio
from typing import Literal, Optional

import pytest

from kimi_env import Tool, ToolDefinitionError, ToolResult, ToolStatus, function_tool
from kimi_env.schema import function_schema, validate_arguments
from kimi_env.tools import truncate


class Search(Tool):
    name = "search"
    param_constraints = {"queries": {"maxItems": 3}, "top_k": {"minimum": 1, "maximum": 10}}

    async def run(self, queries: list[str], top_k: int = 5, mode: Literal["bm25", "dense"] = "bm25",
                  site: Optional[str] = None) -> str:
        """Search the offline web.

        Several queries run at once.

        Args:
            queries: One or more queries,
                run concurrently.
            top_k: Results per query.
            mode: Retrieval mode.
            site: Restrict to one host.
        """
        return f"{queries} {top_k} {mode} {site}"


def test_schema_is_derived_from_signature_and_docstring():
    schema = Search().schema
    assert schema["type"] == "function"
    fn = schema["function"]
    assert fn["name"] == "search"
    assert fn["description"] == "Search the offline web.\n\nSeveral queries run at once."
    props = fn["parameters"]["properties"]
    assert props["queries"] == {"type": "array", "items": {"type": "string"},
                                "description": "One or more queries, run concurrently.", "maxItems": 3}
    assert props["top_k"] == {"type": "integer", "description": "Results per query.", "default": 5,
                              "minimum": 1, "maximum": 10}
    assert props["mode"]["enum"] == ["bm25", "dense"] and props["mode"]["type"] == "string"
    assert props["site"] == {"type": "string", "description": "Restrict to one host."}
    assert fn["parameters"]["required"] == ["queries"]


def test_missing_type_hint_is_a_definition_error():
    def f(x):
        """Doc."""

    with pytest.raises(ToolDefinitionError, match="parameter 'x' has no type hint"):
        function_schema(f)

    class Bad(Tool):
        name = "bad"

        async def run(self, x: object) -> str:
            return ""

    with pytest.raises(ToolDefinitionError, match="cannot derive a JSON schema"):
        Bad()


@pytest.mark.parametrize(
    "args, message",
    [
        ({}, "missing required argument 'queries'"),
        ({"queries": "a"}, "argument 'queries' must be of type array, got str"),
        ({"queries": ["a", 1]}, "argument 'queries'[1] must be of type string"),
        ({"queries": ["a"] * 4}, "at most 3 items, got 4"),
        ({"queries": ["a"], "top_k": 0}, "must be >= 1, got 0"),
        ({"queries": ["a"], "top_k": True}, "must be of type integer, got bool"),
        ({"queries": ["a"], "mode": "fuzzy"}, "must be one of ['bm25', 'dense']"),
        ({"querys": ["a"]}, "did you mean 'queries'?"),
    ],
)
def test_invalid_arguments_are_results_not_exceptions(args, message):
    res = Search().call(**args)
    assert not res.ok and res.status == ToolStatus.INVALID_ARGUMENTS
    assert message in res.error and res.content.startswith("Error: ")


def test_valid_call_and_optional_none():
    res = Search().call(queries=["a"], site=None)
    assert res.ok and res.content == "['a'] 5 bm25 None" and res.status == "ok"
    assert "elapsed_s" in res.meta


def test_timeout_and_crash_and_wrong_return_type():
    class Slow(Tool):
        name = "slow"

        async def run(self, seconds: float) -> str:
            """Sleep.

            Args:
                seconds: how long
            """
            await asyncio.sleep(seconds)
            return "done"

    class Crash(Tool):
        name = "crash"

        async def run(self) -> str:
            """Crash."""
            raise ValueError("boom " * 1000)

    class Wrong(Tool):
        name = "wrong"

        async def run(self) -> str:
            """Wrong type."""
            return 42  # type: ignore[return-value]

    res = Slow(timeout=0.2).call(seconds=5)
    assert res.status == ToolStatus.TIMEOUT and "0.2 s" in res.error
    assert Slow(timeout=1).call(seconds=0).content == "done"
    res = Crash().call()
    assert res.status == ToolStatus.INTERNAL and "ValueError" in res.error and len(res.error) < 500
    assert Wrong().call().status == ToolStatus.INTERNAL


def test_output_is_truncated_with_a_marker():
    @function_tool(max_output_chars=200)
    def big(n: int) -> str:
        """Big output.

        Args:
            n: size
        """
        return "x" * n

    res = big.call(n=10_000)
    assert len(res.content) <= 200 and "characters of output cut" in res.content
    assert res.meta["truncated_chars"] == 10_000 - res.content.index("\n")


def test_truncate_never_exceeds_limit():
    for n in (0, 50, 99, 100, 101, 10_000, 1_000_000):
        for limit in (60, 100, 1000):
            out, cut = truncate("a" * n, limit)
            assert len(out) <= limit
            assert cut == (0 if n <= limit else n - out.index("\n"))


def test_async_function_tool_and_tool_result_passthrough():
    @function_tool(name="lookup")
    async def _lookup(key: str) -> ToolResult:
        """Look up.

        Args:
            key: key
        """
        return ToolResult.failure(f"no such key {key}") if key != "a" else ToolResult.success("A", urls=["u"])

    assert _lookup.name == "lookup"
    assert _lookup.call(key="a").meta["urls"] == ["u"]
    assert _lookup.call(key="b").status == ToolStatus.ERROR


def test_validate_arguments_rejects_non_objects():
    assert "must be a JSON object" in validate_arguments(["a"], {"properties": {}})


def test_tool_without_name_or_run():
    class NoName(Tool):
        async def run(self) -> str:
            """x"""
            return ""

    with pytest.raises(ToolDefinitionError, match="no `name`"):
        NoName()

    class NoRun(Tool):
        name = "norun"

    with pytest.raises(ToolDefinitionError, match="does not implement"):
        NoRun()


def test_null_for_an_optional_argument_means_its_default():
    res = Search().call(queries=["a"], top_k=None, mode=None)
    assert res.ok and res.content == "['a'] 5 bm25 None"
    res = Search().call(queries=None)
    assert res.status == ToolStatus.INVALID_ARGUMENTS and "queries" in res.error
