"""Small things users notice (issue 14 items 7 and 8): plurals, JSON tool results, protocol hints, tool docs,
task-file errors, and what Gymnasium says without the ``kimi_env:`` prefix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kimi_env import InvalidArgumentError, ToolDefinitionError, XMLTagProtocol, function_tool, load_tasks
from kimi_env.errors import count, plural, unknown_name
from kimi_env.policies import get_policy


def test_plurals_in_messages() -> None:
    with pytest.raises(Exception, match="Valid policies: hf:<model>, module.path:Name, no-tool"):
        get_policy("oracl")
    assert "Valid task families: a, b." in str(unknown_name("task family", "c", ["a", "b"]))
    assert (count(1, "document"), count(2, "document"), count(1, "match"), count(0, "match")) == (
        "1 document", "2 documents", "1 match", "0 matches")
    assert plural("tool") == "tools" and plural("day") == "days"


@function_tool
def facts(name: str) -> dict:
    """Facts about a name.

    Args:
        name: The name.
    """
    return {"name": name, "letters": len(name), "tags": ["short", None], "ok": True}


def test_a_dict_result_is_shown_to_the_agent_as_json() -> None:
    res = facts.call(name="Ana")
    assert res.ok and res.content == '{"name": "Ana", "letters": 3, "tags": ["short", null], "ok": true}'


def test_function_tool_without_a_docstring_is_refused_with_the_fix() -> None:
    def nodoc(x: int) -> int:
        return x

    with pytest.raises(ToolDefinitionError, match="no docstring.*Fix: give it a Google-style docstring"):
        function_tool(nodoc)
    tool = function_tool(nodoc, description="Return x.")   # an explicit description is enough
    assert tool.schema["function"]["description"] == "Return x."


def test_a_hermes_call_under_the_xml_protocol_gets_a_protocol_hint() -> None:
    @function_tool
    def search(query: str) -> str:
        """Search.

        Args:
            query: words
        """
        return query

    turn = XMLTagProtocol().parse('<tool_call>{"name": "search", "arguments": {"query": "x"}}</tool_call>', [search])
    assert len(turn.errors) == 1
    message = turn.errors[0].message
    assert "hermes" in message and "xml protocol" in message and "<search>...</search>" in message, message
    # any other unknown tag keeps the plain unknown-tool message
    other = XMLTagProtocol().parse("<serch>x</serch>", [search]).errors[0].message
    assert "Did you mean 'search'?" in other


def test_a_malformed_tasks_line_says_how_to_fix_it(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"question": "q", "answers": ["a"]}\n{"question": "q2" "answers": ["a"]}\n')
    with pytest.raises(InvalidArgumentError) as err:
        load_tasks(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:2: bad task row: ") and "Fix: write each line as one JSON object" in msg, msg
    path.write_text('{"q": "x", "answers": ["a"]}\n')
    with pytest.raises(InvalidArgumentError) as err:
        load_tasks(path)
    assert str(err.value).count("Fix:") == 1 and ".." not in str(err.value)


def test_without_the_prefix_gymnasium_needs_kimi_env_imported() -> None:
    """What docs/env-api.md says: Gymnasium 1.x loads no plugins, so before `import kimi_env` our namespace is
    unknown to it (its own NamespaceNotFound), and after the import (or with the `kimi_env:` prefix) the id works."""
    code = (
        "import gymnasium as gym\n"
        "try:\n    gym.make('kimi_env/Calculator-v0')\nexcept gym.error.NamespaceNotFound as e:\n    print('NNF', e)\n"
        "import kimi_env\n"
        "gym.make('kimi_env/Calculator-v0').close()\nprint('OK')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("NNF Namespace kimi_env not found") and out.stdout.strip().endswith("OK")
