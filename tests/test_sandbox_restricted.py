"""Attacks on the RestrictedPython tier: each case attacks one property; post-conditions are checked after each."""

from __future__ import annotations

import pytest

from kimi_env.sandbox import SandboxConfig
from kimi_env.sandbox.testing import check_postconditions, snapshot, worker_stopped
from kimi_env.tools import PythonTool

BLOCKED = {"compile_error", "model_error"}


@pytest.fixture(scope="module")
def tool():
    # a smaller address space keeps the memory bombs quick on a slow machine
    t = PythonTool(timeout=3.0, sandbox=SandboxConfig(memory_mb=384))
    yield t
    t.close()


@pytest.fixture(scope="module")
def patient_tool():
    # for attacks that only a limit other than wall-clock time should stop: a generous timeout, so a loaded machine
    # cannot turn the expected resource_limit into a timeout (same config, so the same pool)
    t = PythonTool(timeout=120.0, sandbox=SandboxConfig(memory_mb=384))
    yield t
    t.close()


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory):
    d = tmp_path_factory.mktemp("sentinel")
    (d / "keep.txt").write_text("intact")
    (d / "sub").mkdir()
    return d


def attack(tool, sentinel, code, statuses=BLOCKED, forbidden=()):
    before = snapshot(sentinel)
    result = tool.call(code=code.replace("SENTINEL", str(sentinel)))
    assert result.status in statuses, f"expected {statuses}, got {result.status}: {result.content[:500]}"
    for text in forbidden:
        assert text not in result.content, f"leaked {text!r}: {result.content[:500]}"
    tool.reset()
    check_postconditions(tool, sentinel, before)
    return result


