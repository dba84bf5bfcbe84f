"""The ``kimi-env`` command line (also ``python -m kimi_env``).

    kimi-env envs                                  list the registered environments
    kimi-env eval ENV_ID --policy oracle|no-tool   evaluate a policy; the last line printed is a JSON summary
    kimi-env demos ENV_ID --out FILE               successful oracle episodes as chat demonstrations (SFT data)
    kimi-env corpus import PATH --out DIR          import pages into an offline-web corpus
    kimi-env serve --corpus DIR --port N           serve a corpus over HTTP on loopback
    kimi-env world build / kimi-env synth ...      build the generated world, synthesize tasks

Conventions every command follows (plugins included, because they get their parsers from here):

* ``--help`` shows every option's default; ``kimi-env --version`` prints the version.
* Every usage error, whether argparse's or one of ours, prints ONE line ``kimi-env: error: <what was expected,
  what came, the fix>`` to stderr (argparse errors after the command's usage line) and exits with
  :data:`USAGE_ERROR` (2). Our errors are :class:`~kimi_env.errors.KimiEnvError` (raise one, or
  :class:`UsageError`, from a command) and ``OSError`` (a missing file, a busy port); anything else is a bug and
  keeps its traceback.
* A list value is written with commas: ``--kinds lookup,set``, ``--env-arg kinds=lookup,set``.
* ``ENV_ID`` may name a module first, ``mypkg:my/Env-v0``, as ``gym.make`` takes it: the module is imported (its
  ``gym.register`` calls run) before the id is looked up (:func:`resolve_env_id`).

Adding a command. Write a module with a function ``register(subparsers)`` that adds a parser and sets ``func``::

    def register(subparsers):
        p = subparsers.add_parser("hello", help="say hello")       # the parser class and formatter come from here
        p.add_argument("--name", default="world", help="whom to greet")
        p.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)   # func(args) -> exit code

Then either list the module in :data:`_PLUGINS` (commands of this package) or, from another package, declare it in
that package's ``pyproject.toml`` under the entry-point group :data:`PLUGIN_GROUP`::

    [project.entry-points."kimi_env.cli"]
    hello = "mypkg.cli"

A plugin that fails to import does not break the other commands: ``kimi-env`` prints one warning line naming it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .errors import InvalidArgumentError, KimiEnvError, suggest

#: command modules of this package, each with ``register(subparsers)``
_PLUGINS = ("kimi_env.web.cli", "kimi_env.world.cli")
#: other packages add commands through this entry-point group (a module with ``register(subparsers)``)
PLUGIN_GROUP = "kimi_env.cli"
#: the exit status of every usage error
USAGE_ERROR = 2
PROG = "kimi-env"


class UsageError(InvalidArgumentError):
    """A command-line argument is wrong; the message says what was expected, what came and the fix."""


# --------------------------------------------------------------------------------------------------- the parser


def _shows_default(action: argparse.Action) -> bool:
    """True for an option whose default says something (not None, False, [] or a help/version action's)."""
    default = action.default
    if default is None or default is False or default is argparse.SUPPRESS or default == []:
        return False
    return not isinstance(action, (argparse._HelpAction, argparse._VersionAction))


class _HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to every option that has a meaningful default and does not mention one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and _shows_default(action) and "default" not in text:
            text = f"{text} (default: %(default)s)" if text else "(default: %(default)s)"
        return text


class CLIParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with the conventions above: defaults in ``--help``, one error prefix, exit 2.

    Sub-commands inherit the class (``add_subparsers`` makes parsers of the parent's type), so plugin commands
    follow the same conventions without doing anything.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        # an option without help text still shows its default (argparse prints nothing for help=None)
        if action.help is None and action.option_strings and _shows_default(action):
            action.help = "(default: %(default)s)"
        return action

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE_ERROR, f"{PROG}: error: {message}\n")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("kimi-env")
    except Exception:  # noqa: BLE001 - not installed as a distribution (a source checkout on sys.path)
        from . import __version__

        return __version__


# ------------------------------------------------------------------------------------------- shared helpers


_GYM_TAIL = re.compile(r" was raised from the environment creator for \S+ with kwargs \(.*\)\s*$", re.S)


def error_text(exc: BaseException) -> str:
    """The message of ``exc`` for a shell user: without Gymnasium's "was raised from the environment creator for
    ... with kwargs (...)" tail, which repeats every keyword argument, and without a ``KeyError``'s quotes."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return _GYM_TAIL.sub("", text).strip() or type(exc).__name__


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_env_args(pairs: Sequence[str], *, option: str = "--env-arg") -> dict[str, Any]:
    """``["max_turns=4", "kinds=lookup,set"]`` -> ``{"max_turns": 4, "kinds": ["lookup", "set"]}``.

    VALUE is JSON when it parses as JSON (``4``, ``true``, ``null``, ``[1, 3]``, ``"a,b"``); otherwise a value with
    commas is a list of its comma-separated items (each parsed the same way: ``difficulty=1,3`` -> ``[1, 3]``);
    otherwise it is the text itself.

    >>> parse_env_args(["max_turns=4", "kinds=lookup,set", "split=test", "tools=[\\"search\\"]"])
    {'max_turns': 4, 'kinds': ['lookup', 'set'], 'split': 'test', 'tools': ['search']}
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(
                f"{option} expects KEY=VALUE with KEY a keyword name (VALUE as JSON, a comma list or text), "
                f"got {pair!r}. Fix: e.g. {option} max_turns=8 or {option} kinds=lookup,set."
            )
        if key in out:
            raise UsageError(f"{option} {key}= was given twice. Fix: give each keyword once.")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = [_parse_value(i.strip()) for i in value.split(",") if i.strip()] if "," in value else value
    return out


def resolve_env_id(env_id: str) -> str:
    """The registered Gymnasium id for ``env_id`` as a shell user writes it.

    * ``"mypkg:my/Env-v0"`` imports ``mypkg`` first (as ``gym.make`` does), so that the environments it registers
      with ``gym.register`` are found, and returns ``"my/Env-v0"``;
    * ``"kimi_env/Calculator-v0"``, ``"kimi_env:kimi_env/Calculator-v0"`` and ``"Calculator-v0"`` name ours.

    Raises :class:`UsageError` when the module cannot be imported or the id is not registered; the message lists
    the kimi-env environments (and those of the named module) and suggests the closest.

    >>> resolve_env_id("Calculator-v0")
    'kimi_env/Calculator-v0'
    """
    import gymnasium as gym

    from .registration import NAMESPACE, list_envs, register_envs

    register_envs()
    module, sep, name = env_id.partition(":")
    if not sep:
        module, name = "", env_id
    name = name.strip()
    if module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UsageError(
                f"cannot import module {module!r} named in {env_id!r} ({error_text(exc)}). Fix: install the package "
                f"that provides it, or run from its folder or add that folder to PYTHONPATH."
            ) from exc
    if name in gym.registry:
        return name
    if "/" not in name and f"{NAMESPACE}/{name}" in gym.registry:
        return f"{NAMESPACE}/{name}"
    namespace = name.split("/", 1)[0] if "/" in name else None
    known = [*list_envs(), *sorted(k for k in gym.registry if namespace and namespace != NAMESPACE
                                   and k.startswith(namespace + "/"))]
    hint = suggest(name, known) or suggest(name, gym.registry)
    where = f" after importing {module!r}" if module else ""
    fix = ("Fix: use one of these, or register yours with gym.register(id=..., entry_point=...) in a module and "
           "name that module first, as in mypkg:my/Env-v0 (see docs/envs.md).")
    raise UsageError(
        f"Unknown environment {name!r}: it is not registered{where}.{hint} kimi-env environments: "
        f"{', '.join(known)}. {fix}"
    )


def make_env(env_id: str, env_args: Sequence[str] = (), split: str | None = None) -> Any:
    """``gym.make`` for a command: the id through :func:`resolve_env_id`, ``--env-arg`` pairs through
    :func:`parse_env_args`, and ``--split`` when given."""
    import gymnasium as gym

    kwargs = parse_env_args(env_args)
    if split is not None:
        kwargs["split"] = split
    return gym.make(resolve_env_id(env_id), **kwargs)


# ----------------------------------------------------------------------------------------------- commands


def _cmd_envs(args: argparse.Namespace) -> int:
    from .registration import describe_envs

    for entry in describe_envs():
        print(f"{entry.id:32s} {entry.summary}")
    return 0


def eval_jobs(env: Any, episodes: int, samples: int, seed: int, own_split: str | None = None) -> tuple[list[Any], str]:
    """The episodes ``kimi-env eval`` plays and a sentence saying how they were drawn. A finite task set is covered
    without replacement (a seeded shuffle, cycled only when more episodes than tasks are asked for), each task
    ``samples`` times in a row; environments that generate tasks use seeds ``seed .. seed + n - 1``."""
    import random

    from .rollout import EpisodeJob

    base = env.unwrapped
    pool = getattr(base, "task_pool", None)
    if own_split is not None and pool:  # your own tasks: --split filters by each task's own split field
        if not any("split" in t.metadata for t in pool):
            raise UsageError(f"--split {own_split} cannot filter your tasks: none has a 'split' field. Fix: drop "
                             "--split, or add \"split\": \"train\"/\"validation\"/\"test\" to each task line.")
        pool = [t for t in pool if t.metadata.get("split") == own_split]
        if not pool:
            raise UsageError(f"--split {own_split}: none of your tasks has split {own_split!r}.")
    n_tasks = -(-episodes // samples)
    if pool:
        order = list(range(len(pool)))
        rng = random.Random(seed)
        picked: list[int] = []
        while len(picked) < n_tasks:
            rng.shuffle(order)
            picked += order[: n_tasks - len(picked)]
        jobs = [EpisodeJob(seed=seed + i * samples + k, task=pool[j], group=i)
                for i, j in enumerate(picked) for k in range(samples)][:episodes]
        where = "your own task set" if own_split is not None or getattr(base, "_user_tasks", False) else \
            f"the {getattr(base, 'split', None) or 'whole'} task set"
        how = (f"{len(set(picked))} distinct tasks of {len(pool)} in {where}, drawn without "
               f"replacement (seed {seed})" + (f", {samples} samples each" if samples > 1 else ""))
        if n_tasks > len(pool):
            how += f"; more episodes than tasks, so the set was cycled ({n_tasks} draws)"
        return jobs, how
    jobs = [EpisodeJob(seed=seed + i // samples, group=i // samples) for i in range(episodes)]
    return jobs, (f"tasks generated from seeds {seed}..{seed + n_tasks - 1}"
                  + (f", {samples} samples each" if samples > 1 else ""))


def _cmd_eval(args: argparse.Namespace) -> int:
    import time

    from .policies import get_policy
    from .rollout import RolloutEngine, summarize

    if args.episodes < 1:
        raise UsageError(f"--episodes must be at least 1, got {args.episodes}.")
    if args.samples < 1 or args.concurrency < 1:
        raise UsageError(f"--samples and --concurrency must be at least 1, got {args.samples} and {args.concurrency}.")
    own_tasks = any(a.split("=", 1)[0].strip() == "tasks" for a in args.env_arg)
    probe = make_env(args.env_id, args.env_arg, args.split)
    try:
        jobs, how = eval_jobs(probe, args.episodes, args.samples, args.seed,
                              own_split=args.split if own_tasks else None)
    finally:
        probe.close()
    policy = get_policy(args.policy, **({"strict": True} if args.policy == "oracle" else {}))
    print(f"{PROG} eval: {args.env_id}, policy {args.policy}; {how}", file=sys.stderr)
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="episodes", file=sys.stderr)
    engine = RolloutEngine(lambda: make_env(args.env_id, args.env_arg, args.split), policy,
                           concurrency=min(args.concurrency, len(jobs)), out=args.out,
                           episode_timeout=args.episode_timeout,
                           progress=(lambda t, d, n: bar.update(1)) if bar is not None else None)
    t0 = time.perf_counter()
    try:
        trajs = engine.run(jobs)
    finally:
        if bar is not None:
            bar.close()
    report = {"env_id": args.env_id, "policy": args.policy, "split": args.split, "tasks_drawn": how,
              **summarize(trajs, k=args.samples, seconds=time.perf_counter() - t0)}
    crashed = [t for t in trajs if t.error]
    if crashed:
        report["crash_reasons"] = sorted({t.error for t in crashed})[:5]
        if len(crashed) == len(trajs):
            raise UsageError(f"every episode failed to run ({len(crashed)} of {len(trajs)}), so there is no pass@1 "
                             f"to report: {report['crash_reasons'][0]}")
    if args.out:
        report["trajectories"] = args.out
    if not args.json:
        for key, value in report.items():
            print(f"{key:20s} {value}")
    print(json.dumps(report, sort_keys=True))
    return 0


def _cmd_demos(args: argparse.Namespace) -> int:
    from .policies import get_policy
    from .rollout import write_demonstrations

    env = make_env(args.env_id, args.env_arg, args.split)
    try:
        stats = write_demonstrations(env, get_policy(args.policy), args.out, episodes=args.episodes, seed=args.seed,
                                     min_reward=args.min_reward)
    finally:
        env.close()
    print(json.dumps({"env_id": args.env_id, "out": args.out, **stats}, sort_keys=True))
    return 0


_ENV_ID_HELP = "e.g. kimi_env/Calculator-v0, or mypkg:my/Env-v0 to import mypkg (which registers it) first"
_ENV_ARG_HELP = ("keyword argument for the environment, repeatable; VALUE is JSON when it parses, else a comma list "
                 "(kinds=lookup,set), else text")


def _load_plugins(sub: argparse._SubParsersAction) -> None:
    from importlib.metadata import entry_points

    modules: list[tuple[str, Any]] = [(name, lambda name=name: importlib.import_module(name)) for name in _PLUGINS]
    modules += [(f"{ep.name} = {ep.value}", ep.load) for ep in entry_points(group=PLUGIN_GROUP)]
    for label, load in modules:
        try:
            load().register(sub)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not take every command down
            print(f"{PROG}: warning: the command plugin {label!r} failed to load "
                  f"({type(exc).__name__}: {error_text(exc)}); its commands are missing.", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = CLIParser(prog=PROG, description="Offline tool environments for agentic RL.")
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("envs", help="list the registered environments")
    p.set_defaults(func=_cmd_envs)
    p = sub.add_parser("eval", help="evaluate a policy on an environment")
    p.add_argument("env_id", metavar="ENV_ID", help=_ENV_ID_HELP)
    p.add_argument("--policy", default="oracle",
                   help="policy spec: oracle, no-tool, random, hf:<model>, openai:<url>#<model>, module:Name")
    p.add_argument("--episodes", type=int, default=20, help="episodes to play")
    p.add_argument("--samples", type=int, default=1, help="episodes per task (reports pass@K too)")
    p.add_argument("--concurrency", type=int, default=8, help="episodes in flight at once")
    p.add_argument("--episode-timeout", type=float, default=None, help="wall-clock seconds per episode")
    p.add_argument("--out", default=None, help="write every trajectory to this JSONL file (for kimi-env view)")
    p.add_argument("--seed", type=int, default=0, help="seed of task drawing and of the first episode")
    p.add_argument("--split", default=None,
                   help="task split for environments that have splits (train, validation, test); default: the env's")
    p.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE", help=_ENV_ARG_HELP)
    p.add_argument("--json", action="store_true", help="print only the JSON summary line")
    p.set_defaults(func=_cmd_eval)
    p = sub.add_parser("demos", help="write successful episodes of a policy as chat demonstrations (JSONL) for SFT")
    p.add_argument("env_id", metavar="ENV_ID", help=_ENV_ID_HELP)
    p.add_argument("--out", required=True, help="output JSONL file")
    p.add_argument("--policy", default="oracle", help="oracle or no-tool")
    p.add_argument("--episodes", type=int, default=100, help="episodes to play (failed ones are not written)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    p.add_argument("--split", default=None, help="task split for environments that have splits; default: the env's")
    p.add_argument("--min-reward", type=float, default=1.0, help="keep episodes whose reward is at least this")
    p.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE", help=_ENV_ARG_HELP)
    p.set_defaults(func=_cmd_demos)
    _load_plugins(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (0, or :data:`USAGE_ERROR` after printing the error)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (KimiEnvError, OSError) as exc:
        print(f"{PROG}: error: {error_text(exc)}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
