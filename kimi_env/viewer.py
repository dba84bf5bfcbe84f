"""``kimi-env view``: trajectories (JSONL) as one static HTML report.

The report is a single file with no network access (a Content-Security-Policy allows nothing but its own inline
script and style, by hash): a table of episodes with filters (outcome: passed, failed, truncated, crashed;
environment; free text), and each episode in full: the question, every turn's action with its parsed tool calls and
the tool results folded in ``<details>``, the final answer against the ground truth (``answers``), the reward and
its breakdown. Filters also read the URL fragment, e.g. ``report.html#outcome=failed&env=kimi_env/SearchQA-v0``.

Every piece of text from a trajectory is escaped, and control and format characters (Unicode categories Cc, Cf and
lone surrogates, except newline and tab), among them the bidi overrides that can make text read differently from
what it is, are shown as visible ``<U+XXXX>`` marks instead. Long text blocks are cut (``max_chars``) with a note.

>>> neutralize("a\\u202eb\\x00c\\n")
'a⟨U+202E⟩b⟨U+0000⟩c\\n'
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .trajectory import Trajectory, read_trajectories

__all__ = ["neutralize", "render_report", "write_report", "outcome"]

_HERMES_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def neutralize(text: str) -> str:
    """Replace control, format (bidi overrides, zero-width) and surrogate characters, except ``\\n`` and ``\\t``,
    with a visible ``⟨U+XXXX⟩`` mark."""
    out = []
    for ch in text:
        if ch in "\n\t":
            out.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs"):
            out.append(f"⟨U+{ord(ch):04X}⟩")
        else:
            out.append(ch)
    return "".join(out)


def _cut(text: str, limit: int) -> str:
    if limit and len(text) > limit:
        return text[:limit] + f"\n[... {len(text) - limit:,} more characters not shown ...]"
    return text


class _Esc:
    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars

    def __call__(self, value: Any, cut: bool = True) -> str:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
        if cut:
            text = _cut(text, self.max_chars)
        return html.escape(neutralize(text), quote=True)


def outcome(traj: Trajectory, threshold: float = 1.0) -> str:
    """``crashed`` (the episode raised or timed out), ``passed`` (reward >= threshold) or ``failed``."""
    if traj.error is not None:
        return "crashed"
    return "passed" if traj.reward >= threshold else "failed"


def _tool_names(traj: Trajectory) -> list[str]:
    names = []
    for t in traj.tools or []:
        fn = t.get("function", t) if isinstance(t, dict) else {}
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            names.append(fn["name"])
    return names


def parse_calls(action: str, tool_names: Sequence[str]) -> list[tuple[str, Any]]:
    """The tool calls written in a turn, for display: Hermes blocks, else XML tags of known tools.

    >>> parse_calls('<tool_call>{"name": "search", "arguments": {"queries": ["x"]}}</tool_call>', [])
    [('search', {'queries': ['x']})]
    >>> parse_calls('<think>hm</think><browse>https://a.test/</browse>', ["browse"])
    [('browse', 'https://a.test/')]
    """
    calls: list[tuple[str, Any]] = []
    for body in _HERMES_CALL.findall(action):
        try:
            obj = json.loads(body)
        except ValueError:
            calls.append(("(invalid JSON)", body.strip()))
            continue
        if isinstance(obj, dict):
            calls.append((str(obj.get("name", "?")), obj.get("arguments", {})))
        else:
            calls.append(("(not a call)", obj))
    if calls or not tool_names:
        return calls
    pattern = re.compile(r"<(" + "|".join(re.escape(n) for n in tool_names) + r")>(.*?)</\1>", re.DOTALL)
    for m in pattern.finditer(action):
        body = m.group(2).strip()
        try:
            value: Any = json.loads(body) if body.startswith("{") else body
        except ValueError:
            value = body
        calls.append((m.group(1), value))
    return calls


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:14px 22px}header h1{margin:0;font-size:19px}
header p{margin:4px 0 0;color:#c9d1e0}
main{padding:14px 22px;max-width:1200px}
#filters{position:sticky;top:0;background:#f6f7f9;padding:10px 0;border-bottom:1px solid #dde1e8;z-index:2}
#filters label{margin-right:14px}#f-count{font-weight:600}
table{border-collapse:collapse;width:100%;background:#fff;margin:10px 0 22px}
th,td{border-bottom:1px solid #e5e8ee;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f6;font-weight:600}td.q{max-width:520px}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;font-weight:600;color:#fff}
.b-passed{background:#2e8b57}.b-failed{background:#c0392b}.b-crashed{background:#7d3c98}.b-trunc{background:#d68910}
.episode{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:12px 16px;margin:0 0 18px}
.episode h2{font-size:16px;margin:0 0 8px}
pre{white-space:pre-wrap;word-break:break-word;background:#f3f5f8;border:1px solid #e5e8ee;border-radius:4px;
padding:7px 9px;margin:4px 0;font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.kv td:first-child{color:#5b6475;width:170px}.turn{border-left:3px solid #9fb3d1;padding-left:10px;margin:10px 0}
.turn h3{font-size:13px;margin:0;color:#3b4a63}.ok{color:#2e8b57;font-weight:600}.bad{color:#c0392b;font-weight:600}
summary{cursor:pointer;color:#2c5aa0}.meta{color:#5b6475;font-size:12.5px}[hidden]{display:none!important}
"""

