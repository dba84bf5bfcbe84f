"""Can the from-scratch ``tiny`` model learn ColorBox by SFT? Held-out greedy pass@1 after N SFT steps.

    python benchmarks/bench_tiny_copy.py --steps 800 --lr 3e-3 --demos 2000 --palette digits   # 64/64, 2026-12-02
    python benchmarks/bench_tiny_copy.py --steps 200 --lr 2e-3 --demos 256 --palette colors    # 13/64

Figures in docs/learning.md ("The toy-scale test").
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--demos", type=int, default=256, help="oracle episodes on distinct training tasks")
    parser.add_argument("--palette", default="colors", choices=["colors", "digits"])
    parser.add_argument("--protocol", default="xml-brief")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from kimi_env.policies.hf import HFPolicy
    from kimi_env.policies.hf_models import load_model
    from kimi_env.trainers.config import preset
    from kimi_env.trainers.pipeline import demo_policy, draw_tasks, play
    from kimi_env.trainers.sft import run_sft

    torch.set_num_threads(args.threads)
    cfg = preset("cpu-tiny", env_kwargs={"protocol": args.protocol, "palette": args.palette}, eval_one_hop=64)
    tasks = draw_tasks(cfg)
    model, tok = load_model("tiny", seed=0)
    greedy = HFPolicy(model_obj=model, tokenizer=tok, greedy=True, max_new_tokens=cfg.max_new_tokens, max_batch=16,
                      model="tiny")
    trajs = play(cfg, demo_policy(cfg), tasks["train"][: args.demos], split="train")
    demos = [{"messages": tr.messages} for tr in trajs if tr.success]
    t = time.perf_counter()
    info = run_sft(model, tok, greedy, demos, steps=args.steps, batch_size=16, learning_rate=args.lr,
                   train_layers="full", output_dir="/tmp/bench_tiny_copy", seed=0)
    greedy.generator.version += 1
    ev = play(cfg, greedy, tasks["one_hop"], split=None)
    print(f"{len(demos)} demonstrations, {args.steps} SFT steps in {time.perf_counter() - t:.0f} s, loss "
          f"{info['loss_history']}")
    print(f"held-out pass@1 {sum(tr.success for tr in ev)}/{len(ev)}")


if __name__ == "__main__":
    main()
