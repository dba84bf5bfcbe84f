"""Tool-call protocols: how a policy's turn (free text) becomes tool calls or a final answer, and how tool results
become the next observation.

A protocol is a pluggable object. Two ship:

* :class:`HermesProtocol` (default): ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks, as in the
  Hermes/Qwen chat templates; several blocks in one turn run concurrently; ``<answer>...</answer>`` ends the episode.
* :class:`XMLTagProtocol`: one tag per tool, as Search-R1 uses: ``<search>query</search>``; the tag body is either a
  JSON object of arguments or plain text given to the tool's first required parameter.

Both ignore anything inside ``<think>...</think>``. Parsing never raises: problems come back as
:class:`FormatError` values whose messages say what was expected and what came.

**Transcript and chat templates.** A protocol also decides the messages a step appends to ``info["messages"]``
(:meth:`Protocol.result_messages`). By default a step adds one message holding the observation text (Hermes: role
``tool``, every result already wrapped in ``<tool_response>``; XML: role ``user``). For chat templates that wrap
tool responses and list the tools themselves (Qwen/ChatML-style templates given ``tools=``), use
``HermesProtocol(tool_messages="per_call", tools_in_prompt=False)``: one ``role="tool"`` message per call with the
raw result, its ``tool_call_id`` and ``name`` (format errors go in a ``user`` message after them), and a system
prompt without the tool schemas and call format (pass ``info["tools"]`` to the template instead).
Scripted policies write calls with :meth:`Protocol.format_call` and read results with
:meth:`Protocol.result_bodies`, so they work under any protocol.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidArgumentError, unknown_name
from .tools.base import Tool, ToolResult

_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


@dataclass(frozen=True)
class ToolCall:
    """One parsed call: the tool's name and its arguments (not yet validated against the schema)."""

    name: str
    arguments: dict[str, Any]
    id: str = ""


@dataclass(frozen=True)
class FormatError:
    """A problem with the form of a turn. ``kind`` is a short code; ``message`` is shown to the agent."""

    kind: str
    message: str


@dataclass
class ParsedTurn:
    """The result of parsing one turn: tool calls, or an answer, and any format errors."""

    tool_calls: list[ToolCall] = field(default_factory=list)
    answer: str | None = None
    errors: list[FormatError] = field(default_factory=list)


def _snippet(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


class Protocol(ABC):
    """Base class of tool-call protocols."""

    name: str = ""
    #: chat role of the observation message appended to ``info["messages"]``
    observation_role: str = "tool"
    #: the most tool calls one turn may make; extra calls are a format error and are not run
    max_calls_per_turn: int = 8

    @abstractmethod
    def instructions(self, tools: Sequence[Tool]) -> str:
        """The system-prompt text that describes the tools and the format."""

    @abstractmethod
    def parse(self, text: str, tools: Sequence[Tool]) -> ParsedTurn:
        """Parse a turn. Must not raise."""

    @abstractmethod
    def render_results(self, results: Sequence[tuple[ToolCall, ToolResult]], errors: Sequence[FormatError]) -> str:
        """The observation text for a turn's results and format errors."""

    def result_messages(
        self, results: Sequence[tuple[ToolCall, ToolResult]], errors: Sequence[FormatError]
    ) -> list[dict[str, Any]] | None:
        """The messages a step appends to the transcript; ``None``: one ``observation_role`` message holding the
        observation text."""
        return None

    def format_call(self, name: str, arguments: dict[str, Any]) -> str:
        """The text of one tool call in this protocol (what a scripted policy writes)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement format_call(name, arguments); "
                                  "scripted policies such as the oracle need it.")

    def result_bodies(self, observation: str) -> list[str]:
        """The result contents in an observation, in call order (what a scripted policy reads)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement result_bodies(observation); "
                                  "scripted policies such as the oracle need it.")

    @staticmethod
    def _strip_think(text: str, parsed: ParsedTurn) -> str:
        """Remove ``<think>...</think>``; an unclosed ``<think>`` hides the rest of the turn, which is reported."""
        stripped = _THINK.sub("", text)
        last_open = text.rfind("<think>")
        if last_open != -1 and text.find("</think>", last_open) == -1:
            parsed.errors.append(FormatError(
                "unclosed_tag", "found <think> without </think>; everything after it was ignored. Close the tag."))
        return stripped

    def _split_answer(self, text: str, parsed: ParsedTurn) -> None:
        answers = _ANSWER.findall(text)
        if len(answers) > 1:
            parsed.errors.append(
                FormatError("multiple_answers", f"expected one <answer>...</answer>, got {len(answers)}.")
            )
        elif answers:
            parsed.answer = answers[0].strip()
        elif "<answer>" in text:
            parsed.errors.append(FormatError("unclosed_tag", "found <answer> without a closing </answer>."))

    def _finish(self, parsed: ParsedTurn, text: str) -> ParsedTurn:
        if parsed.answer is not None and parsed.tool_calls:
            parsed.errors.append(
                FormatError(
                    "answer_with_tool_calls",
                    "a turn either calls tools or gives the final <answer>, not both; the calls were not run and "
                    "the answer was not accepted.",
                )
            )
            parsed.tool_calls, parsed.answer = [], None
        if len(parsed.tool_calls) > self.max_calls_per_turn:
            parsed.errors.append(
                FormatError(
                    "too_many_calls",
                    f"at most {self.max_calls_per_turn} tool calls per turn, got {len(parsed.tool_calls)}; only the "
                    f"first {self.max_calls_per_turn} were run.",
                )
            )
            parsed.tool_calls = parsed.tool_calls[: self.max_calls_per_turn]
        if parsed.answer is None and not parsed.tool_calls and not parsed.errors:
            parsed.errors.append(
                FormatError(
                    "no_action",
                    f"expected a tool call or a final <answer>...</answer>, got {_snippet(text) if text.strip() else 'an empty turn'}.",
                )
            )
        return parsed

    @staticmethod
    def _check_tool(name: str, tools: Sequence[Tool]) -> FormatError | None:
        names = [t.name for t in tools]
        if name in names:
            return None
        return FormatError("unknown_tool", str(unknown_name("tool", name[:60], names)))


