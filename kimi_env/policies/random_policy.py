"""The ``random`` policy: a random well-formed turn, for load and smoke tests.

Each turn is either a final ``<answer>`` (probability ``p_answer``) or one to ``max_calls`` tool calls whose
arguments are drawn from each tool's JSON schema (types, enums, bounds, lengths and item counts respected, so the
calls pass the environment's argument validation). Calls are written in the environment's protocol (Hermes
``<tool_call>`` blocks or XML tags, read from ``info["protocol"]`` or, for older environments, from the system
prompt). Strings are words of the question; a parameter named like ``url`` takes a URL seen in the conversation.

Seeded: the episode's generator is derived from ``seed``, the task id and how many episodes of that task this
policy has started, so a run is reproducible whatever order concurrent episodes start in.

>>> p = RandomPolicy(seed=0, p_answer=1.0)
>>> p.reset({"task": {"id": "t1", "question": "Who leads Vurmark?"}, "tools": [], "messages": []})
>>> p.act("", {})
'<answer>Vurmark leads Who</answer>'
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
from typing import Any

from ..errors import InvalidArgumentError
from .base import Policy

_WORDS = ("capital", "population", "founded", "river", "company", "leader", "year", "city", "border", "museum")
_URL = re.compile(r"https?://[^\s\"'<>()\[\]]+")


def detect_protocol(info: dict[str, Any]) -> str:
    """``"hermes"`` or ``"xml"``: ``info["protocol"]`` when the environment says, else read from the system prompt."""
    name = info.get("protocol")
    if isinstance(name, str) and name:
        return name
    messages = info.get("messages") or []
    system = messages[0].get("content", "") if messages and isinstance(messages[0], dict) else ""
    if "<tool_call>" in system:
        return "hermes"
    if "<information>" in system:
        return "xml"
    return "hermes"


def format_call(protocol: str, name: str, arguments: dict[str, Any]) -> str:
    """One tool call as the protocol's text."""
    if protocol == "xml":
        return f"<{name}>" + json.dumps(arguments, ensure_ascii=False) + f"</{name}>"
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + "</tool_call>"


