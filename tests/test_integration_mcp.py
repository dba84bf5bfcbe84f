"""MCP both ways, each side against the official ``mcp`` package's other side.

* Client: :class:`MCPTool` against servers written with the official ``MCPServer`` (tests/data/mcp_servers/), also
  inside a real :class:`ToolEnv` episode; dying, hanging and malformed servers give bounded error observations and the
  next call works again.
* Server: ``kimi-env mcp-serve`` (a real subprocess) against the official ``mcp.Client``, over stdio and over
  streamable HTTP on loopback; unknown tools and wrong arguments get the same sentences our environment gives.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402

from kimi_env import Task, ToolEnv  # noqa: E402
from kimi_env.errors import UnknownNameError  # noqa: E402
from kimi_env.integrations.mcp import STATUS_KEY, MCPError, MCPTool, mcp_tools  # noqa: E402
from kimi_env.protocol import HermesProtocol  # noqa: E402
from kimi_env.tools import BrowseTool, PythonTool, SearchTool  # noqa: E402
from kimi_env.web.corpus import Corpus  # noqa: E402
from kimi_env.web.document import Document  # noqa: E402

SERVERS = Path(__file__).parent / "data" / "mcp_servers"
TOY = f"stdio:{sys.executable} {SERVERS / 'toy_server.py'}"
# process start-up on a loaded 2-core machine takes seconds; behaviour, not speed, is under test
SLOW_OK = 90.0


@pytest.fixture(scope="module")
def toy_tools():
    tools = mcp_tools(TOY, timeout=SLOW_OK, connect_timeout=SLOW_OK)
    yield {t.name: t for t in tools}
    for t in tools:
        t.close()


# ---------------------------------------------------------------------- client side: MCPTool
def test_schemas_come_from_the_servers_tool_list(toy_tools):
    assert sorted(toy_tools) == ["add", "die", "hang", "lookup"]
    fn = toy_tools["add"].schema["function"]
    assert fn["name"] == "add" and fn["description"] == "Add two integers."
    assert fn["parameters"]["properties"]["a"]["type"] == "integer"
    assert fn["parameters"]["required"] == ["a", "b"]
    assert {t.connection for t in toy_tools.values()} == {toy_tools["add"].connection}  # one shared connection


def test_calls_return_tool_results_and_arguments_are_validated_by_the_schema(toy_tools):
    res = toy_tools["add"].call(a=2, b=3)
    assert res.ok and res.content == "5" and res.status == "ok"
    bad = toy_tools["add"].call(a="2", b=3)
    assert bad.status == "invalid_arguments" and "argument 'a' must be of type integer, got str" in bad.content
    err = toy_tools["lookup"].call(country="Nowhere")
    assert not err.ok and err.status == "error" and err.content.startswith("Error: lookup:")


def test_mcp_tools_inside_an_environment_episode(toy_tools):
    class ToyEnv(ToolEnv):
        def _make_tools(self):
            return [toy_tools["add"], toy_tools["lookup"]]

        def _sample_task(self):
            return Task(id="t", question="What is the capital of Vurmark?", answers=("Calbaeszein",))

    env = ToyEnv(tool_timeout=SLOW_OK)
    obs, info = env.reset(seed=0)
    assert '"name": "lookup"' in obs and [s["function"]["name"] for s in info["tools"]] == ["add", "lookup"]
    obs, reward, term, trunc, info = env.step(
        '<tool_call>{"name": "lookup", "arguments": {"country": "Vurmark"}}</tool_call>'
        '<tool_call>{"name": "add", "arguments": {"a": 40, "b": 2}}</tool_call>')
    assert "Calbaeszein" in obs and "42" in obs and not (term or trunc)
    assert info["tool_calls"] == {"add": 1, "lookup": 1}
    _, reward, term, _, _ = env.step("<answer>Calbaeszein</answer>")
    assert term and reward == 1.0


def test_a_dying_server_is_an_error_observation_and_the_next_call_restarts_it(toy_tools):
    res = toy_tools["die"].call()
    assert not res.ok and res.status == "internal_error" and "restarted on the next call" in res.content
    assert len(res.content) < 600
    again = toy_tools["add"].call(a=1, b=1)
    assert again.ok and again.content == "2"


def test_a_hanging_server_times_out_and_the_next_call_works(toy_tools):
    hang = toy_tools["hang"]
    hang.set_timeout(3.0)
    try:
        res = hang.call()
    finally:
        hang.set_timeout(SLOW_OK)
    assert res.status == "timeout" and "did not finish within 3 s" in res.content
    again = toy_tools["add"].call(a=20, b=1)
    assert again.ok and again.content == "21"


def test_a_malformed_result_is_a_bounded_error_observation():
    tool = MCPTool(f"stdio:{sys.executable} {SERVERS / 'malformed_proxy.py'}", name="add", timeout=SLOW_OK,
                   connect_timeout=SLOW_OK)
    try:
        res = tool.call(a=1, b=2)
    finally:
        tool.close()
    assert not res.ok and res.status == "internal_error" and "malformed" in res.content
    assert len(res.content) < 600


def test_a_server_that_cannot_start_fails_at_construction_with_the_reason():
    with pytest.raises(MCPError, match="could not connect to MCP server"):
        MCPTool("stdio:/nonexistent/kimi-env-no-such-server", connect_timeout=SLOW_OK)


def test_naming_a_tool_the_server_lacks_says_which_it_has():
    with pytest.raises(UnknownNameError, match="add"):
        MCPTool(TOY, name="ad", connect_timeout=SLOW_OK)
    with pytest.raises(Exception, match="has 4 tools"):
        MCPTool(TOY, connect_timeout=SLOW_OK)


# ---------------------------------------------------------------------- server side: kimi-env mcp-serve
@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    docs = [
        Document(url="https://kimiwiki.test/wiki/Vurmark", title="Vurmark",
                 html="<html><body><h1>Vurmark</h1><p>Vurmark is a country. Its capital is Calbaeszein.</p>"
                      "<p><a href='https://kimiwiki.test/wiki/Calbaeszein'>Calbaeszein</a></p></body></html>"),
        Document(url="https://kimiwiki.test/wiki/Calbaeszein", title="Calbaeszein",
                 html="<html><body><h1>Calbaeszein</h1><p>Calbaeszein is the capital city of Vurmark, founded in "
                      "1642.</p></body></html>"),
    ]
    return Corpus.build(docs, tmp_path_factory.mktemp("mcp") / "corpus").path


def _server_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in ("KIMI_ENV_CACHE", "PATH", "HOME", "PYTHONPATH")}


def _stdio_params(corpus_dir) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "kimi_env.cli", "mcp-serve", "--corpus",
                                                               str(corpus_dir)], env=_server_env())


async def _exercise(client: Client, corpus_dir) -> None:
    listed = await client.list_tools()
    assert [t.name for t in listed.tools] == ["search", "browse", "python"]
    ours = SearchTool(Corpus.open(corpus_dir))
    assert listed.tools[0].input_schema == ours.parameters

    res = await client.call_tool("search", {"queries": ["Vurmark capital"]})
    assert not res.is_error and "https://kimiwiki.test/wiki/Vurmark" in res.content[0].text
    assert res.meta[STATUS_KEY] == "ok"

    res = await client.call_tool("browse", {"url": "https://kimiwiki.test/wiki/Calbaeszein"})
    assert not res.is_error and "founded in 1642" in res.content[0].text

    res = await client.call_tool("python", {"code": "print(6 * 7)"})
    assert not res.is_error and res.content[0].text.strip() == "42"

    # wrong arguments: the same sentence the tool gives inside an environment
    res = await client.call_tool("search", {"querys": ["Vurmark"]})
    assert res.is_error and res.meta[STATUS_KEY] == "invalid_arguments"
    assert res.content[0].text == ours.call(querys=["Vurmark"]).content

    # unknown tool: the same sentence our environment's protocol gives the agent
    res = await client.call_tool("serch", {"queries": ["x"]})
    assert res.is_error and res.meta[STATUS_KEY] == "unknown_tool"
    corpus = Corpus.open(corpus_dir)
    env_tools = [ours, BrowseTool(corpus), PythonTool()]
    env_error = HermesProtocol().parse('<tool_call>{"name": "serch", "arguments": {}}</tool_call>',
                                       env_tools).errors[0]
    assert env_error.kind == "unknown_tool" and res.content[0].text == "Error: " + env_error.message
    for t in env_tools:
        t.close()


def test_mcp_serve_over_stdio_with_the_official_client(corpus_dir):
    async def main():
        async with Client(_stdio_params(corpus_dir), read_timeout_seconds=SLOW_OK) as client:
            await _exercise(client, corpus_dir)

    asyncio.run(asyncio.wait_for(main(), 240))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mcp_serve_over_streamable_http_on_loopback(corpus_dir):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kimi_env.cli", "mcp-serve", "--corpus", str(corpus_dir),
                             "--transport", "http", "--port", str(port)], env={**os.environ},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "mcp-serve did not open its port"
                time.sleep(0.5)

        async def main():
            async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=SLOW_OK) as client:
                await _exercise(client, corpus_dir)

        asyncio.run(asyncio.wait_for(main(), 240))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_mcp_serve_refuses_a_non_loopback_host(corpus_dir, capsys):
    from kimi_env.cli import main

    rc = main(["mcp-serve", "--corpus", str(corpus_dir), "--transport", "http", "--host", "0.0.0.0"])
    assert rc == 2 and "loopback only" in capsys.readouterr().err


def test_mcp_serve_refuses_an_unknown_tool_name(corpus_dir, capsys):
    from kimi_env.cli import main

    rc = main(["mcp-serve", "--corpus", str(corpus_dir), "--tools", "search,serch"])
    assert rc == 2 and "serch" in capsys.readouterr().err
