"""``kimi_env/ColorBox-v0``: the smallest environment a tiny model can learn, for fast tests of the training
mechanism (SFT, REINFORCE, gamma-decay, resume) and smoke runs (``kimi-env train --preset cpu-tiny``).

Four boxes (``boxes=``) hold four of eight colors, drawn afresh every episode (6,720 distinct tasks); the question
names a box. The ``open_box`` tool tells its color. Answering without opening is a 1-in-8 guess; opening the box and
copying the color always wins.

``palette="digits"`` puts four of the ten digits in the boxes instead (5,040 distinct tasks, a 1-in-10 guess): the
answer is then one character to copy, which the from-scratch ``tiny`` model learns in a few hundred SFT steps on
CPU (``kimi-env train --preset cpu-tiny``; measured in docs/learning.md).
"""

from __future__ import annotations

from typing import Any

from kimi_env import InvalidArgumentError, Task, Tool, ToolEnv, ToolResult

COLORS = ("red", "blue", "green", "yellow", "black", "white", "orange", "purple")
DIGITS = tuple("0123456789")
PALETTES = {"colors": COLORS, "digits": DIGITS}
BOXES = 4


class OpenBoxTool(Tool):
    """Look inside one box."""

    name = "open_box"

    def __init__(self) -> None:
        super().__init__(timeout=5.0)
        self.boxes: dict[int, str] = {}

    async def run(self, box: int) -> ToolResult:
        """Open a box and see its color.

        Args:
            box: Box number, from 1.
        """
        if box not in self.boxes:
            return ToolResult.failure(f"there is no box {box}; boxes are numbered 1 to {len(self.boxes)}.")
        return ToolResult.success(self.boxes[box])


class ColorBoxEnv(ToolEnv):
    """Which color is in box k? (see the module docstring)

    Args:
        palette: ``"colors"`` (eight color words) or ``"digits"`` (the ten digits).
        boxes: How many boxes (1 to the palette's size; default 4). With one box the question need not be read:
            open it and copy what it shows.
        **kwargs: Everything :class:`~kimi_env.ToolEnv` takes (``max_turns``, ``protocol``, ...).
    """

    def __init__(self, *, palette: str = "colors", boxes: int = BOXES, **kwargs: Any) -> None:
        if palette not in PALETTES:
            from kimi_env.errors import unknown_name

            raise unknown_name("palette", str(palette), PALETTES)
        self.palette = PALETTES[palette]
        if isinstance(boxes, bool) or not isinstance(boxes, int) or not 1 <= boxes <= len(self.palette):
            raise InvalidArgumentError(f"ColorBox-v0: boxes={boxes!r}; expected an int from 1 to "
                                       f"{len(self.palette)} (the palette's size), e.g. boxes=4.")
        self.n_boxes = boxes
        kwargs.setdefault("max_turns", 3)
        super().__init__(**kwargs)

    def _make_tools(self) -> list[Tool]:
        self._box_tool = OpenBoxTool()
        return [self._box_tool]

    def _sample_task(self) -> Task:
        rng = self.np_random
        order = [self.palette[int(i)] for i in rng.choice(len(self.palette), self.n_boxes, replace=False)]
        box = int(rng.integers(1, self.n_boxes + 1))
        self._box_tool.boxes = {i + 1: c for i, c in enumerate(order)}
        what = "digit" if self.palette is DIGITS else "color"
        return Task(id=f"box{box}-{'-'.join(order)}", question=f"Which {what} is in box {box}?",
                    answers=(order[box - 1],),
                    metadata={"kind": "lookup", "hops": 1, "required_tools": ["open_box"], "boxes": order,
                              "plan": [{"op": "open_box", "box": box}]})

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        task = self.task
        if task is not None and "boxes" in task.metadata:  # a posed task brings its own boxes
            self._box_tool.boxes = {i + 1: c for i, c in enumerate(task.metadata["boxes"])}
        elif task is not None:
            raise InvalidArgumentError("ColorBox-v0 tasks need metadata['boxes'] (the four colors in box order).")
        return obs, info


class ColorBoxOracle:
    """The scripted solution (open the named box, answer its color), used for the tiny model's demonstrations."""

    name = "colorbox-oracle"

    @staticmethod
    def turn(observation: str, info: dict[str, Any]) -> str:
        import json
        import re

        task = info.get("task") or {}
        if info.get("num_turns", 0) == 0:
            box = int(re.findall(r"box (\d+)", task.get("question", "box 1"))[0])
            if "<open_box>" in observation:  # the XML-tag protocols: the plain body is the box number
                return f"<open_box>{box}</open_box>"
            return '<tool_call>' + json.dumps({"name": "open_box", "arguments": {"box": box}}) + '</tool_call>'
        body = re.findall(r"<information>\n(.*?)\n</information>", observation, re.S) or \
            re.findall(r"<tool_response>\n[^\n]*\n(.*?)\n</tool_response>", observation, re.S)
        seen = body[0].strip() if body else "red"
        return f"<answer>{seen}</answer>"
