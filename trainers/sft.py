"""SFT cold start on TRL's ``SFTTrainer``: oracle demonstrations, loss on the agent's turns only.

Demonstrations are successful episodes of a scripted policy (``kimi-env demos``: the world oracle, or a toy
environment's scripted solution) as chat messages. Each one is tokenized exactly as the ``hf:`` policy will see and
produce it at rollout time (:meth:`kimi_env.policies.hf.HFPolicy.initial_ids` for the first context, the assistant
turn's tokens plus the end-of-turn token, :meth:`~kimi_env.policies.hf.HFPolicy.delta_ids` for each tool response),
so the cold start teaches the very token sequences RL later samples and scores. ``assistant_masks`` marks the
assistant tokens; TRL turns them into labels (-100 elsewhere).

One departure from stock ``SFTTrainer``: the loss applies the language-model head only at the labelled positions
(the agent's tokens, about a fifth of a demonstration) instead of computing logits over the whole 49k vocabulary at
every position and masking afterwards. Same loss, same gradients; on these CPUs a step of 8 demonstrations took
14 s instead of 22-25 s (``benchmarks/bench_trainer.py``-style probe in docs/learning.md). Models without a plain
decoder/head split (peft-wrapped) fall back to the stock loss.
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
    from trl import SFTConfig

    if not demos:
        raise ValueError("SFT needs at least one demonstration; the oracle produced none (check the environment).")
    rows = [tokenize_demo(policy, d["messages"]) for d in demos]
    for r in rows:
        r["length"] = len(r["input_ids"])  # batches of similar lengths: less padding (train_sampling_strategy)
    tokens = sum(len(r["input_ids"]) for r in rows)
    ds = Dataset.from_list(rows)
    epochs = max(1, math.ceil(steps * batch_size / len(rows)))
    trainable = select_trainable(model, train_layers)
    args = SFTConfig(
        output_dir=str(output_dir), max_steps=steps, per_device_train_batch_size=batch_size,
        learning_rate=learning_rate, lr_scheduler_type="cosine", warmup_steps=min(5, steps // 5),
        logging_steps=max(1, steps // 10), save_strategy="no", report_to=[], seed=seed, bf16=False, fp16=False,
        gradient_checkpointing=False, use_cpu=(device == "cpu"), dataloader_num_workers=0, max_length=None,
        num_train_epochs=epochs, disable_tqdm=True, padding_free=False, train_sampling_strategy="group_by_length",
    )
    trainer = _sft_trainer_class()(model=model, args=args, train_dataset=ds, processing_class=tokenizer)
    result = trainer.train()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    history = [h for h in trainer.state.log_history if "loss" in h]
    return {"demonstrations": len(rows), "tokens": tokens, "steps": steps, "trainable_parameters": trainable,
            "final_loss": history[-1]["loss"] if history else None, "train_runtime_s": result.metrics.get("train_runtime"),
            "loss_history": [round(h["loss"], 4) for h in history]}


def _masked_head_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
    """(mean next-token cross-entropy over labelled positions, metrics), with the head applied at those positions
    only; None when the model has no separate decoder and head (then the caller uses the stock loss)."""
    import torch

    decoder = getattr(model, "model", None)
    head = getattr(model, "lm_head", None)
    if decoder is None or head is None or getattr(model, "peft_config", None):
        return None
    labels = inputs["labels"]
    hidden = decoder(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask")).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != -100
    logits = head(hidden[:, :-1][keep]).float()
    loss = torch.nn.functional.cross_entropy(logits, targets[keep], reduction="sum")
    n = num_items_in_batch if num_items_in_batch is not None else keep.sum()
    loss = loss / torch.as_tensor(n, dtype=loss.dtype, device=loss.device).clamp(min=1)
    with torch.no_grad():
        logp = torch.log_softmax(logits, dim=-1)
        entropy = -(logp.exp() * logp).sum(-1).mean().item() if len(logits) else 0.0
        accuracy = (logits.argmax(-1) == targets[keep]).float().mean().item() if len(logits) else 0.0
    return loss, {"entropy": entropy, "mean_token_accuracy": accuracy}


def _sft_trainer_class() -> Any:
    from trl import SFTTrainer

    class MaskedHeadSFTTrainer(SFTTrainer):
        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            got = None if return_outputs else _masked_head_loss(model, inputs, num_items_in_batch)
            if got is None:
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                             num_items_in_batch=num_items_in_batch)
            loss, metrics = got
            mode = "train" if self.model.training else "eval"
            for k, v in metrics.items():
                self._metrics[mode][k].append(v)
            if mode == "train" and "attention_mask" in inputs:
                self._total_train_tokens += int(inputs["attention_mask"].sum())
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return loss

    return MaskedHeadSFTTrainer


def save_demos(demos: list[dict[str, Any]], path: str | Path) -> None:
    with Path(path).open("w", encoding="utf-8") as fh:
        for d in demos:
            fh.write(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n")
