"""The ``kimi-env`` command line.

    kimi-env envs                                  list the registered environments
    kimi-env eval ENV_ID --policy oracle|no-tool   evaluate a policy; the last line printed is a JSON summary
    kimi-env demos ENV_ID --out FILE               successful oracle episodes as chat demonstrations (SFT data)
    kimi-env corpus import PATH --out DIR          import pages into an offline-web corpus
    kimi-env serve --corpus DIR --port N           serve a corpus over HTTP on loopback
    kimi-env world build / kimi-env synth ...      build the generated world, synthesize tasks
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

_PLUGINS = ("kimi_env.web.cli", "kimi_env.world.cli")
#: other packages add commands through this entry-point group (a module with ``register(subparsers)``)
PLUGIN_GROUP = "kimi_env.cli"


def _cmd_envs(args: argparse.Namespace) -> int:
    from .registration import describe_envs

    for entry in describe_envs():
        print(f"{entry.id:32s} {entry.summary}")
    return 0


def _parse_kwargs(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--env-arg expects KEY=VALUE (VALUE as JSON or text), got {pair!r}.")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _cmd_eval(args: argparse.Namespace) -> int:
    from .policies import get_policy
    from .registration import make
    from .rollout import evaluate

    env_kwargs = _parse_kwargs(args.env_arg)
    if args.split is not None:
        env_kwargs["split"] = args.split
    env = make(args.env_id, **env_kwargs)
    try:
        report = evaluate(env, get_policy(args.policy), episodes=args.episodes, seed=args.seed)
    finally:
        env.close()
    report = {"env_id": args.env_id, "policy": args.policy, **report}
    if not args.json:
        for key, value in report.items():
            print(f"{key:20s} {value}")
    print(json.dumps(report, sort_keys=True))
    return 0


def _cmd_demos(args: argparse.Namespace) -> int:
    from .policies import get_policy
    from .registration import make
    from .rollout import write_demonstrations

    env_kwargs = _parse_kwargs(args.env_arg)
    if args.split is not None:
        env_kwargs["split"] = args.split
    env = make(args.env_id, **env_kwargs)
    try:
        stats = write_demonstrations(env, get_policy(args.policy), args.out, episodes=args.episodes, seed=args.seed,
                                     min_reward=args.min_reward)
    finally:
        env.close()
    print(json.dumps({"env_id": args.env_id, "out": args.out, **stats}, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kimi-env", description="Offline tool environments for agentic RL.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("envs", help="list the registered environments")
    p.set_defaults(func=_cmd_envs)
    p = sub.add_parser("eval", help="evaluate a policy on an environment")
    p.add_argument("env_id", help="e.g. kimi_env/Calculator-v0")
    p.add_argument("--policy", default="oracle", help="oracle or no-tool")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default=None, help="task split for environments that have splits (train/validation/test)")
    p.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for the environment (VALUE parsed as JSON when it can be)")
    p.add_argument("--json", action="store_true", help="print only the JSON summary line")
    p.set_defaults(func=_cmd_eval)
    p = sub.add_parser("demos", help="write successful episodes of a policy as chat demonstrations (JSONL) for SFT")
    p.add_argument("env_id")
    p.add_argument("--out", required=True, help="output JSONL file")
    p.add_argument("--policy", default="oracle")
    p.add_argument("--episodes", type=int, default=100, help="episodes to play (failed ones are not written)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default=None, help="task split for environments that have splits (their default: train)")
    p.add_argument("--min-reward", type=float, default=1.0, help="keep episodes whose reward is at least this")
    p.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=_cmd_demos)
    for module in _PLUGINS:
        importlib.import_module(module).register(sub)
    from importlib.metadata import entry_points

    for ep in entry_points(group=PLUGIN_GROUP):
        ep.load().register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Exception as exc:  # noqa: BLE001 - a CLI prints the error, not a traceback
        from .errors import KimiEnvError

        if isinstance(exc, KimiEnvError):
            print(f"kimi-env: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
