"""Chat-template families: the tool-call protocol each family's models write, and an episode as structured chat
messages for ``tokenizer.apply_chat_template(messages, tools=...)``.

| family | models | a tool call as the model writes it | protocol |
|---|---|---|---|
| ``chatml`` | Qwen 2.5/3, Hermes, SmolLM2 with a tool-aware ChatML template | ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` | :class:`~kimi_env.HermesProtocol` |
| ``llama3`` | Llama 3.1 / 3.2 / 3.3 | ``{"name": ..., "parameters": {...}}`` (optionally after ``<|python_tag|>``) | :class:`Llama3JSONProtocol` |
| ``mistral`` | Mistral, Mixtral (v3 tokenizer templates) | ``[TOOL_CALLS][{"name": ..., "arguments": {...}}]`` | :class:`MistralProtocol` |

Make the environment with the family's protocol (``kimi_env.make(id, protocol=protocol_for(tokenizer))``) so the
environment parses what the model writes; render training text with :func:`render_episode`, which turns the
episode's messages into ``tool_calls`` / ``tool`` messages so the template itself writes calls and results in its
own format. :func:`check_template_renders_tools` fails with the reason when a template silently ignores ``tools=``
(SmolLM2's own template does).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidArgumentError, unknown_name
from ..protocol import FormatError, HermesProtocol, ParsedTurn, Protocol, ToolCall, _snippet
from ..tools.base import Tool, ToolResult

__all__ = ["Llama3JSONProtocol", "MistralProtocol", "FAMILIES", "detect_family", "protocol_for",
           "to_chat_messages", "render_episode", "check_template_renders_tools", "split_results"]

_RESPONSE = re.compile(r"<tool_response>\n([^\n]*)\n(.*?)\n</tool_response>", re.DOTALL)


def split_results(observation: str) -> list[tuple[str, str]]:
    """(tool name, content) of each ``<tool_response>`` block of an observation, in call order."""
    out = []
    for head, body in _RESPONSE.findall(observation):
        try:
            name = str(json.loads(head).get("name", ""))
        except (ValueError, AttributeError):
            name = ""
        out.append((name, body))
    return out


class _JSONCallsProtocol(Protocol):
    """Shared parsing of JSON tool-call objects; results render as ``<tool_response>`` blocks like Hermes."""

    #: key of the arguments object in a call (the family's own); "arguments" is accepted too
    args_key = "arguments"

    def render_results(self, results: Sequence[tuple[ToolCall, ToolResult]], errors: Sequence[FormatError]) -> str:
        return HermesProtocol().render_results(results, errors)

    def _to_call(self, obj: Any, i: int, tools: Sequence[Tool], parsed: ParsedTurn) -> ToolCall | None:
        expected = f'expected {{"name": <tool-name>, "{self.args_key}": {{...}}}}'
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            parsed.errors.append(FormatError("bad_call", f"tool call {i + 1}: {expected}, got {_snippet(json.dumps(obj))}."))
            return None
        args = obj.get(self.args_key, obj.get("arguments", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except (ValueError, RecursionError):
                pass
        if not isinstance(args, dict):
            parsed.errors.append(FormatError(
                "bad_arguments", f"tool call {i + 1}: {self.args_key} must be a JSON object, got {_snippet(str(args))}."))
            return None
        err = self._check_tool(obj["name"], tools)
        if err:
            parsed.errors.append(err)
            return None
        return ToolCall(obj["name"], args, id=str(obj.get("id") or f"call_{i}"))

    def _schemas(self, tools: Sequence[Tool]) -> str:
        return "\n".join(json.dumps(t.schema, ensure_ascii=False) for t in tools)


class Llama3JSONProtocol(_JSONCallsProtocol):
    """Llama 3.1-style JSON tool calls: the turn is ``{"name": ..., "parameters": {...}}`` (optionally after
    ``<|python_tag|>``; several calls separated by ``;`` or new lines); ``<answer>...</answer>`` ends the episode.

    Llama 3.1's template renders one call per assistant message, so one call per turn is the default."""

    name = "llama3"
    args_key = "parameters"
    max_calls_per_turn = 1

    def instructions(self, tools: Sequence[Tool]) -> str:
        return (
            "You are a research agent. Use the tools to find and check facts, then answer.\n"
            "To call a function, respond with a JSON object in the format "
            '{"name": function name, "parameters": dictionary of argument name and its value}, and nothing else.\n'
            "Tool results come back inside <tool_response></tool_response> tags.\n"
            "When you know the answer, write it alone inside <answer></answer> tags, without a function call.\n"
            f"Available functions:\n{self._schemas(tools)}"
        )

    def parse(self, text: str, tools: Sequence[Tool]) -> ParsedTurn:
        parsed = ParsedTurn()
        text = self._strip_think(text, parsed).replace("<|python_tag|>", "")
        body = text
        answer_free = re.sub(r"<answer>.*?</answer>", "", text, flags=re.DOTALL)
        decoder = json.JSONDecoder()
        objects: list[Any] = []
        pos = 0
        while (start := answer_free.find("{", pos)) != -1:
            try:
                obj, end = decoder.raw_decode(answer_free, start)
            except (ValueError, RecursionError):
                pos = start + 1
                continue
            if isinstance(obj, dict) and "name" in obj:
                objects.append(obj)
            pos = end
        self._split_answer(body, parsed)
        if not objects and '"name"' in answer_free and parsed.answer is None:
            parsed.errors.append(FormatError(
                "invalid_json", 'found "name" but no complete JSON object {"name": ..., "parameters": {...}}; '
                f"got {_snippet(answer_free)}."))
        for i, obj in enumerate(objects):
            call = self._to_call(obj, i, tools, parsed)
            if call is not None:
                parsed.tool_calls.append(call)
        return self._finish(parsed, text)


