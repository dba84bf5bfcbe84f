"""``kimi-env view``: the report rendered in headless Chromium (Debian's ``chromium``), what it shows, that its
filters work, that hostile text stays text; and clear errors for truncated or hand-edited trajectory files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import lxml.html
import pytest

from kimi_env.policies import get_policy
from kimi_env.rollout import EpisodeJob, RolloutEngine
from kimi_env.trajectory import Trajectory, TrajectoryWriter, TurnRecord
from kimi_env.viewer import neutralize, render_report

KIMI_ENV = [sys.executable, "-c", "import sys; from kimi_env.cli import main; sys.exit(main())"]
HOSTILE_Q = "Who wrote <script>document.body.setAttribute('data-pwned','1')</script> \u202eevil\u202c?"
HOSTILE_ACTION = '<img src=x onerror="document.title=\'pwned\'">\x1b[31m<tool_call>{"name": "search"}</tool_call>'


def _chromium_dom(url: str, tmp_path: Path) -> lxml.html.HtmlElement:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium; scripts/test.sh installs it)")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0 and "<html" in out.stdout, out.stderr[-2000:]
    return lxml.html.fromstring(out.stdout)


def _hostile() -> Trajectory:
    return Trajectory(
        task_id="evil-1", question=HOSTILE_Q, env_id="custom/Hostile-v0", reward=0.0, answer="zero\u200bwidth",
        answers=["Ada"], end_reason="answer", terminated=True,
        reward_breakdown={"correctness": 0.0, "format_errors": 0},
        turns=[TurnRecord(action=HOSTILE_ACTION, observation="result \u202edesrever\u202c </pre><b>bold</b>"),
               TurnRecord(action="<answer>zero\u200bwidth</answer>", observation="Answer recorded")])


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, list[Trajectory]]:
    tmp = tmp_path_factory.mktemp("view")
    jsonl = tmp / "t.jsonl"
    trajs = []
    for spec, kwargs in (("oracle", {}), ("no-tool", {}), ("random?p_answer=0", {"max_turns": 2})):
        trajs += RolloutEngine("kimi_env/Calculator-v0", get_policy(spec), concurrency=2,
                               env_kwargs=kwargs).run([EpisodeJob(seed=s) for s in range(2)])
    crashed = Trajectory(task_id="c1", question="crash?", env_id="kimi_env/Calculator-v0", reward=-0.1,
                         end_reason="policy_error", truncated=True, error="the policy raised RuntimeError: boom")
    trajs += [_hostile(), crashed]
    with TrajectoryWriter(jsonl) as w:
        for t in trajs:
            w.write(t)
    out = tmp / "report.html"
    proc = subprocess.run(KIMI_ENV + ["view", str(jsonl), "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["episodes"] == len(trajs)
    return out, trajs


def _rows(dom) -> list:
    return dom.xpath("//tr[@data-episode]")


def _shown(dom) -> list[str]:
    return [r.get("data-episode") for r in _rows(dom) if r.get("hidden") is None]


def test_the_page_shows_every_episode_in_full(report, tmp_path):
    out, trajs = report
    dom = _chromium_dom(out.as_uri(), tmp_path)
    assert dom.get_element_by_id("f-count").text_content() == f"{len(trajs)} of {len(trajs)} episodes shown"
    assert len(_rows(dom)) == len(trajs) == len(dom.xpath("//section[@data-episode]"))
    oracle = dom.get_element_by_id("ep-0")
    text = oracle.text_content()
    assert trajs[0].question in text
    assert oracle.xpath(".//pre[@class='final']")[0].text_content() == trajs[0].answer
    assert trajs[0].answers[0] in oracle.xpath(".//pre[@class='truth']")[0].text_content()
    assert "reward_breakdown.correctness" in text and oracle.xpath(".//td[@class='reward']")[0].text == "1"
    # each turn's action, its parsed tool call, and the results folded in <details>
    turn1 = oracle.xpath(".//div[@class='turn']")[0]
    assert turn1.xpath(".//pre[@class='action']")[0].text_content() == trajs[0].turns[0].action
    assert "calculator" in turn1.xpath(".//ul[@class='calls']")[0].text_content()
    details = turn1.xpath(".//details[@class='results']")[0]
    assert details.get("open") is None and trajs[0].turns[0].observation.strip() in details.text_content()
    assert "the policy raised RuntimeError: boom" in dom.get_element_by_id(f"ep-{len(trajs) - 1}").text_content()


@pytest.mark.parametrize("fragment, expect", [
    ("outcome=passed", lambda t: t.error is None and t.reward >= 1.0),
    ("outcome=failed", lambda t: t.error is None and t.reward < 1.0),
    ("outcome=truncated", lambda t: t.truncated),
    ("outcome=crashed", lambda t: t.error is not None),
    ("env=custom/Hostile-v0", lambda t: t.env_id == "custom/Hostile-v0"),
    ("outcome=failed&env=kimi_env/Calculator-v0", lambda t: t.error is None and t.reward < 1.0
     and t.env_id == "kimi_env/Calculator-v0"),
])
def test_filters_hide_what_does_not_match(report, tmp_path, fragment, expect):
    out, trajs = report
    dom = _chromium_dom(out.as_uri() + "#" + fragment, tmp_path)
    want = [str(i) for i, t in enumerate(trajs) if expect(t)]
    assert want and len(want) < len(trajs)
    assert _shown(dom) == want
    shown_sections = [s.get("data-episode") for s in dom.xpath("//section[@data-episode]") if s.get("hidden") is None]
    assert shown_sections == want
    assert dom.get_element_by_id("f-count").text_content() == f"{len(want)} of {len(trajs)} episodes shown"


def test_hostile_text_stays_text(report, tmp_path):
    out, trajs = report
    raw = out.read_text(encoding="utf-8")
    assert "\u202e" not in raw and "\u200b" not in raw and "\x1b" not in raw
    dom = _chromium_dom(out.as_uri(), tmp_path)
    assert not dom.xpath("//*[@data-pwned]") and dom.findtext(".//title") != "pwned"
    assert not dom.xpath("//main//img") and not dom.xpath("//section//b")
    ep = dom.get_element_by_id("ep-6").text_content()
    assert "<script>document.body.setAttribute('data-pwned','1')</script>" in ep
    assert "⟨U+202E⟩evil⟨U+202C⟩" in ep and "zero⟨U+200B⟩width" in ep and "⟨U+001B⟩[31m" in ep
    assert "</pre><b>bold</b>" in ep


def test_neutralize_keeps_newlines_and_tabs_and_marks_every_other_control_or_format_char():
    every = "".join(chr(c) for c in range(0x110000) if 0xD800 > c or c > 0xDFFF)
    import unicodedata

    bad = {ch for ch in every if unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\n\t"}
    out = neutralize(every + "\ud800")
    assert not bad & set(out) and "\ud800" not in out and "\n" in out and "\t" in out
    assert "<script>" in neutralize("<script>")  # escaping is the HTML layer's job
    page = render_report([_hostile()])
    assert "&lt;script&gt;" in page and "<script>document" not in page


def test_truncated_or_hand_edited_files_name_the_line(tmp_path):
    good = _hostile().to_json()
    cases = {
        "truncated.jsonl": (good + "\n" + good[:50], r"truncated.jsonl:2: not valid JSON.*looks truncated"),
        "edited.jsonl": (good + "\n" + good.replace('"reward": 0.0', '"reward": "high"') + "\n",
                         r"edited.jsonl:2: 'reward' must be a number"),
        "turns.jsonl": ("\n" + good.replace('"turns": [', '"turns": [7, ') + "\n",
                        r"turns.jsonl:2: turns\[0\] must be an object"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        proc = subprocess.run(KIMI_ENV + ["view", str(path), "--out", str(tmp_path / "r.html")],
                              capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("kimi-env: error: ") and len(proc.stderr.splitlines()) == 1
        import re

        assert re.search(message, proc.stderr), proc.stderr
        assert not (tmp_path / "r.html").exists()
