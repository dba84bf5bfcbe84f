"""Toy-scale learning probe: SFT of the from-scratch `tiny` model on ColorBox (digits palette), then RL, held-out pass@1.

    python benchmarks/bench_tiny_rl.py --sft-steps 150 --sft-lr 5e-3 --rl-steps 10 --rl-lr 1e-3   # 9/64 -> 11/64
    python benchmarks/bench_tiny_rl.py --sft-steps 300 --sft-lr 1e-2                                # 10/64

Prints one JSON line after SFT ("before": [successes, mean reward, episodes with format errors]) and one after RL.
Figures in docs/learning.md ("The toy-scale test").
"""
import argparse, json, time, sys
p = argparse.ArgumentParser()
p.add_argument("--palette", default="digits"); p.add_argument("--protocol", default="xml-brief")
p.add_argument("--sft-steps", type=int, default=150); p.add_argument("--sft-lr", type=float, default=5e-3)
p.add_argument("--sft-batch", type=int, default=16); p.add_argument("--demos", type=int, default=1000)
p.add_argument("--rl-steps", type=int, default=0); p.add_argument("--rl-lr", type=float, default=1e-3)
p.add_argument("--group", type=int, default=8); p.add_argument("--tasks", type=int, default=8)
p.add_argument("--seed", type=int, default=0); p.add_argument("--eval", type=int, default=64)
p.add_argument("--threads", type=int, default=2); p.add_argument("--boxes", type=int, default=4)
p.add_argument("--samples", type=int, default=4); p.add_argument("--warmup", type=int, default=0)
p.add_argument("--layers", type=int, default=2); p.add_argument("--heads", type=int, default=8)
a = p.parse_args()
import torch
torch.set_num_threads(a.threads)
from pathlib import Path
from kimi_env.policies.hf import HFPolicy
from kimi_env.policies.hf_models import load_model
from kimi_env.trainers.config import preset
from kimi_env.trainers.pipeline import demo_policy, draw_tasks, play, run_rl
from kimi_env.trainers.sft import run_sft
cfg = preset("cpu-tiny", env_kwargs={"protocol": a.protocol, "palette": a.palette, "boxes": a.boxes}, eval_one_hop=a.eval, seed=a.seed,
             max_steps=max(a.rl_steps, 1), learning_rate=a.rl_lr, group_size=a.group, tasks_per_step=a.tasks,
             micro_batch_size=a.group, warmup_steps=a.warmup, output_dir=f"/tmp/toy_{a.seed}", save_steps=0, max_new_tokens=24)
tasks = draw_tasks(cfg)
model, tok = load_model("tiny", seed=a.seed)
if (a.layers, a.heads) != (2, 8):  # a differently shaped tiny model, same tokenizer and init seed
    from transformers import LlamaForCausalLM
    from kimi_env.policies.hf_models import tiny_config
    torch.manual_seed(a.seed)
    model = LlamaForCausalLM(tiny_config(len(tok), num_hidden_layers=a.layers, num_attention_heads=a.heads,
                                         num_key_value_heads=a.heads)).eval()
greedy = HFPolicy(model_obj=model, tokenizer=tok, greedy=True, max_new_tokens=24, max_batch=64, model="tiny")
sampler = HFPolicy(model_obj=model, tokenizer=tok, temperature=1.0, max_new_tokens=24, max_batch=64, model="tiny",
                   seed=a.seed + 99)
t = time.perf_counter()
trajs = play(cfg, demo_policy(cfg), tasks["train"][: a.demos], split="train")
demos = [{"messages": tr.messages} for tr in trajs if tr.success]
info = run_sft(model, tok, greedy, demos, steps=a.sft_steps, batch_size=a.sft_batch, learning_rate=a.sft_lr,
               train_layers="full", output_dir="/tmp/toy_sft", seed=a.seed, log=lambda *x: None)
t_sft = time.perf_counter() - t
def ev():
    greedy.generator.version += 1
    model.eval()
    e = play(cfg, greedy, tasks["one_hop"], split=None)
    out = [sum(tr.success for tr in e), round(sum(tr.reward for tr in e) / len(e), 3), sum(tr.format_errors > 0 for tr in e)]
    sampler.generator.version += 1
    s = play(cfg, sampler, tasks["one_hop"] * a.samples, split=None, seed=777)
    return out + [round(sum(tr.success for tr in s) / len(s), 3)]  # + held-out pass@1 sampled at temperature 1
b = ev()
print(json.dumps({"seed": a.seed, "sft_s": round(t_sft, 1), "loss": info["loss_history"][-3:], "before": b}), flush=True)
if a.rl_steps:
    t = time.perf_counter()
    trainer = run_rl(cfg, model, tok, tasks["train"], Path(cfg.output_dir))
    r = [round(x["reward"], 3) for x in trainer.rollout_log]
    mixed = [x["mixed_groups"] for x in trainer.rollout_log]
    after = ev()
    print(json.dumps({"seed": a.seed, "rl_s": round(time.perf_counter() - t, 1), "train_reward": r, "mixed": mixed,
                      "after": after}), flush=True)
