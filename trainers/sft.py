"""SFT cold start on TRL's ``SFTTrainer``: oracle demonstrations, loss on the agent's turns only.

Demonstrations are successful episodes of a scripted policy (``kimi-env demos``: the world oracle, or a toy
environment's scripted solution) as chat messages. Each one is tokenized exactly as the ``hf:`` policy will see and
produce it at rollout time (:meth:`kimi_env.policies.hf.HFPolicy.initial_ids` for the first context, the assistant
turn's tokens plus the end-of-turn token, :meth:`~kimi_env.policies.hf.HFPolicy.delta_ids` for each tool response),
so the cold start teaches the very token sequences RL later samples and scores. ``assistant_masks`` marks the
assistant tokens; TRL turns them into labels (-100 elsewhere).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .models import select_trainable


def tokenize_demo(policy: Any, messages: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Token ids and assistant mask of one demonstration, as the policy would see and sample it."""
    tok = policy.tokenizer
    ids = policy.initial_ids(messages[:2])
    mask = [0] * len(ids)
    end_id = tok.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tok.get_vocab() else tok.eos_token_id
    i = 2
    last: list[int] = []
    while i < len(messages):
        m = messages[i]
        if m.get("role") == "assistant":
            turn = policy.encode(m.get("content", "")) + [end_id]
            ids += turn
            mask += [1] * len(turn)
            last = turn
            i += 1
        else:
            new = []
            while i < len(messages) and messages[i].get("role") != "assistant":
                new.append(messages[i])
                i += 1
            if i >= len(messages):
                break  # a trailing tool message after the final answer is never seen by the policy
            delta = policy.delta_ids(new, last)
            ids += delta
            mask += [0] * len(delta)
    return {"input_ids": ids, "assistant_masks": mask}


def run_sft(model: Any, tokenizer: Any, policy: Any, demos: list[dict[str, Any]], *, steps: int, batch_size: int,
            learning_rate: float, train_layers: str, output_dir: str | Path, seed: int, device: str = "cpu",
            log: Any = print) -> dict[str, Any]:
    """Fine-tune ``model`` in place on ``demos`` (dicts with ``messages``) for ``steps`` optimizer steps."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    if not demos:
        raise ValueError("SFT needs at least one demonstration; the oracle produced none (check the environment).")
    rows = [tokenize_demo(policy, d["messages"]) for d in demos]
    tokens = sum(len(r["input_ids"]) for r in rows)
    ds = Dataset.from_list(rows)
    epochs = max(1, math.ceil(steps * batch_size / len(rows)))
    trainable = select_trainable(model, train_layers)
    args = SFTConfig(
        output_dir=str(output_dir), max_steps=steps, per_device_train_batch_size=batch_size,
        learning_rate=learning_rate, lr_scheduler_type="cosine", warmup_steps=min(5, steps // 5),
        logging_steps=max(1, steps // 10), save_strategy="no", report_to=[], seed=seed, bf16=False, fp16=False,
        gradient_checkpointing=False, use_cpu=(device == "cpu"), dataloader_num_workers=0, max_length=None,
        num_train_epochs=epochs, disable_tqdm=True, padding_free=False,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer)
    result = trainer.train()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    history = [h for h in trainer.state.log_history if "loss" in h]
    return {"demonstrations": len(rows), "tokens": tokens, "steps": steps, "trainable_parameters": trainable,
            "final_loss": history[-1]["loss"] if history else None, "train_runtime_s": result.metrics.get("train_runtime"),
            "loss_history": [round(h["loss"], 4) for h in history]}


def save_demos(demos: list[dict[str, Any]], path: str | Path) -> None:
    with Path(path).open("w", encoding="utf-8") as fh:
        for d in demos:
            fh.write(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n")
