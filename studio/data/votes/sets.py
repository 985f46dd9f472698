"""Vote sets: named collections of votes, each with the guidelines shown above the answers and what it draws from.

    create(VoteSet("helpful-v1", guidelines="Prefer the answer that ...", models=["base (tiny)", "20261207-..."]))
    append("helpful-v1", records.pair_vote(...))     # one line, flushed: a crash loses at most the vote being written
    undo_last("helpful-v1", "ana")                    # ana's newest vote taken back (an undo line is appended)
    read("helpful-v1").votes                          # the live votes, oldest first, undone ones left out
    summarize("helpful-v1")                           # counts, share per level, agreement between annotators

    <home>/votes/<set>/
        set.yaml      name, guidelines, models (answering-model keys: "base (tiny)" or run ids), prompts_from (a run
                      whose held-out prompts are drawn) or prompts (typed), policy (the run the rounds start from)
        votes.jsonl   one vote per line (studio/data/votes/records.py), never rewritten
        rounds.jsonl  the set's training rounds (studio/pipelines/rounds.py)

A line edited by hand into something that is not a vote is named (file and line) and skipped; the rest are kept.
The first studio's single votes file (<home>/votes/votes.jsonl) becomes the set "default" the first time sets are
read.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

import studio.data.votes.agreement as agreement  # the modules themselves: the package imports this one
import studio.data.votes.records as records
from studio.data.fields import RowProblem
from studio.errors import StudioError
from studio.paths import votes_root

log = logging.getLogger(__name__)

DEFAULT_SET = "default"
SET_FILE, VOTES_FILE = "set.yaml", "votes.jsonl"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class VoteSet:
    name: str
    guidelines: str = ""  # shown above the answers while voting
    models: list[str] = field(default_factory=list)  # answering-model keys (generate.target_for) votes draw from
    prompts_from: str | None = None  # a run whose held-out prompts are drawn
    prompts: list[str] = field(default_factory=list)  # typed prompts, drawn in turn when no run is named
    policy: str | None = None  # the run round 1 starts from (its policy, and the reward model's initial weights)
    created: float = 0.0
    judges: list[str] = field(default_factory=list)  # judges (studio/eval/judges.py names) of each round's win rate

    @property
    def folder(self) -> Path:
        return votes_root() / self.name

    @property
    def votes_path(self) -> Path:
        return self.folder / VOTES_FILE


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_PATTERN.match(name):
        raise StudioError(
            f"vote set name {name!r}: use 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return name


def _migrate_legacy() -> None:
    """The first studio kept every vote in <home>/votes/votes.jsonl; it becomes the set "default", moved as is."""
    legacy = votes_root() / VOTES_FILE
    target = votes_root() / DEFAULT_SET
    if legacy.is_file() and not target.exists():
        target.mkdir(parents=True)
        _write_yaml(target / SET_FILE, asdict(VoteSet(DEFAULT_SET, created=legacy.stat().st_mtime)))
        os.replace(legacy, target / VOTES_FILE)
        log.info("votes: moved %s into the vote set %r", legacy, DEFAULT_SET)


def _write_yaml(path: Path, data: dict) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    os.replace(temporary, path)  # never a half-written set.yaml


def names() -> list[str]:
    """Every vote set, by name."""
    _migrate_legacy()
    root = votes_root()
    return sorted(p.name for p in root.iterdir() if (p / SET_FILE).is_file()) if root.is_dir() else []


def load(name: str) -> VoteSet:
    """The set by name; the set "default" exists as soon as it is asked for."""
    _migrate_legacy()
    path = votes_root() / check_name(name) / SET_FILE
    if not path.is_file():
        if name == DEFAULT_SET:
            return create(VoteSet(DEFAULT_SET))
        known = ", ".join(names()) or "none yet"
        raise StudioError(f"no vote set named {name!r} (sets: {known}); create it in the Compare tab's Vote view")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        known_fields = {f.name for f in fields(VoteSet)}
        return VoteSet(**{k: v for k, v in raw.items() if k in known_fields} | {"name": name})
    except (ValueError, TypeError, yaml.YAMLError) as err:
        raise StudioError(f"{path}: not a vote set ({err})") from None


def create(vote_set: VoteSet) -> VoteSet:
    """Make a new set's folder; refuses a name in use."""
    _migrate_legacy()
    vote_set.name = check_name(vote_set.name)
    if (vote_set.folder / SET_FILE).exists():
        raise StudioError(f"a vote set named {vote_set.name!r} exists already; pick another name")
    vote_set.folder.mkdir(parents=True, exist_ok=True)
    vote_set.created = vote_set.created or time.time()
    save(vote_set)
    return vote_set


