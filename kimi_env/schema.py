"""JSON schemas derived from typed Python signatures and Google-style docstrings, and argument validation.

This is how a :class:`~kimi_env.tools.Tool` describes itself to a model: the schema of its ``run`` method, in the
OpenAI function format that transformers' ``apply_chat_template(tools=...)`` accepts.

>>> def f(query: str, top_k: int = 5) -> None:
...     '''Search the index.
...
...     Args:
...         query: What to look for.
...         top_k: How many results.
...     '''
>>> s = function_schema(f)
>>> s["function"]["parameters"]["required"], s["function"]["parameters"]["properties"]["top_k"]
(['query'], {'type': 'integer', 'description': 'How many results.', 'default': 5})
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, Union

from .errors import ToolDefinitionError

_SCALARS: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _type_schema(tp: Any, where: str) -> tuple[dict, bool]:
    """Return (schema, nullable) for a type hint."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _type_schema(args[0], where)
    if origin in (Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        nullable = len(non_none) != len(args)
        if len(non_none) == 1:
            return _type_schema(non_none[0], where)[0], nullable
        return {"anyOf": [_type_schema(a, where)[0] for a in non_none]}, nullable
    if origin is Literal:
        kinds = {type(a) for a in args}
        schema: dict[str, Any] = {"enum": list(args)}
        if len(kinds) == 1 and next(iter(kinds)) in _SCALARS:
            schema["type"] = _SCALARS[next(iter(kinds))]
        return schema, False
    if origin in (list, tuple, set, frozenset, typing.Sequence) or tp in (list, tuple):
        schema = {"type": "array"}
        if args:
            schema["items"] = _type_schema(args[0], where)[0]
        return schema, False
    if origin is dict or tp is dict:
        return {"type": "object"}, False
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}, False
    if tp is Any:
        return {}, False
    raise ToolDefinitionError(
        f"{where}: cannot derive a JSON schema from type {tp!r}; expected str, int, float, bool, list[...], "
        f"dict, Literal[...] or Optional of these. Fix: annotate the parameter with one of these types."
    )


_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters)\s*:\s*$")
_SECTION = re.compile(r"^\s*(Returns|Raises|Yields|Examples?|Notes?)\s*:\s*$")
_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {parameter: description}).

    >>> parse_docstring('''Do it.
    ...
    ...     Args:
    ...         x: the input,
    ...             on two lines.
    ...     Returns:
    ...         nothing
    ... ''')
    ('Do it.', {'x': 'the input, on two lines.'})
    """
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    desc: list[str] = []
    params: dict[str, str] = {}
    mode = "desc"
    current: str | None = None
    arg_indent: int | None = None
    for line in lines:
        if _ARGS_HEADER.match(line):
            mode, current, arg_indent = "args", None, None
            continue
        if _SECTION.match(line):
            mode = "other"
            continue
        if mode == "desc":
            desc.append(line)
        elif mode == "args" and line.strip():
            indent = len(line) - len(line.lstrip())
            m = _ARG_LINE.match(line)
            if m and (arg_indent is None or indent <= arg_indent):
                arg_indent = indent
                current = m.group(1).lstrip("*")
                params[current] = m.group(3).strip()
            elif current is not None:
                params[current] = (params[current] + " " + line.strip()).strip()
    return "\n".join(desc).strip(), params


def function_schema(fn: Callable, name: str | None = None, description: str | None = None) -> dict:
    """Derive an OpenAI-format function schema from ``fn``'s type hints and docstring.

    Every parameter needs a type hint; parameters without a default are required; ``self``, ``*args`` and
    ``**kwargs`` are ignored. Raises :class:`ToolDefinitionError` naming the parameter when a hint is missing.
    """
    name = name or fn.__name__
    where = f"tool {name!r}"
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # noqa: BLE001 - unresolvable forward references
        raise ToolDefinitionError(f"{where}: cannot resolve type hints ({exc}). Fix: import the types used.") from exc
    doc_desc, doc_params = parse_docstring(fn.__doc__)
    properties: dict[str, dict] = {}
    required: list[str] = []
    for pname, param in inspect.signature(fn).parameters.items():
        if pname in ("self", "cls") or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if pname not in hints:
            raise ToolDefinitionError(
                f"{where}: parameter {pname!r} has no type hint. Fix: annotate it, e.g. `{pname}: str`."
            )
        schema, _nullable = _type_schema(hints[pname], f"{where}, parameter {pname!r}")
        if pname in doc_params:
            schema["description"] = doc_params[pname]
        if param.default is inspect.Parameter.empty:
            required.append(pname)
        elif param.default is not None:
            schema["default"] = param.default
        properties[pname] = schema
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description if description is not None else doc_desc,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def _type_ok(value: Any, schema: dict) -> bool:
    t = schema.get("type")
    if "anyOf" in schema:
        return any(_type_ok(value, s) for s in schema["anyOf"])
    if t is None:
        return True
    if t == "string":
        return isinstance(value, str)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "array":
        return isinstance(value, list)
    if t == "object":
        return isinstance(value, dict)
    return True


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_value(value: Any, schema: dict, path: str) -> str | None:
    if value is None and not schema:
        return None
    if not _type_ok(value, schema):
        got = type(value).__name__
        return f"{path} must be of type {schema.get('type', 'anyOf')}, got {got} {_short(value)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path} must be one of {schema['enum']}, got {_short(value)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{path} must be >= {schema['minimum']}, got {value}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{path} must be <= {schema['maximum']}, got {value}"
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{path} must be at most {schema['maxLength']} characters, got {len(value)}"
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"{path} must be at least {schema['minLength']} characters, got {len(value)}"
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{path} must have at most {schema['maxItems']} items, got {len(value)}"
        if "minItems" in schema and len(value) < schema["minItems"]:
            return f"{path} must have at least {schema['minItems']} items, got {len(value)}"
        items = schema.get("items")
        if items:
            for i, item in enumerate(value):
                err = _check_value(item, items, f"{path}[{i}]")
                if err:
                    return err
    return None


def validate_arguments(arguments: Any, parameters: dict) -> str | None:
    """Check tool-call arguments against a parameters schema; return an error sentence or None.

    The sentence names what was expected and what came, so it can be shown to an agent as is.

    >>> p = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
    >>> validate_arguments({"query": "x"}, p) is None
    True
    >>> validate_arguments({"querry": "x"}, p)
    "unknown argument 'querry' (did you mean 'query'?); expected arguments: query (required)"
    """
    props: dict = parameters.get("properties", {})
    required: list = parameters.get("required", [])
    if not isinstance(arguments, dict):
        return f"arguments must be a JSON object, got {type(arguments).__name__} {_short(arguments)}"
    expected = ", ".join(f"{k}{' (required)' if k in required else ''}" for k in props) or "none"
    for key in arguments:
        if key not in props:
            import difflib

            close = difflib.get_close_matches(str(key), list(props), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"unknown argument {_short(key)}{hint}; expected arguments: {expected}"
    for key in required:
        if key not in arguments:
            return f"missing required argument {key!r}; expected arguments: {expected}"
    for key, value in arguments.items():
        if value is None and key not in required:
            continue
        err = _check_value(value, props[key], f"argument {key!r}")
        if err:
            return err
    return None
