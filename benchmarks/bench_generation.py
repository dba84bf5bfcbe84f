"""Generation throughput of the rollout engine with an ``hf:`` policy, against static ``model.generate``.

    python benchmarks/bench_generation.py [--model smollm2-135m] [--episodes 32] [--tokens 32] [--turns 3]

Three figures, generated tokens per second, one JSON line:

* ``engine``: :class:`~kimi_env.rollout.RolloutEngine` playing ``--episodes`` SearchQA-v0 episodes at once with the
  ``hf:`` policy (sampling at temperature 1, ``--tokens`` new tokens a turn at most, ``--turns`` turns; the CPU
  preset's short observations). Wall time of the whole run: generation, tool calls, prefill of tool responses.
* ``static``: one ``model.generate`` call on a batch of the same size, prompts = the engine's first-turn contexts
  (left-padded), forced to the engine's mean generated tokens per episode (``min_new_tokens = max_new_tokens``),
  sampling, KV cache: the shape an engine without multi-turn bookkeeping would run.
* ``unbatched``: the same generate call one prompt at a time (``--unbatched`` prompts; the rate is per token).

Targets (issue 9): engine >= 0.8x static, >= 5x unbatched. Figures in docs/benchmarks.md.

``--stop-every K`` also ends a turn at every K-th token id, so that turns vary in length as a trained policy's do
(an untrained model runs every turn to ``--tokens``); the static call is then forced to the mean length.

``--group G`` measures instead what computing a group's identical first-turn contexts once saves: ``--episodes``
episodes as ``episodes / G`` tasks x G (the trainer's layout), the engine with that dedup on and off (same seeds),
wall time of each and the prefill tokens computed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--unbatched", type=int, default=4)
    p.add_argument("--group", type=int, default=1)
    p.add_argument("--stop-every", type=int, default=0,
                   help="also end a turn at every K-th token id (an untrained model seldom stops by itself: this "
                        "gives turns of varied length, as a trained policy's are; 0: off)")
    args = p.parse_args(argv)

    import torch

    from kimi_env.policies.hf import HFPolicy
    from kimi_env.policies.hf_models import load_model
    from kimi_env.rollout import EpisodeJob, RolloutEngine

    model, tok = load_model(args.model)
    model.eval()
    policy = HFPolicy(model_obj=model, tokenizer=tok, temperature=1.0, max_new_tokens=args.tokens, seed=0,
                      max_batch=args.episodes, model=args.model)
    if args.stop_every:
        policy.generator.stop_ids |= set(range(0, len(tok), args.stop_every))
    env_kwargs = {"split": "test", "protocol": "xml-brief", "search_top_k": 1, "search_urls": False,
                  "search_snippet_chars": 60, "max_turns": args.turns}
    engine = RolloutEngine("kimi_env/SearchQA-v0", policy, concurrency=args.episodes, env_kwargs=env_kwargs,
                           max_steps=args.turns + 1)
    engine.run([EpisodeJob(seed=10_000 + i) for i in range(4)])  # warm-up: environments, caches, threads
    if args.group > 1:
        import kimi_env

        env = kimi_env.make("kimi_env/SearchQA-v0", **env_kwargs)
        tasks = []
        for i in range(args.episodes // args.group):
            env.reset(seed=20_000 + i)
            tasks.append(env.unwrapped.task.to_dict())
        env.close()
        jobs = [EpisodeJob(seed=i, task=tasks[i // args.group]) for i in range(len(tasks) * args.group)]
        res = {"model": args.model, "episodes": len(jobs), "group": args.group}
        for arm in (False, True, False, True):  # twice each, alternating: load drifts hit both arms alike
            g = policy.generator
            g.dedup = arm
            g.stats["prefill_tokens"] = 0
            g.gen.manual_seed(0)
            t = time.perf_counter()
            engine.run(jobs)
            key = "dedup" if arm else "no_dedup"
            res.setdefault(f"{key}_s", []).append(round(time.perf_counter() - t, 2))
            res[f"{key}_prefill_tokens"] = g.stats["prefill_tokens"]
        res["speedup"] = round(min(res["no_dedup_s"]) / min(res["dedup_s"]), 2)
        print(json.dumps(res, sort_keys=True))
        return 0
    t = time.perf_counter()
    trajs = engine.run([EpisodeJob(seed=i) for i in range(args.episodes)])
    engine_s = time.perf_counter() - t
    gen = sum(len(tr_.completion_ids) for tr in trajs for tr_ in tr.turns)
    per_episode = max(1, round(gen / len(trajs)))
    prompts = [tr.turns[0].prompt_ids for tr in trajs if tr.turns]

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def generate(batch: list[list[int]]) -> float:
        n = max(len(x) for x in batch)
        ids = torch.tensor([[pad] * (n - len(x)) + x for x in batch])
        att = torch.tensor([[0] * (n - len(x)) + [1] * len(x) for x in batch])
        t0 = time.perf_counter()
        with torch.no_grad():
            model.generate(input_ids=ids, attention_mask=att, do_sample=True, temperature=1.0, top_p=1.0,
                           max_new_tokens=per_episode, min_new_tokens=per_episode, pad_token_id=pad,
                           use_cache=True)
        return time.perf_counter() - t0

    torch.manual_seed(0)
    generate(prompts[:2])  # warm-up
    static_s = generate(prompts)
    single_s = sum(generate([x]) for x in prompts[: args.unbatched])
    res = {
        "model": args.model, "episodes": len(trajs), "turns": sum(tr.num_turns for tr in trajs),
        "mean_first_prompt_tokens": round(sum(map(len, prompts)) / len(prompts), 1),
        "generated_tokens": gen, "engine_s": round(engine_s, 2),
        "engine_tokens_per_s": round(gen / engine_s, 1),
        "static_tokens_per_s": round(len(prompts) * per_episode / static_s, 1),
        "unbatched_tokens_per_s": round(args.unbatched * per_episode / single_s, 1),
        "threads": torch.get_num_threads(), "stop_every": args.stop_every,
        "engine_stats": {k: round(v, 2) for k, v in policy.generator.stats.items()},
    }
    res["engine_vs_static"] = round(res["engine_tokens_per_s"] / res["static_tokens_per_s"], 2)
    res["engine_vs_unbatched"] = round(res["engine_tokens_per_s"] / res["unbatched_tokens_per_s"], 2)
    print(json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
