"""Trainer throughput: our ReinforceTrainer against stock TRL ``GRPOTrainer`` running its own multi-turn tool loop.

    python benchmarks/bench_trainer.py                       # SmolLM2-135M, SearchQA-v0, 2 steps x 16 episodes each
    python benchmarks/bench_trainer.py --arms ours --steps 3 # one arm

Both arms train the same model (the offline SmolLM2-135M-Instruct, fresh from the cache for each arm, the top 2
decoder layers trainable in both) on the same SearchQA-v0 training tasks with the same episode count per step
(``--tasks`` x ``--group``), turn budget and per-turn token budget, in fp32 on the CPU:

* ``ours``: :class:`~kimi_env.trainers.reinforce.ReinforceTrainer` (the batched KV-cache engine, the shared system
  prompt computed once, trunk activations reused by the top-2 update), with the ``cpu-smollm2`` preset's short
  observations (``xml-brief``, one 60-character search result).
* ``trl``: TRL's ``GRPOTrainer`` with ``environment_factory`` (our TRL adapter: every tool call is a real step of the
  same environment), SmolLM2's tokenizer under TRL's Qwen 2.5 tool template, ``max_tool_calling_iterations`` = the
  turn budget, ``max_completion_length`` = turns x tokens per turn, generation by ``model.generate``.

A model that is not trained for a tool format writes different things in each arm, so the arms do not generate the
same tokens; the comparable figure is the rate: tokens of the trained sequences (prompt + everything after it, the
count TRL reports as ``num_tokens``) per second of training step, rollout and update together. One JSON line per arm,
then the ratio. Figures in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _freeze_all_but_top(model, k: int) -> int:
    from kimi_env.trainers.models import select_trainable

    return select_trainable(model, f"top-{k}")


def run_ours(args) -> dict:
    from transformers import TrainerCallback

    from kimi_env.policies.hf_models import load_model
    from kimi_env.trainers.config import preset
    from kimi_env.trainers.pipeline import _make_env, draw_tasks
    from kimi_env.trainers.reinforce import ReinforceTrainer

    cfg = preset("cpu-smollm2", max_steps=args.steps, tasks_per_step=args.tasks, group_size=args.group,
                 micro_batch_size=args.group, max_turns=args.turns, max_new_tokens=args.tokens_per_turn,
                 output_dir=f"{args.out}/ours", save_steps=0, compare_no_discount=False,
                 rl_one_hop_fraction=None, train_layers=f"top-{args.top}", skip_uniform_groups=False,
                 baseline="none")  # every sampled token trains (an untrained model ties all rewards), as in TRL
    tasks = draw_tasks(cfg)["train"]
    model, tok = load_model("smollm2-135m")
    seqs: list[int] = []
    marks: list[float] = []

    class Count(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            marks.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            marks.append(time.perf_counter())
            for tr in trainer.last_trajectories:
                last = tr.turns[-1] if tr.turns else None
                if last is not None:
                    seqs.append(len(last.prompt_ids) + len(last.completion_ids))

    trainer = ReinforceTrainer(model, tok, cfg, tasks, env_fn=lambda: _make_env(cfg, "train"), callbacks=[Count()])
    t = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t
    steps = [b - a for a, b in zip(marks[::2], marks[1::2])]
    rollout = [r["rollout_s"] for r in trainer.rollout_log]
    return {"arm": "ours", "steps": len(steps), "episodes": len(seqs), "tokens": sum(seqs),
            "step_s": round(sum(steps), 1), "rollout_s": round(sum(rollout), 1),
            "update_s": round(sum(steps) - sum(rollout), 1), "wall_s": round(wall, 1),
            "generated_tokens": sum(r["generated_tokens"] for r in trainer.rollout_log),
            "tokens_per_s": round(sum(seqs) / max(sum(steps), 1e-9), 1),
            "mean_reward": round(sum(r["reward"] for r in trainer.rollout_log) / len(trainer.rollout_log), 3)}


def run_trl(args) -> dict:
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from kimi_env.integrations.trl import environment_factory, tasks_dataset, tool_chat_template
    from kimi_env.policies.hf_models import load_model

    env_kwargs = {"split": "train", "kinds": ["lookup", "multihop"], "max_turns": args.turns + 1,
                  "search_top_k": 1, "search_urls": False, "search_snippet_chars": 60}
    factory = environment_factory("kimi_env/SearchQA-v0", **env_kwargs)
    rewards: list[float] = []

    class Recorded(factory):
        def get_reward(self):
            r = super().get_reward()
            rewards.append(r)
            return r

    Recorded.__name__ = factory.__name__
    dataset = tasks_dataset("kimi_env/SearchQA-v0", n=args.tasks * args.steps * 4, **env_kwargs)
    model, tok = load_model("smollm2-135m")
    tok.chat_template = tool_chat_template("qwen2_5")
    _freeze_all_but_top(model, args.top)
    marks: list[float] = []

    class Times(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            marks.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            marks.append(time.perf_counter())

    n = args.tasks * args.group
    config = GRPOConfig(output_dir=f"{args.out}/trl", per_device_train_batch_size=args.group,
                        gradient_accumulation_steps=n // args.group, steps_per_generation=n // args.group,
                        num_generations=args.group, max_completion_length=args.turns * args.tokens_per_turn,
                        max_steps=args.steps, learning_rate=1e-4, logging_steps=1, bf16=False, use_cpu=True,
                        gradient_checkpointing=False, report_to="none", save_strategy="no", beta=0.0,
                        max_tool_calling_iterations=args.turns, seed=0, temperature=1.0, disable_tqdm=True)
    trainer = GRPOTrainer(model=model, processing_class=tok, args=config, train_dataset=dataset,
                          environment_factory=Recorded, callbacks=[Times()])
    t = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t
    steps = [b - a for a, b in zip(marks[::2], marks[1::2])]
    logged = [h for h in trainer.state.log_history if "num_tokens" in h]
    tokens = int(logged[-1]["num_tokens"]) if logged else int(trainer.state.num_input_tokens_seen)
    lengths = [h.get("completions/mean_length") for h in logged if h.get("completions/mean_length") is not None]
    return {"arm": "trl", "steps": len(steps), "episodes": len(rewards), "tokens": tokens,
            "step_s": round(sum(steps), 1), "wall_s": round(wall, 1),
            "mean_completion_length": round(sum(lengths) / len(lengths), 1) if lengths else None,
            "tokens_per_s": round(tokens / max(sum(steps), 1e-9), 1),
            "mean_reward": round(sum(rewards) / len(rewards), 3) if rewards else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arms", default="ours,trl")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--tasks", type=int, default=2, help="tasks per step")
    p.add_argument("--group", type=int, default=8, help="episodes per task")
    p.add_argument("--turns", type=int, default=5)
    p.add_argument("--tokens-per-turn", type=int, default=32)
    p.add_argument("--top", type=int, default=2, help="trainable top decoder layers (both arms)")
    p.add_argument("--out", default="/tmp/bench_trainer")
    args = p.parse_args(argv)
    out = {}
    for arm in args.arms.split(","):
        res = run_ours(args) if arm == "ours" else run_trl(args)
        out[arm] = res
        print(json.dumps(res, sort_keys=True), flush=True)
    if "ours" in out and "trl" in out and out["trl"]["tokens_per_s"]:
        print(json.dumps({"ratio_tokens_per_s": round(out["ours"]["tokens_per_s"] / out["trl"]["tokens_per_s"], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
