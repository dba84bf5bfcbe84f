"""The oracle agent: a scripted policy that solves a task by following its hop plan through the real tools.

It never reads answers: every fact comes from a tool call and from parsing what the tool returned (search results,
browsed pages, python output), exactly as an agent would see them. It follows the task's hop plan (which names
only what the question names), which is privileged data: it reads it from ``info["privileged_task"]``, which a
rollout fills from the explicit accessor ``kimi_env.privileged_task(env)`` for policies with ``privileged = True``
(``info["task"]`` does not carry the plan). It is the synthesis funnel's solvability check and the source of
cold-start demonstrations. It writes calls and reads results through the environment's protocol
(``info["protocol"]``: ``hermes`` or ``xml``), so it works under both.

It lives next to the world whose pages it parses; ``from kimi_env.policies import OraclePolicy`` still works.

How it reads the offline web:

* an entity named in the question: ``search`` for the name, take the result whose title is exactly the name;
* with ``browse``: open the page, read the infobox row ``| Label | value |``, the ``Table: caption`` rows, the list
  under a ``## Section`` heading, or ``find=`` the deep fact's keyword; an entity value is a numbered link ``[n] Name``
  that it follows with ``link=n`` from the page it was read on;
* without ``browse`` (SearchQA, CodeQA): ``search`` for ``"<name> <label>"`` and read ``Label: value.`` from the
  snippet of the entity's own result;
* computing steps (``sum``, ``mean``, ``growth``, ``diff``) go through the ``python`` tool when the environment has
  it, else the oracle computes them itself.

Each plan op is a generator that yields turns (tool calls) and receives observations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from ..policies.base import Policy
from ..protocol import HermesProtocol, Protocol, get_protocol
from .model import MONTHS

Script = Generator[str, str, Any]

_DATE = re.compile(r"\b(\d{1,2}) (" + "|".join(MONTHS) + r") (\d{3,4})\b")
_NUM = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def tool_call(name: str, **arguments: Any) -> str:
    """The Hermes-format text of one tool call."""
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + "</tool_call>"


def _protocol_named(name: Any) -> Protocol:
    try:
        return get_protocol(name) if isinstance(name, str) else HermesProtocol()
    except KeyError:
        return HermesProtocol()


def response_bodies(observation: str) -> list[str]:
    """The contents of the ``<tool_response>`` blocks of an observation (without their name lines), in call order."""
    return re.findall(r"<tool_response>\n[^\n]*\n(.*?)\n</tool_response>", observation, re.DOTALL)


def response_body(observation: str) -> str:
    """The content of the first ``<tool_response>`` block (the whole observation when there is none)."""
    bodies = response_bodies(observation)
    return bodies[0] if bodies else observation


class OracleError(RuntimeError):
    """The oracle could not follow the plan (the task is unsolvable through the tools as they answered)."""


class NoPlanError(OracleError):
    """The task carries no hop plan, so the oracle cannot play it at all (your own tasks, typically)."""


@dataclass(frozen=True)
class Entity:
    """An entity read from a page: its name, and where to follow it (the page and link number), or its own URL."""

    name: str
    url: str | None = None
    page_url: str | None = None
    link: int | None = None


@dataclass(frozen=True)
class Number:
    value: float
    digits: int


# ---- parsing what tools return -------------------------------------------------------------------------------
def parse_search(body: str) -> list[tuple[str, str, str]]:
    """(title, url, snippet) of every numbered result in a search observation (url "" where results show no URLs)."""
    out = []
    pattern = r"^\[(\d+)\] ([^\n]*)\n(?:([a-z][a-z0-9+.-]*://\S+)\n)?(.*?)(?=\n\n|\n\[\d+\] |\Z)"
    for m in re.finditer(pattern, body, re.M | re.S):
        out.append((m.group(2).strip(), (m.group(3) or "").strip(), m.group(4).strip()))
    return out


def page_url_of(body: str) -> str | None:
    m = re.search(r"^URL: (\S+)", body, re.M)
    return m.group(1) if m else None


def page_count(body: str) -> int:
    m = re.search(r"^Page \d+ of (\d+)", body, re.M)
    return int(m.group(1)) if m else 1


def infobox_value(body: str, label: str) -> str | None:
    m = re.search(r"^\| " + re.escape(label) + r" \| (.*?) \|$", body, re.M)
    return m.group(1).strip() if m else None


def snippet_value(snippet: str, label: str) -> str | None:
    m = re.search(r"(?:^|\. )" + re.escape(label) + r": (.*?)(?:\.(?= [A-Z][^.:]{0,40}: )|\.$|\.\s|$)", snippet)
    return m.group(1).strip() if m else None


_NAME = r"[A-Z][\w'\u2019-]*(?:\s+(?:(?:of|the|for|de|du|la|upon|and|on|in)\s+)*[A-Z][\w'\u2019-]*)*"


def prose_value(body: str, label: str) -> str | None:
    """A fact stated in prose rather than an infobox (archive pages): the first date, else the first year."""
    text = body.split("\n# ", 1)[-1]
    m = _DATE.search(text)
    if m and label in ("Born", "Release date", "Released"):
        return m.group(0)
    m = re.search(r"\b(\d{3,4})\b", text)
    return m.group(1) if m else None


def as_value(text: str, page_url: str | None) -> Any:
    """A cell or passage value: ``[n] Name`` becomes an :class:`Entity` to follow; anything else stays text."""
    m = re.fullmatch(r"\[(\d+)\] (.+)", text.strip())
    if m:
        return Entity(m.group(2).strip(), page_url=page_url, link=int(m.group(1)))
    return text.strip()


def section_links(body: str, heading: str, page_url: str | None) -> list[Entity] | None:
    m = re.search(r"^## " + re.escape(heading) + r"\n\n((?:- .*\n?)+)", body, re.M)
    if not m:
        return None
    items = []
    for line in m.group(1).splitlines():
        item = as_value(line[2:], page_url)
        items.append(item if isinstance(item, Entity) else Entity(str(item)))
    return items


def table_rows(body: str, caption: str) -> dict[str, str] | None:
    m = re.search(r"^Table: " + re.escape(caption) + r"\n((?:\|.*\|\n?)+)", body, re.M)
    if not m:
        return None
    rows = {}
    for line in m.group(1).splitlines()[1:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2:
            rows[cells[0]] = cells[1]
    return rows


def _deep_patterns() -> list[re.Pattern[str]]:
    from .render import DEEP_TEMPLATES

    pats = []
    for templates in DEEP_TEMPLATES.values():
        for t in templates:
            rx = re.escape(t).replace(r"\{n\}", r".+?").replace(r"\{s\}", r".+?").replace(r"\{v\}", r"(?P<v>.+?)")
            pats.append(re.compile(rx.replace(r"\ ", " ")))
    return pats


def to_number(value: Any) -> float:
    if isinstance(value, Number):
        return value.value
    if isinstance(value, (int, float)):
        return float(value)
    m = _NUM.search(str(value))
    if not m:
        raise OracleError(f"not a number: {value!r}")
    return float(m.group(0).replace(",", ""))


def year_of(value: Any) -> int:
    text = str(value)
    m = _DATE.search(text)
    if m:
        return int(m.group(3))
    m = re.search(r"\b\d{3,4}\b", text)
    if not m:
        raise OracleError(f"no year in {value!r}")
    return int(m.group(0))


def order_key(value: Any) -> tuple[float, int, int]:
    m = _DATE.search(str(value)) if not isinstance(value, Number) else None
    if m:
        return (int(m.group(3)), MONTHS.index(m.group(2)) + 1, int(m.group(1)))
    return (to_number(value), 0, 0)


def name_of(value: Any) -> str:
    return value.name if isinstance(value, Entity) else str(value)


def format_value(value: Any, answer_type: str) -> str:
    if isinstance(value, list):
        return ", ".join(sorted((format_value(v, "text") for v in value), key=str.lower))
    if isinstance(value, Number):
        return str(round(value.value)) if value.digits <= 0 else f"{value.value:.{value.digits}f}"
    if isinstance(value, Entity):
        return value.name
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    if answer_type == "number" and isinstance(value, str):
        m = _NUM.search(value)
        return m.group(0).replace(",", "") if m else value
    return str(value)


class OraclePolicy(Policy):
    """Follows ``info["privileged_task"]["metadata"]["plan"]`` with the environment's tools.

    When it cannot (a tool did not return what the plan expects, or it was given no plan), it answers ``unknown``
    and records why in :attr:`failure`.
    """

    name = "oracle"
    #: a rollout passes this policy ``info["privileged_task"] = kimi_env.privileged_task(env)`` at reset
    privileged = True
    #: pages opened in one turn (their text must fit in one observation together)
    parallel_pages = 3
    #: ``top_k`` of its searches; None leaves it out (the environment's ``search_top_k`` then applies)
    search_top_k: int | None = 5

    def __init__(self, strict: bool = False) -> None:
        #: with ``strict``, a task without a plan raises :class:`NoPlanError` instead of answering ``unknown``
        #: (``kimi-env eval`` uses this, so the oracle on your own tasks fails loudly instead of scoring 0)
        self.strict = bool(strict)
        self._script: Script | None = None
        self._pending: str | None = None
        self.failure: str | None = None
        self._deep = _deep_patterns()

    def reset(self, info: dict[str, Any]) -> None:
        task = info.get("privileged_task") or info.get("task") or {}
        self.protocol = _protocol_named(info.get("protocol"))
        self.tools = {t["function"]["name"] for t in info.get("tools", [])}
        self.failure = None
        self._current_page: str | None = None
        self._script = self._run_plan(task)
        self._pending = None

    def act(self, observation: str, info: dict[str, Any]) -> str:
        if self._script is None:
            self.reset(info)
        assert self._script is not None
        try:
            turn = next(self._script) if self._pending is None else self._script.send(observation)
        except StopIteration as stop:
            return f"<answer>{stop.value}</answer>"
        except (OracleError, KeyError, IndexError, ValueError, TypeError) as exc:
            if self.strict and isinstance(exc, NoPlanError):
                raise
            self.failure = f"{type(exc).__name__}: {exc}"
            self._pending = None
            self._script = iter(())  # type: ignore[assignment]
            return "<answer>unknown</answer>"
        self._pending = turn
        return turn

    def _run_plan(self, task: dict[str, Any]) -> Script:
        plan = (task.get("metadata") or {}).get("plan") or []
        if not plan:
            raise NoPlanError(
                "the task has no plan: the oracle needs info['privileged_task'] (a rollout sets it from "
                "kimi_env.privileged_task(env) for policies with privileged=True)"
            )
        results: list[Any] = []
        for step in plan:
            handler = getattr(self, f"_op_{step.get('op')}", None)
            if handler is None:
                raise OracleError(f"unknown plan op {step.get('op')!r}")
            results.append((yield from handler(step, results)))
        return format_value(results[-1], task.get("answer_type", "text"))

    @staticmethod
    def _arg(results: list[Any], a: Any) -> Any:
        return results[int(a[1:])] if isinstance(a, str) and a.startswith("$") else a

    # ---- talking to tools ----------------------------------------------------------------------------------------
    def _turn(self, *calls: tuple[str, dict[str, Any]]) -> str:
        return "".join(self.protocol.format_call(name, args) for name, args in calls)

    def _bodies(self, observation: str) -> list[str]:
        return self.protocol.result_bodies(observation)

    def _top_k(self) -> dict[str, int]:
        return {} if self.search_top_k is None else {"top_k": self.search_top_k}

    def _call(self, name: str, **arguments: Any) -> Script:
        obs = yield self._turn((name, arguments))
        bodies = self._bodies(obs)
        body = bodies[0] if bodies else obs
        if body.startswith("Error"):
            raise OracleError(f"{name} failed: {body[:200]}")
        return body

    def _browse(self, **arguments: Any) -> Script:
        body = yield from self._call("browse", **arguments)
        self._current_page = page_url_of(body) or self._current_page
        return body

    def _search_entity(self, name: str, extra: str = "") -> Script:
        """The search result (title, url, snippet) whose title is exactly ``name``."""
        query = f"{name} {extra}".strip()
        body = yield from self._call("search", queries=[query], **self._top_k())
        for title, url, snippet in parse_search(body):
            if title == name:
                return title, url, snippet
        raise OracleError(f"no search result titled {name!r} for {query!r}")

    def _open_entity(self, ref: Any) -> Script:
        """Open the page of an entity (by name, by link from the page it was read on, or by URL)."""
        if isinstance(ref, Entity) and ref.link is not None and ref.page_url is not None:
            if self._current_page != ref.page_url:
                yield from self._browse(url=ref.page_url)
            return (yield from self._browse(link=ref.link))
        if isinstance(ref, Entity) and ref.url:
            return (yield from self._browse(url=ref.url))
        _, url, _ = yield from self._search_entity(name_of(ref))
        return (yield from self._browse(url=url))

    def _open_all_pages(self, first: str, wanted: Any) -> Script:
        """Yield further pages of the current document until ``wanted(text)`` finds something."""
        text = first
        found = wanted(text)
        for page in range(2, page_count(first) + 1):
            if found is not None:
                break
            more = yield from self._browse(page=page)
            text += "\n" + more
            found = wanted(text)
        return found

    # ---- fact-gathering ops --------------------------------------------------------------------------------------
    def _lookup_value(self, ref: Any, step: dict[str, Any]) -> Script:
        label, source = step["attribute"], step.get("source")
        if step.get("deep"):
            if "browse" not in self.tools:
                raise OracleError("a deep fact needs the browse tool")
            if source:
                body = yield from self._browse(url=source, find=step["find"])
            else:
                yield from self._open_entity(ref)
                body = yield from self._browse(find=step["find"])
            return self._deep_value(body, step["find"])
        if "browse" in self.tools:
            body = yield from (self._browse(url=source) if source else self._open_entity(ref))
            page = page_url_of(body)
            raw = yield from self._open_all_pages(body, lambda text: infobox_value(text, label))
            if raw is None and source:
                raw = prose_value(body, label)
            if raw is None:
                raise OracleError(f"no infobox row {label!r} on {page}")
            return as_value(raw, page)
        if source:
            raise OracleError("a named source needs the browse tool")
        _, _, snippet = yield from self._search_entity(name_of(ref), label)
        raw = snippet_value(snippet, label)
        if raw is None:
            raise OracleError(f"no {label!r} in the snippet of {name_of(ref)!r}")
        return raw

    def _deep_value(self, body: str, keyword: str) -> Any:
        page = page_url_of(body)
        for passage in re.findall(r"\[match \d+, page \d+\] (.*)", body):
            for sentence in re.split(r"(?<=\.) ", passage.strip("… ")):
                if keyword.lower() not in sentence.lower():
                    continue
                link = re.search(r"\[(\d+)\] (" + _NAME + ")", sentence)
                if link:
                    return Entity(link.group(2).strip(), page_url=page, link=int(link.group(1)))
                for pat in self._deep:
                    m = pat.fullmatch(sentence.strip())
                    if m:
                        return m.group("v")
        raise OracleError(f"no sentence with {keyword!r} could be read")

    def _op_lookup(self, step: dict[str, Any], results: list[Any]) -> Script:
        return (yield from self._lookup_value(self._arg(results, step["entity"]), step))

    def _op_lookup_each(self, step: dict[str, Any], results: list[Any]) -> Script:
        refs = list(self._arg(results, step["entities"]))
        if "browse" not in self.tools or step.get("deep") or step.get("source"):
            out = []
            for ref in refs:
                out.append((yield from self._lookup_value(ref, step)))
            return out
        # Parallel, as a research agent would: one search call with several queries to get every page's URL,
        # then one turn that opens all the pages at once.
        names = [name_of(r) for r in refs]
        urls: dict[str, str] = {}
        for i in range(0, len(names), 5):
            body = yield from self._call("search", queries=names[i : i + 5], **self._top_k())
            for title, url, _ in parse_search(body):
                urls.setdefault(title, url)
        missing = [n for n in names if n not in urls]
        if missing:
            raise OracleError(f"no search result titled {missing[0]!r}")
        values = []
        for i in range(0, len(names), self.parallel_pages):
            chunk = names[i : i + self.parallel_pages]
            obs = yield self._turn(*(("browse", {"url": urls[n]}) for n in chunk))
            bodies = self._bodies(obs)
            if len(bodies) != len(chunk):
                raise OracleError(f"expected {len(chunk)} browse results, got {len(bodies)}")
            for body in bodies:
                raw = infobox_value(body, step["attribute"])
                if raw is None:
                    raise OracleError(f"no infobox row {step['attribute']!r} on {page_url_of(body)}")
                values.append(as_value(raw, page_url_of(body)))
        self._current_page = None  # several pages were opened at once: which one is current is not known
        return values

    def _op_list(self, step: dict[str, Any], results: list[Any]) -> Script:
        body = yield from self._open_entity(self._arg(results, step["entity"]))
        page = page_url_of(body)
        items = yield from self._open_all_pages(body, lambda text: section_links(text, step["section"], page))
        if items is None:
            raise OracleError(f"no section {step['section']!r} on {page}")
        return items

    def _op_table(self, step: dict[str, Any], results: list[Any]) -> Script:
        ref = self._arg(results, step["entity"])
        if "browse" in self.tools:
            body = yield from self._open_entity(ref)
            rows = yield from self._open_all_pages(body, lambda text: table_rows(text, step["table"]))
            if rows is None:
                raise OracleError(f"no table {step['table']!r}")
            return [rows[k] for k in step["rows"]]
        raise OracleError("reading a table needs the browse tool")

    def _op_filter(self, step: dict[str, Any], results: list[Any]) -> Script:
        items, values = self._arg(results, step["items"]), self._arg(results, step["values"])
        target, cmp = step["value"], step["cmp"]
        keep = []
        for item, value in zip(items, values):
            if cmp == "eq":
                ok = name_of(value).lower() == str(target).lower()
            else:
                x = year_of(value) if _DATE.search(str(value)) else to_number(value)
                ok = x < float(target) if cmp == "lt" else x > float(target)
            if ok:
                keep.append(item)
        return keep
        yield  # pragma: no cover - makes this a generator

    # ---- computing ops -------------------------------------------------------------------------------------------
    def _compute(self, expression: str, local: float, digits: int) -> Script:
        """Evaluate with the python tool when there is one (the env expects it), else locally."""
        if "python" in self.tools:
            body = yield from self._call("python", code=f"print(round({expression}, {digits}))")
            return Number(float(body.strip().splitlines()[-1]), digits)
        return Number(round(local, digits), digits)

    def _flat_numbers(self, results: list[Any], args: list[Any]) -> list[float]:
        out: list[float] = []
        for a in args:
            v = self._arg(results, a)
            out.extend(to_number(x) for x in (v if isinstance(v, list) else [v]))
        return out

    def _op_sum(self, step: dict[str, Any], results: list[Any]) -> Script:
        nums = self._flat_numbers(results, step["args"])
        return (yield from self._compute(f"sum({nums!r})", sum(nums), step.get("round", 0)))

    def _op_mean(self, step: dict[str, Any], results: list[Any]) -> Script:
        nums = self._flat_numbers(results, step["args"])
        return (yield from self._compute(f"sum({nums!r}) / {len(nums)}", sum(nums) / len(nums), step.get("round", 0)))

    def _op_growth(self, step: dict[str, Any], results: list[Any]) -> Script:
        nums = self._flat_numbers(results, step["args"])
        a, b = nums[0], nums[-1]
        return (yield from self._compute(f"({b!r} - {a!r}) / {a!r} * 100", (b - a) / a * 100, step.get("round", 1)))

    def _op_diff(self, step: dict[str, Any], results: list[Any]) -> Script:
        a, b = (to_number(self._arg(results, x)) for x in step["args"])
        return (yield from self._compute(f"{a!r} - {b!r}", a - b, 0))

    def _op_diff_years(self, step: dict[str, Any], results: list[Any]) -> Script:
        a, b = (year_of(self._arg(results, x)) for x in step["args"])
        return b - a
        yield  # pragma: no cover

    def _op_year(self, step: dict[str, Any], results: list[Any]) -> Script:
        return year_of(self._arg(results, step["args"][0]))
        yield  # pragma: no cover

    def _op_count(self, step: dict[str, Any], results: list[Any]) -> Script:
        return len(self._arg(results, step["args"][0]))
        yield  # pragma: no cover

    def _op_answer(self, step: dict[str, Any], results: list[Any]) -> Script:
        return self._arg(results, step["args"][0])
        yield  # pragma: no cover

    def _op_compare(self, step: dict[str, Any], results: list[Any]) -> Script:
        keys = [order_key(self._arg(results, a)) for a in step["args"]]
        best = min(keys) if step["pick"] == "min" else max(keys)
        if keys.count(best) != 1:
            raise OracleError("tie")
        return step["names"][keys.index(best)]
        yield  # pragma: no cover

    # ---- non-world tasks -----------------------------------------------------------------------------------------
    def _op_calculate(self, step: dict[str, Any], results: list[Any]) -> Script:
        return (yield from self._call("calculator", expression=step["expression"])).strip()

    def _op_python(self, step: dict[str, Any], results: list[Any]) -> Script:
        body = yield from self._call("python", code=step["code"])
        if not body.strip():
            raise OracleError("python printed nothing")
        return body.strip().splitlines()[-1].strip()