def _render_error_block(errors: Sequence[FormatError]) -> str:
    return "\n".join(f"Format error ({e.kind}): {e.message}" for e in errors)


class HermesProtocol(Protocol):
    """``<tool_call>{"name": "search", "arguments": {"queries": ["..."]}}</tool_call>`` and ``<answer>...</answer>``."""

    name = "hermes"
    _CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
    _RESPONSE = re.compile(r"<tool_response>\n[^\n]*\n(.*?)\n</tool_response>", re.DOTALL)
    TOOL_MESSAGES = ("combined", "per_call")

    def __init__(self, *, tool_messages: str = "combined", tools_in_prompt: bool = True) -> None:
        """
        Args:
            tool_messages: ``"combined"`` (one ``tool`` message per step, results wrapped in ``<tool_response>``)
                or ``"per_call"`` (one ``tool`` message per call with the raw result, ``tool_call_id`` and
                ``name``: for chat templates that wrap tool responses themselves).
            tools_in_prompt: False leaves the tool schemas and the call format out of the system prompt, for chat
                templates that render ``tools=`` themselves.
        """
        if tool_messages not in self.TOOL_MESSAGES:
            raise unknown_name("tool_messages mode", str(tool_messages), self.TOOL_MESSAGES)
        if not isinstance(tools_in_prompt, bool):
            raise InvalidArgumentError(f"tools_in_prompt must be True or False, got {tools_in_prompt!r}.")
        self.tool_messages = tool_messages
        self.tools_in_prompt = tools_in_prompt

    def __repr__(self) -> str:
        return f"HermesProtocol(tool_messages={self.tool_messages!r}, tools_in_prompt={self.tools_in_prompt})"

    def instructions(self, tools: Sequence[Tool]) -> str:
        if not self.tools_in_prompt:
            return (
                "You are a research agent. Think step by step, use the tools to find and check facts, then answer.\n"
                "When you know the answer, write it alone, as short as possible, inside <answer></answer> tags, "
                "in a turn without tool calls."
            )
        schemas = "\n".join(json.dumps(t.schema["function"], ensure_ascii=False) for t in tools)
        return (
            "You are a research agent. Think step by step, use the tools to find and check facts, then answer.\n"
            "You may call one or more tools per turn. For each call, write a JSON object with the tool name and "
            "arguments inside <tool_call></tool_call> tags:\n"
            '<tool_call>{"name": <tool-name>, "arguments": <args-json-object>}</tool_call>\n'
            "Tool results come back inside <tool_response></tool_response> tags.\n"
            "When you know the answer, write it alone, as short as possible, inside <answer></answer> tags, "
            "in a turn without tool calls.\n"
            f"Available tools:\n<tools>\n{schemas}\n</tools>"
        )

    def parse(self, text: str, tools: Sequence[Tool]) -> ParsedTurn:
        parsed = ParsedTurn()
        text = self._strip_think(text, parsed)
        self._split_answer(self._CALL.sub("", text), parsed)  # an "<answer>" inside a call's JSON is not one
        bodies = self._CALL.findall(text)
        if text.count("<tool_call>") != len(bodies):
            parsed.errors.append(
                FormatError(
                    "unclosed_tag",
                    f"found {text.count('<tool_call>')} <tool_call> tags but {len(bodies)} complete "
                    "<tool_call>...</tool_call> blocks; close every tag.",
                )
            )
        for i, body in enumerate(bodies):
            call = self._parse_call(body.strip(), i, tools, parsed)
            if call is not None:
                parsed.tool_calls.append(call)
        return self._finish(parsed, text)

    def _parse_call(self, body: str, i: int, tools: Sequence[Tool], parsed: ParsedTurn) -> ToolCall | None:
        expected = 'expected {"name": <tool-name>, "arguments": {...}}'
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError) as exc:
            msg = str(exc).splitlines()[0][:120] if not isinstance(exc, RecursionError) else "nested too deeply"
            parsed.errors.append(FormatError("invalid_json", f"tool call {i + 1}: {expected}, got invalid JSON "
                                             f"{_snippet(body)} ({msg})."))
            return None
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            parsed.errors.append(FormatError("bad_call", f"tool call {i + 1}: {expected}, got {_snippet(body)}."))
            return None
        args = obj.get("arguments", {})
        if isinstance(args, str):  # some models emit arguments as a JSON string
            try:
                args = json.loads(args)
            except (ValueError, RecursionError):
                pass
        if not isinstance(args, dict):
            parsed.errors.append(
                FormatError("bad_arguments", f"tool call {i + 1}: arguments must be a JSON object, got {_snippet(str(args))}.")
            )
            return None
        err = self._check_tool(obj["name"], tools)
        if err:
            parsed.errors.append(err)
            return None
        return ToolCall(obj["name"], args, id=f"call_{i}")

    def result_messages(
        self, results: Sequence[tuple[ToolCall, ToolResult]], errors: Sequence[FormatError]
    ) -> list[dict[str, Any]] | None:
        if self.tool_messages == "combined":
            return None
        messages: list[dict[str, Any]] = [
            {"role": "tool", "content": res.content, "tool_call_id": call.id, "name": call.name}
            for call, res in results
        ]
        if errors:
            messages.append({"role": "user", "content": _render_error_block(errors)})
        return messages

    def format_call(self, name: str, arguments: dict[str, Any]) -> str:
        return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + "</tool_call>"

    def result_bodies(self, observation: str) -> list[str]:
        return self._RESPONSE.findall(observation)

    def render_results(self, results: Sequence[tuple[ToolCall, ToolResult]], errors: Sequence[FormatError]) -> str:
        blocks = [
            "<tool_response>\n" + json.dumps({"name": call.name}, ensure_ascii=False) + "\n" + res.content
            + "\n</tool_response>"
            for call, res in results
        ]
        if errors:
            blocks.append(_render_error_block(errors))
        return "\n".join(blocks)


