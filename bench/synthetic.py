"""Synthetic training data for the benchmarks, in the raw schemas of Dolly-15k and Anthropic HH-RLHF, with lengths
drawn to look like the real sets' (mostly short, a long tail). Words are drawn from a small list: the benchmarks
measure speed, which depends on lengths, not on what the words say.

    from synthetic import write_data      # with bench/ on sys.path
    dolly, hh = write_data(folder, rows=4000)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = """
the of and to in is that it for on with as was at by an be this from or have not are but what which when your
can more all will there one would about so if out they time how some into people these make like than first been
who its now find use may water long down day did get come made part over sound number little work know place
year live back give most very after thing our just name good sentence man think say great where help through
much before line right too mean old any same tell boy follow came want show also around form three small set put
end does another well large must big even such because turn here why ask went men read need land different home
us move try kind
""".split()


def words(rng: random.Random, mean_words: float) -> str:
    """Lognormal lengths (sigma 0.8): mostly short, a long tail, like instruction data."""
    n = max(1, int(rng.lognormvariate(0, 0.8) * mean_words * 0.73))  # 0.73: the lognormal's mean is e^0.32
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def write_data(folder: Path, rows: int, seed: int = 0) -> tuple[Path, Path]:
    """(dolly.jsonl, hh.jsonl) in the sources' raw schemas. Dolly: instructions about 15 words, responses about
    70 (its real means); HH-RLHF: one or two turns, answers about 50 words."""
    rng = random.Random(seed)
    dolly, hh = folder / "dolly.jsonl", folder / "hh.jsonl"
    with open(dolly, "w") as f:
        for _ in range(rows):
            f.write(
                json.dumps(
                    {"instruction": words(rng, 15), "context": "", "response": words(rng, 70), "category": "open_qa"}
                )
                + "\n"
            )
    with open(hh, "w") as f:
        for _ in range(rows):
            turns = "".join(
                f"\n\nHuman: {words(rng, 20)}\n\nAssistant: {words(rng, 50)}" for _ in range(rng.choice((0, 1)))
            )
            prompt = f"{turns}\n\nHuman: {words(rng, 20)}\n\nAssistant:"
            f.write(
                json.dumps({"chosen": f"{prompt} {words(rng, 50)}", "rejected": f"{prompt} {words(rng, 50)}"}) + "\n"
            )
    return dolly, hh
