"""Blind votes: models answer one prompt, the answers are shown unlabeled in random order, and the person's verdict
goes into a vote set (studio/data/votes/sets.py).

    pair = blind_pair(prompt, target_for("base (tiny)"), target_for(run_id), settings)
    record_vote("helpful-v1", pair, "a", grade="better", annotator="ana")   # A is better, by Llama 2's "better"
    record_vote("helpful-v1", pair, "tie", annotator="ana")                  # or "both_bad": kept, not a pair
    ranking = blind_ranking(prompt, [target_for(run_id)], 4, settings)       # one model sampled 4 times
    record_ranking("helpful-v1", ranking, [1, 3, 2, 4], annotator="ana")     # 1 is best; equal numbers tie

Who wrote which answer is revealed after the vote (pair.models, ranking.models). The same annotator cannot save the
same pair (or the same answers ranked) twice, which would count it twice in training; a second annotator can,
which is how agreement between annotators is measured.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from studio.config import GenerationSpec
from studio.data.fields import RowProblem
from studio.data.votes import records, sets
from studio.errors import StudioError

if TYPE_CHECKING:  # generate imports torch; the `votes` data source reads vote sets without loading it
    from studio.serve import generate

WINNERS = ("a", "b")
CHOICES = WINNERS + records.OUTCOMES  # what a pair's vote can say


@dataclass
class BlindPair:
    prompt: list[dict]  # role/content messages
    answers: tuple[str, str]  # as shown: answer A, answer B
    models: tuple[str, str]  # who wrote answer A and answer B (target labels), revealed after the vote


@dataclass
class BlindRanking:
    prompt: list[dict]
    answers: list[str]  # as shown, numbered from 1
    models: list[str]  # who wrote each, revealed after the vote


def blind_pair(
    prompt: list[dict],
    first: generate.Target,
    second: generate.Target,
    settings: GenerationSpec,
    generator: generate.Generator | None = None,
    rng: random.Random | None = None,
) -> BlindPair:
    """Both targets answer the prompt with the same settings; the two answers come back in random order."""
    from studio.serve import generate

    if first.label == second.label:
        raise StudioError("pick two different models to vote between")
    generator = generator or generate.shared()
    answers = [(generator.generate(t, [prompt], settings).texts[0], t.label) for t in (first, second)]
    (rng or random.Random()).shuffle(answers)
    return BlindPair(prompt=prompt, answers=(answers[0][0], answers[1][0]), models=(answers[0][1], answers[1][1]))


def blind_ranking(
    prompt: list[dict],
    targets: list[generate.Target],
    k: int,
    settings: GenerationSpec,
    generator: generate.Generator | None = None,
    rng: random.Random | None = None,
) -> BlindRanking:
    """K answers to the prompt, from one model sampled K times or shared out among several models in turn, shown
    in random order. Sampling needs a temperature above 0: greedy answers from one model would all be the same."""
    from studio.serve import generate

    if k not in records.RANK_SIZES:
        raise StudioError(f"rank {k} answers: pick {records.RANK_SIZES[0]} to {records.RANK_SIZES[-1]}")
    if not targets:
        raise StudioError("pick at least one model to rank the answers of")
    per_model = [targets[i % len(targets)] for i in range(k)]
    repeats = max(per_model.count(t) for t in targets)
    if repeats > 1 and settings.temperature == 0:
        raise StudioError(
            "temperature 0 gives one model the same answer every time; raise the temperature to rank several "
            "samples of one model"
        )
    generator = generator or generate.shared()
    answers = []
    for target in targets:
        count = per_model.count(target)
        answers += [(text, target.label) for text in generator.generate(target, [prompt] * count, settings).texts]
    texts = [a.strip() for a, _ in answers]
    if len(set(texts)) < len(texts) or not all(texts):
        raise StudioError(
            "some of the answers are the same (or empty), and a ranking needs them all different; generate again "
            "with another seed, a higher temperature or more max_new_tokens"
        )
    (rng or random.Random()).shuffle(answers)
    return BlindRanking(prompt=prompt, answers=[a for a, _ in answers], models=[m for _, m in answers])


def record_vote(set_name: str, pair: BlindPair, choice: str, grade: str | None = None, annotator: str = "") -> dict:
    """Save a pair's vote: "a" or "b" with one of records.GRADES, or "tie" or "both_bad". Returns the record."""
    if choice not in CHOICES:
        raise StudioError(f"vote {choice!r}: vote {', '.join(CHOICES)}")
    if not all(a.strip() for a in pair.answers):
        raise StudioError("one of the answers is empty; generate again with more max_new_tokens")
    if pair.answers[0].strip() == pair.answers[1].strip():
        raise StudioError(
            "the two answers are the same, so a vote between them teaches nothing; generate again "
            "with another seed or a higher temperature"
        )
    if choice in WINNERS and grade not in records.GRADES:
        raise StudioError(f"say by how much answer {choice.upper()} is better: {', '.join(records.GRADES)}")
    _refuse_repeat(set_name, pair.prompt, pair.answers, annotator)
    if choice in records.OUTCOMES:
        record = records.outcome_vote(pair.prompt, list(pair.answers), list(pair.models), choice, annotator)
    else:
        won = WINNERS.index(choice)
        models = (pair.models[won], pair.models[1 - won])
        record = records.pair_vote(pair.prompt, pair.answers[won], pair.answers[1 - won], models, grade, annotator)
    return sets.append(set_name, record)


def record_ranking(set_name: str, ranking: BlindRanking, ranks: list[int], annotator: str = "") -> dict:
    """Save a ranking: ranks[i] is the place of shown answer i + 1 (1 the best; equal places tie)."""
    _refuse_repeat(set_name, ranking.prompt, ranking.answers, annotator)
    try:
        record = records.ranking(ranking.prompt, ranking.answers, ranking.models, list(ranks), annotator)
    except RowProblem as problem:
        raise StudioError(f"ranking: {problem.reason}") from None
    return sets.append(set_name, record)


def _answers_of(vote: dict) -> list[str]:
    if "answers" in vote:
        return vote["answers"]
    return [vote["chosen"][-1]["content"], vote["rejected"][-1]["content"]]


def _key(prompt: list[dict], answers) -> tuple:
    """The same prompt and the same answers, in any order and whatever the verdict, are one vote's subject."""
    return json.dumps(prompt, sort_keys=True, ensure_ascii=False), frozenset(a.strip() for a in answers)


def _refuse_repeat(set_name: str, prompt: list[dict], answers, annotator: str) -> None:
    if is_saved(set_name, prompt, answers, annotator):
        raise StudioError(
            f"{annotator.strip() or 'you'} already voted on this prompt and these answers in the set {set_name!r}; "
            "a second copy would count them twice in training: sample a new prompt, or generate with another seed"
        )


def is_saved(set_name: str, prompt: list[dict], answers, annotator: str = "") -> bool:
    """Whether the annotator's live votes in the set already judge this prompt and these answers."""
    key = _key(prompt, answers)
    return any(
        _key(v["prompt"], _answers_of(v)) == key and v.get("annotator", "") == annotator.strip()
        for v in sets.read(set_name).votes
    )