class RandomPolicy(Policy):
    """A random tool call or answer each turn.

    Args:
        seed: Base seed.
        p_answer: Probability that a turn is a final answer (otherwise tool calls).
        max_calls: Most tool calls in one turn (at least 1).
        p_optional: Probability that an optional argument is given.
        protocol: ``"auto"`` (the environment's), ``"hermes"`` or ``"xml"``.
    """

    name = "random"

    def __init__(self, seed: int = 0, p_answer: float = 0.2, max_calls: int = 2, p_optional: float = 0.5,
                 protocol: str = "auto") -> None:
        problems = []
        if not isinstance(seed, int) or isinstance(seed, bool):
            problems.append(f"seed must be an int, got {seed!r}")
        for key, value in (("p_answer", p_answer), ("p_optional", p_optional)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                problems.append(f"{key} must be a probability in [0, 1], got {value!r}")
        if not isinstance(max_calls, int) or isinstance(max_calls, bool) or max_calls < 1:
            problems.append(f"max_calls must be an int >= 1, got {max_calls!r}")
        if protocol not in ("auto", "hermes", "xml"):
            problems.append(f"protocol must be 'auto', 'hermes' or 'xml', got {protocol!r}")
        if problems:
            raise InvalidArgumentError("random policy: " + "; ".join(problems) + ".")
        self.seed = seed
        self.p_answer = float(p_answer)
        self.max_calls = max_calls
        self.p_optional = float(p_optional)
        self.protocol = protocol
        self._started: dict[str, int] = {}  # shared by the per-episode copies (shallow)
        self._rng = random.Random(seed)
        self._tools: list[dict[str, Any]] = []
        self._words: list[str] = list(_WORDS)
        self._protocol = "hermes"

    def sampling_settings(self) -> dict[str, Any]:
        return {"seed": self.seed, "p_answer": self.p_answer, "max_calls": self.max_calls}

    def reset(self, info: dict[str, Any]) -> None:
        task = info.get("task") or {}
        task_id = str(task.get("id", ""))
        n = self._started.get(task_id, 0)
        self._started[task_id] = n + 1
        digest = hashlib.sha256(f"{self.seed}\0{task_id}\0{n}".encode()).digest()
        self._rng = random.Random(int.from_bytes(digest[:8], "big"))
        self._tools = [t.get("function", t) for t in info.get("tools") or [] if isinstance(t, dict)]
        words = re.findall(r"[^\W_]{3,}", str(task.get("question", "")))
        self._words = words or list(_WORDS)
        self._protocol = detect_protocol(info) if self.protocol == "auto" else self.protocol

    def act(self, observation: str, info: dict[str, Any]) -> str:
        rng = self._rng
        if not self._tools or rng.random() < self.p_answer:
            return f"<answer>{' '.join(rng.sample(self._words, min(len(self._words), rng.randint(1, 3))))}</answer>"
        urls = _URL.findall(observation) or [u for m in info.get("messages") or [] if isinstance(m, dict)
                                             for u in _URL.findall(str(m.get("content", "")))]
        calls = []
        for _ in range(rng.randint(1, self.max_calls)):
            fn = rng.choice(self._tools)
            args = self._arguments(fn.get("parameters") or {}, urls)
            calls.append(format_call(self._protocol, str(fn.get("name", "")), args))
        return "\n".join(calls)

    # ------------------------------------------------------------------ values from a JSON schema
    def _arguments(self, parameters: dict[str, Any], urls: list[str]) -> dict[str, Any]:
        props = parameters.get("properties") or {}
        required = set(parameters.get("required") or ())
        args = {}
        for key, schema in props.items():
            if key in required or self._rng.random() < self.p_optional:
                args[key] = self._value(schema if isinstance(schema, dict) else {}, key, urls, depth=0)
        return args

    def _value(self, schema: dict[str, Any], key: str, urls: list[str], depth: int) -> Any:
        rng = self._rng
        if "enum" in schema and schema["enum"]:
            return rng.choice(list(schema["enum"]))
        if "anyOf" in schema and schema["anyOf"]:
            return self._value(rng.choice(schema["anyOf"]), key, urls, depth)
        kind = schema.get("type", "string")
        if isinstance(kind, list):
            kind = rng.choice([k for k in kind if k != "null"] or ["string"])
        if "default" in schema and rng.random() < 0.3:
            return schema["default"]
        if kind == "boolean":
            return rng.random() < 0.5
        if kind in ("integer", "number"):
            lo = schema.get("minimum", 0 if "maximum" not in schema else min(0, schema["maximum"]))
            hi = schema.get("maximum", max(lo, 0) + 10)
            if kind == "integer":
                return rng.randint(int(-(-lo // 1)), int(hi // 1)) if int(-(-lo // 1)) <= int(hi // 1) else int(lo)
            return round(rng.uniform(lo, hi), 3)
        if kind == "array":
            lo = int(schema.get("minItems", 1))
            hi = int(schema.get("maxItems", max(lo, 3)))
            items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
            return [self._value(items, key, urls, depth + 1) for _ in range(rng.randint(lo, max(lo, min(hi, lo + 3))))]
        if kind == "object":
            return {} if depth > 2 else self._arguments(schema, urls)
        return self._string(schema, key, urls)

    def _string(self, schema: dict[str, Any], key: str, urls: list[str]) -> str:
        rng = self._rng
        if "url" in key.lower():
            text = rng.choice(urls) if urls else "https://kimiwiki.test/"
        elif key.lower() in ("code", "source", "expression"):
            a, b = rng.randint(1, 99), rng.randint(1, 99)
            text = f"print({a} + {b})" if key.lower() != "expression" else f"{a} + {b}"
        else:
            text = " ".join(rng.choice(self._words) for _ in range(rng.randint(1, 4)))
        lo, hi = int(schema.get("minLength", 0)), schema.get("maxLength")
        if hi is not None:
            text = text[: int(hi)]
        while len(text) < lo:
            text += rng.choice(string.ascii_lowercase)
        return text