_SCRIPT = """
(function () {
  var outcome = document.getElementById('f-outcome'), env = document.getElementById('f-env'),
      text = document.getElementById('f-text'), count = document.getElementById('f-count');
  var items = Array.prototype.slice.call(document.querySelectorAll('[data-episode]'));
  function keep(el) {
    var o = outcome.value, d = el.dataset;
    if (o === 'truncated' ? d.truncated !== '1' : (o !== 'all' && d.outcome !== o)) return false;
    if (env.value && d.env !== env.value) return false;
    var q = text.value.trim().toLowerCase();
    return !q || d.search.indexOf(q) !== -1;
  }
  function apply() {
    var shown = {};
    items.forEach(function (el) { var k = keep(el); el.hidden = !k; if (k) shown[el.dataset.episode] = 1; });
    var total = document.querySelectorAll('tr[data-episode]').length;
    count.textContent = Object.keys(shown).length + ' of ' + total + ' episodes shown';
    var p = new URLSearchParams();
    if (outcome.value !== 'all') p.set('outcome', outcome.value);
    if (env.value) p.set('env', env.value);
    if (text.value) p.set('q', text.value);
    var h = p.toString();
    if (history.replaceState) history.replaceState(null, '', h ? '#' + h : location.pathname + location.search);
  }
  var h = location.hash.slice(1);
  if (h.indexOf('=') !== -1) {
    var p = new URLSearchParams(h);
    if (p.get('outcome')) outcome.value = p.get('outcome');
    if (p.get('env') !== null) env.value = p.get('env');
    if (p.get('q')) text.value = p.get('q');
  }
  [outcome, env].forEach(function (el) { el.addEventListener('change', apply); });
  text.addEventListener('input', apply);
  apply();
})();
"""


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def _kv_rows(pairs: Sequence[tuple[str, Any]], esc: _Esc) -> str:
    return "".join(f"<tr><td>{esc(k)}</td><td>{esc(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))}"
                   "</td></tr>" for k, v in pairs)