class MistralProtocol(_JSONCallsProtocol):
    """Mistral-style tool calls: ``[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]``; ``<answer>`` ends."""

    name = "mistral"
    _MARK = "[TOOL_CALLS]"

    def instructions(self, tools: Sequence[Tool]) -> str:
        return (
            "You are a research agent. Use the tools to find and check facts, then answer.\n"
            'To call tools, write [TOOL_CALLS] followed by a JSON list of calls: [TOOL_CALLS][{"name": <tool-name>, '
            '"arguments": <args-json-object>}]. Several calls in one list run concurrently.\n'
            "Tool results come back inside <tool_response></tool_response> tags.\n"
            "When you know the answer, write it alone inside <answer></answer> tags, without tool calls.\n"
            f"Available tools:\n{self._schemas(tools)}"
        )

    def parse(self, text: str, tools: Sequence[Tool]) -> ParsedTurn:
        parsed = ParsedTurn()
        text = self._strip_think(text, parsed)
        head, mark, tail = text.partition(self._MARK)
        self._split_answer(head if mark else text, parsed)
        if mark:
            try:
                calls, _end = json.JSONDecoder().raw_decode(tail.lstrip())
            except (ValueError, RecursionError) as exc:
                msg = str(exc).splitlines()[0][:120] if not isinstance(exc, RecursionError) else "nested too deeply"
                parsed.errors.append(FormatError(
                    "invalid_json", f'expected a JSON list after [TOOL_CALLS], e.g. [{{"name": "search", '
                    f'"arguments": {{...}}}}], got {_snippet(tail)} ({msg}).'))
                return self._finish(parsed, text)
            if isinstance(calls, dict):
                calls = [calls]
            if not isinstance(calls, list):
                parsed.errors.append(FormatError("bad_call", f"expected a JSON list of calls after [TOOL_CALLS], got "
                                                 f"{_snippet(json.dumps(calls))}."))
                return self._finish(parsed, text)
            for i, obj in enumerate(calls):
                call = self._to_call(obj, i, tools, parsed)
                if call is not None:
                    parsed.tool_calls.append(call)
        return self._finish(parsed, text)


FAMILIES: dict[str, type[Protocol]] = {"chatml": HermesProtocol, "llama3": Llama3JSONProtocol,
                                       "mistral": MistralProtocol}


def _template_text(tokenizer_or_template: Any) -> str:
    if isinstance(tokenizer_or_template, str):
        return tokenizer_or_template
    template = getattr(tokenizer_or_template, "chat_template", None)
    if isinstance(template, Mapping):
        template = template.get("tool_use") or template.get("default") or next(iter(template.values()), None)
    if not isinstance(template, str):
        raise InvalidArgumentError(
            f"{type(tokenizer_or_template).__name__} has no chat template. Fix: set tokenizer.chat_template "
            "(a Jinja string) or pass the family name ('chatml', 'llama3', 'mistral')."
        )
    return template


def detect_family(tokenizer_or_template: Any) -> str:
    """The family of a tokenizer's chat template (or of a template string), from the markers it writes."""
    text = _template_text(tokenizer_or_template)
    if "[TOOL_CALLS]" in text or "[AVAILABLE_TOOLS]" in text:
        return "mistral"
    if "<|start_header_id|>" in text:
        return "llama3"
    if "<|im_start|>" in text:
        return "chatml"
    raise InvalidArgumentError(
        "could not tell the chat template's family: expected markers of ChatML (<|im_start|>), Llama 3 "
        "(<|start_header_id|>) or Mistral ([TOOL_CALLS]), found none. Fix: pass the family name, "
        f"one of {sorted(FAMILIES)}."
    )


