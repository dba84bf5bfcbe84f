"""``kimi-env view`` and ``kimi-env play`` (registered through the ``kimi_env.cli`` entry-point group).

kimi-env view FILE [FILE ...] --out report.html [--title T] [--threshold 1.0] [--max-episodes N]
    trajectories (JSONL, as ``kimi-env eval --out`` writes them) as one static HTML report; prints a JSON line
kimi-env play ENV_ID [--seed N] [--episodes 1] [--split S] [--env-arg KEY=VALUE] [--out FILE]
    a person is the policy: observations are printed, turns read from stdin (see kimi_env.play)
"""

from __future__ import annotations

import argparse
import json


def _cmd_view(args: argparse.Namespace) -> int:
    from .viewer import write_report

    stats = write_report(args.files, args.out, title=args.title, threshold=args.threshold,
                         max_chars=args.max_chars, max_episodes=args.max_episodes)
    print(json.dumps(stats, sort_keys=True))
    return 0


def _cmd_play(args: argparse.Namespace) -> int:
    from .cli import parse_env_args as _parse_kwargs
    from .play import play

    env_kwargs = _parse_kwargs(args.env_arg)
    if args.split is not None:
        env_kwargs["split"] = args.split
    play(args.env_id, seed=args.seed, episodes=args.episodes, env_kwargs=env_kwargs, out=args.out)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``view`` and ``play`` to a ``kimi-env`` argparse subparsers object."""
    p = subparsers.add_parser("view", help="trajectories (JSONL) as one static HTML report with filters")
    p.add_argument("files", nargs="+", metavar="FILE", help="trajectory JSONL file(s)")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.add_argument("--title", default=None, help="page title (default: from the file name)")
    p.add_argument("--threshold", type=float, default=1.0, help="reward at or above which an episode passed (default: 1.0)")
    p.add_argument("--max-chars", type=int, default=50_000, help="cut longer text blocks (default: 50000)")
    p.add_argument("--max-episodes", type=int, default=None, help="only the first N episodes")
    p.set_defaults(func=_cmd_view)
    p = subparsers.add_parser("play", help="be the policy yourself: play an environment in the terminal")
    p.add_argument("env_id", help="e.g. kimi_env/SearchQA-v0")
    p.add_argument("--seed", type=int, default=None, help="reset seed of the first episode (default: random)")
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--split", default=None, help="task split for environments that have splits")
    p.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default=None, help="append the played trajectories to this JSONL file")
    p.set_defaults(func=_cmd_play)
