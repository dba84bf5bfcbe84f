"""The main job: cold start, RL, and an honest before/after on held-out tasks (``kimi-env train``).

Stages (each logs one line to stderr with its wall time):

1. **Tasks.** Training tasks from the environment's train split, held-out tasks from its test split (entities
   disjoint from training), drawn once with the run's seed: ``eval_multi_hop`` distinct tasks of two or more hops
   and ``eval_one_hop`` one-hop tasks.
2. **Model.** ``config.model`` (``smollm2-135m`` offline on CPU).
3. **SFT cold start** on the scripted oracle's successful training episodes (:mod:`trainers.sft`).
4. **Evaluation before RL**: greedy decoding on every held-out task (or, with ``eval_temperature > 0``,
   ``eval_samples`` sampled episodes per task, the sampler's random stream restarted at the same seed for every
   evaluation).
5. **RL** with :class:`trainers.reinforce.ReinforceTrainer`.
6. **Evaluation after RL** on the same tasks; with ``compare_no_discount`` a second RL run from the same SFT weights
   with ``turn_discount=1.0`` and its own evaluation.
7. **Report**: ``results.json`` (pass@1 with 95% Wilson intervals, McNemar's exact paired test, average turns of
   successful episodes), ``report.md``, ``metrics.jsonl``, TensorBoard logs, ``learning_curve.png``, trajectories
   for ``kimi-env view``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from kimi_env.rollout import EpisodeJob, RolloutEngine, summarize, wilson_interval
from kimi_env.trajectory import TrajectoryWriter

from .config import ReinforceConfig


def _log(msg: str) -> None:
    print(f"[kimi-env train] {msg}", file=sys.stderr, flush=True)


def mcnemar_exact(before: list[bool], after: list[bool]) -> dict[str, Any]:
    """McNemar's exact test (two-sided binomial on the discordant pairs) of paired outcomes.

    >>> r = mcnemar_exact([False] * 10 + [True] * 5, [True] * 10 + [True] * 5)
    >>> r["improved"], r["worsened"], round(r["p_value"], 4)
    (10, 0, 0.002)
    """
    if len(before) != len(after):
        raise ValueError("paired outcomes must have the same length")
    b = sum(1 for x, y in zip(before, after) if not x and y)
    c = sum(1 for x, y in zip(before, after) if x and not y)
    return {"improved": b, "worsened": c, "p_value": _sign_test(b, c)}


def _sign_test(up: int, down: int) -> float:
    """Exact two-sided sign test (binomial, p = 1/2) on ``up`` vs ``down`` unequal pairs."""
    n = up + down
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(up, down) + 1)) / 2 ** n)


def paired_turns(pairs: list[tuple[float, float]]) -> dict[str, Any]:
    """Turns of the same held-out tasks solved by both arms, ``(with discount, without)``: how many were shorter or
    longer with the discount, the mean difference, and an exact two-sided sign test on the unequal pairs.

    >>> paired_turns([(2, 3), (2, 3), (3, 3)])["shorter_with_discount"]
    2
    """
    shorter = sum(a < b for a, b in pairs)
    longer = sum(a > b for a, b in pairs)
    p = _sign_test(shorter, longer)
    diff = sum(a - b for a, b in pairs) / len(pairs) if pairs else None
    return {"tasks": len(pairs), "shorter_with_discount": shorter, "longer_with_discount": longer,
            "mean_difference": diff, "p_value": p}


def _proportion(flags: list[bool]) -> dict[str, Any]:
    n = len(flags)
    k = sum(flags)
    lo, hi = wilson_interval(k, n)
    return {"pass@1": round(k / n, 4) if n else None, "ci95": [round(lo, 4), round(hi, 4)], "episodes": n}


def _mean_ci(values: list[float]) -> dict[str, Any]:
    n = len(values)
    if n == 0:
        return {"mean": None, "ci95": [None, None], "n": 0}
    m = sum(values) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = 1.96 * sd / math.sqrt(n) if n > 1 else 0.0
    return {"mean": round(m, 4), "ci95": [round(m - half, 4), round(m + half, 4)], "n": n}


# ---------------------------------------------------------------------------------------------------- tasks
def _make_env(cfg: ReinforceConfig, split: str | None) -> Any:
    from kimi_env.registration import make

    kwargs = dict(cfg.env_kwargs)
    kwargs.setdefault("max_turns", cfg.max_turns)
    kwargs.setdefault("format_penalty", cfg.format_penalty)
    if split is not None and _has_splits(cfg):
        kwargs["split"] = split
        if cfg.kinds:
            kwargs["kinds"] = list(cfg.kinds)
    return make(cfg.env_id, **kwargs)


def _has_splits(cfg: ReinforceConfig) -> bool:
    import gymnasium as gym
    import kimi_env  # noqa: F401 - registers

    entry = gym.spec(cfg.env_id.split(":", 1)[-1]).entry_point
    return "world_qa" in str(entry)


def draw_tasks(cfg: ReinforceConfig) -> dict[str, list[Any]]:
    """Training tasks and the held-out evaluation tasks (multi-hop and one-hop), drawn with the run's seed."""
    rng = random.Random(cfg.seed)
    if _has_splits(cfg):
        out = {}
        for split in ("train", "test"):
            env = _make_env(cfg, split)
            try:
                pool = [t for t in env.unwrapped.task_pool if int(t.metadata.get("hops", 1)) <= cfg.max_hops]
            finally:
                env.close()
            out[split] = pool
        train = list(out["train"])
        rng.shuffle(train)
        multi = [t for t in out["test"] if int(t.metadata.get("hops", 1)) >= 2]
        one = [t for t in out["test"] if int(t.metadata.get("hops", 1)) == 1]
        rng.shuffle(multi)
        rng.shuffle(one)
        return {"train": train, "multi_hop": multi[: cfg.eval_multi_hop], "one_hop": one[: cfg.eval_one_hop]}
    # environments without splits (toy): tasks from disjoint seed ranges
    env = _make_env(cfg, None)
    try:
        def tasks(seeds: range) -> list[Any]:
            got = {}
            for s in seeds:
                env.reset(seed=s)
                t = env.unwrapped.task
                got.setdefault(t.id, t)
            return list(got.values())

        train = tasks(range(10_000, 12_000))
        test = [t for t in tasks(range(0, 400)) if t.id not in {x.id for x in train}]
    finally:
        env.close()
    rng.shuffle(test)
    return {"train": train, "multi_hop": [], "one_hop": test[: cfg.eval_one_hop]}


