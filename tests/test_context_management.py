"""Context management (``ToolEnv(context_budget=..., memory=True)``): a 60-turn episode fits a fixed budget, stubs keep
titles and URLs, memory notes stay verbatim, and an LM policy's records stay token-exact when history is rewritten."""

from __future__ import annotations

import pytest

import kimi_env
from kimi_env import InvalidArgumentError


def _search(env, query):
    return env.unwrapped.protocol.format_call("search", {"queries": [query]})


def _long_episode(**kw):
    """A scripted 61-turn episode: a note, 59 searches, an answer. Returns per-step infos and the last observation."""
    env = kimi_env.make("kimi_env/SearchQA-v0", split="test", max_turns=70, max_context_chars=20_000, **kw)
    try:
        env.reset(seed=0)
        p = env.unwrapped.protocol
        infos = []
        if "memory" in env.unwrapped._tools_by_name:
            _, _, term, trunc, info = env.step(p.format_call("memory", {"note": "the capital of Zorvia is Quellstad"}))
            infos.append(info)
        words = ["capital", "founder", "river", "bank", "guild", "sessions", "head of state", "industry"]
        for i in range(59):
            _, _, term, trunc, info = env.step(_search(env, f"{words[i % len(words)]} {i}"))
            infos.append(info)
            if term or trunc:
                return infos
        _, r, term, trunc, info = env.step("<answer>Quellstad</answer>")
        infos.append(info)
        return infos
    finally:
        env.close()


def test_sixty_turns_fit_a_fixed_budget_only_with_context_management():
    # without it the same script runs past the hard budget and the episode is cut
    plain = _long_episode()
    assert plain[-1]["end_reason"] == "context_overflow" and len(plain) < 59

    managed = _long_episode(context_budget=12_000, memory=True)
    last = managed[-1]
    assert last["end_reason"] == "answer" and last["num_turns"] == 61
    assert all(i["context_used"] <= 12_000 + 2_000 for i in managed)  # the budget, plus at most the newest outputs
    assert max(i["context_used"] for i in managed[30:]) <= 12_000 + 2_000
    assert last["context_stubs"] > 40 and any(i["context_rewritten"] for i in managed)
    msgs = last["messages"]
    stubs = [m["content"] for m in msgs if m["content"].startswith("[search output cut")]
    assert len(stubs) == last["context_stubs"]
    # the newest stubs keep what the output listed, titles and the URLs it showed; the oldest shrank to the name
    detailed = [s for s in stubs if s.startswith("[search output cut to save context. It listed: ")]
    assert detailed and all("<https://" in s for s in detailed), stubs[-3:]
    assert stubs[0] == "[search output cut]" and stubs[-1] in detailed
    # the note stays verbatim; every assistant turn is kept
    assert any("Note 1 saved: the capital of Zorvia is Quellstad" in m["content"] for m in msgs)
    assert sum(m["role"] == "assistant" for m in msgs) == 61


def test_memory_lists_notes_and_refuses_bad_ones():
    env = kimi_env.make("kimi_env/SearchQA-v0", split="test", memory=True)
    try:
        env.reset(seed=0)
        p = env.unwrapped.protocol
        obs, *_ = env.step(p.format_call("memory", {"note": "first"}))
        assert "Note 1 saved: first" in obs
        obs, *_ = env.step(p.format_call("memory", {}))
        assert "1. first" in obs
        obs, *_, info = env.step(p.format_call("memory", {"note": "x" * 600}))
        assert "at most 500 characters" in obs
        env.reset(seed=1)
        obs, *_ = env.step(p.format_call("memory", {}))
        assert "No notes yet" in obs  # notes are per episode
    finally:
        env.close()


@pytest.mark.parametrize("bad", [0, 20_000, 50_000, "9000", True])
def test_a_context_budget_that_cannot_work_is_refused(bad):
    with pytest.raises(InvalidArgumentError, match="context_budget"):
        kimi_env.make("kimi_env/SearchQA-v0", max_context_chars=20_000, context_budget=bad)


def test_without_a_budget_nothing_is_rewritten():
    infos = _long_episode()
    assert not any(i["context_rewritten"] for i in infos) and infos[-1]["context_stubs"] == 0


class _SearchingLM:
    """The real ``hf:tiny`` machinery writes every turn (its ids and logprobs are recorded), but the text the
    environment gets is a search until turn 5 and then an answer, so the history grows past the budget."""

    name = "searching-tiny"

    def __init__(self, inner):
        self.inner = inner
        self.model_name = inner.model_name

    def sampling_settings(self):
        return self.inner.sampling_settings()

    def episode(self, info, exclusive=False):
        from kimi_env.policies.base import Action, EpisodePolicy

        inner_ep = self.inner.episode(info, exclusive=exclusive)

        class Ep(EpisodePolicy):
            async def aact(self, obs, info):
                a = await inner_ep.aact(obs, info)
                n = info.get("num_turns", 0)
                text = "<answer>x</answer>" if n >= 5 else f"<search>capital {n}</search>"
                # (the written text replaces the sampled one, so the turn did not run out of tokens)
                return Action(text=text, prompt_ids=a.prompt_ids, completion_ids=a.completion_ids,
                              logprobs=a.logprobs, stop_reason="stop")

            def close(self):
                inner_ep.close()

        return Ep(self)


def test_hf_policy_rerenders_a_rewritten_context_and_records_stay_exact():
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from kimi_env.policies import get_policy
    from kimi_env.rollout import run_episode
    from kimi_env.trainers.reinforce import build_samples

    policy = get_policy("hf:tiny", temperature=1.0, max_new_tokens=8, seed=0)
    env = kimi_env.make("kimi_env/SearchQA-v0", split="test", max_turns=6, protocol="xml", max_context_chars=9_000, max_observation_chars=4_000,
                        context_budget=3_000)
    try:
        tr = run_episode(env, _SearchingLM(policy), seed=0)
    finally:
        env.close()
    assert tr.error is None, tr.error
    assert tr.num_turns == 6 and tr.reward is not None
    assert not tr.append_only  # the history was rewritten, so each turn is its own sample
    tok = policy.tokenizer
    rewritten = [i for i in range(1, tr.num_turns)
                 if tr.turns[i].prompt_ids[: len(tr.turns[i - 1].prompt_ids)] != tr.turns[i - 1].prompt_ids]
    assert rewritten, "no turn saw a rewritten context"
    for i in rewritten:
        assert "output cut to save context" in tok.decode(tr.turns[i].prompt_ids)
    # records stay exact: re-scoring each turn's prompt + completion reproduces the sampled logprobs
    for t in tr.turns:
        ids = torch.tensor([t.prompt_ids + t.completion_ids])
        with torch.no_grad():
            logits = policy.model(ids).logits[0, len(t.prompt_ids) - 1:-1].float()
        lp = torch.log_softmax(logits, -1).gather(1, torch.tensor(t.completion_ids)[:, None])[:, 0]
        assert torch.allclose(lp, torch.tensor(t.logprobs), atol=2e-3)
    samples = build_samples(tr, [1.0] * tr.num_turns)
    assert len(samples) == tr.num_turns
    assert all(s.prompt == t.prompt_ids and s.completion == t.completion_ids for s, t in zip(samples, tr.turns))
