"""The ``openai:<base url>#<model>`` policy: an OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp's
server, a hosted API) as the policy.

Each turn POSTs ``{base url}/chat/completions`` over aiohttp with the conversation so far (``info["messages"]``) and
the tool schemas (``info["tools"]``, the OpenAI function format), and turns the reply back into our protocol's
text: the message ``content`` as it is, then each native ``tool_calls`` entry written as a call of the
environment's protocol (Hermes ``<tool_call>`` blocks or XML tags), so the environment parses it like any other
turn. Earlier turns go back to the server in its own terms: an assistant turn whose Hermes calls pair up with the
tool results that followed is sent as native ``tool_calls`` with ``tool`` messages answering them; anything else
(XML protocol, combined results) as plain ``assistant`` and ``user`` messages.

Bounded: every request has a total timeout (``timeout`` seconds, connect included); connection errors, timeouts,
429 and 5xx replies are retried ``retries`` times with exponential backoff (a ``Retry-After`` header is honoured up
to ``max_backoff``); other 4xx replies fail at once. Failures raise :class:`OpenAIPolicyError`, which says what was
sent where, what came back and the fix; the rollout engine ends that episode with ``end_reason="policy_error"``.

Options (spec query string or keyword arguments): ``temperature``, ``top_p``, ``max_tokens``, ``seed``,
``timeout``, ``retries``, ``backoff``, ``native_tools`` (send ``tools``; default true), ``api_key`` (else the
``OPENAI_API_KEY`` environment variable, if set), ``max_reply_bytes`` (8 MB: a larger reply is an error). A ``finish_reason`` of ``"length"`` is reported as the turn's
``stop_reason``, so the engine ends the episode under the token-budget rule.

One short-lived HTTP session per request: the policy holds no connection between turns, so it works from any
event loop and leaks nothing when an episode is cancelled.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Any

from ..errors import InvalidArgumentError, KimiEnvError
from .base import Action, Policy
from .random_policy import detect_protocol, format_call

_HERMES_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_HERMES_RESPONSE = re.compile(r"<tool_response>\n(?:\{[^\n]*\}\n)?(.*?)\n</tool_response>", re.DOTALL)
_MAX_ERROR_BODY = 300


class OpenAIPolicyError(KimiEnvError, RuntimeError):
    """The chat-completions server could not give a usable reply (says what, where, and the fix)."""


def _short(text: str, limit: int = _MAX_ERROR_BODY) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_openai_messages(messages: list[dict[str, Any]], protocol: str = "hermes") -> list[dict[str, Any]]:
    """Our transcript as chat-completions messages (see the module docstring).

    >>> msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
    ...         {"role": "assistant", "content": '<tool_call>{"name": "search", "arguments": {"q": 1}}</tool_call>'},
    ...         {"role": "tool", "content": '<tool_response>\\n{"name": "search"}\\nhits\\n</tool_response>'}]
    >>> out = to_openai_messages(msgs)
    >>> out[2]["tool_calls"][0]["function"], out[3]
    ({'name': 'search', 'arguments': '{"q": 1}'}, {'role': 'tool', 'tool_call_id': 'call_2_0', 'content': 'hits'})
    """
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(messages):
        m = messages[i]
        role, content = m.get("role", "user"), str(m.get("content") or "")
        if role == "assistant" and protocol == "hermes":
            calls = _hermes_calls(content)
            following = []
            j = i + 1
            while j < len(messages) and messages[j].get("role") == "tool":
                following.append(messages[j])
                j += 1
            results = _pair_results(calls, following) if calls else None
            if calls and results is not None:
                text = _HERMES_CALL.sub("", content).strip()
                ids = [f"call_{i}_{k}" for k in range(len(calls))]
                out.append({"role": "assistant", "content": text or None, "tool_calls": [
                    {"id": cid, "type": "function",
                     "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)}}
                    for cid, (name, args) in zip(ids, calls)]})
                out.extend({"role": "tool", "tool_call_id": cid, "content": body} for cid, body in zip(ids, results[0]))
                if results[1]:
                    out.append({"role": "user", "content": results[1]})
                i = j
                continue
        if role == "tool":  # a result we could not pair with native calls: plain text from the user side
            role = "user"
        elif role not in ("system", "user", "assistant"):
            role = "user"
        out.append({"role": role, "content": content})
        i += 1
    return out


def _hermes_calls(text: str) -> list[tuple[str, dict[str, Any]]]:
    calls = []
    for body in _HERMES_CALL.findall(text):
        try:
            obj = json.loads(body.strip())
        except ValueError:
            return []
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not isinstance(
                obj.get("arguments", {}), dict):
            return []
        calls.append((obj["name"], obj.get("arguments", {})))
    return calls


def _pair_results(calls: list, following: list[dict[str, Any]]) -> tuple[list[str], str] | None:
    """The result bodies answering ``calls`` (one per call) and any leftover text (format errors), or None."""
    if len(following) == len(calls) and all("<tool_response>" not in str(m.get("content", "")) for m in following):
        return [str(m.get("content") or "") for m in following], ""
    if len(following) == 1:
        text = str(following[0].get("content") or "")
        bodies = _HERMES_RESPONSE.findall(text)
        if len(bodies) == len(calls):
            return bodies, _HERMES_RESPONSE.sub("", text).replace("<tool_response>", "").strip()
    return None


class OpenAIPolicy(Policy):
    """A policy served by an OpenAI-compatible chat-completions endpoint.

    Args:
        base_url: The API root, e.g. ``http://127.0.0.1:8000/v1`` (``/chat/completions`` is appended).
        model: The model name the server expects.
        temperature, top_p, max_tokens, seed: Sampling settings sent with every request (``None``: the server's).
        timeout: Seconds one request may take in total (connect, send, wait, read).
        retries: Extra attempts after a timeout, a connection error, 429 or 5xx.
        backoff: First retry delay in seconds (doubles each retry, capped at ``max_backoff``).
        native_tools: Send the tool schemas as ``tools`` (the server's function calling); when false, the model
            relies on the system prompt's format instructions and its content is used as it is.
        api_key: Bearer token; default: the ``OPENAI_API_KEY`` environment variable when set.
    """

    name = "openai"

    def __init__(self, base_url: str, model: str, *, temperature: float | None = None, top_p: float | None = None,
                 max_tokens: int | None = 512, seed: int | None = None, timeout: float = 120.0, retries: int = 2,
                 backoff: float = 0.5, max_backoff: float = 8.0, native_tools: bool = True,
                 api_key: str | None = None, protocol: str = "auto", max_reply_bytes: int = 8_000_000) -> None:
        problems = []
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            problems.append(f"base url must start with http:// or https://, got {base_url!r}")
        if not isinstance(model, str) or not model.strip():
            problems.append(f"model must be a non-empty name, got {model!r}")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
            problems.append(f"timeout must be positive seconds, got {timeout!r}")
        if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
            problems.append(f"retries must be an int in [0, 10], got {retries!r}")
        if not isinstance(backoff, (int, float)) or backoff < 0 or not isinstance(max_backoff, (int, float)):
            problems.append(f"backoff must be seconds >= 0, got {backoff!r}")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            problems.append(f"max_tokens must be an int >= 1 or None, got {max_tokens!r}")
        if protocol not in ("auto", "hermes", "xml"):
            problems.append(f"protocol must be 'auto', 'hermes' or 'xml', got {protocol!r}")
        if not isinstance(max_reply_bytes, int) or max_reply_bytes < 1000:
            problems.append(f"max_reply_bytes must be an int >= 1000, got {max_reply_bytes!r}")
        if problems:
            raise InvalidArgumentError("openai policy: " + "; ".join(problems) + ". Spec form: "
                                       "openai:http://127.0.0.1:8000/v1#<model>?temperature=0.7&timeout=60")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.model_name = model
        self.temperature, self.top_p, self.max_tokens, self.seed = temperature, top_p, max_tokens, seed
        self.timeout, self.retries = float(timeout), retries
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.native_tools = bool(native_tools)
        self.protocol = protocol
        self.max_reply_bytes = max_reply_bytes
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._tools: list[dict[str, Any]] = []
        self._protocol: str | None = None

    def reset(self, info: dict[str, Any]) -> None:
        """Keep the episode's tool schemas and protocol (the environment gives them at reset only)."""
        self._tools = list(info.get("tools") or [])
        self._protocol = detect_protocol(info)

    def sampling_settings(self) -> dict[str, Any]:
        return {k: v for k, v in (("temperature", self.temperature), ("top_p", self.top_p),
                                  ("max_tokens", self.max_tokens), ("seed", self.seed)) if v is not None}

    def act(self, observation: str, info: dict[str, Any]) -> str:
        """Synchronous form (one request; prefer the rollout engine, which awaits :meth:`aact`)."""
        from ..rollout import _run_sync

        return _run_sync(self.aact(observation, info)).text

    def _protocol_for(self, info: dict[str, Any]) -> str:
        if self.protocol != "auto":
            return self.protocol
        return detect_protocol(info) if info.get("protocol") or not self._protocol else self._protocol

    def request_body(self, info: dict[str, Any]) -> dict[str, Any]:
        protocol = self._protocol_for(info)
        messages = info.get("messages")
        if not isinstance(messages, list) or not messages:
            raise OpenAIPolicyError("openai policy: info['messages'] is missing or empty; expected the environment's "
                                    "transcript (a kimi_env.ToolEnv sets it). Fix: pass the info dict of reset/step.")
        body: dict[str, Any] = {"model": self.model, "messages": to_openai_messages(messages, protocol)}
        tools = info.get("tools") or self._tools
        if self.native_tools and tools:
            body["tools"] = tools
        body.update(self.sampling_settings())
        return body

    async def aact(self, observation: str, info: dict[str, Any]) -> Action:
        reply = await self._post(self.request_body(info))
        return self._to_action(reply, self._protocol_for(info))

    # ------------------------------------------------------------------ HTTP
    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        import aiohttp

        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        payload = json.dumps(body, ensure_ascii=False).encode()
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        last = ""
        for attempt in range(self.retries + 1):
            delay = min(self.max_backoff, self.backoff * (2 ** attempt))
            try:
                async with aiohttp.ClientSession(timeout=timeout) as session:
                    async with session.post(self.url, data=payload, headers=headers) as resp:
                        text = await self._read_bounded(resp)
                        if resp.status == 200:
                            return self._decode(text)
                        last = f"HTTP {resp.status}: {_short(text)}"
                        if resp.status != 429 and resp.status < 500:
                            raise OpenAIPolicyError(
                                f"openai policy: POST {self.url} (model {self.model!r}) returned {last}. Expected "
                                "200 with a chat completion. Fix: check the model name and the base URL"
                                + (", or set native_tools=false if the server does not support tools"
                                   if "tool" in text.lower() else "") + ".")
                        retry_after = resp.headers.get("Retry-After", "")
                        if retry_after.replace(".", "", 1).isdigit():
                            delay = min(self.max_backoff, float(retry_after))
            except asyncio.TimeoutError:
                last = f"no complete reply within {self.timeout:g} s"
            except aiohttp.ClientError as exc:
                last = f"connection failed ({type(exc).__name__}: {_short(str(exc), 160)})"
            if attempt < self.retries:
                await asyncio.sleep(delay)
        raise OpenAIPolicyError(
            f"openai policy: POST {self.url} (model {self.model!r}) failed after {self.retries + 1} attempt(s); "
            f"last: {last}. Fix: check that the server is up and reachable, or raise timeout/retries "
            "(e.g. ?timeout=300&retries=4).")

    async def _read_bounded(self, resp: Any) -> str:
        chunks, size = [], 0
        async for chunk in resp.content.iter_chunked(65536):
            size += len(chunk)
            if size > self.max_reply_bytes:
                raise OpenAIPolicyError(
                    f"openai policy: {self.url} sent a reply larger than {self.max_reply_bytes:,} bytes (HTTP "
                    f"{resp.status}); expected one chat completion. Fix: lower max_tokens, or raise max_reply_bytes.")
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", errors="replace")

    def _decode(self, text: str) -> dict[str, Any]:
        try:
            reply = json.loads(text)
        except ValueError:
            raise OpenAIPolicyError(f"openai policy: {self.url} returned 200 but not JSON: {_short(text)!r}. "
                                    "Fix: point the base URL at the API root (e.g. http://host:8000/v1).") from None
        choices = reply.get("choices") if isinstance(reply, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict) \
                or not isinstance(choices[0].get("message"), dict):
            raise OpenAIPolicyError(f"openai policy: {self.url} returned JSON without choices[0].message: "
                                    f"{_short(text)!r}. Expected a chat completion object.")
        return choices[0]

    def _to_action(self, choice: dict[str, Any], protocol: str) -> Action:
        message = choice["message"]
        parts = []
        content = message.get("content")
        if isinstance(content, list):  # content parts
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if content:
            parts.append(str(content))
        for call in message.get("tool_calls") or []:
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict):
                continue
            name, raw = str(fn.get("name", "")), fn.get("arguments", "{}")
            try:
                args = json.loads(raw) if isinstance(raw, str) else raw
            except ValueError:
                args = None
            if isinstance(args, dict):
                parts.append(format_call(protocol, name, args))
            elif protocol == "xml":  # not JSON: the tag body as the model wrote it
                parts.append(f"<{name}>{raw}</{name}>")
            else:  # the environment reports the malformed arguments to the agent as a format error
                parts.append("<tool_call>" + json.dumps({"name": name, "arguments": raw}, ensure_ascii=False)
                             + "</tool_call>")
        finish = choice.get("finish_reason")
        return Action(text="\n".join(parts), stop_reason="length" if finish == "length" else "stop")