def protocol_for(tokenizer_or_family: Any) -> Protocol:
    """The protocol that parses what models of this template family write (a tokenizer, a template or a name)."""
    if isinstance(tokenizer_or_family, str) and tokenizer_or_family in FAMILIES:
        return FAMILIES[tokenizer_or_family]()
    if isinstance(tokenizer_or_family, str) and "{" not in tokenizer_or_family:
        raise unknown_name("chat template family", tokenizer_or_family, FAMILIES)
    return FAMILIES[detect_family(tokenizer_or_family)]()


def to_chat_messages(messages: Sequence[Mapping[str, str]], protocol: Protocol, tools: Sequence[Tool], *,
                     system: str | None = None) -> list[dict[str, Any]]:
    """An episode's ``info["messages"]`` as structured chat messages: assistant turns with parsed calls become
    ``{"role": "assistant", "content": <text around the calls>, "tool_calls": [...]}``; each observation becomes
    one ``{"role": "tool", "name", "tool_call_id", "content"}`` message per call. ``system`` replaces the system
    message (use ``""`` to drop it: with ``tools=`` the template itself describes the tools)."""
    out: list[dict[str, Any]] = []
    pending: list[ToolCall] = []
    for msg in messages:
        role, content = msg["role"], msg["content"]
        if role == "system":
            if system is None:
                out.append({"role": "system", "content": content})
            elif system:
                out.append({"role": "system", "content": system})
        elif role == "assistant":
            parsed = protocol.parse(content, tools)
            pending = list(parsed.tool_calls)
            if pending:
                out.append({"role": "assistant", "content": _text_without_calls(content, protocol),
                            "tool_calls": [{"id": _call_id(c, i), "type": "function",
                                            "function": {"name": c.name, "arguments": c.arguments}}
                                           for i, c in enumerate(pending)]})
            else:
                out.append({"role": "assistant", "content": content})
        elif role == protocol.observation_role and pending:
            results = split_results(content)
            for i, call in enumerate(pending):
                body = results[i][1] if i < len(results) else content
                out.append({"role": "tool", "name": call.name, "tool_call_id": _call_id(call, i), "content": body})
            pending = []
        else:
            out.append({"role": role, "content": content})
    return out


def _call_id(call: ToolCall, i: int) -> str:
    # Mistral templates require 9 alphanumeric characters
    raw = re.sub(r"[^A-Za-z0-9]", "", call.id or f"call{i}")
    return (raw + "000000000")[:9]


def _text_without_calls(text: str, protocol: Protocol) -> str:
    if isinstance(protocol, HermesProtocol):
        return re.sub(r"<tool_call>.*?</tool_call>", "", text, flags=re.DOTALL).strip()
    if isinstance(protocol, MistralProtocol):
        return text.partition("[TOOL_CALLS]")[0].strip()
    if isinstance(protocol, Llama3JSONProtocol):
        return ""
    return text


def render_episode(tokenizer: Any, messages: Sequence[Mapping[str, str]], tools: Sequence[Tool], *,
                   protocol: Protocol | None = None, system: str | None = "", add_generation_prompt: bool = False,
                   **kwargs: Any) -> str:
    """Render an episode through ``tokenizer.apply_chat_template(..., tools=[schemas])`` as text."""
    protocol = protocol or protocol_for(tokenizer)
    chat = to_chat_messages(messages, protocol, tools, system=system)
    return tokenizer.apply_chat_template(chat, tools=[t.schema for t in tools], tokenize=False,
                                         add_generation_prompt=add_generation_prompt, **kwargs)


def check_template_renders_tools(tokenizer: Any, tools: Sequence[Tool]) -> None:
    """Raise :class:`InvalidArgumentError` when ``apply_chat_template(tools=...)`` leaves the tools out (the
    template has no tool support, so the model would never see the schemas)."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tools=[t.schema for t in tools],
                                         tokenize=False)
    missing = [t.name for t in tools if f'"{t.name}"' not in text]
    if missing:
        raise InvalidArgumentError(
            f"the tokenizer's chat template ignores tools=: the rendered prompt does not name {missing}. "
            "Fix: use a tool-aware template of the model's family (e.g. TRL's trl/chat_templates/qwen2_5.jinja for "
            "ChatML models: tokenizer.chat_template = open(path).read())."
        )