ESCAPES = {
    # attribute and dunder escapes
    "subclasses_via_bases": "().__class__.__bases__[0].__subclasses__()",
    "getattr_globals": "def f():\n    pass\ngetattr(f, '__globals__')",
    "func_code": "def f():\n    pass\nf.__code__",
    "type_subclasses": "type.__subclasses__(object)",
    "getattr_type_subclasses": "getattr(type(1), '__subclasses__')",
    "bound_method_self": "import math\ngetattr(math.sqrt, '__self__')",
    "library_function_globals": "import statistics\ngetattr(statistics.mean, '__globals__')",
    "type_three_args": "type('X', (object,), {'a': 1})",
    "metaclass": "class M(type):\n    pass",
    "metaclass_keyword": "class A(metaclass=type):\n    pass",
    "setattr_dunder": "class A:\n    pass\nsetattr(A, '__init__', 1)",
    # format strings (CVE-2023-41039)
    "str_format": "'{0.__class__.__base__.__subclasses__}'.format(1)",
    "str_format_unbound": "str.format('{0.__class__}', 1)",
    "str_format_map": "'{a.__class__}'.format_map({'a': 1})",
    "getattr_format": "getattr('{0.__class__}', 'format')(1)",
    "fstring_dunder": "f'{(1).__class__}'",
    "format_builtin_spec": "format(1, '{0.__class__}')",
    "string_formatter": "import string\nstring.Formatter().format('{0.__class__}', 1)",
    "string_formatter_vformat": "import string\nF = getattr(string, 'Formatter')\nF().vformat('{0.__class__}', (1,), {})",
    # CVE-2024-47532: AttributeError.obj leaking the real string module
    "attributeerror_obj": "import string\ntry:\n    string.nothing\nexcept AttributeError as e:\n    m = e.obj\n"
    "m.Formatter().format('{0.__globals__}', len)",
    "attributeerror_obj_getattr": "try:\n    (1).nothing\nexcept AttributeError as e:\n    getattr(e, 'obj')",
    # generator, coroutine and frame escapes (CVE-2023-37271)
    "gi_frame_walk": "def g():\n    yield 1\nx = g()\nnext(x)\nx.gi_frame.f_back.f_globals",
    "gi_frame_getattr": "x = (i for i in [1])\ngetattr(x, 'gi_frame')",
    "gi_code": "x = (i for i in [1])\ngetattr(x, 'gi_code')",
    "cr_frame": "async def c():\n    pass\nc().cr_frame",
    "ag_frame": "async def a():\n    yield 1\na().ag_frame",
    "tb_frame": "try:\n    1/0\nexcept Exception as e:\n    e.__traceback__.tb_frame.f_globals",
    "tb_frame_getattr": "try:\n    1/0\nexcept Exception as e:\n    getattr(e, '__traceback__')",
    # CVE-2025-22153: except* type confusion
    "except_star": "try:\n    raise ExceptionGroup('g', [ValueError(1)])\nexcept* ValueError as eg:\n    eg",
    # import tricks
    "dunder_import": "__import__('os')",
    "import_os": "import os\nos.system('touch SENTINEL/pwned')",
    "import_importlib": "import importlib\nimportlib.import_module('os')",
    "from_math_import_sys": "from math import sys",
    "json_reaches_re": "import json\njson.decoder",
    "collections_reaches_sys": "import collections\ncollections.sys",
    "random_reaches_os": "import random\ngetattr(random, '_os')",
    "random_instance_class": "import random\ngetattr(random.random, '__self__')",
    "operator_attrgetter": "import operator\noperator.attrgetter('__class__')(1)",
    "operator_methodcaller": "import operator\noperator.methodcaller('format', 1)('{0.__class__}')",
    "operator_setitem": "import math\nimport operator\noperator.setitem(math, 'pi', 3)",
    "partial_getattr": "import functools\nfunctools.partial(getattr, 1)('__class__')",
    "relative_import": "from . import x",
    "star_import": "from math import *",
    # builtins
    "builtins_name": "__builtins__",
    "eval": "eval('1+1')",
    "exec": "exec('x=1')",
    "compile": "compile('1', 'f', 'eval')",
    "open": "open('/etc/passwd').read()",
    "vars": "vars()",
    "globals": "globals()",
    "locals": "locals()",
    "input": "input()",
    "breakpoint": "breakpoint()",
    "help": "help()",
    "memoryview": "memoryview(b'abc')",
    "exit": "exit()",
    "print_to_file": "class F:\n    def write(self, s):\n        pass\nprint('x', file=F())",
    # files, network, processes, signals, serialization
    "read_passwd": "open('/etc/passwd').read()",
    "write_sentinel": "open('SENTINEL/keep.txt', 'w').write('pwned')",
    "io_module": "import io\nio.open('/etc/passwd').read()",
    "pathlib": "import pathlib\npathlib.Path('/etc/passwd').read_text()",
    "socket": "import socket\nsocket.create_connection(('127.0.0.1', 22))",
    "subprocess": "import subprocess\nsubprocess.run(['id'])",
    "fork": "import os\nos.fork()",
    "signal": "import signal\nsignal.raise_signal(9)",
    "pickle": "import pickle\npickle.loads(b'cos\\nsystem\\n(S\"id\"\\ntR.')",
    "ctypes": "import ctypes\nctypes.CDLL(None)",
    "sys": "import sys\nsys.modules['os']",
    # writes to shared objects
    "write_module_attribute": "import math\nmath.pi = 3",
    "write_builtin_class": "int.real = 3",
    "write_library_function": "import statistics\nstatistics.mean.x = 1",
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_escape_is_blocked(tool, sentinel, name):
    attack(
        tool,
        sentinel,
        ESCAPES[name],
        forbidden=("root:x:0", "<module 'os'", "<class 'object'>", "<function", "<built-in"),
    )


def test_formatting_without_attribute_access_still_works(tool):
    assert tool.call(code="x = 3.14159\nf'{x:.2f} {x!r} %d' % 7").content == "'3.14 3.14159 7'"


@pytest.mark.parametrize(
    "code",
    ["'x' * 10**10", "[0] * 10**9", "a = []\nwhile True:\n    a.append(' ' * 10**7)"],
    ids=["str_bomb", "list_bomb", "growing_list"],
)
def test_memory_bomb(patient_tool, sentinel, code):
    attack(patient_tool, sentinel, code, {"resource_limit"})


def test_infinite_loop(tool, sentinel):
    r = attack(tool, sentinel, "while True:\n    pass", {"timeout"})
    # stopped by the wall-clock limit, by killing its worker (how long the kill takes: benchmarks/bench_python.py)
    assert f"ran longer than {tool.exec_timeout:g} s" in r.content
    assert worker_stopped(r.meta["worker_pid"])


def test_infinite_loop_swallowing_base_exception(tool, sentinel):
    code = "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass"
    attack(tool, sentinel, code, {"timeout"})


def test_huge_output(tool, sentinel):
    r = attack(tool, sentinel, "while True:\n    print('x' * 1000)", {"resource_limit"})
    assert len(r.content) <= tool.max_output_chars and "OutputLimitExceeded" in r.content


def test_huge_output_swallowed(tool, sentinel):
    code = "while True:\n    try:\n        print('x' * 1000)\n    except BaseException:\n        pass"
    attack(tool, sentinel, code, {"resource_limit", "timeout"})


def test_huge_value_repr_is_capped(tool):
    r = tool.call(code="list(range(10**6))")
    assert r.ok and len(r.content) <= tool.max_output_chars


def test_deep_recursion(tool, sentinel):
    r = attack(tool, sentinel, "def f(n):\n    return f(n + 1)\nf(0)", {"model_error"})
    assert "RecursionError" in r.content


@pytest.mark.parametrize(
    "code", ["(" * 5000 + ")" * 5000, "x = " + "1+" * 6000 + "1", "\0"], ids=["nested", "long_expr", "nul"]
)
def test_pathological_source(tool, sentinel, code):
    r = attack(tool, sentinel, code, {"compile_error"})
    assert len(r.content) < 2500  # the source is not echoed


def test_oversized_source(tool):
    r = tool.call(code="x = 1\n" * 5000)
    assert r.status == "invalid_arguments"


def test_state_does_not_leak_between_episodes(tool):
    tool.reset()
    tool.call(code="secret = 42\nimport decimal\ndecimal.getcontext().prec = 3")
    tool.reset()
    r = tool.call(code="import decimal\nprint(decimal.getcontext().prec)\nsecret")
    assert r.status == "model_error" and "28" in r.content and "NameError" in r.content