class XMLTagProtocol(Protocol):
    """Search-R1 style: ``<search>query</search>``, ``<browse>{"url": "..."}</browse>``, ``<answer>...</answer>``.

    Results come back inside ``<information></information>``.
    """

    name = "xml"
    observation_role = "user"
    #: the built-in tools' first argument, which a plain body fills (``format_call`` writes it bare)
    _PLAIN_BODY = {"search": "queries", "browse": "url", "python": "code"}
    _RESPONSE = re.compile(r"<information>\n(.*?)\n</information>", re.DOTALL)

    def format_call(self, name: str, arguments: dict[str, Any]) -> str:
        """A single text argument (or a one-item list of text) is written as the plain body, ``<search>q</search>``:
        the shortest form, and the one a model is most likely to write; anything else as a JSON object."""
        (key,) = arguments if len(arguments) == 1 else (None,)
        if key is not None and self._PLAIN_BODY.get(name) == key:
            value = arguments[key]
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
            if isinstance(value, str) and value.strip() == value and value and not value.startswith("{") \
                    and f"</{name}>" not in value:
                return f"<{name}>{value}</{name}>"
        return f"<{name}>" + json.dumps(arguments, ensure_ascii=False) + f"</{name}>"

    def result_bodies(self, observation: str) -> list[str]:
        return self._RESPONSE.findall(observation)

    def instructions(self, tools: Sequence[Tool]) -> str:
        lines = []
        for t in tools:
            fn = t.schema["function"]
            first = self._primary(t)
            lines.append(
                f"- <{t.name}>...</{t.name}>: {fn['description']} The body is the value of `{first}`, or a JSON "
                f"object of arguments {json.dumps(fn['parameters']['properties'], ensure_ascii=False)}."
            )
        return (
            "You are a research agent. Think inside <think></think>, then act with one tag per tool call:\n"
            + "\n".join(lines)
            + "\nResults come back inside <information></information>. When you know the answer, write it alone "
            "inside <answer></answer>."
        )

    @staticmethod
    def _primary(tool: Tool) -> str:
        params = tool.parameters
        required = params.get("required") or list(params.get("properties", {}))
        return required[0] if required else ""

    def parse(self, text: str, tools: Sequence[Tool]) -> ParsedTurn:
        parsed = ParsedTurn()
        text = self._strip_think(text, parsed)
        by_name = {t.name: t for t in tools}
        if by_name:
            pattern = re.compile(
                r"<(" + "|".join(re.escape(n) for n in by_name) + r")>(.*?)</\1>", re.DOTALL
            )
            for i, m in enumerate(pattern.finditer(text)):
                parsed.tool_calls.append(self._call(by_name[m.group(1)], m.group(2).strip(), i))
            self._split_answer(pattern.sub("", text), parsed)
        else:
            self._split_answer(text, parsed)
        unknown = [
            tag for tag in re.findall(r"<([A-Za-z_][\w-]{0,40})>", text)
            if tag not in by_name and tag not in ("answer", "think", "information")
        ]
        if unknown and not parsed.tool_calls and parsed.answer is None:
            message = str(unknown_name("tool", unknown[0], by_name))
            if unknown[0] == "tool_call":  # a Hermes-style call under this protocol: say which protocol this is
                tool = next(iter(by_name), "tool")
                message = (
                    f"<tool_call> is the hermes protocol's tag; this environment uses the xml protocol, where each "
                    f"tool is its own tag. Fix: write <{tool}>...</{tool}> (the body is the first argument, or a JSON "
                    f"object of arguments). Tools: {', '.join(sorted(by_name)) or '(none)'}."
                )
            parsed.errors.append(FormatError("unknown_tool", message))
        return self._finish(parsed, text)

    def _call(self, tool: Tool, body: str, i: int) -> ToolCall:
        if body.startswith("{"):
            try:
                obj = json.loads(body)
                if isinstance(obj, dict):
                    return ToolCall(tool.name, obj, id=f"call_{i}")
            except (ValueError, RecursionError):
                pass
        primary = self._primary(tool)
        schema = tool.parameters.get("properties", {}).get(primary, {})
        value: Any = [body] if schema.get("type") == "array" else body
        if schema.get("type") in ("integer", "number"):  # <open_box>2</open_box>: the number, not the text "2"
            try:
                value = int(body) if schema["type"] == "integer" else float(body)
            except ValueError:
                pass  # the argument check then says what was expected
        return ToolCall(tool.name, {primary: value} if primary else {}, id=f"call_{i}")

    def render_results(self, results: Sequence[tuple[ToolCall, ToolResult]], errors: Sequence[FormatError]) -> str:
        parts = [f"<information>\n{res.content}\n</information>" for _, res in results]
        if errors:
            parts.append(_render_error_block(errors))
        return "\n".join(parts)


