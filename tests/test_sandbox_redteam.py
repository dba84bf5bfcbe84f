"""Red-team regressions for the RestrictedPython tier: each test pins one property an attack broke before its fix.

Every test checks the sandbox's post-conditions afterwards (host alive, next call fast, no leaked worker).
"""

from __future__ import annotations

import pytest

from kimi_env.sandbox import SandboxConfig
from kimi_env.sandbox.testing import check_postconditions, worker_stopped
from kimi_env.tools import PythonTool

BLOCKED = {"compile_error", "model_error"}


@pytest.fixture(scope="module")
def tool():
    t = PythonTool(timeout=3.0, sandbox=SandboxConfig(memory_mb=384))
    yield t
    t.close()


def episodes(tool, first, second):
    """Run ``first`` in one episode and ``second`` in the next; return both results."""
    tool.reset()
    a = tool.call(code=first)
    tool.reset()
    b = tool.call(code=second)
    tool.reset()
    check_postconditions(tool)
    return a, b


def test_type_of_a_class_cannot_build_classes(tool):
    # type(int) used to be the real `type`: 3-argument calls built classes from a dict, with any dunder (__del__...)
    r = tool.call(code="T = type(int)\nT('X', (object,), {'__del__': lambda self: None})")
    assert r.status in BLOCKED and "TypeError" in r.content
    check_postconditions(tool)


def test_type_of_a_class_is_still_type(tool):
    r = tool.call(code="type(int) is type, type(type(1.5)) is type, type(1) is int")
    assert r.ok and r.content == "(True, True, True)"


def test_abc_register_is_blocked(tool):
    r = tool.call(code="from fractions import Fraction\nFraction.register(float)")
    assert r.status in BLOCKED and "register" in r.content
    check_postconditions(tool)


def test_abc_registration_does_not_reach_the_next_episode(tool):
    # Fraction.register(float) made `Fraction(1, 2) + 0.5` raise in every later episode of the worker
    _, b = episodes(
        tool,
        "from fractions import Fraction\ntry:\n    Fraction.register(float)\nexcept Exception:\n    pass",
        "from fractions import Fraction\nFraction(1, 2) + 0.5, isinstance(0.5, Fraction)",
    )
    assert b.ok and b.content == "(1.0, False)"


def test_mro_is_blocked(tool):
    # mro() is __mro__ by another name: it reached enum.Enum (classes from a dict) and collections.abc classes
    r = tool.call(code="import re\ntype(re.I).mro()")
    assert r.status in BLOCKED and "mro" in r.content
    check_postconditions(tool)


def test_total_ordering_does_not_patch_library_classes(tool):
    # total_ordering() setattr()s onto the class it is given, past the write guard
    r = tool.call(code="import functools, statistics\nfunctools.total_ordering(statistics.NormalDist)")
    assert r.status == "model_error" and "classes defined by your code" in r.content
    ok = tool.call(
        code="import functools\n@functools.total_ordering\nclass V(int):\n    pass\nV(1) >= V(0)"
    )  # still works on the code's own classes
    assert ok.ok and ok.content == "True"
    check_postconditions(tool)


GENERATOR_IN_CLASS = """
import decimal
def g():
    try:
        yield 1
    finally:
        decimal.getcontext().prec = 3
        print('LEAK')
class K:
    pass
K.gen = g()
next(K.gen)
"""


def test_finalizer_does_not_print_into_the_next_episode(tool):
    # the suspended generator's `finally` ran during the next episode's code, printing into its output
    _, b = episodes(tool, GENERATOR_IN_CLASS, "junk = [[i] for i in range(100000)]\nprint('B')")
    assert b.ok and b.content == "B"


def test_finalizer_does_not_change_the_next_episodes_decimal_context(tool):
    _, b = episodes(
        tool,
        GENERATOR_IN_CLASS,
        "junk = [[i] for i in range(100000)]\nimport decimal\ndecimal.Decimal(1) / decimal.Decimal(7)",
    )
    assert b.ok and b.content == "Decimal('0.1428571428571428571428571429')"


def test_hanging_finalizer_does_not_time_out_the_next_episode(tool):
    # the previous episode's namespace was dropped inside the next episode's first call: a `finally: while True`
    # made that call time out
    a, b = episodes(
        tool,
        "def g():\n    try:\n        yield 1\n    finally:\n        while True:\n            pass\nx = g()\nnext(x)",
        "print('B')",
    )
    assert a.ok and b.ok and b.content == "B"
    # the hung worker was stopped after its episode, not handed to the next one (the latency of that next call is
    # measured in benchmarks/bench_python.py)
    assert b.meta["worker_pid"] != a.meta["worker_pid"]
    assert worker_stopped(a.meta["worker_pid"])


def test_regex_cache_does_not_keep_objects_into_the_next_episode(tool):
    # re's cache kept a str-subclass pattern (with a generator attached) alive; evicting it later ran the
    # generator's `finally` inside another episode
    first = (
        "import re\ndef g():\n    try:\n        yield 1\n    finally:\n        print('LEAK')\n"
        "class S(str):\n    pass\ns = S('a+')\ns.gen = g()\nnext(s.gen)\nre.compile(s)\ndel s\n'stashed'"
    )
    second = "import re\nfor i in range(600):\n    re.compile('x' + str(i))\nprint('B')"
    a, b = episodes(tool, first, second)
    assert a.ok and b.ok and b.content == "B"
