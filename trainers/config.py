"""``ReinforceConfig``: every setting of the REINFORCE trainer and the main job, in one dataclass (after TRL's
``GRPOConfig``: each field documented once, in its ``help``; ``__post_init__`` rejects inconsistent values and
names them). Presets are named configs (:data:`PRESETS`), not code paths.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from kimi_env.errors import InvalidArgumentError

TRAIN_LAYERS = ("full", "lora")  # or "top-K" (the K top decoder layers and the final norm)


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: json.loads(json.dumps(default)), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class ReinforceConfig:
    # ------------------------------------------------------------------ model
    model: str = _f("smollm2-135m", "Policy model: a short name (smollm2-135m, tiny), a local path or a hub id.")
    dtype: str = _f("float32", "Weights dtype: float32 (CPU: these cores have no bf16 units), bfloat16 or float16.")
    device: str = _f("cpu", "Device for model and training: cpu or cuda.")
    train_layers: str = _f("top-2", "Which parameters train: 'full', 'lora' (peft), or 'top-K' (the K top decoder "
                                     "layers and the final norm; the frozen trunk's activations are reused from "
                                     "generation instead of recomputed).")
    lora_r: int = _f(16, "LoRA rank (train_layers='lora').")
    lora_alpha: int = _f(32, "LoRA alpha (train_layers='lora').")
    # ------------------------------------------------------------------ environment and tasks
    env_id: str = _f("kimi_env/SearchQA-v0", "Registered environment to train and evaluate on.")
    env_kwargs: dict = _f({}, "Keyword arguments for the environment (both splits).")
    kinds: list = _f(["lookup", "multihop"], "Task kinds to train and evaluate on (world environments).")
    max_hops: int = _f(3, "Longest hop chain among training and evaluation tasks.")
    rl_one_hop_fraction: float | None = _f(None, "Share of each RL step's tasks that are one-hop, the rest multi-hop "
                                                 "(None: tasks as they come from the shuffled pool; 0: RL on multi-hop "
                                                 "tasks only, where a cold-started policy's groups have both outcomes; "
                                                 "a small share keeps one-hop tasks, where correct solutions of "
                                                 "different lengths are gamma-decay's signal). The SFT demonstrations "
                                                 "cover every kind either way.")
    max_turns: int = _f(6, "Policy turns per episode before truncation (a format error).")
    max_context_tokens: int = _f(2048, "Token budget of an episode's context; past it the episode is truncated.")
    format_penalty: float = _f(-0.1, "Final reward of an episode with a format error or that hit a budget.")
    success_threshold: float = _f(1.0, "Reward at or above which an episode counts as correct.")
    # ------------------------------------------------------------------ rollouts
    group_size: int = _f(8, "Episodes per task in one step (the group the baseline is computed over).")
    tasks_per_step: int = _f(8, "Distinct tasks per step.")
    temperature: float = _f(1.0, "Sampling temperature of training rollouts (evaluation is greedy).")
    top_p: float = _f(1.0, "Top-p of training rollouts.")
    max_new_tokens: int = _f(96, "Most tokens the policy may generate in one turn.")
    concurrency: int = _f(64, "Episodes in flight at once.")
    episode_timeout_s: float = _f(0.0, "Wall-clock budget of one episode in seconds (0: none).")
    partial_rollouts: bool = _f(False, "Turn-level partial rollouts: episodes that pass partial_turns_per_step turns "
                                       "in a step pause and resume in the next step under the new weights. NOT "
                                       "IMPLEMENTED YET: True is refused (see docs/training.md).")
    partial_turns_per_step: int = _f(3, "Turns an episode may take in one step before it pauses (partial_rollouts).")
    # ------------------------------------------------------------------ credit assignment
    turn_discount: float = _f(0.9, "Gamma of Kimi-Researcher's per-turn decay: turn i of a correct T-turn "
                                   "trajectory gets r * turn_discount**(T - i); 1.0 turns it off.")
    baseline: str = _f("group_mean", "Baseline subtracted from credits: group_mean, leave_one_out or none.")
    skip_uniform_groups: bool = _f(True, "Groups whose final rewards are all equal get advantage 0 (no signal).")
    negative_sample_keep: float = _f(1.0, "Fraction of failed trajectories kept in each step's loss (Kimi's "
                                          "negative-sample control against entropy collapse; successes always "
                                          "stay).")
    # ------------------------------------------------------------------ optimization
    max_steps: int = _f(20, "RL steps (one optimizer update each).")
    learning_rate: float = _f(1e-5, "AdamW learning rate of RL.")
    lr_scheduler_type: str = _f("constant", "Learning-rate schedule (any transformers scheduler name).")
    warmup_steps: int = _f(0, "Linear warm-up steps of the schedule (with 'constant', the constant-with-warm-up "
                              "schedule). Adam's first steps move every weight by about the learning rate whatever "
                              "the gradient's size; a warm-up keeps those first steps small.")
    max_grad_norm: float = _f(1.0, "Gradient clipping (global norm).")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    kl_coef: float = _f(0.0, "Weight of a KL penalty to the starting policy (0: none).")
    micro_batch_size: int = _f(8, "Training samples per forward/backward pass (gradient accumulation covers the "
                                  "step); must divide group_size * tasks_per_step.")
    # ------------------------------------------------------------------ SFT cold start
    sft_episodes: int = _f(256, "Oracle episodes played for demonstrations (only successful ones are kept).")
    sft_steps: int = _f(40, "SFT optimizer steps before RL (0: no cold start).")
    sft_batch_size: int = _f(8, "Demonstrations per SFT step.")
    sft_learning_rate: float = _f(1e-4, "SFT learning rate.")
    sft_train_layers: str = _f("full", "Which parameters SFT trains ('full', 'lora', 'top-K').")
    # ------------------------------------------------------------------ evaluation, logging, checkpoints
    eval_multi_hop: int = _f(200, "Held-out multi-hop test tasks evaluated before and after RL (distinct tasks).")
    eval_one_hop: int = _f(100, "Held-out one-hop test tasks evaluated before and after RL.")
    eval_temperature: float = _f(0.0, "Decoding of held-out evaluation: 0 is greedy (pass@1 of the argmax policy, one "
                                      "episode per task); > 0 samples at this temperature, eval_samples episodes per "
                                      "task (pass@1 estimated over them; the paired test pairs task and sample).")
    eval_samples: int = _f(1, "Episodes per held-out task (more than 1 needs eval_temperature > 0).")
    eval_every: int = _f(0, "Evaluate a small held-out slice every this many RL steps (0: only before and after).")
    eval_slice: int = _f(32, "Tasks in the periodic held-out slice.")
    compare_no_discount: bool = _f(False, "Also run RL with turn_discount=1.0 from the same start and report the "
                                          "average turns of successful held-out episodes of both runs.")
    logging_steps: int = _f(1, "Log metrics every this many steps.")
    save_steps: int = _f(0, "Checkpoint every this many RL steps (0: only at the end).")
    save_total_limit: int = _f(1, "Checkpoints kept.")
    sample_trajectories: int = _f(16, "Trajectories of each step written to the run directory for kimi-env view.")
    seed: int = _f(0, "Seed of everything: task order, sampling, negative-sample control, model init (tiny).")
    output_dir: str = _f("runs/latest", "Run directory.")

    def __post_init__(self) -> None:
        p: list[str] = []
        if not 0.0 < self.turn_discount <= 1.0:
            p.append(f"turn_discount={self.turn_discount!r} is outside (0, 1]; use 0.9 for Kimi-style decay or 1.0 "
                     "for none")
        if self.baseline not in ("group_mean", "leave_one_out", "none"):
            p.append(f"baseline={self.baseline!r} is not one of group_mean, leave_one_out, none")
        if self.baseline != "none" and self.group_size < 2:
            p.append(f"group_size={self.group_size} with baseline={self.baseline!r}: a group baseline needs at least "
                     "2 episodes per task; raise group_size or set baseline='none'")
        if not 0.0 <= self.negative_sample_keep <= 1.0:
            p.append(f"negative_sample_keep={self.negative_sample_keep!r} is outside [0, 1]")
        if not -1.0 <= self.format_penalty <= 0.0:
            p.append(f"format_penalty={self.format_penalty!r} is outside [-1, 0]")
        for name in ("group_size", "tasks_per_step", "max_steps", "max_hops", "max_turns",
                     "max_new_tokens", "concurrency", "eval_samples",
                     "micro_batch_size", "max_context_tokens"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                p.append(f"{name}={v!r} must be an int >= 1")
        f1 = self.rl_one_hop_fraction
        if f1 is not None and not (isinstance(f1, (int, float)) and not isinstance(f1, bool) and 0.0 <= f1 <= 1.0):
            p.append(f"rl_one_hop_fraction={f1!r} must be null (the pool's mix) or a number in [0, 1], e.g. 0.25")
        if not p and (self.group_size * self.tasks_per_step) % self.micro_batch_size:
            p.append(f"micro_batch_size={self.micro_batch_size} must divide group_size * tasks_per_step = "
                     f"{self.group_size * self.tasks_per_step}")
        for name in ("train_layers", "sft_train_layers"):
            v = getattr(self, name)
            if v not in TRAIN_LAYERS and not (isinstance(v, str) and v.startswith("top-") and v[4:].isdigit()
                                               and int(v[4:]) >= 1):
                p.append(f"{name}={v!r} must be 'full', 'lora' or 'top-K' with K >= 1 (e.g. 'top-2')")
        if self.learning_rate <= 0 or self.sft_learning_rate <= 0:
            p.append(f"learning rates must be positive, got learning_rate={self.learning_rate!r}, "
                     f"sft_learning_rate={self.sft_learning_rate!r}")
        if self.partial_rollouts:
            p.append("partial_rollouts=True: turn-level partial rollouts are not implemented yet (the rollout engine "
                     "cannot pause an episode across steps); set partial_rollouts=False. Bound long episodes with "
                     "max_turns or episode_timeout_s meanwhile")
        if not (isinstance(self.eval_temperature, (int, float)) and self.eval_temperature >= 0):
            p.append(f"eval_temperature={self.eval_temperature!r} must be >= 0 (0: greedy)")
        elif self.eval_temperature == 0 and isinstance(self.eval_samples, int) and self.eval_samples > 1:
            p.append(f"eval_samples={self.eval_samples} with eval_temperature=0: greedy decoding plays the same "
                     "episode every time; set eval_temperature (e.g. 1.0) or eval_samples=1")
        if self.kl_coef < 0:
            p.append(f"kl_coef={self.kl_coef!r} must be >= 0")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            p.append(f"dtype={self.dtype!r} must be float32, bfloat16 or float16")
        if self.device == "cpu" and self.dtype != "float32":
            p.append(f"dtype={self.dtype!r} on device='cpu': these cores have no bf16/fp16 units (several times "
                     "slower); use dtype='float32'")
        if not 0.0 < self.temperature or not 0.0 < self.top_p <= 1.0:
            p.append(f"temperature={self.temperature!r} must be > 0 and top_p={self.top_p!r} in (0, 1]")
        if p:
            raise InvalidArgumentError("ReinforceConfig: " + "; ".join(p) + ".")

    # ------------------------------------------------------------------ helpers
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> ReinforceConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def with_overrides(self, pairs: list[str]) -> ReinforceConfig:
        """Apply ``KEY=VALUE`` overrides (VALUE parsed as JSON when it can be), naming unknown keys."""
        names = {f.name: f for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for pair in pairs:
            if "=" not in pair:
                raise InvalidArgumentError(f"override {pair!r}: expected KEY=VALUE, e.g. learning_rate=2e-5.")
            key, raw = pair.split("=", 1)
            key = key.strip().replace("-", "_")
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise InvalidArgumentError(f"unknown config field {key!r}.{hint} Fields: {', '.join(names)}.")
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw
            default = getattr(self, key)
            if isinstance(default, bool) and isinstance(value, str):
                value = value.lower() in ("1", "true", "yes", "on")
            elif isinstance(default, float) and isinstance(value, int):
                value = float(value)
            elif isinstance(default, list) and isinstance(value, str):
                value = [v for v in value.split(",") if v]
            changes[key] = value
        return self.replace(**changes)


#: Named configurations. ``cpu-smollm2`` is the main job; ``cpu-tiny`` a smoke run of the whole pipeline in a few
#: minutes on a trivially learnable environment; ``gpu-*`` for CUDA machines.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu-smollm2": dict(
        model="smollm2-135m", train_layers="top-2", learning_rate=1e-4, group_size=8, tasks_per_step=8,
        env_kwargs={"protocol": "xml-brief", "search_top_k": 1, "search_urls": False, "search_snippet_chars": 60,
                    "n_tasks": 30000},
        rl_one_hop_fraction=0.25, max_steps=8, max_turns=5, max_new_tokens=32, turn_discount=0.9, negative_sample_keep=0.5,
        micro_batch_size=8, sft_episodes=512, sft_steps=24, sft_batch_size=8, sft_learning_rate=1e-4,
        sft_train_layers="full", eval_multi_hop=200, eval_one_hop=100, compare_no_discount=True, max_hops=2,
        kinds=["lookup", "multihop"], concurrency=64,
    ),
    "cpu-tiny": dict(
        model="tiny", env_id="kimi_env/ColorBox-v0", env_kwargs={"protocol": "xml-brief", "palette": "digits"},
        kinds=[], train_layers="full", learning_rate=3e-4, group_size=8, tasks_per_step=8, max_steps=40, max_turns=3,
        max_new_tokens=24, turn_discount=0.9, micro_batch_size=16, sft_episodes=1000, sft_steps=300, warmup_steps=5,
        sft_batch_size=16, sft_learning_rate=1e-3, sft_train_layers="full", eval_multi_hop=0, eval_one_hop=128,
        eval_temperature=1.0, eval_samples=8, compare_no_discount=False, concurrency=64, sample_trajectories=4,
    ),
    "gpu-smollm2": dict(
        model="HuggingFaceTB/SmolLM2-360M-Instruct", device="cuda", dtype="bfloat16", train_layers="full",
        learning_rate=1e-6, group_size=16, tasks_per_step=16, max_steps=200, max_turns=10, max_new_tokens=256,
        micro_batch_size=16, concurrency=256, sft_steps=200, eval_multi_hop=500, eval_one_hop=200,
    ),
}


def preset(name: str, **overrides: Any) -> ReinforceConfig:
    """The named configuration (with overrides); a misspelled name is refused with the closest match."""
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise InvalidArgumentError(f"unknown preset {name!r}.{hint} Presets: {', '.join(PRESETS)}.")
    return ReinforceConfig(**{**PRESETS[name], **overrides})
