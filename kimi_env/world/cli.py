"""``kimi-env world build`` and ``kimi-env synth``.

kimi-env world build --seed 0 --pages 2000 --out DIR
    writes DIR/documents.jsonl ({"url", "title", "html", "links"} per line, the corpus importer's format),
    DIR/facts.jsonl (one fact per line), DIR/tables.jsonl and DIR/world.json (seed, size, stats, fingerprint)
kimi-env synth --n 1000 --seed 0 --out tasks.jsonl [--world-seed 0] [--pages 2000] [--split train]
               [--kinds lookup,multihop] [--no-baseline]
    prints the funnel counts to stderr and a JSON summary line to stdout; writes the tasks as JSONL
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from ..tasks import save_tasks


def _cmd_world(args: argparse.Namespace) -> int:
    from .generate import generate_world

    t0 = time.perf_counter()
    world = generate_world(seed=args.seed, n_pages=args.pages)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with (out / "documents.jsonl").open("w", encoding="utf-8") as fh:
        for d in world.documents():
            fh.write(
                json.dumps({"url": d.url, "title": d.title, "html": d.html, "links": list(d.links)}, ensure_ascii=False)
                + "\n"
            )
            n += 1
    with (out / "facts.jsonl").open("w", encoding="utf-8") as fh:
        for f in world.facts:
            fh.write(json.dumps(asdict(f), sort_keys=True, ensure_ascii=False) + "\n")
    with (out / "tables.jsonl").open("w", encoding="utf-8") as fh:
        for eid in sorted(world.tables):
            for t in world.tables[eid]:
                fh.write(json.dumps(asdict(t), sort_keys=True, ensure_ascii=False) + "\n")
    summary = {
        "seed": args.seed,
        "pages": n,
        "stats": world.stats(),
        "fingerprint": world.fingerprint(),
        "seconds": round(time.perf_counter() - t0, 2),
        "out": str(out),
    }
    (out / "world.json").write_text(json.dumps(summary, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary, sort_keys=True))
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from .funnel import build_tasks
    from .generate import generate_world
    from .solvable import OracleSolvable

    t0 = time.perf_counter()
    world = generate_world(seed=args.world_seed, n_pages=args.pages)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else None
    tasks, report = build_tasks(
        world,
        args.n,
        seed=args.seed,
        kinds=kinds,
        split=args.split,
        baseline=None if args.no_baseline else "no-tool",
        solvable=OracleSolvable(world) if args.solvable else None,
        log=lambda line: print(line, file=sys.stderr),
    )
    save_tasks(tasks, args.out)
    kinds_count: dict[str, int] = {}
    for t in tasks:
        kinds_count[t.metadata["kind"]] = kinds_count.get(t.metadata["kind"], 0) + 1
    summary = {
        "tasks": len(tasks),
        "out": str(args.out),
        "kinds": dict(sorted(kinds_count.items())),
        "funnel": report.as_dict(),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    print(json.dumps(summary, sort_keys=True))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``world`` (with ``build``) and ``synth`` to a ``kimi-env`` argparse subparsers object."""
    p = subparsers.add_parser("world", help="the generated offline world")
    wsub = p.add_subparsers(dest="world_command", required=True)
    b = wsub.add_parser("build", help="write the world's pages and facts as JSONL")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--pages", type=int, default=2000, help="about how many pages")
    b.add_argument("--out", required=True, help="output directory")
    b.set_defaults(func=_cmd_world)
    s = subparsers.add_parser("synth", help="synthesize verified tasks from the generated world")
    s.add_argument("--n", type=int, required=True, help="number of tasks to write (after the funnel)")
    s.add_argument("--seed", type=int, default=0, help="task seed")
    s.add_argument("--out", required=True, help="output JSONL file")
    s.add_argument("--world-seed", type=int, default=0)
    s.add_argument("--pages", type=int, default=2000, help="world size in pages")
    s.add_argument("--split", default=None, choices=("train", "validation", "test"), help="keep only this split")
    s.add_argument("--kinds", default=None, help="comma-separated task kinds (default: all)")
    s.add_argument("--no-baseline", action="store_true", help="skip the no-tool triviality stage")
    s.add_argument("--solvable", action="store_true",
                   help="run funnel stage (b): keep only tasks the oracle agent solves through the real tools")
    s.set_defaults(func=_cmd_synth)
