"""The short observations the CPU training preset uses: fewer search results, no URLs, a brief system prompt, and
plain-body calls. Each is checked through a real environment and the real oracle, not only in isolation."""

from __future__ import annotations

import pytest

import kimi_env
from kimi_env import InvalidArgumentError
from kimi_env.errors import UnknownNameError
from kimi_env.policies import OraclePolicy
from kimi_env.protocol import BriefXMLTagProtocol, XMLTagProtocol, get_protocol
from kimi_env.rollout import evaluate
from kimi_env.tools.base import function_tool
from kimi_env.world.oracle import parse_search


class _EnvTopK(OraclePolicy):
    search_top_k = None  # the environment's search_top_k applies


def _reset(env, seed=0):
    obs, info = env.reset(seed=seed)
    return obs, info


def test_search_top_k_and_urls_shape_results_and_the_oracle_still_solves():
    env = kimi_env.make("kimi_env/SearchQA-v0", split="test", kinds=["lookup", "multihop"], search_top_k=1,
                        search_urls=False, protocol="xml-brief")
    try:
        obs, _ = _reset(env)
        q = env.unwrapped.task.question
        obs, *_ = env.step(f"<search>{q}</search>")
        assert obs.count("\n[") + obs.startswith("[") <= 1 and "[1]" in obs and "[2]" not in obs, obs
        assert "https://" not in obs, obs
        # an explicit top_k still wins over the environment's default
        env.reset(seed=1)
        obs, *_ = env.step('<search>{"queries": ["capital"], "top_k": 3}</search>')
        assert "[3]" in obs, obs
        res = evaluate(env, _EnvTopK(), episodes=60, seed=0)
        assert res["pass@1"] >= 0.85, res  # top-1 retrieval misses a few hops the top-5 oracle would find
        assert res["format_error_rate"] == 0.0
    finally:
        env.close()


def test_default_search_results_are_unchanged():
    env = kimi_env.make("kimi_env/SearchQA-v0", split="test")
    try:
        env.reset(seed=0)
        obs, *_ = env.step('<tool_call>{"name": "search", "arguments": {"queries": ["capital"]}}</tool_call>')
        assert "[5]" in obs and "https://" in obs
    finally:
        env.close()


@pytest.mark.parametrize("bad", [0, 11, "2", True])
def test_bad_search_top_k_is_refused_with_the_value(bad):
    with pytest.raises(InvalidArgumentError, match="search_top_k"):
        kimi_env.make("kimi_env/SearchQA-v0", search_top_k=bad)


def test_parse_search_reads_results_with_and_without_urls():
    with_urls = "Results for \"x\":\n[1] A\nhttps://w.test/a\nGenre: poem.\n\n[2] B\nhttps://w.test/b\nBorn: 1900."
    without = "Results for \"x\":\n[1] A\nGenre: poem.\n\n[2] B\nBorn: 1900."
    assert parse_search(with_urls) == [("A", "https://w.test/a", "Genre: poem."), ("B", "https://w.test/b", "Born: 1900.")]
    assert parse_search(without) == [("A", "", "Genre: poem."), ("B", "", "Born: 1900.")]


@function_tool
def search(queries: list[str], top_k: int = 3) -> str:
    """Search the web.

    Args:
        queries: queries
        top_k: results
    """
    return ",".join(queries)


@function_tool
def open_box(box: int) -> str:
    """Open a box.

    Args:
        box: which box
    """
    return str(box)


def test_xml_writes_plain_bodies_and_reads_them_back():
    p = XMLTagProtocol()
    assert p.format_call("search", {"queries": ["eiffel tower"]}) == "<search>eiffel tower</search>"
    # anything that is not a single text argument stays JSON (two arguments, several queries, a leading brace)
    assert p.format_call("search", {"queries": ["a"], "top_k": 2}).startswith('<search>{"queries"')
    assert p.format_call("search", {"queries": ["a", "b"]}).startswith("<search>{")
    assert p.format_call("search", {"queries": ["{x"]}).startswith("<search>{")
    turn = p.parse("<search>eiffel tower</search>", [search])
    assert turn.tool_calls[0].arguments == {"queries": ["eiffel tower"]}


def test_xml_plain_body_of_an_integer_argument_is_a_number():
    p = XMLTagProtocol()
    assert p.parse("<open_box>2</open_box>", [open_box]).tool_calls[0].arguments == {"box": 2}
    # not a number: left as text, so the argument check names the expected type
    assert p.parse("<open_box>two</open_box>", [open_box]).tool_calls[0].arguments == {"box": "two"}


def test_brief_prompt_is_short_and_parses_like_xml():
    brief, full = get_protocol("xml-brief"), get_protocol("xml")
    assert isinstance(brief, BriefXMLTagProtocol)
    assert len(brief.instructions([search])) < len(full.instructions([search])) / 1.5
    assert "<search>...</search>" in brief.instructions([search])
    text = "<search>a b</search>"
    assert brief.parse(text, [search]).tool_calls[0].arguments == full.parse(text, [search]).tool_calls[0].arguments


def test_snippets_are_clipped_at_a_word_boundary_and_bad_lengths_are_refused():
    env = kimi_env.make("kimi_env/SearchQA-v0", split="test", search_top_k=1, search_urls=False,
                        search_snippet_chars=40, protocol="xml-brief")
    try:
        env.reset(seed=0)
        obs, *_ = env.step("<search>capital</search>")
        snippet = obs.split("\n")[3]  # <information>, Results for, [1] title, snippet
        assert snippet.endswith(" ...") and len(snippet) <= 44, obs
    finally:
        env.close()
    with pytest.raises(InvalidArgumentError, match="search_snippet_chars"):
        kimi_env.make("kimi_env/SearchQA-v0", search_snippet_chars=5)


def test_colorbox_digits_palette_is_solved_by_its_oracle_and_a_bad_palette_is_named():
    from kimi_env.envs.toy import DIGITS, ColorBoxOracle
    from kimi_env.policies import FunctionPolicy

    env = kimi_env.make("kimi_env/ColorBox-v0", protocol="xml-brief", palette="digits")
    try:
        env.reset(seed=3)
        assert env.unwrapped.task.question.startswith("Which digit") and env.unwrapped.task.answers[0] in DIGITS
        res = evaluate(env, FunctionPolicy(ColorBoxOracle.turn, name="oracle"), episodes=20, seed=0)
        assert res["pass@1"] == 1.0, res
    finally:
        env.close()
    with pytest.raises(UnknownNameError, match="palette"):
        kimi_env.make("kimi_env/ColorBox-v0", palette="letters")


def test_colorbox_box_count_is_an_option_and_a_bad_one_is_refused():
    from kimi_env.envs.toy import ColorBoxOracle
    from kimi_env.policies import FunctionPolicy

    env = kimi_env.make("kimi_env/ColorBox-v0", protocol="xml-brief", palette="digits", boxes=7)
    try:
        env.reset(seed=1)
        assert len(env.unwrapped.task.metadata["boxes"]) == 7
        res = evaluate(env, FunctionPolicy(ColorBoxOracle.turn, name="oracle"), episodes=10, seed=0)
        assert res["pass@1"] == 1.0, res
    finally:
        env.close()
    for bad in (0, 11, "4", True):
        with pytest.raises(InvalidArgumentError, match=r"boxes=.*expected an int from 1 to 10"):
            kimi_env.make("kimi_env/ColorBox-v0", palette="digits", boxes=bad)