def rl_train_tasks(cfg: ReinforceConfig, train: list[Any]) -> tuple[list[Any], bool]:
    """The training tasks RL draws from, and whether the trainer should shuffle them.

    With ``rl_one_hop_fraction=None``, every training task in the pool's (seeded, shuffled) order. Otherwise the
    tasks are laid out a step at a time, ``round(fraction * tasks_per_step)`` one-hop tasks and the rest multi-hop
    in each, and the trainer takes them in that order.
    """
    from kimi_env.errors import InvalidArgumentError

    f = cfg.rl_one_hop_fraction
    if f is None:
        return list(train), True
    one = [t for t in train if int(t.metadata.get("hops", 1)) == 1]
    multi = [t for t in train if int(t.metadata.get("hops", 1)) >= 2]
    k1 = round(f * cfg.tasks_per_step)
    k2 = cfg.tasks_per_step - k1
    if (k1 and not one) or (k2 and not multi):
        raise InvalidArgumentError(
            f"rl_one_hop_fraction={f} asks for {k1} one-hop and {k2} multi-hop tasks a step, but the training pool "
            f"has {len(one)} one-hop and {len(multi)} multi-hop tasks (env {cfg.env_id}, max_hops={cfg.max_hops}); "
            "set rl_one_hop_fraction=null for environments without hops, or raise max_hops.")
    steps = min(len(one) // k1 if k1 else len(train), len(multi) // k2 if k2 else len(train))
    rng = random.Random(cfg.seed + 1)
    order: list[Any] = []
    for s in range(steps):
        chunk = one[s * k1:(s + 1) * k1] + multi[s * k2:(s + 1) * k2]
        rng.shuffle(chunk)
        order += chunk
    return order, False


# ---------------------------------------------------------------------------------------------------- pieces
def demo_policy(cfg: ReinforceConfig) -> Any:
    """The scripted policy whose successful episodes are the SFT demonstrations."""
    from kimi_env.policies import FunctionPolicy

    if "ColorBox" in cfg.env_id:
        from kimi_env.envs.toy import ColorBoxOracle

        return FunctionPolicy(ColorBoxOracle.turn, name="colorbox-oracle")
    return _short_search_oracle()


def _short_search_oracle() -> Any:
    """The world oracle without its own ``top_k`` (the environment's ``search_top_k`` applies: the CPU preset's
    short results). A subclass, so each concurrent episode gets its own copy of the oracle's state (Policy.episode)."""
    from kimi_env.policies import OraclePolicy

    class ShortSearchOracle(OraclePolicy):
        name = "oracle-env-top-k"
        search_top_k = None

    return ShortSearchOracle()


def play(cfg: ReinforceConfig, policy: Any, tasks: list[Any], *, split: str | None, out: Path | None = None,
         label: str = "", seed: int = 0) -> list[Any]:
    """Play every task once (greedy policies give pass@1) through the rollout engine."""
    from tqdm import tqdm

    if not tasks:
        return []
    bar = tqdm(total=len(tasks), desc=label, file=sys.stderr, leave=False, disable=not sys.stderr.isatty())

    def progress(_traj: Any, done: int, total: int) -> None:
        bar.update(1)

    engine = RolloutEngine(lambda: _make_env(cfg, split), policy, concurrency=min(cfg.concurrency, len(tasks)),
                           out=out, progress=progress, max_steps=cfg.max_turns + 1)
    try:
        return engine.run([EpisodeJob(seed=seed + i, task=t.to_dict()) for i, t in enumerate(tasks)])
    finally:
        bar.close()


def evaluate_heldout(cfg: ReinforceConfig, policy: Any, tasks: dict[str, list[Any]], run_dir: Path, tag: str
                     ) -> dict[str, Any]:
    """Play every held-out task (``eval_samples`` times each, task-major order) and return, per split, one success
    flag and one turn count (None for failures) per episode, in the same order for every evaluation (the pairs of
    the paired test)."""
    res: dict[str, Any] = {}
    k = cfg.eval_samples if cfg.eval_temperature > 0 else 1
    for name in ("multi_hop", "one_hop"):
        t0 = time.perf_counter()
        if cfg.eval_temperature > 0:  # the same random stream for every evaluation
            policy.generator.gen.manual_seed(cfg.seed + 4242)
        jobs = [t for t in tasks[name] for _ in range(k)]
        trajs = play(cfg, policy, jobs, split="test", out=run_dir / f"eval_{tag}_{name}.jsonl",
                     label=f"eval {tag} {name}")
        flags = [bool(tr is not None and tr.task_id == t.id and tr.success) for t, tr in zip(jobs, trajs)]
        turns = [float(tr.num_turns) if f else None for tr, f in zip(trajs, flags)]
        res[name] = {"flags": flags, "turns": turns, "turns_success": [x for x in turns if x is not None], "summary": summarize(trajs),
                     "seconds": round(time.perf_counter() - t0, 1)}
        if tasks[name]:
            _log(f"eval {tag} {name}: pass@1 {sum(flags)}/{len(flags)} in {res[name]['seconds']} s")
    return res


class _StopOnSignal:
    """Ctrl-C: finish the current RL step, checkpoint, then stop (a second Ctrl-C aborts)."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            _log("Ctrl-C: stopping after this step (press again to abort)")

        try:
            signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread
            pass


def _callbacks(stop: _StopOnSignal, run_dir: Path, trainer_ref: dict[str, Any], cfg: ReinforceConfig) -> list[Any]:
    from transformers import TrainerCallback

    metrics_path = run_dir / "metrics.jsonl"
    samples_path = run_dir / "train_trajectories.jsonl"

    class Progress(TrainerCallback):
        def __init__(self) -> None:
            self.t0 = time.perf_counter()

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            trainer = trainer_ref.get("trainer")
            row = {"step": state.global_step, **{k: v for k, v in (logs or {}).items()}}
            if trainer is not None and trainer.rollout_log:
                row.update({f"rollout/{k}": v for k, v in trainer.rollout_log[-1].items()})
            with metrics_path.open("a") as fh:
                fh.write(json.dumps(row, sort_keys=True) + "\n")

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            trainer = trainer_ref.get("trainer")
            done, total = state.global_step, state.max_steps
            el = time.perf_counter() - self.t0
            eta = el / max(done, 1) * (total - done)
            last = trainer.rollout_log[-1] if trainer is not None and trainer.rollout_log else {}
            _log(f"RL step {done}/{total}: reward {last.get('reward', 0):.3f}, success {last.get('success_rate', 0):.3f}, "
                 f"turns {last.get('avg_turns', 0):.2f}, mixed groups {last.get('mixed_groups', 0)}, "
                 f"rollout {last.get('rollout_s', 0):.0f} s, ETA {eta / 60:.1f} min")
            if trainer is not None and cfg.sample_trajectories:
                with TrajectoryWriter(samples_path, append=True) as w:
                    for tr in trainer.last_trajectories[: cfg.sample_trajectories]:
                        w.write(tr)
            if stop.requested:
                control.should_save = True
                control.should_training_stop = True

    return [Progress()]


def run_rl(cfg: ReinforceConfig, model: Any, tok: Any, train_tasks: list[Any], run_dir: Path,
           resume: str | None = None, stop: _StopOnSignal | None = None, shuffle: bool = True) -> Any:
    from .reinforce import ReinforceTrainer

    stop = stop or _StopOnSignal()
    ref: dict[str, Any] = {}
    trainer = ReinforceTrainer(model, tok, cfg, train_tasks, env_fn=lambda: _make_env(cfg, "train"),
                               callbacks=_callbacks(stop, run_dir, ref, cfg), shuffle_tasks=shuffle)
    ref["trainer"] = trainer
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(str(run_dir / "final_model"))
    return trainer


def _plot(run_dir: Path, results: dict[str, Any]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _log("matplotlib not installed: no learning_curve.png (pip install matplotlib)")
        return
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()] \
        if (run_dir / "metrics.jsonl").exists() else []
    rows = [r for r in rows if "rollout/reward" in r]
    fig, axes = plt.subplots(1, 5, figsize=(20, 3.6))
    steps = [r["step"] for r in rows]
    for ax, key, title in zip(axes[:4], ["rollout/reward", "rollout/avg_turns", "entropy", "rollout/generated_tokens_per_s"],
                              ["train reward", "avg turns", "entropy", "generated tokens/s"]):
        ax.plot(steps, [r.get(key) for r in rows], marker="o")
        ax.set_title(title)
        ax.set_xlabel("RL step")
    ax = axes[4]
    labels, vals, errs = [], [], []
    for key in ("multi_hop_before", "multi_hop_after", "one_hop_before", "one_hop_after"):
        v = results.get(key) or {}
        if v.get("pass@1") is not None:
            labels.append(key.replace("_", " "))
            vals.append(v["pass@1"])
            errs.append([[v["pass@1"] - v["ci95"][0]], [v["ci95"][1] - v["pass@1"]]])
    for i, (v, e) in enumerate(zip(vals, errs)):
        ax.bar(i, v, yerr=e, capsize=4)
    ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=7)
    ax.set_title("held-out pass@1 (95% CI)")
    fig.tight_layout()
    fig.savefig(run_dir / "learning_curve.png", dpi=90)
    plt.close(fig)


def _report_md(cfg: ReinforceConfig, results: dict[str, Any], command: str) -> str:
    def row(name: str, key: str) -> str:
        b, a = results.get(f"{key}_before") or {}, results.get(f"{key}_after") or {}
        if not b.get("episodes"):
            return ""
        return (f"| {name} | {b['episodes']} | {b['pass@1']:.3f} [{b['ci95'][0]:.3f}, {b['ci95'][1]:.3f}] | "
                f"{a['pass@1']:.3f} [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}] |\n")

    md = [f"# kimi-env run report\n\nCommand: `{command}`  \nSeed: {cfg.seed}  \nWall time: "
          f"{results['wall_s'] / 60:.1f} min  \nEnvironment: `{cfg.env_id}`, model `{cfg.model}`\n\n"
          "Held-out tasks come from the test split (entities never seen in training tasks); each is played "
          + ("once with greedy decoding" if cfg.eval_temperature == 0 else
             f"{cfg.eval_samples} times, sampling at temperature {cfg.eval_temperature} (the same random stream "
             "each time)")
          + " before RL (after the SFT cold start) and after RL.\n\n"
          "| held-out tasks | episodes | pass@1 before RL (95% CI) | pass@1 after RL (95% CI) |\n|---|---|---|---|\n"]
    md.append(row("multi-hop (2+ hops)", "multi_hop"))
    md.append(row("one-hop", "one_hop"))
    for label, key in (("multi-hop", "multi_hop"), ("one-hop", "one_hop")):
        nd = results.get(f"{key}_after_no_discount") or {}
        if nd.get("episodes"):
            md.append(f"| {label}, RL with turn_discount=1.0 instead (same start) | {nd['episodes']} | (same) | "
                      f"{nd['pass@1']:.3f} [{nd['ci95'][0]:.3f}, {nd['ci95'][1]:.3f}] |\n")
    mc = results.get("mcnemar_multi_hop") or {}
    if mc and (results.get("multi_hop_before") or {}).get("episodes"):
        md.append(f"\nPaired test on multi-hop (McNemar, exact): {mc['improved']} tasks newly solved, "
                  f"{mc['worsened']} newly failed, p = {results['p_value']:.4g}.\n")
    mo = results.get("mcnemar_one_hop") or {}
    if mo and (results.get("one_hop_before") or {}).get("episodes"):
        md.append(f"\nPaired test on one-hop: {mo['improved']} newly solved, {mo['worsened']} newly failed, "
                  f"p = {mo['p_value']:.4g}.\n")
    def mean(m: dict[str, Any] | None) -> str:
        if not m or m.get("mean") is None:
            return "-"
        return f"{m['mean']:.2f} [{m['ci95'][0]:.2f}, {m['ci95'][1]:.2f}] (n={m['n']})"

    t1 = results.get("avg_turns_success")
    if t1 and t1.get("mean") is not None:
        nd = results.get("avg_turns_success_no_discount") is not None
        md.append("\nTurns of the successful held-out episodes (mean, 95% CI, number of successes): fewer is better "
                  f"at equal pass@1; gamma-decay (turn_discount={cfg.turn_discount}) is meant to make them fewer.\n\n"
                  "| successful held-out episodes | before RL | after RL | after RL with turn_discount=1.0 |\n"
                  "|---|---|---|---|\n")
        md.append(f"| all | {mean(results.get('avg_turns_success_before'))} | {mean(t1)} | "
                  f"{mean(results.get('avg_turns_success_no_discount')) if nd else 'not run'} |\n")
        for key, m in (results.get("avg_turns_success_by_split") or {}).items():
            md.append(f"| {key.replace('_', '-')} | {mean(m.get('before'))} | {mean(m.get('after'))} | "
                      f"{mean(m.get('after_no_discount')) if nd else 'not run'} |\n")
        tp = results.get("turns_paired")
        if tp and tp.get("tasks"):
            md.append(f"\nOn the {tp['tasks']} held-out tasks both arms solved, the discounted arm took fewer turns on "
                      f"{tp['shorter_with_discount']} and more on {tp['longer_with_discount']} (mean difference "
                      f"{tp['mean_difference']:+.3f} turns; exact sign test p = {tp['p_value']:.4g}).\n")
    md.append("\nStage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in results.get("stage_s", {}).items()) + "\n")
    md.append("\nFiles: `results.json`, `metrics.jsonl`, `runs/` (TensorBoard), `learning_curve.png`, `eval_*.jsonl` and "
              "`train_trajectories.jsonl` (open with `kimi-env view FILE --out report.html`), `config.json`.\n")
    return "".join(md)


def run(cfg: ReinforceConfig, *, resume: str | None = None, command: str = "kimi-env train") -> dict[str, Any]:
    """The whole main job; returns the results dict (also written to ``results.json``)."""
    import torch

    start = time.perf_counter()
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if cfg.model in ("tiny", "smollm2-135m") or Path(cfg.model).exists():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing to fetch: never touch the network
    run_dir = Path(cfg.output_dir)
    if resume:
        run_dir = Path(resume)
        saved = json.loads((run_dir / "config.json").read_text())
        cfg = ReinforceConfig(**{**saved, "output_dir": str(run_dir)})
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    stop = _StopOnSignal()
    stop.install()
    stage: dict[str, float] = {}

    t = time.perf_counter()
    tasks = draw_tasks(cfg)
    stage["tasks"] = time.perf_counter() - t
    _log(f"tasks: {len(tasks['train'])} train, {len(tasks['multi_hop'])} held-out multi-hop, "
         f"{len(tasks['one_hop'])} held-out one-hop ({stage['tasks']:.0f} s)")

    from kimi_env.policies.hf import HFPolicy
    from kimi_env.policies.hf_models import load_model

    t = time.perf_counter()
    model, tok = load_model(cfg.model, dtype=cfg.dtype, seed=cfg.seed, device=None if cfg.device == "cpu" else cfg.device)
    stage["model"] = time.perf_counter() - t
    greedy = HFPolicy(model_obj=model, tokenizer=tok, greedy=True, max_new_tokens=cfg.max_new_tokens,
                      max_batch=cfg.concurrency, model=cfg.model)
    evaluator = greedy if cfg.eval_temperature == 0 else HFPolicy(
        model_obj=model, tokenizer=tok, temperature=cfg.eval_temperature, max_new_tokens=cfg.max_new_tokens,
        max_batch=cfg.concurrency, model=cfg.model, seed=cfg.seed + 4242)
    _log(f"model {cfg.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters "
         f"({stage['model']:.0f} s)")

    sft_path = run_dir / "sft_model"
    sft_info: dict[str, Any] = {}
    if resume and sft_path.exists():
        from transformers import AutoModelForCausalLM

        model.load_state_dict(AutoModelForCausalLM.from_pretrained(sft_path).state_dict())
    elif cfg.sft_steps:
        from .sft import run_sft, save_demos

        t = time.perf_counter()
        trajs = play(cfg, demo_policy(cfg), tasks["train"][: cfg.sft_episodes], split="train", label="demos")
        demos = [{"messages": tr.messages, "task_id": tr.task_id} for tr in trajs if tr.success]
        save_demos(demos, run_dir / "demos.jsonl")
        _log(f"demonstrations: {len(demos)} successful of {len(trajs)} oracle episodes")
        sft_info = run_sft(model, tok, greedy, demos, steps=cfg.sft_steps, batch_size=cfg.sft_batch_size,
                           learning_rate=cfg.sft_learning_rate, train_layers=cfg.sft_train_layers,
                           output_dir=run_dir / "sft", seed=cfg.seed, device=cfg.device)
        model.save_pretrained(sft_path)
        tok.save_pretrained(sft_path)
        stage["sft"] = time.perf_counter() - t
        _log(f"SFT: {cfg.sft_steps} steps on {sft_info['tokens']} tokens, final loss {sft_info['final_loss']} "
             f"({stage['sft']:.0f} s)")
    sft_state = copy.deepcopy(model.state_dict()) if cfg.compare_no_discount else None

    t = time.perf_counter()
    evaluator.generator.version += 1
    before = evaluate_heldout(cfg, evaluator, tasks, run_dir, "before")
    stage["eval_before"] = time.perf_counter() - t

    t = time.perf_counter()
    ckpt = None
    if resume:
        cks = sorted(run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        ckpt = str(cks[-1]) if cks else None
    rl_tasks, shuffle = rl_train_tasks(cfg, tasks["train"])
    trainer = run_rl(cfg, model, tok, rl_tasks, run_dir, resume=ckpt, stop=stop, shuffle=shuffle)
    stage["rl"] = time.perf_counter() - t

    t = time.perf_counter()
    model.eval()
    evaluator.generator.version += 1
    after = evaluate_heldout(cfg, evaluator, tasks, run_dir, "after")
    stage["eval_after"] = time.perf_counter() - t

    no_discount = None
    if cfg.compare_no_discount and sft_state is not None and not stop.requested:
        t = time.perf_counter()
        model.load_state_dict(sft_state)
        cfg0 = cfg.replace(turn_discount=1.0, output_dir=str(run_dir / "no_discount"), save_steps=0)
        Path(cfg0.output_dir).mkdir(parents=True, exist_ok=True)
        run_rl(cfg0, model, tok, rl_tasks, Path(cfg0.output_dir), stop=stop, shuffle=shuffle)
        model.eval()
        evaluator.generator.version += 1
        no_discount = evaluate_heldout(cfg0, evaluator, tasks, Path(cfg0.output_dir), "after")
        stage["rl_no_discount"] = time.perf_counter() - t

    results: dict[str, Any] = {
        "multi_hop_before": _proportion(before["multi_hop"]["flags"]),
        "multi_hop_after": _proportion(after["multi_hop"]["flags"]),
        "one_hop_before": _proportion(before["one_hop"]["flags"]),
        "one_hop_after": _proportion(after["one_hop"]["flags"]),
        "seed": cfg.seed,
        "command": command,
        "config": cfg.to_dict(),
        "sft": {k: v for k, v in sft_info.items() if k != "loss_history"},
        "rl_steps": trainer.state.global_step,
        "stopped_early": stop.requested,
    }
    results["mean_reward"] = {f"{name}_{tag}": ev[name]["summary"].get("mean_reward")
                              for tag, ev in (("before", before), ("after", after))
                              for name in ("multi_hop", "one_hop") if tasks[name]}
    mc = mcnemar_exact(before["multi_hop"]["flags"], after["multi_hop"]["flags"])
    mo = mcnemar_exact(before["one_hop"]["flags"], after["one_hop"]["flags"])
    results["mcnemar_multi_hop"], results["mcnemar_one_hop"] = mc, mo
    results["p_value"] = mc["p_value"] if before["multi_hop"]["flags"] else mo["p_value"]
    # average turns of successful held-out episodes (both splits pooled, and each split), and the paired comparison
    # of the two arms on the tasks both solved
    splits = [name for name in ("multi_hop", "one_hop") if tasks[name]]

    def turns_ok(ev: dict[str, Any], names: list[str]) -> list[float]:
        return [x for name in names for x in ev[name]["turns_success"]]

    results["avg_turns_success"] = _mean_ci(turns_ok(after, splits))
    results["avg_turns_success_before"] = _mean_ci(turns_ok(before, splits))
    by_split: dict[str, Any] = {name: {"before": _mean_ci(turns_ok(before, [name])),
                                       "after": _mean_ci(turns_ok(after, [name]))} for name in splits}
    results["avg_turns_success_no_discount"] = None
    if no_discount is not None:
        results["avg_turns_success_no_discount"] = _mean_ci(turns_ok(no_discount, splits))
        results["multi_hop_after_no_discount"] = _proportion(no_discount["multi_hop"]["flags"])
        results["one_hop_after_no_discount"] = _proportion(no_discount["one_hop"]["flags"])
        for name in splits:
            by_split[name]["after_no_discount"] = _mean_ci(turns_ok(no_discount, [name]))
        pairs = [(a, b) for name in splits for a, b in zip(after[name]["turns"], no_discount[name]["turns"])
                 if a is not None and b is not None]
        results["turns_paired"] = paired_turns(pairs)
    results["avg_turns_success_by_split"] = by_split
    results["stage_s"] = {k: round(v, 1) for k, v in stage.items()}
    results["wall_s"] = round(time.perf_counter() - start, 1)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True))
    _plot(run_dir, results)
    (run_dir / "report.md").write_text(_report_md(cfg, results, command))
    _log(f"done in {results['wall_s'] / 60:.1f} min: {run_dir / 'report.md'}")
    return results