class BriefXMLTagProtocol(XMLTagProtocol):
    """The ``xml`` protocol with a system prompt of a few lines: each tool's tag and description, no argument
    schemas, no thinking. For small policies trained on CPU, where every prompt token is paid for in every
    training sample (``kimi-env train --preset cpu-smollm2``)."""

    name = "xml-brief"

    def instructions(self, tools: Sequence[Tool]) -> str:
        lines = [f"<{t.name}>...</{t.name}>: {t.schema['function']['description']}"
                 for t in tools]
        return ("You are a research agent. Use the tools, one tag per call:\n" + "\n".join(lines)
                + "\nResults come back inside <information></information>. When you know the answer, write it "
                "alone inside <answer></answer>.")


PROTOCOLS: dict[str, type[Protocol]] = {"hermes": HermesProtocol, "xml": XMLTagProtocol,
                                        "xml-brief": BriefXMLTagProtocol}


def get_protocol(protocol: str | Protocol | None) -> Protocol:
    """Resolve a protocol name or instance (``None`` means Hermes)."""
    if protocol is None:
        return HermesProtocol()
    if isinstance(protocol, Protocol):
        return protocol
    if isinstance(protocol, str) and protocol in PROTOCOLS:
        return PROTOCOLS[protocol]()
    raise unknown_name("protocol", str(protocol), PROTOCOLS)