def save(vote_set: VoteSet) -> None:
    """Write a set's settings (guidelines, models, prompts, policy); its votes are untouched."""
    _write_yaml(vote_set.folder / SET_FILE, asdict(vote_set))


def append(name: str, record: dict) -> dict:
    """Add one checked vote (or undo) to the set's log."""
    path = load(name).votes_path
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return record


# ---------------------------------------------------------------- reading


@dataclass
class VoteLog:
    votes: list[dict]  # live votes, oldest first (undone ones left out)
    numbers: list[int]  # each vote's line in the file
    problems: list[str]  # "<file> line N: ..." for each line skipped
    undone: int = 0


def read_lines(path: Path) -> list[tuple[int, dict | RowProblem]]:
    """(line number, parsed object or the RowProblem that makes it no vote) for every non-blank line. A line cut
    off by a crash mid-write (the last, with no newline) is not a vote yet and is left out silently."""
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    read = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            read.append((number, records.checked(json.loads(line))))
        except ValueError:
            if number == len(lines) and not text.endswith("\n"):
                continue  # cut off mid-write
            read.append((number, RowProblem("line", "not valid JSON")))
        except RowProblem as problem:
            read.append((number, problem))
    return read


def read_file(path: Path) -> VoteLog:
    """The live votes of a votes file: undo lines applied, broken lines named and skipped."""
    problems, undone, live = [], set(), []
    for number, item in read_lines(path):
        if isinstance(item, RowProblem):
            problems.append(f"{Path(path).name} line {number}: {item}; skipped")
        elif records.kind(item) == records.UNDO:
            undone.add(item["undo"])
        else:
            live.append((number, item))
    for problem in problems:
        log.warning("%s", problem)
    kept = [(n, r) for n, r in live if r.get("id") not in undone]
    return VoteLog([r for _, r in kept], [n for n, _ in kept], problems, undone=len(live) - len(kept))


def read(name: str) -> VoteLog:
    return read_file(load(name).votes_path)


def undo_last(name: str, annotator: str) -> dict:
    """Take back `annotator`'s newest live vote in the set; returns that vote. Votes written before ids existed
    cannot be taken back this way."""
    annotator = annotator.strip()
    for vote in reversed(read(name).votes):
        if vote.get("annotator", "") == annotator and vote.get("id"):
            append(name, records.undo(vote["id"], annotator))
            return vote
    raise StudioError(f"nothing to undo: no vote by {annotator or 'an unnamed annotator'} in the set {name!r}")


# ---------------------------------------------------------------- summary


@dataclass
class Summary:
    name: str
    votes: int  # live votes: pairs, ties, "both bad" and rankings
    pairs: int  # training pairs they give
    rankings: int
    by_level: dict[str, int]  # grade or outcome -> votes; "ungraded" for votes from before grades
    annotators: dict[str, int]  # name -> live votes
    problems: list[str]
    undone: int
    agreement: agreement.Agreement = field(default_factory=agreement.Agreement)  # on pairs two people judged

    def share(self, level: str) -> float:
        graded = sum(self.by_level.values())
        return self.by_level.get(level, 0) / graded if graded else 0.0


def summarize(name: str, log_: VoteLog | None = None) -> Summary:
    vote_log = log_ or read(name)
    by_level: Counter = Counter()
    rankings = pair_count = 0
    for vote in vote_log.votes:
        pair_count += len(records.pairs(vote))
        if records.kind(vote) == records.RANK:
            rankings += 1
        elif records.is_outcome(vote):
            by_level[vote["outcome"]] += 1
        else:
            by_level[vote.get("grade") or "ungraded"] += 1
    annotators = Counter(v.get("annotator") or "(unnamed)" for v in vote_log.votes)
    return Summary(
        name=name,
        votes=len(vote_log.votes),
        pairs=pair_count,
        rankings=rankings,
        by_level=dict(by_level),
        annotators=dict(annotators),
        problems=vote_log.problems,
        undone=vote_log.undone,
        agreement=agreement.measure(vote_log.votes),
    )
