"""The CPU levers of the main job, each measured against its own baseline in one process (ratios, not absolute times).

    python benchmarks/bench_cpu_levers.py tokens     # tokens per SFT demonstration under each observation format
    python benchmarks/bench_cpu_levers.py sft-step   # one SFT step of 8 demonstrations: full logits vs head at labels
    python benchmarks/bench_cpu_levers.py attention  # grouped-query attention: repeat_interleave vs enable_gqa

Figures and the commands that produced them are in docs/learning.md ("Levers, measured").
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def tokens() -> None:
    """Mean token count of an oracle demonstration (what SFT trains on and RL samples) and the oracle's success
    rate, for each observation format, on the same 200 training tasks."""
    from kimi_env.policies.hf import HFPolicy
    from kimi_env.policies.hf_models import load_model
    from kimi_env.trainers.config import preset
    from kimi_env.trainers.pipeline import demo_policy, draw_tasks, play
    from kimi_env.trainers.sft import tokenize_demo

    model, tok = load_model("smollm2-135m")
    policy = HFPolicy(model_obj=model, tokenizer=tok, greedy=True, model="smollm2-135m")
    formats = [
        ("hermes, 3 results with URLs (previous preset)", {"protocol": "hermes"}, 3),
        ("xml, 2 results, no URLs", {"protocol": "xml", "search_top_k": 2, "search_urls": False}, None),
        ("xml, 1 result, no URLs", {"protocol": "xml", "search_top_k": 1, "search_urls": False}, None),
        ("xml-brief, 1 result, no URLs", {"protocol": "xml-brief", "search_top_k": 1, "search_urls": False}, None),
        ("xml-brief, 1 result, no URLs, 60-char snippets (cpu-smollm2)",
         {"protocol": "xml-brief", "search_top_k": 1, "search_urls": False, "search_snippet_chars": 60}, None),
    ]
    rows = []
    for label, kw, top_k in formats:
        cfg = preset("cpu-smollm2", env_kwargs={**kw, "n_tasks": 30000})
        tasks = draw_tasks(cfg)["train"][:200]
        oracle = demo_policy(cfg)
        if top_k is not None:
            oracle.search_top_k = top_k
        trajs = play(cfg, oracle, tasks, split="train")
        ok = [t for t in trajs if t.success]
        lens = [len(tokenize_demo(policy, t.messages)["input_ids"]) for t in ok]
        system = len(policy.initial_ids([ok[0].messages[0], {"role": "user", "content": ""}]))
        row = {"format": label, "oracle_success": round(len(ok) / len(trajs), 3),
               "tokens_per_demo": round(statistics.mean(lens), 1), "system_prompt_tokens": system}
        rows.append(row)
        print(json.dumps(row), flush=True)


def sft_step() -> None:
    """Forward+backward of 8 sequences of 264 tokens (a fifth of them labelled) on SmolLM2-135M."""
    import torch

    from kimi_env.policies.hf_models import load_model
    from kimi_env.trainers.sft import _masked_head_loss

    model, _ = load_model("smollm2-135m")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 40000, (8, 264), generator=g)
    labels = torch.full_like(ids, -100)
    labels[:, ::5] = ids[:, ::5]
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}

    def train(layers: str) -> None:
        for p in model.parameters():
            p.requires_grad_(layers == "full")
        if layers != "full":
            k = int(layers.split("-")[1])
            for layer in model.model.layers[-k:]:
                for p in layer.parameters():
                    p.requires_grad_(True)

    def stock() -> None:
        model(**inputs).loss.backward()

    def masked() -> None:
        _masked_head_loss(model, inputs)[0].backward()

    for name, layers, fn in (("full logits (stock)", "full", stock), ("head at labels", "full", masked),
                             ("head at labels, top-12 layers", "top-12", masked),
                             ("head at labels, top-6 layers", "top-6", masked)):
        train(layers)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            model.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - t)
        print(json.dumps({"sft_step": name, "median_s": round(statistics.median(times), 2)}), flush=True)


def attention() -> None:
    """One attention call of a decode step: 64 sequences, a 600-token cache, SmolLM2's 9 query and 3 K/V heads."""
    import torch

    b, heads, kv, length, d = 64, 9, 3, 600, 64
    q, k, v = torch.randn(b, heads, 1, d), torch.randn(b, kv, length, d), torch.randn(b, kv, length, d)
    mask = torch.ones(b, 1, 1, length, dtype=torch.bool)
    mask[..., 500:] = False
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def repeat() -> None:
        sdpa(q, k.repeat_interleave(3, dim=1), v.repeat_interleave(3, dim=1), attn_mask=mask)

    def gqa() -> None:
        sdpa(q, k, v, attn_mask=mask, enable_gqa=True)

    for name, fn in (("repeat_interleave K/V (before)", repeat), ("enable_gqa (now)", gqa)):
        fn()
        t = time.perf_counter()
        for _ in range(30):
            fn()
        print(json.dumps({"attention": name, "ms_per_call": round((time.perf_counter() - t) / 30 * 1000, 2)}),
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["tokens", "sft-step", "attention", "all"])
    args = parser.parse_args()
    for name, fn in (("tokens", tokens), ("sft-step", sft_step), ("attention", attention)):
        if args.what in (name, "all"):
            fn()


if __name__ == "__main__":
    main()
