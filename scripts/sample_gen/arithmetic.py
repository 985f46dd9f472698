"""Arithmetic raw schema: question, solution, answer. Every sum and difference of two single digits, once each.

The solution counts its way to the answer one step at a time, with the steps still to go in brackets:
"7 + 3: 8 (2), 9 (1), 10 (0). The answer is 10." Each step is the number before it plus or minus one, so a model
as small as the built-in tiny one can learn the procedure and carry it to sums it never saw, which a bare
"7 + 3 = 10" (a table to memorise) does not teach it. The answer column repeats the answer alone. Each pair of
digits and operation appears once, so a question held out of training is a sum the model never saw worked.

    python scripts/sample_gen/arithmetic.py    # rewrites studio/data/samples/arithmetic.jsonl alone
    python scripts/make_samples.py             # every source's sample
"""

from __future__ import annotations

import random

SOURCE = "arithmetic"
SEED = 7


def solution(a: int, op: str, b: int) -> str:
    step = 1 if op == "+" else -1
    result = a + step * b
    if b == 0:
        return f"{a} {op} 0: nothing to count. The answer is {result}."
    counted = ", ".join(f"{a + step * i} ({b - i})" for i in range(1, b + 1))
    return f"{a} {op} {b}: {counted}. The answer is {result}."


def rows(rng: random.Random) -> list[dict]:
    rows = []
    for op in ("+", "-"):
        for a in range(10):
            for b in range(10):
                rows.append(
                    {
                        "question": f"What is {a} {op} {b}?",
                        "solution": solution(a, op, b),
                        "answer": str(a + b if op == "+" else a - b),
                    }
                )
    rng.shuffle(rows)
    return rows


if __name__ == "__main__":  # this source's sample alone, written as make_samples.py writes every source's
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from make_samples import OUT, write_jsonl

    sample = rows(random.Random(SEED))
    write_jsonl(OUT / f"{SOURCE}.jsonl", sample)
    print(f"{SOURCE}: {len(sample)} rows")
