"""Policies: the interface, baselines, the scripted oracle, and language-model policies, selected by one spec string.

Spec strings (the same everywhere: CLI ``--policy``, Python :func:`get_policy`, the trainer):

* ``oracle``: follows the task's hop plan through the real tools (privileged; for demonstrations and upper bounds);
* ``no-tool``: answers from the question alone (the floor);
* ``random``: a random well-formed tool call or answer (load and smoke tests);
* ``hf:<hub id | local path | short name>``: a transformers causal LM (``hf:smollm2-135m`` is the offline
  SmolLM2-135M-Instruct, ``hf:tiny`` a small randomly initialized Llama for tests); extra settings as
  ``hf:smollm2-135m?temperature=0.7&max_new_tokens=96``;
* ``openai:<base url>#<model>``: an OpenAI-compatible chat-completions server (e.g. vLLM);
* ``module.path:Name``: your own :class:`Policy` subclass (or a factory returning one).
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import parse_qsl

from ..errors import InvalidArgumentError, unknown_name
from .base import Action, EpisodePolicy, FunctionPolicy, Policy
from .baselines import NoToolPolicy

__all__ = ["Policy", "Action", "EpisodePolicy", "FunctionPolicy", "NoToolPolicy", "OraclePolicy", "get_policy",
           "POLICIES", "parse_spec_options"]

POLICIES = ("oracle", "no-tool", "random", "hf:<model>", "openai:<base url>#<model>", "module.path:Name")


def __getattr__(name: str) -> Any:
    if name == "OraclePolicy":
        from .oracle import OraclePolicy

        return OraclePolicy
    raise AttributeError(name)


def parse_spec_options(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name?key=value&..."`` into the name and options (values parsed as numbers/bools when they can be).

    >>> parse_spec_options("hf:tiny?temperature=0.5&greedy=true")
    ('hf:tiny', {'temperature': 0.5, 'greedy': True})
    """
    if "?" not in spec:
        return spec, {}
    name, query = spec.split("?", 1)
    opts: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        low = value.lower()
        if low in ("true", "false"):
            opts[key] = low == "true"
            continue
        for conv in (int, float):
            try:
                opts[key] = conv(value)
                break
            except ValueError:
                continue
        else:
            opts[key] = value
    return name, opts


def get_policy(spec: str | Policy, **kwargs: Any) -> Policy:
    """A policy from its spec string (see the module docstring) or the instance itself."""
    if isinstance(spec, Policy):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidArgumentError(f"a policy spec must be a non-empty string, got {spec!r}. Valid: {', '.join(POLICIES)}.")
    name, opts = parse_spec_options(spec.strip())
    opts.update(kwargs)
    if name == "no-tool":
        return NoToolPolicy(**opts)
    if name == "oracle":
        from .oracle import OraclePolicy

        return OraclePolicy(**opts)
    if name == "random":
        from .random_policy import RandomPolicy

        return RandomPolicy(**opts)
    if name.startswith("hf:"):
        from .hf import HFPolicy

        return HFPolicy(name[3:], **opts)
    if name.startswith("openai:"):
        from .openai import OpenAIPolicy

        rest = name[len("openai:"):]
        if "#" not in rest:
            raise InvalidArgumentError(
                f"policy spec {spec!r}: expected openai:<base url>#<model>, e.g. "
                "openai:http://127.0.0.1:8000/v1#Qwen/Qwen2.5-7B-Instruct.")
        base_url, model = rest.rsplit("#", 1)
        return OpenAIPolicy(base_url=base_url, model=model, **opts)
    if ":" in name and not name.startswith(("http", "/")):
        module_name, attr = name.split(":", 1)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise InvalidArgumentError(f"policy spec {spec!r}: cannot import module {module_name!r} ({exc}).") from None
        obj = getattr(module, attr, None)
        if obj is None:
            raise InvalidArgumentError(f"policy spec {spec!r}: module {module_name!r} has no attribute {attr!r}.")
        policy = obj(**opts) if callable(obj) else obj
        if not isinstance(policy, Policy):
            raise InvalidArgumentError(
                f"policy spec {spec!r}: {module_name}:{attr} gave a {type(policy).__name__}, expected a "
                "kimi_env.policies.Policy (subclass it and implement act or aact).")
        return policy
    raise unknown_name("policy", spec, POLICIES)
