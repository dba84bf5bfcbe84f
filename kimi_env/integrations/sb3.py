"""Stable-Baselines3 adapter: :class:`MacroActionWrapper` gives a text environment numeric observations and a small
discrete set of macro-actions, so SB3's algorithms (PPO, A2C, DQN) train on it unchanged.

* **Observation**: a ``Box(0, 1, (n,), float32)`` vector: a hashed bag of words of the question, a hashed bag of
  words of the latest observation, and turn features (turn fraction, tool-use counts, last call failed, how many
  candidate answers were extracted and how well their labels match the question, the answer type).
* **Actions**: ``Discrete(k)``; each action is a macro that becomes a real tool call written in the environment's
  protocol (Hermes or XML) and goes through ``env.step`` like any turn: search for an entity named in the question
  (alone or with the question's field words), search for the best candidate extracted so far, open the k-th search
  result, follow link k or the link of the best candidate, find a field word on the page, compute a sum, difference
  or mean of the numbers found (python tool), or answer with the j-th candidate.

Candidates are values read from what the tools returned (``Label: value.`` in search snippets, ``| Label | value |``
rows of pages, python output), ranked by how well their label matches the question's words and by recency. The
wrapper never reads the task's answers.

``main(argv)`` trains PPO on the train split and reports held-out (test split) success rates with 95% Wilson
intervals against random macro-actions and the no-tool baseline (``kimi-env sb3-ppo``; the lead's
``kimi-env train --algo sb3-ppo`` dispatches to it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from ..env import ToolEnv
from ..errors import InvalidArgumentError
from ..protocol import HermesProtocol, XMLTagProtocol

__all__ = ["MacroActionWrapper", "Macro", "main", "evaluate_policy_fn"]

_WORD = re.compile(r"[A-Za-z0-9]+")
_STOP = frozenset(
    "a an the of in on at to for by with from and or is was were are be been what which who whom whose how many much "
    "when where did does do that this these those its it his her their as into than then after before between "
    "under over name named".split()
)
_NAME = re.compile(r"[A-Z][\w'\u2019-]*(?:\s+(?:(?:of|the|for|de|du|la|upon|on|in)\s+)*[A-Z][\w'\u2019-]*)*")
_QWORDS = ("Which", "What", "Who", "Whom", "Whose", "How", "In", "When", "Where", "Is", "Was", "Did", "Does", "The")
_RESULT = re.compile(r"^\[(\d+)\] ([^\n]*)\n(\S+)\n(.*?)(?=\n\n|\n\[\d+\] |\Z)", re.M | re.S)
_SNIPPET_FIELD = re.compile(r"(?:^|(?<=\. ))([A-Z][A-Za-z ]{1,30}): (.+?)(?=\. [A-Z][A-Za-z ]{1,30}: |\.$|\.\s|$)")
_ROW = re.compile(r"^\| ([^|\n]{1,40}) \| ([^|\n]{1,200}) \|$", re.M)
_LINK = re.compile(r"\[(\d+)\] ([^\[\]\n|]{1,80}?)(?=\s*(?:\||,|\n|$|\[))")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_ANSWER_TYPES = ("text", "number", "date", "list")


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if w.lower() not in _STOP}


def _names(text: str) -> list[str]:
    """Names in a question: quoted titles first, then capitalized spans (without a leading question word)."""
    out: list[str] = [q.strip() for q in re.findall(r'"([^"]{2,80})"', text)]
    for m in _NAME.finditer(re.sub(r'"[^"]{2,80}"', " ", text)):
        name = m.group(0)
        first, _, rest = name.partition(" ")
        if first in _QWORDS:
            name = rest
        name = name.strip()
        if len(name) >= 3 and name not in out:
            out.append(name)
    return out


def _hash_bag(text: str, dim: int) -> np.ndarray:
    vec = np.zeros(dim, dtype=np.float32)
    for w in _WORD.findall(text.lower()):
        vec[zlib.crc32(w.encode()) % dim] = 1.0
    return vec


@dataclass
class Candidate:
    """A value read from a tool result: ``value`` under ``label``, seen at ``turn``; ``score`` is label/question
    overlap in [0, 1]."""

    value: str
    label: str
    score: float
    turn: int
    link: int | None = None
    source: str = ""

    @property
    def number(self) -> float | None:
        m = _NUMBER.fullmatch(self.value.strip().replace(" ", ""))
        return float(m.group(0).replace(",", "")) if m else None


@dataclass(frozen=True)
class Macro:
    """A named macro-action: ``build(wrapper)`` returns (tool name, arguments), or (None, answer text)."""

    name: str
    tool: str | None
    build: Callable[[MacroActionWrapper], tuple[str | None, Any]]


class MacroActionWrapper(gym.Wrapper):
    """Numeric observations and discrete macro-actions over a kimi-env text environment (see the module docstring).

    Args:
        env: A kimi-env environment (``kimi_env.make(...)`` or a :class:`~kimi_env.ToolEnv`), with at least one of
            the ``search``, ``browse``, ``python`` tools and the Hermes or XML protocol.
        vocab_dim: Size of each hashed bag of words (question, latest observation).
        max_candidates: How many ``answer with candidate j`` actions (and candidate features) there are.
        max_results: How many ``open result k`` / ``follow link k`` actions there are.

    Raises:
        InvalidArgumentError: at wrap time when the environment cannot be expressed in these spaces (not a kimi-env
            environment, no tools the macros know, or a protocol without a known call syntax).
    """

    def __init__(self, env: gym.Env, *, vocab_dim: int = 128, max_candidates: int = 3, max_results: int = 3) -> None:
        super().__init__(env)
        base = env.unwrapped
        if not isinstance(base, ToolEnv):
            raise InvalidArgumentError(
                f"MacroActionWrapper wraps kimi-env environments (ToolEnv subclasses), got {type(base).__name__}. "
                "Fix: wrap kimi_env.make('kimi_env/SearchQA-v0') or your own ToolEnv."
            )
        names = [t.name for t in base.tools]
        known = [n for n in names if n in ("search", "browse", "python")]
        if not known:
            raise InvalidArgumentError(
                f"MacroActionWrapper: {type(base).__name__} has tools {names or 'none'}; the macro-actions call "
                "search, browse and python, so a discrete action space cannot express this environment. "
                "Fix: wrap an environment with at least one of those tools (e.g. kimi_env/SearchQA-v0)."
            )
        if not isinstance(base.protocol, (HermesProtocol, XMLTagProtocol)):
            raise InvalidArgumentError(
                f"MacroActionWrapper writes tool calls in the hermes or xml protocol, the environment uses "
                f"{type(base.protocol).__name__}. Fix: make the environment with protocol='hermes'."
            )
        if vocab_dim < 8 or max_candidates < 1 or max_results < 1:
            raise InvalidArgumentError(
                f"vocab_dim must be >= 8 and max_candidates, max_results >= 1; got {vocab_dim}, {max_candidates}, "
                f"{max_results}."
            )
        self.base: ToolEnv = base
        self.vocab_dim = vocab_dim
        self.max_candidates = max_candidates
        self.max_results = max_results
        self.macros: list[Macro] = self._make_macros(set(known))
        self.action_space = gym.spaces.Discrete(len(self.macros))
        self._n_extra = 8 + len(_ANSWER_TYPES) + 2 * max_candidates
        self.observation_space = gym.spaces.Box(0.0, 1.0, (2 * vocab_dim + self._n_extra,), np.float32)
        self._reset_state("", "text")

    # ------------------------------------------------------------------ macro-actions
    def _make_macros(self, tools: set[str]) -> list[Macro]:
        m: list[Macro] = []
        if "search" in tools:
            m += [
                Macro("search_question_entity", "search", lambda w: ("search", {"queries": [w._entity(0)]})),
                Macro("search_question_entity_2", "search", lambda w: ("search", {"queries": [w._entity(1)]})),
                Macro("search_entity_with_field", "search",
                      lambda w: ("search", {"queries": [f"{w._entity(0)} {w._field_words()}".strip()]})),
                Macro("search_all_entities_with_field", "search", lambda w: ("search", {"queries": w._all_queries()})),
                Macro("search_candidate", "search", lambda w: ("search", {"queries": [w._candidate_name()]})),
                Macro("search_candidate_with_field", "search",
                      lambda w: ("search", {"queries": [f"{w._candidate_name()} {w._field_words()}".strip()]})),
            ]
        if "browse" in tools:
            for k in range(1, self.max_results + 1):
                m.append(Macro(f"open_result_{k}", "browse", lambda w, k=k: w._open_result(k)))
            for k in range(1, self.max_results + 1):
                m.append(Macro(f"follow_link_{k}", "browse", lambda w, k=k: w._follow(k)))
            m.append(Macro("follow_candidate_link", "browse", lambda w: w._follow_candidate()))
            m.append(Macro("find_field", "browse", lambda w: w._find_field()))
        if "python" in tools:
            for op in ("sum", "difference", "mean"):
                m.append(Macro(f"compute_{op}", "python", lambda w, op=op: w._compute(op)))
        for j in range(1, self.max_candidates + 1):
            m.append(Macro(f"answer_{j}", None, lambda w, j=j: (None, w._candidate_value(j - 1))))
        return m

    def _entity(self, i: int) -> str:
        names = _names(self._question)
        if not names:
            return self._question[:100] or "unknown"
        return names[min(i, len(names) - 1)]

    def _all_queries(self) -> list[str]:
        names = _names(self._question) or [self._entity(0)]
        limit = getattr(self.base._tools_by_name.get("search"), "max_queries", 5)
        return [f"{n} {self._field_words()}".strip() for n in names[:limit]]

    def _field_words(self) -> str:
        skip = {w.lower() for n in _names(self._question) for w in n.split()}
        words = [w for w in _WORD.findall(self._question) if w.lower() not in _STOP and w.lower() not in skip]
        return " ".join(words[:4])

    def _ranked(self) -> list[Candidate]:
        return sorted(self._candidates, key=lambda c: (c.score > 0, c.turn, c.score), reverse=True)

    def _candidate_name(self) -> str:
        for c in self._ranked():
            if c.number is None:
                return c.value[:100]
        return self._entity(0)

    def _candidate_value(self, j: int) -> str:
        ranked = self._ranked()
        return ranked[j].value if j < len(ranked) else "unknown"

    def _open_result(self, k: int) -> tuple[str, Any]:
        if k <= len(self._results):
            return "browse", {"url": self._results[k - 1][1]}
        return self._fallback_search()

    def _follow(self, k: int) -> tuple[str, Any]:
        if self._page_open and k <= self._n_links:
            return "browse", {"link": k}
        return self._open_result(k)

    def _follow_candidate(self) -> tuple[str, Any]:
        for c in self._ranked():
            if c.link is not None and self._page_open:
                return "browse", {"link": c.link}
        return self._open_result(1)

    def _find_field(self) -> tuple[str, Any]:
        words = self._field_words().split()
        if self._page_open and words:
            return "browse", {"find": words[0]}
        return self._open_result(1)

    def _compute(self, op: str) -> tuple[str, Any]:
        nums, sources = [], set()
        for c in self._ranked():  # the best-matching number of each page, in rank order
            if c.number is not None and c.score >= 0.5 and c.source not in sources:
                nums.append(c.number)
                sources.add(c.source)
        nums = nums[:6]
        if not nums:
            return self._fallback_search()
        if op == "difference":
            code = f"print(abs({nums[0]!r} - {nums[1] if len(nums) > 1 else 0.0!r}))"
        elif op == "mean":
            code = f"xs = {nums!r}\nprint(sum(xs) / len(xs))"
        else:
            code = f"print(sum({nums!r}))"
        return "python", {"code": code}

    def _fallback_search(self) -> tuple[str, Any]:
        if "search" in self.base._tools_by_name:
            return "search", {"queries": [self._entity(0)]}
        if "python" in self.base._tools_by_name:
            return "python", {"code": "print(0)"}
        return "browse", {"find": self._field_words().split()[0] if self._field_words() else "a"}

    def _turn_text(self, tool: str | None, args: Any) -> str:
        if tool is None:
            return f"<answer>{args}</answer>"
        if isinstance(self.base.protocol, XMLTagProtocol):
            return f"<{tool}>{json.dumps(args, ensure_ascii=False)}</{tool}>"
        return "<tool_call>" + json.dumps({"name": tool, "arguments": args}, ensure_ascii=False) + "</tool_call>"

    # ------------------------------------------------------------------ reading tool results
    def _reset_state(self, question: str, answer_type: str) -> None:
        self._question = question
        skip = {w.lower() for n in _names(question) for w in _WORD.findall(n)}
        self._qwords = _words(question) - skip
        self._qstems = {w[:4] for w in self._qwords}
        self._answer_type = answer_type
        self._candidates: list[Candidate] = []
        self._results: list[tuple[str, str, str]] = []
        self._page_open = False
        self._n_links = 0
        self._last_obs = ""
        self._last_failed = False
        self._turn = 0
        self._uses = {"search": 0, "browse": 0, "python": 0}
        self._searched = ""

    def _label_score(self, label: str) -> float:
        """1 per label word that is a question field word, 0.5 per word sharing its first 5 letters with one."""
        words = _words(label)
        if not words:
            return 0.0
        hits = sum(1.0 if w in self._qwords else 0.5 if w[:4] in self._qstems else 0.0 for w in words)
        return hits / len(words)

    def _add(self, value: str, label: str, link: int | None = None, source: str = "") -> None:
        """A candidate; one read from a page about something the question does not name counts a third."""
        value = value.strip()
        if not value or len(value) > 120 or value in self._question or label in self._question:
            return
        score = self._label_score(label)
        if source and source not in self._question and not self._searched.startswith(source):
            score /= 3
        self._candidates.append(Candidate(value, label, score, self._turn, link, source))

    def _read(self, tool: str | None, observation: str) -> None:
        self._last_obs = observation
        self._last_failed = "Error:" in observation or "Format error" in observation
        if tool == "search":
            results = [(m.group(2).strip(), m.group(3).strip(), m.group(4).strip()) for m in _RESULT.finditer(observation)]
            if results:
                self._results = results
            for title, _url, snippet in results:
                for fm in _SNIPPET_FIELD.finditer(snippet):
                    self._add(fm.group(2), fm.group(1), source=title)
        elif tool == "browse":
            if "URL: " in observation:
                self._page_open = True
                self._n_links = max([int(n) for n, _ in _LINK.findall(observation)] or [0])
            tm = re.search(r"^# (.+)$", observation, re.M)
            title = tm.group(1).strip() if tm else ""
            for label, value in _ROW.findall(observation):
                lm = re.fullmatch(r"\[(\d+)\] (.+)", value.strip())
                if lm:
                    self._add(lm.group(2), label, int(lm.group(1)), source=title)
                else:
                    self._add(value, label, source=title)
            for fm in _SNIPPET_FIELD.finditer(observation):
                self._add(fm.group(2), fm.group(1), source=title)
        elif tool == "python":
            nums = _NUMBER.findall(observation.split("</tool_response>")[0].split("\n", 2)[-1])
            if nums:
                value = nums[-1]
                if re.fullmatch(r"-?\d+\.0+", value):
                    value = value.split(".")[0]
                self._candidates.append(Candidate(value, "computed", 1.0, self._turn))

    def _vector(self) -> np.ndarray:
        ranked = self._ranked()
        t = max(1, self.base.max_turns)
        extra = [
            min(1.0, self._turn / t),
            min(1.0, self._uses["search"] / 4),
            min(1.0, self._uses["browse"] / 4),
            min(1.0, self._uses["python"] / 2),
            1.0 if self._last_failed else 0.0,
            min(1.0, len(ranked) / 10),
            min(1.0, len(self._results) / 10),
            1.0 if self._page_open else 0.0,
        ]
        extra += [1.0 if self._answer_type == a else 0.0 for a in _ANSWER_TYPES]
        for j in range(self.max_candidates):
            c = ranked[j] if j < len(ranked) else None
            extra += [c.score if c else 0.0, (1.0 if c.turn == self._turn else 0.5) if c else 0.0]
        vec = np.concatenate([_hash_bag(self._question, self.vocab_dim), _hash_bag(self._last_obs, self.vocab_dim),
                              np.asarray(extra, dtype=np.float32)])
        return vec.astype(np.float32)

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        _obs, info = self.env.reset(seed=seed, options=options)
        task = info.get("task") or {}
        self._reset_state(str(task.get("question", "")), str(task.get("answer_type", "text")))
        return self._vector(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        index = int(np.asarray(action).reshape(-1)[0]) if not isinstance(action, (int, np.integer)) else int(action)
        if not 0 <= index < len(self.macros):
            raise InvalidArgumentError(
                f"action must be an integer in [0, {len(self.macros)}) (see wrapper.macros), got {action!r}."
            )
        macro = self.macros[index]
        tool, args = macro.build(self)
        if tool == "search":
            self._searched = args["queries"][0] if len(args["queries"]) == 1 else ""
        text = self._turn_text(tool, args)
        obs, reward, terminated, truncated, info = self.env.step(text)
        self._turn += 1
        if tool is not None:
            self._uses[tool] = self._uses.get(tool, 0) + 1
        self._read(tool, obs)
        info = dict(info)
        info["macro"] = macro.name
        info["action_text"] = text
        return self._vector(), float(reward), bool(terminated), bool(truncated), info

    def action_names(self) -> list[str]:
        return [m.name for m in self.macros]


# ---------------------------------------------------------------------- evaluation and the PPO baseline
def evaluate_policy_fn(env: MacroActionWrapper, act: Callable[[np.ndarray, MacroActionWrapper], int], *,
                       episodes: int, seed: int) -> dict[str, Any]:
    """Success rate (reward >= 1) of ``act(obs, env) -> action index`` over ``episodes`` seeded episodes, with a
    95% Wilson interval and the macro-actions used."""
    from ..rollout import wilson_interval

    wins, turns, used = 0, 0, {}
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done = False
        reward = 0.0
        while not done:
            obs, reward, terminated, truncated, info = env.step(act(obs, env))
            used[info["macro"]] = used.get(info["macro"], 0) + 1
            turns += 1
            done = terminated or truncated
        wins += reward >= 1.0
    lo, hi = wilson_interval(wins, episodes)
    return {"success_rate": wins / episodes if episodes else 0.0, "ci95": [round(lo, 4), round(hi, 4)],
            "episodes": episodes, "avg_turns": turns / episodes if episodes else 0.0,
            "macros_used": dict(sorted(used.items(), key=lambda kv: -kv[1]))}


def _parse_env_args(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InvalidArgumentError(f"--env-arg expects KEY=VALUE (VALUE as JSON or text), got {pair!r}.")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="kimi-env sb3-ppo", description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="kimi_env/SearchQA-v0", help="environment id (default kimi_env/SearchQA-v0)")
    p.add_argument("--timesteps", type=int, default=20000, help="PPO environment steps on the train split")
    p.add_argument("--episodes", type=int, default=200, help="held-out (test split) episodes per policy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-steps", type=int, default=256, help="PPO rollout length")
    p.add_argument("--train-split", default="train")
    p.add_argument("--eval-split", default="test")
    p.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for the environment (VALUE parsed as JSON when it can be)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for PPO's small networks (default 1)")
    p.add_argument("--save", default=None, help="save the trained PPO model to this path (.zip)")
    p.add_argument("--json", action="store_true", help="print only the JSON summary line")
    return p


def _require_sb3() -> Any:
    try:
        import stable_baselines3
    except ImportError as exc:
        raise InvalidArgumentError(
            "the sb3-ppo baseline needs Stable-Baselines3 (and torch), which is not installed. "
            "Fix: pip install 'kimi-env[sb3]' (or bash scripts/setup.sh dev,train,sb3)."
        ) from exc
    return stable_baselines3


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train PPO on the train split, evaluate PPO, random macro-actions and no-tool on the held-out split."""
    sb3 = _require_sb3()
    from ..policies import get_policy
    from ..registration import make
    from ..rollout import evaluate

    import torch

    torch.set_num_threads(max(1, int(args.threads)))
    env_kwargs = _parse_env_args(args.env_arg)
    train_env = MacroActionWrapper(make(args.env, split=args.train_split, **env_kwargs))
    eval_env = MacroActionWrapper(make(args.env, split=args.eval_split, **env_kwargs))
    try:
        train_env.reset(seed=args.seed)
        train_env.action_space.seed(args.seed)
        model = sb3.PPO("MlpPolicy", train_env, n_steps=args.n_steps, batch_size=64, ent_coef=0.01, gamma=0.99,
                        seed=args.seed, verbose=0, device="cpu")
        model.learn(total_timesteps=args.timesteps)
        if args.save:
            model.save(args.save)
        eval_seed = args.seed + 1_000_000
        ppo = evaluate_policy_fn(eval_env, lambda o, e: int(model.predict(o, deterministic=True)[0]),
                                 episodes=args.episodes, seed=eval_seed)
        rng = np.random.default_rng(args.seed)
        rand = evaluate_policy_fn(eval_env, lambda o, e: int(rng.integers(e.action_space.n)),
                                  episodes=args.episodes, seed=eval_seed)
        no_tool = evaluate(eval_env.env, get_policy("no-tool"), episodes=args.episodes, seed=eval_seed)
    finally:
        train_env.close()
        eval_env.close()
    return {
        "env_id": args.env, "algo": "sb3-ppo", "timesteps": args.timesteps, "seed": args.seed,
        "train_split": args.train_split, "eval_split": args.eval_split, "macros": eval_env.action_names(),
        "ppo": ppo, "random_macro": rand,
        "no_tool": {"success_rate": no_tool["pass@1"], "ci95": no_tool["pass@1_ci95"], "episodes": no_tool["episodes"]},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``kimi-env sb3-ppo`` / ``kimi-env train --algo sb3-ppo``: train and report; the last line is JSON."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    return _print_report(run(args), args.json)


def _print_report(report: dict[str, Any], json_only: bool) -> int:
    if not json_only:
        for name in ("ppo", "random_macro", "no_tool"):
            r = report[name]
            print(f"{name:14s} success {r['success_rate']:.3f}  95% CI {r['ci95']}  ({r['episodes']} episodes)")
    print(json.dumps(report, sort_keys=True))
    return 0


def register(subparsers: Any) -> None:
    """CLI plugin hook (entry-point group ``kimi_env.cli``): adds ``kimi-env sb3-ppo``."""
    p = subparsers.add_parser("sb3-ppo", help="train a PPO macro-action baseline (Stable-Baselines3) and report "
                              "held-out success vs random macro-actions and no-tool")
    build_parser(p)
    p.set_defaults(func=lambda a: _print_report(run(a), a.json))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
