"""Protocol parsing, directly (the env-level behaviour is in test_env_base.py)."""

from __future__ import annotations

import pytest

from kimi_env.protocol import HermesProtocol, XMLTagProtocol, get_protocol
from kimi_env.tools.base import function_tool


@function_tool
def search(queries: list[str], top_k: int = 3) -> str:
    """Search.

    Args:
        queries: queries
        top_k: results
    """
    return ",".join(queries)


@function_tool
def browse(url: str, page: int = 1) -> str:
    """Browse.

    Args:
        url: address
        page: page number
    """
    return url


TOOLS = [search, browse]


def test_hermes_parses_several_calls_and_ignores_think():
    p = HermesProtocol()
    turn = p.parse(
        '<think><tool_call>{"name": "browse", "arguments": {"url": "ignored"}}</tool_call></think>'
        '<tool_call>{"name": "search", "arguments": {"queries": ["a"]}}</tool_call>\n'
        '<tool_call> {"name": "browse", "arguments": "{\\"url\\": \\"u\\"}"} </tool_call>',
        TOOLS,
    )
    assert not turn.errors and turn.answer is None
    assert [(c.name, c.arguments) for c in turn.tool_calls] == [("search", {"queries": ["a"]}), ("browse", {"url": "u"})]


def test_hermes_answer_and_errors():
    p = HermesProtocol()
    assert p.parse("so <answer> 42 </answer>", TOOLS).answer == "42"
    turn = p.parse('<tool_call>{"name": "search"}</tool_call>', TOOLS)
    assert turn.tool_calls[0].arguments == {}  # missing arguments default to {}; the tool's validation reports it
    turn = p.parse('<tool_call>["search"]</tool_call>', TOOLS)
    assert turn.errors[0].kind == "bad_call"
    turn = p.parse('<tool_call>{"name": "search", "arguments": [1]}</tool_call>', TOOLS)
    assert turn.errors[0].kind == "bad_arguments"
    turn = p.parse("<answer>unclosed", TOOLS)
    assert turn.errors[0].kind == "unclosed_tag"


def test_too_many_calls_are_cut():
    p = HermesProtocol()
    p.max_calls_per_turn = 2
    turn = p.parse('<tool_call>{"name": "browse", "arguments": {"url": "u"}}</tool_call>' * 3, TOOLS)
    assert len(turn.tool_calls) == 2 and turn.errors[0].kind == "too_many_calls"


def test_xml_plain_body_goes_to_the_first_required_parameter():
    p = XMLTagProtocol()
    turn = p.parse("<search>capital of Ilvessa</search><browse>https://x.test/a</browse>", TOOLS)
    assert [(c.name, c.arguments) for c in turn.tool_calls] == [
        ("search", {"queries": ["capital of Ilvessa"]}), ("browse", {"url": "https://x.test/a"})]
    turn = p.parse('<browse>{"url": "u", "page": 2}</browse>', TOOLS)
    assert turn.tool_calls[0].arguments == {"url": "u", "page": 2}
    turn = p.parse("<lookup>x</lookup>", TOOLS)
    assert turn.errors[0].kind == "unknown_tool"
    assert "search" in p.instructions(TOOLS) and "<answer>" in p.instructions(TOOLS)


def test_get_protocol():
    assert isinstance(get_protocol(None), HermesProtocol)
    assert isinstance(get_protocol("xml"), XMLTagProtocol)
    with pytest.raises(KeyError, match="Did you mean 'xml'"):
        get_protocol("xm")


def test_unclosed_think_is_reported_not_silently_empty():
    turn = HermesProtocol().parse('<think>plan <tool_call>{"name": "browse", "arguments": {"url": "u"}}</tool_call>',
                                  TOOLS)
    assert not turn.tool_calls and [e.kind for e in turn.errors] == ["unclosed_tag"]
    assert "<think>" in turn.errors[0].message


def test_answer_tags_inside_a_tool_call_are_arguments_not_answers():
    text = '<tool_call>{"name": "browse", "arguments": {"url": "<answer>x</answer>"}}</tool_call>'
    turn = HermesProtocol().parse(text, TOOLS)
    assert not turn.errors and turn.answer is None and turn.tool_calls[0].arguments == {"url": "<answer>x</answer>"}
    turn = XMLTagProtocol().parse("<browse><answer>x</answer></browse>", TOOLS)
    assert not turn.errors and turn.answer is None and turn.tool_calls[0].arguments == {"url": "<answer>x</answer>"}
