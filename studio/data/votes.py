"""Your blind A/B votes from the Compare tab (data.source: votes) -> preference pairs.

    load(DataSpec(source="votes"), "preference")                      # <home>/votes/votes.jsonl
    load(DataSpec(source="votes", path="kept-votes.jsonl"), "preference")
    rlhf-studio train presets/rm-hh-tiny.yaml --set data.source=votes --set data.path=

Raw schema, one vote per line, as studio.serve.voting.record_vote writes it: prompt (role/content messages ending with a
user turn), chosen (the answer voted for) and rejected, each a list holding one assistant message; chosen_model,
rejected_model and time are kept in the file and not trained on. An empty data.path reads the studio's own votes
file; votes have no bundled sample and are not on the hub.
"""

from __future__ import annotations

from pathlib import Path

from studio.data.fields import RowProblem, messages
from studio.data.files import parse_jsonl, read_rows
from studio.errors import DataError
from studio.paths import votes_file

HUB_ID = None


def default_path() -> Path:
    """The votes file the Compare tab writes, when data.path is empty."""
    path = votes_file()
    if not path.is_file():
        raise DataError(
            f"no votes yet ({path} does not exist): vote in the Compare tab's blind A/B mode first, "
            "then train on your votes"
        )
    return path


def file_rows(path: str) -> list[dict]:
    """The raw rows of a votes file. A jsonl file is read as an append-only log: a half-written last line (the
    studio stopped while saving a vote) is not a vote yet and is skipped; a broken line before it is an error."""
    path = Path(path)
    if not path.name.endswith(".jsonl") or not path.is_file():
        return read_rows(path)  # other file types, and a missing file, read and reported as every source's are
    rows = parse_jsonl(path, path.read_text(encoding="utf-8"), skip_cut_off_last_line=True)
    if not rows:
        raise DataError(f"{path}: no votes in the file yet; vote in the Compare tab's blind A/B mode first")
    return rows


def convert(row: dict, spec=None, fmt: str = "preference") -> dict:
    prompt = _messages(row, "prompt")
    if prompt[-1]["role"] != "user":
        raise RowProblem("prompt", "the prompt must end with a user message")
    chosen, rejected = _answer(row, "chosen"), _answer(row, "rejected")
    if chosen == rejected:
        raise RowProblem("rejected", "identical to chosen")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _messages(row: dict, column: str) -> list[dict]:
    if row.get(column) is None:
        raise RowProblem(column, "missing")
    return messages(row[column], column)


def _answer(row: dict, column: str) -> list[dict]:
    answer = _messages(row, column)
    if len(answer) != 1 or answer[0]["role"] != "assistant":
        raise RowProblem(column, "expected one assistant message")
    return answer
