"""``kimi_env/Calculator-v0``: arithmetic over large numbers with a calculator tool.

The smallest complete environment: it keeps the environment contract tested end to end with a real tool and is the
template for writing your own (a tool set, task sampling, scoring: nothing else).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Sequence
from typing import Any

from kimi_env import InvalidArgumentError, Task, Tool, ToolEnv, ToolResult

_BINOPS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Any] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class CalculatorError(ValueError):
    pass


def evaluate(expression: str, max_digits: int = 400) -> int | float:
    """Evaluate an arithmetic expression safely (numbers, + - * / // % ** and parentheses only).

    >>> evaluate("2 * (3 + 4) ** 2")
    98
    >>> evaluate("__import__('os')")
    Traceback (most recent call last):
    ...
    kimi_env.envs.calculator.CalculatorError: only numbers, + - * / // % ** and parentheses are allowed, got Call
    """
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise CalculatorError(f"not an arithmetic expression ({type(exc).__name__})") from None

    def ev(node: ast.AST, depth: int = 0) -> int | float:
        if depth > 100:
            raise CalculatorError("expression nested too deeply")
        if isinstance(node, ast.Expression):
            return ev(node.body, depth + 1)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](ev(node.operand, depth + 1))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = ev(node.left, depth + 1), ev(node.right, depth + 1)
            if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 10**12):
                raise CalculatorError("exponent too large (limit: |exponent| <= 64, |base| <= 1e12)")
            try:
                value = _BINOPS[type(node.op)](left, right)
            except ZeroDivisionError:
                raise CalculatorError("division by zero") from None
            except OverflowError:
                raise CalculatorError("result too large") from None
            if isinstance(value, int) and value.bit_length() > max_digits * 3.33:
                raise CalculatorError(f"result has more than {max_digits} digits")
            if isinstance(value, complex):
                raise CalculatorError("result is not a real number")
            return value
        raise CalculatorError(f"only numbers, + - * / // % ** and parentheses are allowed, got {type(node).__name__}")

    return ev(tree)


def format_number(value: int | float) -> str:
    """Integers as they are; floats rounded to 6 decimals without trailing zeros."""
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return str(value)


class CalculatorTool(Tool):
    """Exact arithmetic."""

    name = "calculator"
    param_constraints = {"expression": {"maxLength": 500}}

    async def run(self, expression: str) -> ToolResult:
        """Evaluate an arithmetic expression exactly.

        Args:
            expression: Numbers with + - * / // % ** and parentheses, e.g. "(1234 + 5678) * 9".
        """
        try:
            return ToolResult.success(format_number(evaluate(expression)))
        except CalculatorError as exc:
            return ToolResult.failure(f"calculator: {exc}. Example of a valid expression: (1234 + 5678) * 9")


class CalculatorEnv(ToolEnv):
    """Arithmetic word problems over large numbers; the calculator tool makes them easy, mental arithmetic hard.

    Args:
        operands: (min, max) number of operands per expression.
        digits: (min, max) digits per operand.
        **kwargs: Everything :class:`~kimi_env.ToolEnv` takes (``max_turns``, ``protocol``, ...).
    """

    def __init__(self, *, operands: Sequence[int] = (2, 4), digits: Sequence[int] = (3, 6), **kwargs: Any) -> None:
        lo, hi = operands
        dlo, dhi = digits
        if not (2 <= lo <= hi <= 8) or not (1 <= dlo <= dhi <= 12):
            raise InvalidArgumentError(
                f"operands must satisfy 2 <= min <= max <= 8 and digits 1 <= min <= max <= 12, got operands="
                f"{tuple(operands)!r}, digits={tuple(digits)!r}."
            )
        self.operands = (int(lo), int(hi))
        self.digits = (int(dlo), int(dhi))
        kwargs.setdefault("max_turns", 4)
        super().__init__(**kwargs)

    def _make_tools(self) -> list[Tool]:
        return [CalculatorTool(timeout=5.0)]

    def _sample_task(self) -> Task:
        rng = self.np_random
        n = int(rng.integers(self.operands[0], self.operands[1] + 1))
        nums = []
        for _ in range(n):
            d = int(rng.integers(self.digits[0], self.digits[1] + 1))
            nums.append(int(rng.integers(10 ** (d - 1), 10**d)))
        ops = [str(rng.choice(["+", "-", "*"])) for _ in range(n - 1)]
        expr = str(nums[0]) + "".join(f" {op} {num}" for op, num in zip(ops, nums[1:]))
        value = evaluate(expr)
        return Task(
            id=f"calc-{expr.replace(' ', '')}",
            question=f"What is {expr}? Give the exact integer.",
            answers=(str(value), f"{value:,}"),
            answer_type="number",
            metadata={"kind": "arithmetic", "required_tools": ["calculator"], "hops": 1, "difficulty": n - 1,
                      "rel_tol": 0.0,
                      "plan": [{"op": "calculate", "expression": expr}]},
        )
