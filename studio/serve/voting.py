"""Blind A/B votes: two models answer one prompt, the answers are shown unlabeled in random order, and the answer
the user prefers is saved with the other as a preference pair.

    pair = blind_pair([{"role": "user", "content": "Name a fruit."}], base_target(run), run_target(run), settings)
    pair.answers            # ("...", "...") in shown order; pair.models says which model wrote each
    record_vote(pair, "a")  # appends {"prompt", "chosen", "rejected", "chosen_model", "rejected_model", "time"}
    is_saved(pair)          # True once a vote on this prompt and these two answers is in the file (never saved twice)

The votes file (<home>/votes/votes.jsonl) holds the pairs in TRL's explicit preference layout (prompt messages,
chosen and rejected assistant messages), which is what the `votes` data source reads: the next reward model or DPO
run trains on them with `data.source: votes`.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from studio.config import GenerationSpec
from studio.errors import StudioError
from studio.paths import votes_file

if TYPE_CHECKING:  # generate imports torch; the `votes` data source reads votes_file() without loading it
    from studio.serve import generate

CHOICES = ("a", "b")


@dataclass
class BlindPair:
    prompt: list[dict]  # role/content messages
    answers: tuple[str, str]  # as shown: answer A, answer B
    models: tuple[str, str]  # who wrote answer A and answer B (target labels), revealed after the vote


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


def record_vote(pair: BlindPair, choice: str) -> dict:
    """Save the pair with the chosen answer ("a" or "b") as chosen and the other as rejected; returns the record."""
    if choice not in CHOICES:
        raise StudioError(f"vote {choice!r}: vote a or b")
    won = CHOICES.index(choice)
    chosen, rejected = pair.answers[won], pair.answers[1 - won]
    if chosen.strip() == rejected.strip():
        raise StudioError(
            "the two answers are the same, so a vote between them teaches nothing; generate again "
            "with another seed or a higher temperature"
        )
    if not chosen.strip() or not rejected.strip():
        raise StudioError("one of the answers is empty; generate again with more max_new_tokens")
    if is_saved(pair):
        raise StudioError(
            "a vote on this prompt and these two answers is already saved; a second copy would count "
            "the pair twice in training: sample a new prompt, or generate with another seed"
        )
    record = {
        "prompt": pair.prompt,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "chosen_model": pair.models[won],
        "rejected_model": pair.models[1 - won],
        "time": time.time(),
    }
    path = votes_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:  # one line per vote, flushed: a crash loses at most this vote
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return record


def _pair_key(prompt: list[dict], answers) -> tuple:
    """The same prompt and the same two answers, in either order and whichever won, are one pair."""
    return json.dumps(prompt, sort_keys=True, ensure_ascii=False), frozenset(a.strip() for a in answers)


def is_saved(pair: BlindPair) -> bool:
    """Whether the votes file already holds a vote on this prompt between these two answers."""
    key = _pair_key(pair.prompt, pair.answers)
    for record in read_votes():
        try:
            answers = (record["chosen"][-1]["content"], record["rejected"][-1]["content"])
            if _pair_key(record["prompt"], answers) == key:
                return True
        except (KeyError, IndexError, TypeError):  # a hand-edited line: not this pair
            continue
    return False


def read_votes() -> list[dict]:
    """Every saved vote, oldest first; a half-written last line (a crash mid-write) is skipped."""
    path = votes_file()
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records
