"""Hop plans: the format, and an interpreter that runs a plan against a world's fact graph.

Plan format
===========
A plan is a JSON list of steps. Step ``k``'s result is referred to as the string ``"$k"`` by later steps. A plan
names only what the question names (starting entity names, a filter value, row keys); it never contains an
intermediate or final answer. The result of the LAST step is the answer (formatted as described below).

Fact-gathering steps (an oracle performs these with the real tools)::

    {"op": "lookup", "entity": NAME | "$k", "attribute": LABEL, "deep": bool, "find": KEYWORD | null,
     "source": URL | null}
        One value about one entity. ``entity`` is a name from the question (resolve it with ``search``; it names
        exactly one article) or a previous entity result (follow its link). With ``deep: false`` the value is
        the infobox row whose <th> is ``attribute``. With ``deep: true`` the fact is NOT in the infobox nor the
        lead: it is stated in one sentence late in the article body; that sentence contains ``find`` (use the
        browse tool's ``find=``). ``source`` null means the entity's own KimiWiki article; a URL means read the
        value from that page instead (conflict tasks: the page named by the question). Result: an entity (when
        the value is a link) or a literal (year, date, number, text).
    {"op": "list", "entity": NAME | "$k", "section": HEADING}
        The entities linked in the <ul> under the <h2> ``section`` of the entity's article, in page order.
    {"op": "lookup_each", "entities": "$k", "attribute": LABEL, "deep": false, "source": null}
        ``lookup`` for each entity of the list ``$k``; a list aligned with it.
    {"op": "table", "entity": NAME | "$k", "table": CAPTION, "column": HEADER, "rows": [KEY, ...]}
        Numbers from the <table class="wikitable"> with that <caption>: the cell in column ``column`` of each row
        whose first cell is ``KEY``, in the order given.
    {"op": "filter", "items": "$i", "values": "$j", "cmp": "eq" | "lt" | "gt", "value": V}
        The items of ``$i`` whose aligned value in ``$j`` is equal to (entity name or text, case-insensitive),
        less than or greater than ``V`` (a number or a year; dates compare by year).

Computing steps (no tools needed beyond arithmetic; ``python`` for long sums)::

    {"op": "answer", "args": ["$k"]}                    the value itself
    {"op": "year", "args": ["$k"]}                      the year of a date
    {"op": "compare", "args": ["$a", "$b", ...], "names": [NAME_A, NAME_B, ...], "pick": "min" | "max"}
        the name (from ``names``, aligned with ``args``) whose value is smallest / largest; dates compare
        chronologically
    {"op": "sum" | "mean", "args": ["$a", "$b", ...] | ["$list"], "round": DIGITS}
    {"op": "diff", "args": ["$a", "$b"]}                a - b
    {"op": "growth", "args": ["$list"], "round": 1}     percent change from the first to the last number
    {"op": "diff_years", "args": ["$a", "$b"]}          year(b) - year(a); a, b years or dates
    {"op": "count", "args": ["$list"]}                  number of items

Answer formatting: an entity gives its name; a list gives the names sorted case-insensitively and joined by
", "; an integer gives its digits (no separators); a float gives ``round`` decimals; a date gives
``D Month YYYY``; a year its four digits.

>>> from kimi_env.world import generate_world
>>> w = generate_world(seed=0, n_pages=300)
>>> e = next(x for x in w.entities if x.etype == "company" and not x.homonym)
>>> plan = [{"op": "lookup", "entity": e.name, "attribute": "Founded", "deep": False, "source": None},
...         {"op": "answer", "args": ["$0"]}]
>>> run_plan(w, plan) == str(e.attrs["founded"]) or w.conflict(e.id, "Founded") is not None
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .model import World, fmt_date, year_of

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class PlanError(Exception):
    """A plan that does not determine a unique answer; ``reason`` is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Ref:
    """An entity result."""

    id: str
    name: str


@dataclass(frozen=True)
class Num:
    """A computed number with its display precision."""

    value: float
    digits: int


def _resolve(world: World, ref: Any, results: list[Any]) -> Ref:
    if isinstance(ref, str) and ref.startswith("$"):
        v = results[int(ref[1:])]
        if not isinstance(v, Ref):
            raise PlanError("bad_plan", f"{ref} is not an entity")
        return v
    found = world.by_name(str(ref))
    if not found:
        raise PlanError("unknown_name", str(ref))
    if len(found) > 1:
        raise PlanError("ambiguous_name", f"{ref!r} names {len(found)} entities")
    return Ref(found[0].id, found[0].name)


def _arg(results: list[Any], a: Any) -> Any:
    if isinstance(a, str) and a.startswith("$"):
        return results[int(a[1:])]
    return a


def _lookup(world: World, ent: Ref, attribute: str, deep: bool, source: str | None) -> Any:
    facts = world.facts_about(ent.id, attribute)
    own = world.entity(ent.id).url
    if source is None or source == own:
        if source is None and world.conflict(ent.id, attribute) is not None:
            raise PlanError("source_conflict", f"{ent.name}: sources disagree on {attribute!r}")
        facts = [f for f in facts if f.url == own and f.where in ("infobox", "deep")]
    else:
        facts = [f for f in facts if f.url == source]
    if not facts:
        raise PlanError("missing_fact", f"{ent.name} has no {attribute!r}")
    if len(facts) > 1:
        raise PlanError("multiple_values", f"{ent.name} / {attribute!r}")
    f = facts[0]
    if f.deep != bool(deep):
        raise PlanError("deep_mismatch", f"{ent.name} / {attribute!r}")
    return Ref(f.object, f.value) if f.object else f.value


