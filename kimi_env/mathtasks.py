"""Generated reasoning-heavy math and logic tasks, checked by value (for ``kimi_env/MathCode-v0``).

Each family draws parameters from a ``numpy.random.Generator``, states a question that is impractical to answer
without running code, computes the answer with a plain-Python solver, and carries in its plan the program an oracle
sends to the ``python`` tool (the program shows a method, never the answer). A test checks, for every family, that
the program run in the real sandbox prints the solver's answer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .tasks import Task


@dataclass(frozen=True)
class Family:
    name: str
    difficulty: int
    make: Callable[[np.random.Generator], tuple[str, Any, str]]  # -> (question, answer, program)


def _primes_below(n: int) -> list[int]:
    sieve = bytearray([1]) * n
    sieve[:2] = b"\x00\x00"
    for p in range(2, int(n**0.5) + 1):
        if sieve[p]:
            sieve[p * p :: p] = bytearray(len(range(p * p, n, p)))
    return [i for i in range(n) if sieve[i]]


def _sum_primes(rng: np.random.Generator) -> tuple[str, Any, str]:
    n = int(rng.integers(2_000, 60_000))
    code = (f"n = {n}\nsieve = [True] * n\nsieve[0] = sieve[1] = False\n"
            "for p in range(2, int(n ** 0.5) + 1):\n    if sieve[p]:\n        for q in range(p * p, n, p):\n"
            "            sieve[q] = False\nprint(sum(i for i in range(n) if sieve[i]))")
    return f"What is the sum of all prime numbers below {n}?", sum(_primes_below(n)), code


def _count_divisible(rng: np.random.Generator) -> tuple[str, Any, str]:
    n = int(rng.integers(10_000, 1_000_000))
    a, b, c = (int(x) for x in rng.choice(np.arange(3, 40), size=3, replace=False))
    ans = sum(1 for i in range(1, n + 1) if (i % a == 0 or i % b == 0) and i % c != 0)
    code = f"print(sum(1 for i in range(1, {n} + 1) if (i % {a} == 0 or i % {b} == 0) and i % {c} != 0))"
    return f"How many integers from 1 to {n} are divisible by {a} or {b} but not by {c}?", ans, code


def _modpow(rng: np.random.Generator) -> tuple[str, Any, str]:
    a, b, m = int(rng.integers(2, 10_000)), int(rng.integers(10**6, 10**12)), int(rng.integers(1_000, 10**9))
    return f"What is {a}^{b} modulo {m}?", pow(a, b, m), f"print(pow({a}, {b}, {m}))"


def _fib_mod(rng: np.random.Generator) -> tuple[str, Any, str]:
    n, m = int(rng.integers(1_000, 50_000)), int(rng.integers(1_000, 10**6))
    x, y = 1, 1
    for _ in range(n - 2):
        x, y = y, (x + y) % m
    code = f"x, y = 1, 1\nfor _ in range({n} - 2):\n    x, y = y, (x + y) % {m}\nprint(y)"
    return f"With F(1) = F(2) = 1 and F(k) = F(k-1) + F(k-2), what is F({n}) modulo {m}?", y, code


def _factorial_digit_sum(rng: np.random.Generator) -> tuple[str, Any, str]:
    n = int(rng.integers(40, 400))
    ans = sum(int(d) for d in str(math.factorial(n)))
    return (f"What is the sum of the decimal digits of {n}! ({n} factorial)?", ans,
            f"import math\nprint(sum(int(d) for d in str(math.factorial({n}))))")


def _binomial_mod(rng: np.random.Generator) -> tuple[str, Any, str]:
    n = int(rng.integers(200, 2_000))
    k, m = int(rng.integers(2, n // 2)), int(rng.integers(1_000, 10**6))
    return (f"What is the binomial coefficient C({n}, {k}) modulo {m}?", math.comb(n, k) % m,
            f"import math\nprint(math.comb({n}, {k}) % {m})")


def _collatz(rng: np.random.Generator) -> tuple[str, Any, str]:
    n = int(rng.integers(10_000, 10**7))
    x, steps = n, 0
    while x != 1:
        x = x // 2 if x % 2 == 0 else 3 * x + 1
        steps += 1
    code = (f"x, steps = {n}, 0\nwhile x != 1:\n    x = x // 2 if x % 2 == 0 else 3 * x + 1\n    steps += 1\n"
            "print(steps)")
    return (f"Starting from {n} and repeatedly halving even numbers and mapping odd x to 3x+1, how many steps does "
            "it take to reach 1?", steps, code)


def _increasing_digits(rng: np.random.Generator) -> tuple[str, Any, str]:
    k = int(rng.integers(3, 6))
    s = int(rng.integers(k * (k + 1) // 2 + 2, 9 * k - k * (k - 1) // 2 - 1))
    import itertools

    ans = sum(1 for c in itertools.combinations(range(1, 10), k) if sum(c) == s)
    code = (f"import itertools\nprint(sum(1 for c in itertools.combinations(range(1, 10), {k}) if sum(c) == {s}))")
    return f"How many {k}-digit numbers have strictly increasing digits whose sum is {s}?", ans, code


def _weekday(rng: np.random.Generator) -> tuple[str, Any, str]:
    day = dt.date(1600, 1, 1) + dt.timedelta(days=int(rng.integers(0, 180_000)))
    offset = int(rng.integers(1_000, 40_000))
    target = day + dt.timedelta(days=offset)
    code = (f"import datetime\nd = datetime.date({day.year}, {day.month}, {day.day}) + datetime.timedelta(days={offset})\n"
            "print(['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'][d.weekday()])")
    return (f"What day of the week is it {offset} days after {day.day} {day.strftime('%B')} {day.year} "
            "(Gregorian calendar)?", target.strftime("%A"), code)


def _lcg(rng: np.random.Generator) -> tuple[str, Any, str]:
    x0, p, q = int(rng.integers(1, 1000)), int(rng.integers(2, 1000)), int(rng.integers(1, 1000))
    m, n = int(rng.integers(10_000, 10**6)), int(rng.integers(1_000, 100_000))
    x = x0
    for _ in range(n - 1):
        x = (x * p + q) % m
    code = f"x = {x0}\nfor _ in range({n} - 1):\n    x = (x * {p} + {q}) % {m}\nprint(x)"
    return (f"A sequence has a(1) = {x0} and a(k+1) = (a(k) * {p} + {q}) mod {m}. What is a({n})?", x, code)


def _derangements(rng: np.random.Generator) -> tuple[str, Any, str]:
    n, m = int(rng.integers(8, 60)), int(rng.integers(1_000, 10**6))
    d = [1, 0]
    for i in range(2, n + 1):
        d.append((i - 1) * (d[-1] + d[-2]))
    code = f"d = [1, 0]\nfor i in range(2, {n} + 1):\n    d.append((i - 1) * (d[-1] + d[-2]))\nprint(d[{n}] % {m})"
    return (f"How many permutations of {n} distinct items leave no item in its original position? Give the count "
            f"modulo {m}.", d[n] % m, code)


def _lcm(rng: np.random.Generator) -> tuple[str, Any, str]:
    nums = [int(x) for x in rng.integers(20, 5_000, size=int(rng.integers(4, 8)))]
    ans = 1
    for x in nums:
        ans = ans * x // math.gcd(ans, x)
    code = f"import math\nans = 1\nfor x in {nums}:\n    ans = ans * x // math.gcd(ans, x)\nprint(ans)"
    return f"What is the least common multiple of {', '.join(map(str, nums))}?", ans, code


FAMILIES: tuple[Family, ...] = (
    Family("sum_primes", 2, _sum_primes),
    Family("count_divisible", 2, _count_divisible),
    Family("modpow", 1, _modpow),
    Family("fib_mod", 2, _fib_mod),
    Family("factorial_digit_sum", 2, _factorial_digit_sum),
    Family("binomial_mod", 2, _binomial_mod),
    Family("collatz_steps", 2, _collatz),
    Family("increasing_digits", 3, _increasing_digits),
    Family("weekday", 2, _weekday),
    Family("lcg", 2, _lcg),
    Family("derangements", 3, _derangements),
    Family("lcm", 1, _lcm),
)


def make_math_task(rng: np.random.Generator, families: tuple[Family, ...] = FAMILIES) -> Task:
    """Draw one task. Same generator state, same task."""
    family = families[int(rng.integers(len(families)))]
    question, answer, code = family.make(rng)
    is_number = isinstance(answer, int)
    task_id = "math-" + family.name + "-" + hashlib.sha256(question.encode()).hexdigest()[:12]
    return Task(
        id=task_id,
        question=question + (" Give the exact integer." if is_number else ""),
        answers=(str(answer),) + ((f"{answer:,}",) if is_number and answer >= 1000 else ()),
        answer_type="number" if is_number else "text",
        metadata={"kind": family.name, "required_tools": ["python"], "difficulty": family.difficulty, "hops": 1,
                  "rel_tol": 0.0, "plan": [{"op": "python", "code": code}]},
    )
