"""BrowseTool ``find``: the old backtracking regex vs the linear search, side by side (issue 15, finding 7).

    .venv/bin/python benchmarks/bench_websec.py            # CPU seconds of each, on the same pages and phrases

The old search compiled ``w1\\s+w2\\s+...`` with IGNORECASE; on a page of repeated words it retries every word at
every start position. The new one (``kimi_env.tools.browse._find_spans``) collapses whitespace and uses ``str.find``.
Figures are CPU seconds (``time.process_time``) of one search, the best of 3, so other jobs on the machine matter less.
"""

from __future__ import annotations

import re
import time

from kimi_env.tools.browse import _find_spans


def _old(text: str, words: list[str]) -> int:
    pattern = re.compile(r"\s+".join(re.escape(w) for w in words), re.IGNORECASE)
    n = 0
    for _ in pattern.finditer(text):
        n += 1
        if n > 200:
            break
    return n


def _cpu(fn, *args) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        fn(*args)
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    adversarial = "\n".join(["a " * 2000] * 700)  # 2.8M characters of one repeated word, in 4,000-character lines
    prose = "\n".join(
        ["The quick brown fox jumps over the lazy dog near the river bank in the old town. " * 48] * 700
    )  # 2.8M characters of ordinary text
    cases = [
        ("repeated words, 8-word phrase", adversarial, ["a"] * 7 + ["b"]),
        ("repeated words, 150-word phrase", adversarial, ["a"] * 149 + ["b"]),
        ("prose, 3-word phrase (no match)", prose, ["the", "old", "castle"]),
        ("prose, 2-word phrase (201 matches)", prose, ["lazy", "dog"]),
    ]
    print(f"| page ({len(adversarial) / 1e6:.1f}M characters), phrase | regex CPU s | linear CPU s | ratio |")
    print("|---|---:|---:|---:|")
    for name, text, words in cases:
        old = _cpu(_old, text, words)
        new = _cpu(_find_spans, text, words, 201)
        print(f"| {name} | {old:.3f} | {new:.3f} | {old / new:.1f}x |")


if __name__ == "__main__":
    main()
