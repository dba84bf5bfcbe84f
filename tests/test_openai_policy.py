"""The ``openai:`` policy against a real aiohttp server on loopback that speaks the chat-completions API.

The server (started by the test, in its own thread and event loop) plays by model name: ``agent`` is a scripted
calculator agent that answers with native ``tool_calls`` and then with content; ``flaky`` fails once with 500;
``down`` always 500; ``hang`` never replies; ``refuse`` is a 400; ``garbage`` a 200 that is not JSON; ``long`` stops
at the token limit.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading

import pytest
from aiohttp import web

import kimi_env
from kimi_env.policies import get_policy
from kimi_env.policies.openai import OpenAIPolicy, OpenAIPolicyError
from kimi_env.rollout import EpisodeJob, RolloutEngine


class ChatServer:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.counts: dict[str, int] = {}
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=1.0)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._started.set()
        self.loop.run_forever()

    def __enter__(self) -> ChatServer:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @staticmethod
    def completion(message: dict, finish: str = "stop") -> web.Response:
        return web.json_response({"id": "c1", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}]})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        model = body["model"]
        n = self.counts[model] = self.counts.get(model, 0) + 1
        if model == "hang":
            await asyncio.sleep(3600)
        if model == "down" or (model == "flaky" and n == 1):
            return web.Response(status=500, text="internal error: out of memory")
        if model == "refuse":
            return web.json_response({"error": {"message": "tools are not supported by this server"}}, status=400)
        if model == "huge":
            return web.Response(text="x" * 3_000_000)
        if model == "garbage":
            return web.Response(text="<html>not an API</html>")
        if model == "long":
            return self.completion({"content": "I will keep talking and"}, finish="length")
        if model == "flaky":
            return self.completion({"content": "<answer>42</answer>"})
        # "agent": compute with the calculator tool, then answer with its result
        last = body["messages"][-1]
        if last["role"] == "tool":
            return self.completion({"content": f"The result is in. <answer>{last['content'].strip()}</answer>"})
        expr = re.search(r"What is (.+)\? Give", body["messages"][1]["content"]).group(1)
        return self.completion({"content": None, "tool_calls": [{
            "id": "call_x", "type": "function",
            "function": {"name": "calculator", "arguments": json.dumps({"expression": expr})}}]}, finish="tool_calls")


@pytest.fixture()
def server():
    with ChatServer() as srv:
        yield srv


def test_a_tool_calls_reply_becomes_our_protocol_and_episodes_are_solved(server):
    policy = get_policy(f"openai:{server.base}#agent?temperature=0&max_tokens=64")
    engine = RolloutEngine("kimi_env/Calculator-v0", policy, concurrency=3)
    trajs = engine.run([EpisodeJob(seed=s) for s in range(3)])
    assert [t.error for t in trajs] == [None] * 3
    assert all(t.reward == 1.0 and t.end_reason == "answer" for t in trajs), [t.turns for t in trajs]
    first = trajs[0].turns[0].action
    assert first.startswith('<tool_call>{"name": "calculator", "arguments": {"expression": ')
    assert trajs[0].model == "agent" and trajs[0].sampling == {"temperature": 0, "max_tokens": 64}
    # what the server got: the tool schemas, the sampling settings, and on turn 2 the earlier call as native
    # tool_calls answered by a tool message carrying the result
    req = [r for r in server.requests if len(r["messages"]) > 2][0]
    assert req["tools"][0]["function"]["name"] == "calculator"
    assert req["temperature"] == 0 and req["max_tokens"] == 64
    assistant, tool = req["messages"][2], req["messages"][3]
    assert assistant["tool_calls"][0]["function"]["name"] == "calculator"
    assert tool["role"] == "tool" and tool["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert "<tool_response>" not in tool["content"]


def test_xml_protocol_gets_xml_calls(server):
    env = kimi_env.make("kimi_env/Calculator-v0", protocol="xml")
    try:
        obs, info = env.reset(seed=1)
        act = asyncio.run(OpenAIPolicy(server.base, "agent").aact(obs, info))
        assert act.text.startswith("<calculator>{\"expression\": ")
        obs, reward, terminated, truncated, info = env.step(act.text)
        assert info["tool_calls"] == {"calculator": 1} and not info["last_errors"]
    finally:
        env.close()


def _info() -> dict:
    return {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}], "tools": []}


def test_a_500_is_retried_and_then_reported(server):
    act = asyncio.run(OpenAIPolicy(server.base, "flaky", backoff=0.01).aact("", _info()))
    assert act.text == "<answer>42</answer>" and server.counts["flaky"] == 2
    with pytest.raises(OpenAIPolicyError, match=r"failed after 3 attempt\(s\); last: HTTP 500: internal error"):
        asyncio.run(OpenAIPolicy(server.base, "down", retries=2, backoff=0.01).aact("", _info()))
    assert server.counts["down"] == 3


def test_a_hanging_server_times_out_and_ends_only_its_episode(server):
    with pytest.raises(OpenAIPolicyError, match=r"no complete reply within 0.3 s.*Fix: check that the server"):
        asyncio.run(OpenAIPolicy(server.base, "hang", timeout=0.3, retries=1, backoff=0.01).aact("", _info()))
    assert server.counts["hang"] == 2
    engine = RolloutEngine("kimi_env/Calculator-v0", OpenAIPolicy(server.base, "hang", timeout=0.3, retries=0),
                           concurrency=2)
    trajs = engine.run([EpisodeJob(seed=s) for s in range(3)])
    assert len(trajs) == 3
    assert all(t.end_reason == "policy_error" and "no complete reply" in t.error for t in trajs)


def test_client_errors_fail_at_once_with_the_fix(server):
    with pytest.raises(OpenAIPolicyError, match=r"returned HTTP 400.*native_tools=false"):
        asyncio.run(OpenAIPolicy(server.base, "refuse", retries=3).aact("", _info()))
    assert server.counts["refuse"] == 1
    with pytest.raises(OpenAIPolicyError, match="returned 200 but not JSON"):
        asyncio.run(OpenAIPolicy(server.base, "garbage").aact("", _info()))
    with pytest.raises(OpenAIPolicyError, match="reply larger than 1,000,000 bytes"):
        asyncio.run(OpenAIPolicy(server.base, "huge", max_reply_bytes=1_000_000).aact("", _info()))
    with pytest.raises(OpenAIPolicyError, match="connection failed"):
        asyncio.run(OpenAIPolicy("http://127.0.0.1:9/v1", "agent", retries=0).aact("", _info()))
    with pytest.raises(kimi_env.InvalidArgumentError, match="expected openai:<base url>#<model>"):
        get_policy("openai:http://127.0.0.1:8000/v1")
    with pytest.raises(kimi_env.InvalidArgumentError, match="timeout must be positive"):
        get_policy("openai:http://127.0.0.1:8000/v1#m?timeout=0")


def test_a_length_finish_is_the_token_budget(server):
    engine = RolloutEngine("kimi_env/Calculator-v0", OpenAIPolicy(server.base, "long"), concurrency=1)
    (traj,) = engine.run([EpisodeJob(seed=0)])
    assert traj.end_reason == "token_budget" and traj.turns[0].stop_reason == "length"
