"""Report pass@1 of the no-tool baseline and the oracle agent on the test split of every environment.

(Formerly the main job, before the trainer landed.) Prints one line per (environment, policy) and a final JSON line.
"""

from __future__ import annotations

import argparse
import json

import kimi_env
from kimi_env.policies import get_policy
from kimi_env.rollout import evaluate

ENVS = ("SearchQA-v0", "BrowseQA-v0", "CodeQA-v0", "DeepResearch-v0", "MathCode-v0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    results = []
    for env_id in ENVS:
        env = kimi_env.make(env_id, split=args.split)
        try:
            for policy in ("no-tool", "oracle"):
                r = evaluate(env, get_policy(policy), episodes=args.episodes, seed=0)
                results.append({"env_id": env_id, "policy": policy, **r})
                print(f"{env_id:18s} {policy:8s} pass@1={r['pass@1']:.3f} ci95={r['pass@1_ci95']} "
                      f"turns={r['avg_turns']:.2f} tool_calls={r['tool_calls']:.2f} urls={r['urls_visited']:.2f} "
                      f"({r['episodes']} episodes, {r['seconds']:.1f} s)", flush=True)
        finally:
            env.close()
    print(json.dumps({"split": args.split, "results": results}, sort_keys=True))


if __name__ == "__main__":
    main()
