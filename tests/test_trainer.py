"""The REINFORCE trainer's mechanism on the tiny model and the ColorBox toy environment: masks, real weight updates,
determinism, resume, config errors. (Held-out learning at toy scale is tests/test_learning_toy.py.)"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

import kimi_env  # noqa: E402
from kimi_env.errors import InvalidArgumentError  # noqa: E402
from kimi_env.trainers.config import ReinforceConfig, preset  # noqa: E402


def tiny_cfg(tmp_path, **kw):
    base = dict(model="tiny", env_id="kimi_env/ColorBox-v0", env_kwargs={"protocol": "xml"}, kinds=[],
                train_layers="full", learning_rate=1e-3, group_size=4, tasks_per_step=2, max_steps=2, max_turns=2,
                max_new_tokens=6, micro_batch_size=4, concurrency=8, output_dir=str(tmp_path / "run"),
                eval_multi_hop=0, eval_one_hop=0, sft_steps=0, skip_uniform_groups=False, baseline="none")
    base.update(kw)
    return ReinforceConfig(**base)


def make_trainer(cfg, seed=0):
    from kimi_env.policies.hf_models import load_model
    from kimi_env.trainers.pipeline import draw_tasks, _make_env
    from kimi_env.trainers.reinforce import ReinforceTrainer

    model, tok = load_model("tiny", seed=seed)
    tasks = draw_tasks(cfg)["train"]
    trainer = ReinforceTrainer(model, tok, cfg, tasks, env_fn=lambda: _make_env(cfg, None))
    # an untrained model seldom ends a turn: let half the vocabulary end it so episodes have several turns
    trainer.policy.generator.stop_ids = set(range(0, len(tok), 2))
    return trainer, model


def test_bad_configs_fail_before_any_work_and_name_the_field():
    with pytest.raises(InvalidArgumentError, match="group_size=1 with baseline='group_mean'"):
        ReinforceConfig(group_size=1, micro_batch_size=1)
    with pytest.raises(InvalidArgumentError, match=r"turn_discount=1.5 is outside \(0, 1\]"):
        ReinforceConfig(turn_discount=1.5)
    with pytest.raises(InvalidArgumentError, match="turn_discount=0.0"):
        ReinforceConfig(turn_discount=0.0)
    with pytest.raises(InvalidArgumentError, match="Did you mean 'cpu-tiny'"):
        preset("cpu-tnyi")
    with pytest.raises(InvalidArgumentError, match="micro_batch_size=3 must divide"):
        ReinforceConfig(micro_batch_size=3)
    with pytest.raises(InvalidArgumentError, match="unknown config field 'turn_discout'.*turn_discount"):
        ReinforceConfig().with_overrides(["turn_discout=0.5"])
    with pytest.raises(InvalidArgumentError, match="bf16"):
        ReinforceConfig(dtype="bfloat16", device="cpu")
    with pytest.raises(InvalidArgumentError, match="partial_rollouts=True: .*not implemented"):
        ReinforceConfig(partial_rollouts=True)
    with pytest.raises(InvalidArgumentError, match="rl_one_hop_fraction=1.5"):
        ReinforceConfig(rl_one_hop_fraction=1.5)
    with pytest.raises(InvalidArgumentError, match="eval_samples=4 with eval_temperature=0"):
        ReinforceConfig(eval_samples=4)
    with pytest.raises(InvalidArgumentError, match="eval_temperature=-1"):
        ReinforceConfig(eval_temperature=-1)


def test_masked_tokens_get_exactly_zero_gradient(tmp_path):
    trainer, model = make_trainer(tiny_cfg(tmp_path))
    batch = trainer._generate_and_score_completions(
        [{"prompt": "q", "task": r["task"]} for r in trainer.train_dataset.select(range(2)) for _ in range(4)])
    mask = batch["tool_mask"].bool()
    assert mask.any() and (~mask & batch["completion_mask"].bool()).any()  # sampled and unsampled tokens both
    captured = {}
    orig = trainer._logps

    def spy(m, inputs, *, ref):
        logps, ent = orig(m, inputs, ref=ref)
        leaf = logps.detach().requires_grad_(True)
        captured["leaf"] = leaf
        return leaf + (logps - logps.detach()), ent

    trainer._logps = spy
    batch["advantages"] = torch.where(mask, torch.randn_like(batch["advantages"]), torch.full_like(
        batch["advantages"], 1000.0))  # huge advantages on masked positions must not matter
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # (set by the training loop; this calls the loss directly)
    loss = trainer._compute_loss(trainer.model, batch)
    loss.backward()
    g = captured["leaf"].grad
    assert torch.all(g[~mask] == 0)
    assert torch.all(g[mask] != 0)


def test_a_step_updates_the_weights_and_only_the_trained_ones(tmp_path):
    cfg = tiny_cfg(tmp_path, train_layers="top-1", max_steps=1)
    trainer, model = make_trainer(cfg)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainer.train()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    top = f"model.layers.{model.config.num_hidden_layers - 1}."
    assert changed and all(k.startswith(top) or k.startswith("model.norm") for k in changed), changed
    assert "model.embed_tokens.weight" not in changed
    log = trainer.rollout_log[-1]
    assert log["episodes"] == 8 and log["samples"] > 0


def test_same_seed_same_first_steps(tmp_path):
    logs = []
    for i in range(2):
        cfg = tiny_cfg(tmp_path / str(i), max_steps=2)
        trainer, model = make_trainer(cfg)
        trainer.train()
        logs.append(([{k: v for k, v in r.items() if k not in ("rollout_s", "generated_tokens_per_s")}
                      for r in trainer.rollout_log], {k: v.clone() for k, v in model.state_dict().items()}))
    assert logs[0][0] == logs[1][0]
    assert all(torch.allclose(logs[0][1][k], logs[1][1][k], atol=1e-6) for k in logs[0][1])


def test_resume_continues_the_same_run(tmp_path):
    full = tiny_cfg(tmp_path / "full", max_steps=3, save_steps=0)
    t_full, m_full = make_trainer(full)
    t_full.train()

    part = tiny_cfg(tmp_path / "part", max_steps=3, save_steps=2, save_total_limit=2)
    t1, _ = make_trainer(part)
    # stop after step 2 (as Ctrl-C does at a step boundary), then resume from the checkpoint in a new trainer
    from transformers import TrainerCallback

    class StopAt2(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 2:
                control.should_training_stop = True

    t1.add_callback(StopAt2())
    t1.train()
    ckpt = tmp_path / "part" / "run" / "checkpoint-2"
    assert (ckpt / "kimi_env_trainer_state.pt").is_file()
    t2, m2 = make_trainer(part)
    t2.train(resume_from_checkpoint=str(ckpt))
    assert t2.state.global_step == 3
    assert t2._rl_step == 3
    # same rollouts at step 3 and the same final weights as the uninterrupted run
    strip = lambda r: {k: v for k, v in r.items() if k not in ("rollout_s", "generated_tokens_per_s")}  # noqa: E731
    assert strip(t2.rollout_log[-1]) == strip(t_full.rollout_log[-1])
    sd_full, sd2 = m_full.state_dict(), m2.state_dict()
    assert all(torch.allclose(sd_full[k], sd2[k], atol=1e-5) for k in sd_full)


def test_crashed_episodes_are_excluded_not_zeros(tmp_path):
    from kimi_env.trajectory import Trajectory, TurnRecord

    trainer, _ = make_trainer(tiny_cfg(tmp_path, baseline="group_mean", skip_uniform_groups=True))
    from kimi_env.rollout import EpisodeJob

    def traj(reward, error=None):
        t = Trajectory(task_id="t", reward=reward, error=error)
        t.turns = [TurnRecord(action="a", prompt_ids=[1, 2], completion_ids=[3], logprobs=[-0.1])]
        return t

    trajs = [traj(1.0), traj(1.0), traj(0.0, error="the policy raised RuntimeError: boom"), traj(1.0)]
    _, stats = trainer._make_batch(trajs, [EpisodeJob(group=0)] * 4)
    # without the crash the group is uniform (all 1.0): no signal, no samples; a zero would have made it mixed
    assert stats["crashed"] == 1 and stats["samples"] == 0 and stats["mixed_groups"] == 0


def test_sft_masked_head_loss_equals_the_stock_loss_and_gradients():
    """The SFT loss applies the head only at labelled positions: same value and gradients as the model's own
    masked cross-entropy over full logits."""
    import torch

    from kimi_env.policies.hf_models import load_model
    from kimi_env.trainers.sft import _masked_head_loss

    model, _ = load_model("tiny", seed=0)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 200, (3, 17), generator=g)
    labels = ids.clone()
    labels[:, :6] = -100
    labels[1, 10:] = -100
    att = torch.ones_like(ids)
    att[2, :3] = 0
    inputs = {"input_ids": ids, "attention_mask": att, "labels": labels}
    loss, metrics = _masked_head_loss(model, inputs)
    loss.backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    stock = model(input_ids=ids, attention_mask=att, labels=labels).loss
    stock.backward()
    assert torch.allclose(loss, stock, atol=1e-5), (loss, stock)
    for n, p in model.named_parameters():
        assert torch.allclose(ours[n], p.grad, atol=1e-5), n
    assert 0.0 <= metrics["mean_token_accuracy"] <= 1.0 and metrics["entropy"] > 0


def test_rl_task_mix_lays_out_each_step_and_the_trainer_keeps_that_order(tmp_path):
    from kimi_env import Task
    from kimi_env.trainers.pipeline import rl_train_tasks

    pool = [Task(id=f"h{h}-{i}", question=f"q{h}-{i}?", answers=("a",), metadata={"hops": h})
            for h in (1, 2) for i in range(30)]
    cfg = ReinforceConfig(tasks_per_step=8, group_size=2, micro_batch_size=2, rl_one_hop_fraction=0.25, max_hops=2)
    order, shuffle = rl_train_tasks(cfg, pool)
    assert not shuffle and len(order) == 8 * 5  # 30 multi-hop tasks fill 5 steps of 6 (one-hop ones would fill 15)
    for s in range(0, len(order), 8):
        assert sorted(t.metadata["hops"] for t in order[s:s + 8]) == [1, 1, 2, 2, 2, 2, 2, 2]
    assert len({t.id for t in order}) == len(order)
    only_multi, _ = rl_train_tasks(cfg.replace(rl_one_hop_fraction=0.0), pool)
    assert {t.metadata["hops"] for t in only_multi} == {2}
    assert rl_train_tasks(cfg.replace(rl_one_hop_fraction=None), pool) == (pool, True)
    with pytest.raises(InvalidArgumentError, match="rl_one_hop_fraction=0.25 asks for 2 one-hop and 6 multi-hop"):
        rl_train_tasks(cfg, [t for t in pool if t.metadata["hops"] == 1])

    # the trainer takes an ordered list as given, tasks_per_step at a time
    from kimi_env.policies.hf_models import load_model
    from kimi_env.trainers.pipeline import draw_tasks, _make_env
    from kimi_env.trainers.reinforce import ReinforceTrainer

    tcfg = tiny_cfg(tmp_path, max_steps=2)
    tasks = draw_tasks(tcfg)["train"][:8]
    model, tok = load_model("tiny", seed=0)
    trainer = ReinforceTrainer(model, tok, tcfg, tasks, env_fn=lambda: _make_env(tcfg, None), shuffle_tasks=False)
    trainer.train()
    seen = [tr.task_id for tr in trainer.last_trajectories]
    assert seen == [t.id for t in tasks[2:4] for _ in range(tcfg.group_size)]


def test_warmup_steps_take_effect_with_the_constant_schedule(tmp_path):
    # transformers' "constant" schedule ignores warmup_steps; a config asking for both gets constant-with-warm-up
    from kimi_env.trainers.reinforce import grpo_args

    args = grpo_args(ReinforceConfig(warmup_steps=4, output_dir=str(tmp_path)))
    assert args.lr_scheduler_type == "constant_with_warmup" and args.warmup_steps == 4
    plain = grpo_args(ReinforceConfig(output_dir=str(tmp_path)))
    assert plain.lr_scheduler_type == "constant"
    cosine = grpo_args(ReinforceConfig(warmup_steps=4, lr_scheduler_type="cosine", output_dir=str(tmp_path)))
    assert cosine.lr_scheduler_type == "cosine"