def _num(v: Any) -> float:
    if isinstance(v, list) and len(v) == 1:  # a one-row table read
        v = v[0]
    if isinstance(v, Num):
        return v.value
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise PlanError("bad_plan", f"not a number: {v!r}")
    return v


def _order_key(v: Any) -> tuple[float, int, int]:
    """Dates as (year, month, day); numbers and years as (value, 0, 0), so a year sorts before its dates."""
    if isinstance(v, str) and _ISO.match(v):
        y, m, d = (int(x) for x in v.split("-"))
        return (y, m, d)
    return (_num(v), 0, 0)


def _flatten(results: list[Any], args: list[Any]) -> list[Any]:
    out: list[Any] = []
    for a in args:
        v = _arg(results, a)
        out.extend(v if isinstance(v, list) else [v])
    return out


def execute_plan(world: World, plan: list[dict[str, Any]], trace: list[Any] | None = None) -> Any:
    """Run ``plan`` against the fact graph; return the raw result of the last step or raise :class:`PlanError`.

    ``trace``, when given, receives every step's result (tests use it to check that plans hide them).
    """
    results: list[Any] = [] if trace is None else trace
    for step in plan:
        op = step.get("op")
        if op == "lookup":
            ent = _resolve(world, step["entity"], results)
            results.append(_lookup(world, ent, step["attribute"], step.get("deep", False), step.get("source")))
        elif op == "list":
            ent = _resolve(world, step["entity"], results)
            facts = [f for f in world.facts_about(ent.id, step["section"]) if f.where == "section"]
            results.append([Ref(f.object, f.value) for f in facts])
        elif op == "lookup_each":
            items = _arg(results, step["entities"])
            results.append(
                [_lookup(world, it, step["attribute"], step.get("deep", False), step.get("source")) for it in items]
            )
        elif op == "table":
            ent = _resolve(world, step["entity"], results)
            tables = [t for t in world.tables.get(ent.id, ()) if t.caption == step["table"]]
            if len(tables) != 1 or tables[0].columns[1] != step["column"]:
                raise PlanError("missing_table", f"{ent.name} / {step['table']!r}")
            rows = dict(tables[0].rows)
            try:
                results.append([rows[k] for k in step["rows"]])
            except KeyError as exc:
                raise PlanError("missing_row", str(exc)) from None
        elif op == "filter":
            items, values = _arg(results, step["items"]), _arg(results, step["values"])
            cmp, target = step["cmp"], step["value"]
            keep = []
            for it, v in zip(items, values):
                if cmp == "eq":
                    ok = (v.name if isinstance(v, Ref) else str(v)).lower() == str(target).lower()
                else:
                    x = year_of(v) if isinstance(v, str) else _num(v)
                    ok = x < target if cmp == "lt" else x > target
                if ok:
                    keep.append(it)
            results.append(keep)
        elif op == "answer":
            results.append(_arg(results, step["args"][0]))
        elif op == "year":
            results.append(year_of(_arg(results, step["args"][0])))
        elif op == "compare":
            vals = [_arg(results, a) for a in step["args"]]
            keys = [_order_key(v) for v in vals]
            best = min(keys) if step["pick"] == "min" else max(keys)
            if keys.count(best) != 1:
                raise PlanError("tie", str(step["names"]))
            results.append(step["names"][keys.index(best)])
        elif op in ("sum", "mean"):
            nums = [_num(v) for v in _flatten(results, step["args"])]
            if not nums:
                raise PlanError("empty_set", op)
            total = sum(nums) if op == "sum" else sum(nums) / len(nums)
            results.append(Num(round(total, step.get("round", 0)), step.get("round", 0)))
        elif op == "diff":
            a, b = (_num(_arg(results, x)) for x in step["args"])
            results.append(Num(a - b, 0))
        elif op == "growth":
            nums = [_num(v) for v in _flatten(results, step["args"])]
            if len(nums) < 2 or nums[0] == 0:
                raise PlanError("bad_plan", "growth needs two numbers")
            results.append(Num(round((nums[-1] - nums[0]) / nums[0] * 100, step.get("round", 1)), step.get("round", 1)))
        elif op == "diff_years":
            a, b = (_arg(results, x) for x in step["args"])
            results.append(year_of(b) - year_of(a))
        elif op == "count":
            v = _arg(results, step["args"][0])
            results.append(len(v))
        else:
            raise PlanError("bad_plan", f"unknown op {op!r}")
    if not results:
        raise PlanError("bad_plan", "empty plan")
    last = results[-1]
    if isinstance(last, list) and not last:
        raise PlanError("empty_set", "the answer list is empty")
    return last


def format_result(v: Any) -> str:
    """The canonical answer string of a plan result (see the module docstring)."""
    if isinstance(v, Ref):
        return v.name
    if isinstance(v, list):
        return ", ".join(sorted((format_result(x) for x in v), key=str.lower))
    if isinstance(v, Num):
        if v.digits <= 0:
            return str(round(v.value))
        return f"{v.value:.{v.digits}f}"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.1f}"
    if isinstance(v, str) and _ISO.match(v):
        return fmt_date(v)
    return str(v)


def run_plan(world: World, plan: list[dict[str, Any]]) -> str:
    """Execute a plan and format its result as the canonical answer string."""
    return format_result(execute_plan(world, plan))


def plan_entity_names(plan: list[dict[str, Any]]) -> list[str]:
    """The literal entity names a plan starts from (those that are not ``$k`` references), in order."""
    out = []
    for step in plan:
        for key in ("entity",):
            v = step.get(key)
            if isinstance(v, str) and not v.startswith("$") and v not in out:
                out.append(v)
        for v in step.get("names", ()):
            if v not in out:
                out.append(v)
    return out
