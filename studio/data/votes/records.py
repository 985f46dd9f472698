"""One vote as one JSON object (a line of a set's votes.jsonl), and the preference pairs it gives.

    pair_vote(prompt, chosen, rejected, ("run-a", "base (tiny)"), "better", "ana")    # A or B, and by how much
    outcome_vote(prompt, answers, models, "tie", "ana")         # a tie or "both bad": kept, never trained on
    ranking(prompt, answers, models, [1, 2, 2, 3], "ana")       # InstructGPT's rank K (1 is best; ties share a rank)
    undo(vote_id, "ana")                                        # takes a vote back; the log stays append-only
    pairs(record, scale="small", group=True)   # canonical preference rows, each with its Llama 2 margin

Grades are Llama 2's four levels. Its Table 27 gives each a margin on two scales: small (1, 2/3, 1/3, 0) and large
(3, 2, 1, 0), for significantly better, better, slightly better, negligibly better or unsure. A vote from before
grades existed (the first studio's blind A/B) has no grade, so no margin.

A ranking of K answers gives every ordered pair (rank i above rank j), K(K-1)/2 of them when no two tie; with
grouping on, each carries the ranking's id as its group, and the reward stage weighs a group as one comparison.
"""

from __future__ import annotations

import time
import uuid
from fractions import Fraction
from itertools import combinations

from studio.data.fields import RowProblem, messages

GRADES = ("significantly_better", "better", "slightly_better", "negligibly_better")
GRADE_LABELS = {
    "significantly_better": "Significantly better",
    "better": "Better",
    "slightly_better": "Slightly better",
    "negligibly_better": "Negligibly better / unsure",
}
OUTCOMES = ("tie", "both_bad")
OUTCOME_LABELS = {"tie": "Tie", "both_bad": "Both bad"}
MARGIN_SCALES = {  # Llama 2, Table 27, in the order of GRADES
    "small": (1.0, float(Fraction(2, 3)), float(Fraction(1, 3)), 0.0),
    "large": (3.0, 2.0, 1.0, 0.0),
}
RANK_SIZES = range(3, 10)  # "Rank K" shows 3 to 9 answers
PAIR, RANK, UNDO = "pair", "rank", "undo"


def margin(grade: str | None, scale: str = "small") -> float | None:
    """The Llama 2 margin of a grade on a scale; None for a vote without a grade."""
    if grade is None:
        return None
    return MARGIN_SCALES[scale][GRADES.index(grade)]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def _stamp(record: dict, annotator: str) -> dict:
    return {"id": uuid.uuid4().hex[:12], **record, "annotator": annotator.strip(), "time": time.time()}


def pair_vote(
    prompt: list[dict], chosen: str, rejected: str, models: tuple[str, str], grade: str, annotator: str
) -> dict:
    """A vote for `chosen` over `rejected` by `grade`; models are (who wrote chosen, who wrote rejected)."""
    record = {
        "kind": PAIR,
        "prompt": prompt,
        "chosen": _assistant(chosen),
        "rejected": _assistant(rejected),
        "chosen_model": models[0],
        "rejected_model": models[1],
        "grade": grade,
    }
    return checked(_stamp(record, annotator))


def outcome_vote(prompt: list[dict], answers: list[str], models: list[str], outcome: str, annotator: str) -> dict:
    """A tie or "both bad" on a pair: kept in the file and counted, never a training pair."""
    record = {"kind": PAIR, "prompt": prompt, "answers": list(answers), "models": list(models), "outcome": outcome}
    return checked(_stamp(record, annotator))


def ranking(prompt: list[dict], answers: list[str], models: list[str], ranks: list[int], annotator: str) -> dict:
    """K answers ordered by a person: ranks[i] is answer i's place, 1 the best; equal ranks are ties."""
    record = {"kind": RANK, "prompt": prompt, "answers": list(answers), "models": list(models), "ranks": list(ranks)}
    return checked(_stamp(record, annotator))


def undo(vote_id: str, annotator: str) -> dict:
    return _stamp({"kind": UNDO, "undo": vote_id}, annotator)


def kind(record: dict) -> str:
    """pair, rank or undo; a line without a kind is a vote from the first studio's blind A/B (a pair)."""
    return record.get("kind", PAIR)


def is_outcome(record: dict) -> bool:
    return kind(record) == PAIR and record.get("outcome") is not None


# ---------------------------------------------------------------- checking


