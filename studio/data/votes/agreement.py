"""Agreement between annotators on the answer pairs two people judged: percent agreement and Cohen's kappa.

    result = measure(sets.read("helpful-v1").votes)
    for row in result.pairs:                  # one row per two annotators who judged a pair in common
        print(row.annotators, row.items, row.percent, row.kappa)
    result.overall                            # the rows pooled, when more than two people overlap

What a vote says about a pair of answers is records.judgments(): first, second, tie or both_bad, the two answers in
a fixed order, so a pair shown as A/B to one person and B/A to another is one item. A ranking says something about
every two answers it ranked. When one person judged the same item twice, their newest judgment counts.

Cohen's kappa is (p_o - p_e) / (1 - p_e): p_o the share of items the two agree on, p_e the agreement expected by
chance from how often each of them uses each category. When p_e is 1 (both always say the same one thing) kappa
is undefined and left None. The pooled row adds up the agreements and the chance agreements of every two
annotators, weighted by the items they share; with one pair of annotators it is that pair's row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import combinations

import studio.data.votes.records as records  # the module itself: the package imports this one

CATEGORIES = ("first", "second", "tie", "both_bad")
UNNAMED = "(unnamed)"  # votes saved without an annotator name count as one person, as the set's summary does


@dataclass
class PairAgreement:
    annotators: tuple[str, ...]  # the two annotators (every annotator in the pooled row), sorted
    items: int  # answer pairs both judged (summed over every two annotators in the pooled row)
    agreed: int  # items on which they said the same
    percent: float  # agreed / items, 0 to 1
    chance: float  # p_e: agreement expected by chance
    kappa: float | None  # Cohen's kappa; None when chance is 1

    @property
    def kappa_text(self) -> str:
        return "-" if self.kappa is None else f"{self.kappa:.3f}"

    def to_json(self) -> dict:
        return {
            "annotators": list(self.annotators),
            "items": self.items,
            "agreed": self.agreed,
            "percent": self.percent,
            "chance": self.chance,
            "kappa": self.kappa,
        }


@dataclass
class Agreement:
    pairs: list[PairAgreement] = field(default_factory=list)  # every two annotators who share at least one item
    overall: PairAgreement | None = None  # pooled, when there are two or more such pairs

    def table(self) -> list[tuple[str, int, int, str, str]]:
        """(annotators, items, agreed, agreement, kappa) per row as the card and the CLI print them, pooled last."""
        rows = [(" and ".join(r.annotators), r) for r in self.pairs]
        rows += [("all, pooled", self.overall)] if self.overall else []
        return [(who, r.items, r.agreed, f"{r.percent:.1%}", r.kappa_text) for who, r in rows]

    def to_json(self) -> dict:
        return {
            "pairs": [p.to_json() for p in self.pairs],
            "overall": self.overall.to_json() if self.overall else None,
        }


def latest_judgments(votes: list[dict]) -> dict[str, dict[tuple, str]]:
    """annotator -> {item: category}, each annotator's newest judgment of each item (votes oldest first)."""
    said: dict[str, dict[tuple, str]] = {}
    for vote in votes:
        who = (vote.get("annotator") or "").strip() or UNNAMED
        said.setdefault(who, {}).update(records.judgments(vote))
    return said


def _kappa(agreed: Fraction, chance: Fraction) -> float | None:
    return None if chance == 1 else float((agreed - chance) / (1 - chance))


def _compare(first: dict[tuple, str], second: dict[tuple, str]) -> tuple[int, int, Fraction] | None:
    """(items in common, items agreed, p_e) of two annotators; None when they share no item."""
    common = sorted(first.keys() & second.keys())
    if not common:
        return None
    n = len(common)
    agreed = sum(first[k] == second[k] for k in common)
    uses_first, uses_second = Counter(first[k] for k in common), Counter(second[k] for k in common)
    chance = sum(Fraction(uses_first[c] * uses_second[c], n * n) for c in CATEGORIES)
    return n, agreed, chance


def measure(votes: list[dict]) -> Agreement:
    """Agreement between every two annotators of these (live) votes, and pooled over all of them."""
    said = latest_judgments(votes)
    rows, pooled_chance = [], Fraction(0)
    for a, b in combinations(sorted(said), 2):
        compared = _compare(said[a], said[b])
        if compared is None:
            continue
        n, agreed, chance = compared
        rows.append(PairAgreement((a, b), n, agreed, agreed / n, float(chance), _kappa(Fraction(agreed, n), chance)))
        pooled_chance += chance * n
    if len(rows) < 2:
        return Agreement(rows)
    items, agreed = sum(r.items for r in rows), sum(r.agreed for r in rows)
    chance = pooled_chance / items
    everyone = tuple(sorted({name for r in rows for name in r.annotators}))
    kappa = _kappa(Fraction(agreed, items), chance)
    overall = PairAgreement(everyone, items, agreed, agreed / items, float(chance), kappa)
    return Agreement(rows, overall)