def _episode_html(i: int, traj: Trajectory, threshold: float, esc: _Esc) -> str:
    out = outcome(traj, threshold)
    names = _tool_names(traj)
    badges = f'<span class="badge b-{out}">{out}</span>'
    if traj.truncated:
        badges += ' <span class="badge b-trunc">truncated</span>'
    parts = [f'<h2>#{i} {badges} {esc(traj.env_id or "(no env id)")} · task {esc(traj.task_id or "?")}</h2>']
    parts.append(f'<div class="question"><strong>Question</strong><pre>{esc(traj.question)}</pre></div>')
    gt = " | ".join(str(a) for a in traj.answers) if traj.answers else "(not recorded)"
    mark = ('<span class="ok">correct</span>' if traj.reward_breakdown.get("correctness") == 1.0
            else '<span class="bad">not correct</span>' if traj.answer is not None else '<span class="bad">no answer</span>')
    parts.append('<table class="kv answer"><tbody>'
                 f'<tr><td>Final answer</td><td><pre class="final">{esc(traj.answer if traj.answer is not None else "(none)")}'
                 f'</pre> {mark}</td></tr>'
                 f'<tr><td>Ground truth</td><td><pre class="truth">{esc(gt)}</pre></td></tr>'
                 f'<tr><td>Reward</td><td class="reward">{esc(f"{traj.reward:g}")}</td></tr>'
                 + _kv_rows([(f"reward_breakdown.{k}", v) for k, v in traj.reward_breakdown.items()], esc)
                 + _kv_rows([(k, v) for k, v in (
                     ("end_reason", traj.end_reason), ("error", traj.error), ("format_errors", traj.format_errors),
                     ("tool_calls", traj.tool_calls)) if v not in (None, "", {}, [])], esc)
                 + "</tbody></table>")
    meta = [(k, v) for k, v in (
        ("turns", traj.num_turns), ("kind", traj.kind), ("hops", traj.hops), ("policy", traj.policy),
        ("model", traj.model), ("sampling", traj.sampling), ("seed", traj.seed), ("wall_s", traj.wall_s),
        ("episode", traj.episode_id)) if v not in (None, "", {}, [])]
    parts.append('<p class="meta">' + " · ".join(
        f"{esc(k)} {esc(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))}" for k, v in meta) + "</p>")
    if traj.prompt:
        parts.append(f"<details><summary>Prompt as the policy saw it ({len(traj.prompt):,} characters)</summary>"
                     f"<pre>{esc(traj.prompt)}</pre></details>")
    for n, turn in enumerate(traj.turns, 1):
        timing = f"generate {turn.generate_s:.3f} s · env {turn.env_s:.3f} s"
        if turn.completion_ids:
            timing += f" · {len(turn.completion_ids)} tokens"
        head = f"Turn {n} · {esc(timing)}"
        if turn.tool_calls:
            head += " · " + esc(", ".join(f"{k}×{v}" for k, v in sorted(turn.tool_calls.items())))
        block = [f'<div class="turn"><h3>{head}</h3><pre class="action">{esc(turn.action)}</pre>']
        calls = parse_calls(turn.action, names)
        if calls:
            block.append('<ul class="calls">' + "".join(
                f'<li><code>{esc(name)}</code> <code>{esc(args if isinstance(args, str) else json.dumps(args, ensure_ascii=False))}'
                "</code></li>" for name, args in calls) + "</ul>")
        if turn.observation:
            label = "Tool results" if calls else "Observation"
            block.append(f'<details class="results"><summary>{label} ({len(turn.observation):,} characters)</summary>'
                         f"<pre>{esc(turn.observation)}</pre></details>")
        block.append("</div>")
        parts.append("".join(block))
    if traj.urls_visited:
        parts.append(f"<details><summary>URLs visited ({len(traj.urls_visited)})</summary><pre>"
                     f"{esc(chr(10).join(traj.urls_visited))}</pre></details>")
    return "".join(parts)


def _search_key(traj: Trajectory) -> str:
    return " ".join(str(x) for x in (traj.task_id, traj.question, traj.answer, traj.env_id, traj.end_reason)).lower()