def checked(record: dict) -> dict:
    """The record, or RowProblem naming the field at fault."""
    if not isinstance(record, dict):
        raise RowProblem("vote", f"expected a JSON object, got {type(record).__name__}")
    what = kind(record)
    if what == UNDO:
        if not isinstance(record.get("undo"), str):
            raise RowProblem("undo", "expected the id of the vote taken back")
        return record
    if what not in (PAIR, RANK):
        raise RowProblem("kind", f"{what!r}: a vote is a pair, rank or undo")
    prompt = messages(record.get("prompt"), "prompt") if record.get("prompt") is not None else None
    if prompt is None:
        raise RowProblem("prompt", "missing")
    if prompt[-1]["role"] != "user":
        raise RowProblem("prompt", "the prompt must end with a user message")
    if what == RANK:
        _check_ranking(record)
    elif is_outcome(record):
        if record["outcome"] not in OUTCOMES:
            raise RowProblem("outcome", f"{record['outcome']!r}: allowed values are {', '.join(OUTCOMES)}")
        _answers(record, 2, 2)
    else:
        chosen, rejected = _answer(record, "chosen"), _answer(record, "rejected")
        if chosen == rejected:
            raise RowProblem("rejected", "identical to chosen")
        grade = record.get("grade")
        if grade is not None and grade not in GRADES:
            raise RowProblem("grade", f"{grade!r}: allowed values are {', '.join(GRADES)}")
    return record


def _answer(record: dict, column: str) -> str:
    if record.get(column) is None:
        raise RowProblem(column, "missing")
    answer = messages(record[column], column)
    if len(answer) != 1 or answer[0]["role"] != "assistant":
        raise RowProblem(column, "expected one assistant message")
    return answer[0]["content"].strip()


def _answers(record: dict, least: int, most: int) -> list[str]:
    answers = record.get("answers")
    if not isinstance(answers, list) or not all(isinstance(a, str) and a.strip() for a in answers):
        raise RowProblem("answers", "expected a list of non-empty answer texts")
    if not least <= len(answers) <= most:
        count = f"{least}" if least == most else f"{least} to {most}"
        raise RowProblem("answers", f"{len(answers)} answers; expected {count}")
    if len({a.strip() for a in answers}) != len(answers):
        raise RowProblem("answers", "two answers are the same text")
    models = record.get("models")
    if models is not None and (not isinstance(models, list) or len(models) != len(answers)):
        raise RowProblem("models", "expected one model per answer")
    return answers


def _check_ranking(record: dict) -> None:
    answers = record.get("answers")
    if isinstance(answers, list) and len(answers) < 2:
        raise RowProblem("answers", f"a ranking of {len(answers)} answer ranks nothing; rank 2 or more")
    answers = _answers(record, 2, RANK_SIZES[-1])
    ranks = record.get("ranks")
    if not isinstance(ranks, list) or len(ranks) != len(answers):
        raise RowProblem("ranks", "expected one rank per answer")
    if not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in ranks):
        raise RowProblem("ranks", "ranks are whole numbers from 1 (the best)")
    if len(set(ranks)) < 2:
        raise RowProblem("ranks", "every answer has the same rank, so the ranking prefers none")


# ---------------------------------------------------------------- pairs


def pairs(record: dict, scale: str = "small", group: bool = False) -> list[dict]:
    """The canonical preference rows of one checked vote: one for a graded or ungraded pair (with its margin on
    `scale` when graded), every ordered pair of a ranking (group = the ranking's id when `group`), none for a tie,
    "both bad" or an undo."""
    what = kind(record)
    if what == UNDO or is_outcome(record):
        return []
    prompt = record["prompt"]
    if what == PAIR:
        row = {"prompt": prompt, "chosen": record["chosen"], "rejected": record["rejected"]}
        graded = margin(record.get("grade"), scale)
        return [row | {"margin": graded}] if graded is not None else [row]
    rows = []
    answers, ranks = record["answers"], record["ranks"]
    for i, j in combinations(range(len(answers)), 2):
        if ranks[i] == ranks[j]:
            continue  # a tie states no preference
        better, worse = (i, j) if ranks[i] < ranks[j] else (j, i)
        row = {"prompt": prompt, "chosen": _assistant(answers[better]), "rejected": _assistant(answers[worse])}
        rows.append(row | {"group": record.get("id", "")} if group else row)
    return rows


def judgments(record: dict) -> dict[tuple, str]:
    """What one vote says about each pair of answers it showed, for agreement between annotators:
    {(prompt key, first answer, second answer): "first" | "second" | "tie" | "both_bad"}, the two answers in
    sorted order so that two people shown them in either order judge the same key."""
    import json

    what = kind(record)
    if what == UNDO:
        return {}
    prompt = json.dumps(record["prompt"], sort_keys=True, ensure_ascii=False)
    if what == PAIR:
        if is_outcome(record):
            first, second = sorted(a.strip() for a in record["answers"])
            return {(prompt, first, second): record["outcome"]}
        chosen, rejected = record["chosen"][-1]["content"].strip(), record["rejected"][-1]["content"].strip()
        first, second = sorted((chosen, rejected))
        return {(prompt, first, second): "first" if chosen == first else "second"}
    said = {}
    answers, ranks = [a.strip() for a in record["answers"]], record["ranks"]
    for i, j in combinations(range(len(answers)), 2):
        (a, rank_a), (b, rank_b) = sorted(((answers[i], ranks[i]), (answers[j], ranks[j])))
        said[(prompt, a, b)] = "tie" if rank_a == rank_b else ("first" if rank_a < rank_b else "second")
    return said
