"""Tool schemas agree with transformers' get_json_schema and are accepted by apply_chat_template(tools=...)."""

from __future__ import annotations

import json
from typing import Literal, Optional

import pytest

import kimi_env
from kimi_env.schema import function_schema

transformers = pytest.importorskip("transformers", reason="transformers is part of the dev extra")


def search(queries: list[str], top_k: int = 5) -> str:
    """Search the offline web.

    Args:
        queries: Queries to run at once.
        top_k: Results per query.
    """
    return ""


def browse(url: Optional[str] = None, page: int = 1, mode: Literal["text", "links"] = "text") -> str:
    """Open a page.

    Args:
        url: Absolute URL.
        page: Page number.
        mode: What to show.
    """
    return ""


def _without(schema: dict, keys: tuple[str, ...]) -> dict:
    fn = dict(schema["function"])
    fn.pop("return", None)
    props = {k: {kk: vv for kk, vv in v.items() if kk not in keys} for k, v in fn["parameters"]["properties"].items()}
    fn["parameters"] = {"required": [], **fn["parameters"], "properties": props}  # transformers omits empty lists
    return {**schema, "function": fn}


@pytest.mark.parametrize("fn", [search, browse])
def test_same_schema_as_transformers(fn):
    ours = _without(function_schema(fn), ("default",))
    theirs = _without(transformers.utils.get_json_schema(fn), ("nullable",))
    assert ours == theirs


def test_env_tool_schemas_render_in_a_chat_template():
    from tokenizers import Tokenizer, models, pre_tokenizers

    raw = Tokenizer(models.WordLevel({"[UNK]": 0, "hi": 1}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=raw)
    tok.chat_template = (
        "{% if tools %}<tools>{% for t in tools %}{{ t | tojson }}\n{% endfor %}</tools>{% endif %}"
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
    )
    env = kimi_env.make("Calculator-v0")
    try:
        _, info = env.reset(seed=0)
        text = tok.apply_chat_template(info["messages"], tools=info["tools"], tokenize=False)
    finally:
        env.close()
    rendered = [json.loads(line) for line in text.split("<tools>")[1].split("</tools>")[0].strip().splitlines()]
    assert rendered == info["tools"]
    assert info["task"]["question"] in text
