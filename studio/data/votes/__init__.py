"""A vote set from the Compare tab's Vote view (data.source: votes) -> preference pairs with Llama 2 margins.

    load(DataSpec(source="votes"), "preference")                                    # the set "default"
    load(DataSpec(source="votes", votes=VotesSpec(set="helpful-v1", margin_scale="large")), "preference")
    load(DataSpec(source="votes", path="kept-votes.jsonl"), "preference")           # a votes file anywhere
    rlhf-studio train presets/rm-hh-tiny.yaml --set data.source=votes --set data.votes.set=helpful-v1 --set data.path=

Raw schema: one vote per line as studio/data/votes/records.py writes it. A graded pair gives one row with the grade's
margin on data.votes.margin_scale; a ranking of K answers gives every ordered pair (with the ranking's id as
"group" when data.votes.group_rankings); a tie, "both bad" and a vote taken back give none (the set's summary
counts them). A vote from before grades gives a row without a margin. A line that is no vote (edited by hand) is a
dropped row naming its line. Votes have no bundled sample and are not on the hub.

The package also keeps the votes themselves, which the Compare tab's Vote view writes:
    records.py    one vote as a JSON object: a graded pair, a tie or "both bad", a ranking, an undo; its pairs
    sets.py       named vote sets under <home>/votes/<set>/: guidelines, models, prompts, the append-only vote log
    agreement.py  how often two annotators agree on the pairs both judged (percent and Cohen's kappa)
Built on them, higher up: a set's next round of training (studio/pipelines/rounds.py) and its export and Hub push
(studio/publish/vote_sets.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

from studio.data.fields import RowProblem
from studio.data.votes import records, sets
from studio.errors import DataError

log = logging.getLogger(__name__)

HUB_ID = None
KEEPS_COLUMNS = False  # a ranking is one line and several rows
NOT_A_VOTE = "_not_a_vote"  # file_rows' stand-in for a line that does not parse, so that it is named and counted


def default_path(spec=None) -> Path:
    """The votes file of the set data.votes.set names, when data.path is empty."""
    name = spec.votes.set if spec is not None else sets.DEFAULT_SET
    path = sets.load(name).votes_path
    if not path.is_file():
        raise DataError(
            f"no votes in the set {name!r} yet ({path} does not exist): vote in the Compare tab's Vote view first, "
            "then train on your votes"
        )
    return path


def file_rows(path: str) -> list[dict]:
    """One row per line of a votes file, so that row n is line n: a line that is not JSON stands in as
    {NOT_A_VOTE: reason} (convert_rows names it), a blank line as {} (skipped); a line cut off by a crash mid-write
    is not a vote yet."""
    if not Path(path).is_file():
        raise DataError(f"{path}: no such file")
    lines = sets.read_lines(Path(path))
    if not lines:
        raise DataError(f"{path}: no votes in the file yet; vote in the Compare tab's Vote view first")
    rows = [{} for _ in range(lines[-1][0])]
    for number, item in lines:
        rows[number - 1] = {NOT_A_VOTE: item} if isinstance(item, RowProblem) else item
    return rows


def convert_rows(rows, spec, fmt: str = "preference"):
    """(row number, canonical row or RowProblem) for every pair the live votes give, in file order."""
    undone = {row["undo"] for row in rows if isinstance(row, dict) and records.kind(row) == records.UNDO}
    scale, group = (spec.votes.margin_scale, spec.votes.group_rankings) if spec is not None else ("small", False)
    not_trained = 0
    for number, row in enumerate(rows, start=1):
        if not row:
            continue  # a blank line
        if NOT_A_VOTE in row:
            yield number, row[NOT_A_VOTE]
            continue
        try:
            vote = records.checked(row)
        except RowProblem as problem:
            yield number, problem
            continue
        if records.kind(vote) == records.UNDO or vote.get("id") in undone:
            continue
        pairs = records.pairs(vote, scale, group)
        not_trained += not pairs
        for pair in pairs:
            yield number, pair
    if not_trained:
        log.info("votes: %d ties and 'both bad' votes kept in the set, not trained on", not_trained)