def render_report(trajs: Sequence[Trajectory], *, title: str = "kimi-env trajectories", source: str = "",
                  threshold: float = 1.0, max_chars: int = 50_000) -> str:
    """The HTML report of ``trajs`` (a complete document as a string)."""
    esc = _Esc(max_chars)
    outcomes = Counter(outcome(t, threshold) for t in trajs)
    envs = sorted({t.env_id for t in trajs})
    n = len(trajs)
    mean = sum(t.reward for t in trajs) / n if n else 0.0
    summary = (f"{n} episodes · {outcomes['passed']} passed · {outcomes['failed']} failed · "
               f"{sum(t.truncated for t in trajs)} truncated · {outcomes['crashed']} crashed · mean reward {mean:.3f}")
    rows, sections = [], []
    for i, t in enumerate(trajs):
        out = outcome(t, threshold)
        data = (f'data-episode="{i}" data-outcome="{out}" data-truncated="{int(t.truncated)}" '
                f'data-env="{esc(t.env_id, cut=False)}" data-search="{esc(_search_key(t), cut=False)}"')
        q = t.question if len(t.question) <= 160 else t.question[:157] + "..."
        rows.append(f'<tr {data}><td><a href="#ep-{i}">#{i}</a></td><td><span class="badge b-{out}">{out}</span>'
                    + (' <span class="badge b-trunc">truncated</span>' if t.truncated else "")
                    + f"</td><td>{esc(t.env_id)}</td><td>{esc(t.task_id or '')}</td><td class=\"q\">{esc(q)}</td>"
                    f"<td>{esc(f'{t.reward:g}')}</td><td>{t.num_turns}</td><td>{esc(t.end_reason or '')}</td></tr>")
        sections.append(f'<section class="episode" id="ep-{i}" {data}>{_episode_html(i, t, threshold, esc)}</section>')
    env_options = "".join(f'<option value="{esc(e, cut=False)}">{esc(e or "(none)", cut=False)}</option>' for e in envs)
    csp = (f"default-src 'none'; script-src {_csp_hash(_SCRIPT)}; style-src {_csp_hash(_STYLE)}; "
           "img-src 'none'; connect-src 'none'; form-action 'none'; base-uri 'none'")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"
        f'<header><h1>{esc(title)}</h1><p id="summary">{esc(summary)}'
        + (f" · {esc(source)}" if source else "") + "</p></header><main>"
        '<form id="filters" onsubmit="return false">'
        '<label>Outcome <select id="f-outcome"><option value="all">all</option><option value="passed">passed</option>'
        '<option value="failed">failed</option><option value="truncated">truncated</option>'
        '<option value="crashed">crashed</option></select></label>'
        f'<label>Environment <select id="f-env"><option value="">all</option>{env_options}</select></label>'
        '<label>Search <input id="f-text" type="search" placeholder="task id, question, answer"></label>'
        f'<span id="f-count">{n} episodes</span></form>'
        '<table id="episodes"><thead><tr><th>#</th><th>Outcome</th><th>Environment</th><th>Task</th><th>Question</th>'
        f"<th>Reward</th><th>Turns</th><th>End</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"{''.join(sections)}</main><script>{_SCRIPT}</script></body></html>\n"
    )


def write_report(paths: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike, *,
                 title: str | None = None, threshold: float = 1.0, max_chars: int = 50_000,
                 max_episodes: int | None = None) -> dict[str, Any]:
    """Read trajectory JSONL file(s) and write the report; a bad line raises
    :class:`~kimi_env.trajectory.TrajectoryFormatError` naming the file and line."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    trajs: list[Trajectory] = []
    for p in paths:
        trajs.extend(read_trajectories(p))
    total = len(trajs)
    if max_episodes is not None:
        trajs = trajs[:max_episodes]
    source = ", ".join(str(p) for p in paths) + (f" (first {len(trajs)} of {total})" if len(trajs) < total else "")
    page = render_report(trajs, title=title or f"kimi-env trajectories: {Path(paths[0]).name}", source=source,
                         threshold=threshold, max_chars=max_chars)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return {"episodes": len(trajs), "out": str(out), "bytes": len(page.encode())}
