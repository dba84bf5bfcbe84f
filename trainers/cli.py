"""``kimi-env train``: the main job (``--preset cpu-smollm2``), smoke runs (``--preset cpu-tiny``), any config field
overridable (``--turn-discount 1.0``, ``--max-steps 4``, ...), ``--resume RUN_DIR``, and ``--algo sb3-ppo`` for the
Stable-Baselines3 baseline. Registered through the ``kimi_env.cli`` entry-point group (torch is imported only when
the command runs)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from typing import Any


def register(sub: Any) -> None:
    from .config import PRESETS, ReinforceConfig

    p = sub.add_parser(
        "train", help="train a policy with REINFORCE (the main job) and report held-out pass@1 before and after",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Cold start (SFT on oracle demonstrations), REINFORCE with per-turn turn_discount credit, and a "
                    "paired before/after evaluation on held-out test tasks. Writes a run directory with "
                    "results.json, report.md, metrics.jsonl, TensorBoard logs and a learning-curve PNG.")
    p.add_argument("--preset", default="cpu-smollm2", help=f"named config: {', '.join(PRESETS)}")
    p.add_argument("--algo", default="reinforce", choices=["reinforce", "sb3-ppo"],
                   help="reinforce (ours) or sb3-ppo (Stable-Baselines3 PPO over macro-actions; needs the sb3 extra)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue the run in RUN_DIR from its last "
                                                                      "checkpoint")
    p.add_argument("--out", default=None, metavar="RUN_DIR", help="run directory (default: runs/<preset>)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any config field (VALUE as JSON when it parses)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    sb3 = p.add_argument_group("--algo sb3-ppo (Stable-Baselines3 PPO over macro-actions)")
    sb3.add_argument("--env", default="kimi_env/SearchQA-v0", help="environment id for sb3-ppo")
    sb3.add_argument("--timesteps", type=int, default=20000, help="PPO environment steps")
    sb3.add_argument("--episodes", type=int, default=300, help="held-out evaluation episodes")
    group = p.add_argument_group("config fields (each overrides the preset)")
    for f in dataclasses.fields(ReinforceConfig):
        if f.name == "output_dir":
            continue
        group.add_argument("--" + f.name.replace("_", "-"), dest=f"cfg_{f.name}", default=None, metavar="V",
                           help=f.metadata.get("help", ""))
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import ReinforceConfig, preset

    if args.algo == "sb3-ppo":
        try:
            from kimi_env.integrations.sb3 import main as sb3_main
        except ImportError as exc:
            from kimi_env.errors import InvalidArgumentError

            raise InvalidArgumentError(f"--algo sb3-ppo needs the sb3 integration ({exc}); pip install -e '.[sb3]'.")
        seed = args.cfg_seed if args.cfg_seed is not None else "0"
        return int(sb3_main(["--env", args.env, "--timesteps", str(args.timesteps), "--episodes", str(args.episodes),
                             "--seed", str(seed)]) or 0)
    pairs = list(args.set)
    for f in dataclasses.fields(ReinforceConfig):
        v = getattr(args, f"cfg_{f.name}", None)
        if v is not None:
            pairs.append(f"{f.name}={v}")
    cfg = preset(args.preset)
    out = args.out or f"runs/{args.preset}"
    cfg = cfg.replace(output_dir=out).with_overrides(pairs)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
        return 0
    from .pipeline import run

    command = "kimi-env train " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 \
        else f"kimi-env train --preset {args.preset}"
    results = run(cfg, resume=args.resume, command=command)
    keys = ("multi_hop_before", "multi_hop_after", "one_hop_before", "one_hop_after", "p_value",
            "avg_turns_success", "avg_turns_success_no_discount", "wall_s", "seed")
    print(json.dumps({k: results.get(k) for k in keys}, sort_keys=True))
    return 0
