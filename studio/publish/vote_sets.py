"""A vote set as a dataset folder (Parquet plus a dataset card), and its push to the Hub as a dataset repository.

    folder = export("helpful-v1", "out/helpful-v1")     # a new or empty folder
    url = push("helpful-v1", "me/helpful-votes", private=True)
    rlhf-studio votes export helpful-v1 --out out/helpful-v1
    rlhf-studio votes push helpful-v1 --repo me/helpful-votes [--private]

    <folder>/
        README.md            the dataset card: front matter declaring the two configs, guidelines, counts, share
                             per level, agreement between annotators, the margin scales, how to train on it
        pairs/train.parquet  the training pairs, in TRL's prompt/chosen/rejected layout (PAIR_COLUMNS)
        votes/train.parquet  every live vote as it was cast, ties, "both bad" and rankings too (VOTE_COLUMNS)

Both load with `datasets.load_dataset("parquet", data_files=...)`, or by config name from the folder or the Hub
repository (`load_dataset("me/helpful-votes", "votes")`). A push takes its token as model pushes do
(studio/publish/share.py: $HF_TOKEN or the stored login, never an argument on the command line) and stages its
files under <home>/share/votes/<set>/ first.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from studio.data.votes import records, sets
from studio.data.votes.agreement import Agreement
from studio.errors import StudioError
from studio.paths import studio_home
from studio.publish import share

CARD = "README.md"
DATA_FILES = {"pairs": "pairs/train.parquet", "votes": "votes/train.parquet"}  # config name -> file
MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
PAIR_COLUMNS = pa.schema(
    [
        ("prompt", MESSAGES),  # role/content messages, ending with the user's turn
        ("chosen", MESSAGES),  # one assistant message
        ("rejected", MESSAGES),
        ("grade", pa.string()),  # records.GRADES; empty for a ranking's pairs and votes from before grades
        ("margin_small", pa.float64()),  # the grade's Llama 2 margin on the small scale
        ("margin_large", pa.float64()),  # and on the large one
        ("group", pa.string()),  # the ranking's vote id, shared by every pair of one ranking; empty for a pair
        ("chosen_model", pa.string()),  # who wrote each answer: "base (tiny)" or a run id
        ("rejected_model", pa.string()),
        ("annotator", pa.string()),
        ("time", pa.float64()),  # when the vote was cast, seconds since 1970 (UTC)
        ("vote_id", pa.string()),
    ]
)
VOTE_COLUMNS = pa.schema(
    [
        ("vote_id", pa.string()),
        ("kind", pa.string()),  # pair or rank
        ("prompt", MESSAGES),
        ("answers", pa.list_(pa.string())),  # a pair: [chosen, rejected], or as shown for a tie or "both bad"
        ("models", pa.list_(pa.string())),  # who wrote each answer
        ("ranks", pa.list_(pa.int64())),  # place of each answer, 1 the best; [1, 1] a tie; empty for "both bad"
        ("outcome", pa.string()),  # preferred, tie, both_bad or ranked
        ("grade", pa.string()),  # by how much the first answer is better (a preferred pair)
        ("annotator", pa.string()),
        ("time", pa.float64()),
    ]
)


def _messages(value: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in value]


def pair_rows(votes: list[dict]) -> list[dict]:
    """The training pairs of live votes (records.pairs), with both margins, group, models, annotator and time."""
    rows = []
    for vote in votes:
        grade = vote.get("grade") if records.kind(vote) == records.PAIR else None
        if records.kind(vote) == records.RANK:
            models = vote.get("models") or [None] * len(vote["answers"])
            author = dict(zip(vote["answers"], models))
        else:
            author = {}
        for pair in records.pairs(vote, group=True):
            chosen, rejected = pair["chosen"][-1]["content"], pair["rejected"][-1]["content"]
            rows.append(
                {
                    "prompt": _messages(pair["prompt"]),
                    "chosen": _messages(pair["chosen"]),
                    "rejected": _messages(pair["rejected"]),
                    "grade": grade,
                    "margin_small": records.margin(grade, "small"),
                    "margin_large": records.margin(grade, "large"),
                    "group": pair.get("group"),
                    "chosen_model": author.get(chosen, vote.get("chosen_model")),
                    "rejected_model": author.get(rejected, vote.get("rejected_model")),
                    "annotator": vote.get("annotator", ""),
                    "time": vote.get("time"),
                    "vote_id": vote.get("id"),
                }
            )
    return rows


def vote_rows(votes: list[dict]) -> list[dict]:
    """One row per live vote, in one column set for pairs, ties, "both bad" and rankings."""
    rows = []
    for vote in votes:
        row = {"vote_id": vote.get("id"), "kind": records.kind(vote), "prompt": _messages(vote["prompt"])}
        if records.kind(vote) == records.RANK:
            row |= {"answers": vote["answers"], "models": vote.get("models"), "ranks": vote["ranks"]}
            row |= {"outcome": "ranked", "grade": None}
        elif records.is_outcome(vote):
            ranks = [1, 1] if vote["outcome"] == "tie" else None  # a tie shares the first place; both bad, none
            row |= {"answers": vote["answers"], "models": vote.get("models"), "ranks": ranks}
            row |= {"outcome": vote["outcome"], "grade": None}
        else:
            answers = [vote["chosen"][-1]["content"], vote["rejected"][-1]["content"]]
            models = [vote.get("chosen_model"), vote.get("rejected_model")]
            row |= {"answers": answers, "models": models if any(models) else None, "ranks": [1, 2]}
            row |= {"outcome": "preferred", "grade": vote.get("grade")}
        rows.append(row | {"annotator": vote.get("annotator", ""), "time": vote.get("time")})
    return rows


# ---------------------------------------------------------------- the card


def _agreement_section(result: Agreement) -> str:
    if not result.pairs:
        return "No two annotators judged the same pair of answers yet, so there is no agreement to measure.\n"
    return (
        "On the pairs of answers two people both judged (a ranking judges every two answers it ranks; each "
        "person's newest judgment counts), over the categories first better, second better, tie and both bad. "
        "Cohen's kappa corrects the agreement for chance; '-' where chance agreement is total.\n\n"
        + share._table(("annotators", "pairs both judged", "agreed", "agreement", "Cohen's kappa"), result.table())
        + "\n"
    )


def dataset_card(summary: sets.Summary, vote_set: sets.VoteSet, repo_id: str | None = None) -> str:
    """The README.md of an exported set: front matter for the Hub viewer and `load_dataset`, then the card."""
    front = {
        "pretty_name": f"{vote_set.name} (RLHF Studio votes)",
        "tags": ["rlhf-studio", "human-feedback", "preference", "rlhf"],
        "configs": [
            {"config_name": name, "data_files": [{"split": "train", "path": path}]} for name, path in DATA_FILES.items()
        ],
    }
    front["configs"][0]["default"] = True  # the pairs: what the Hub viewer opens on and load_dataset reads unnamed
    ties, both_bad = summary.by_level.get("tie", 0), summary.by_level.get("both_bad", 0)
    level_names = {**records.GRADE_LABELS, **records.OUTCOME_LABELS, "ungraded": "Ungraded (voted before grades)"}
    levels = [level for level in (*records.GRADES, "ungraded", *records.OUTCOMES) if summary.by_level.get(level)]
    counts = [
        ("live votes", summary.votes),
        ("training pairs", summary.pairs),
        ("rankings", summary.rankings),
        ("ties", ties),
        ("both bad", both_bad),
        ("annotators", len(summary.annotators)),
        ("votes taken back (undone)", summary.undone),
        ("lines skipped (not a vote)", len(summary.problems)),
    ]
    repo = repo_id or "OWNER/NAME"
    guidelines = vote_set.guidelines.strip()
    parts = [
        f"---\n{yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip()}\n---\n",
        f"# {repo_id or vote_set.name}\n",
        f"Human preference votes from the vote set **{vote_set.name}** of RLHF Studio, exported "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}. People compared answers blind: a pair of answers graded on "
        "Llama 2's four levels (or marked a tie or both bad), or several answers ranked as InstructGPT's labellers "
        "did.\n",
        "## Guidelines\n",
        ("The annotators read this above the answers:\n\n" + "\n".join(f"> {line}" for line in guidelines.splitlines()))
        if guidelines
        else "No guidelines were written for this set.",
        "\n## Counts\n",
        share._table(("what", "count"), counts) + "\n",
        "Ties and both bad votes are in `votes` and give no training pair.\n",
        "## Share per level\n",
        share._table(
            ("level", "votes", "share"),
            [(level_names[lv], summary.by_level[lv], f"{summary.share(lv):.1%}") for lv in levels],
        )
        + "\n"
        if levels
        else "No pair votes yet (rankings only).\n",
        "## Annotators\n",
        share._table(("annotator", "live votes"), sorted(summary.annotators.items())) + "\n",
        "## Agreement between annotators\n",
        _agreement_section(summary.agreement),
        "## Margins\n",
        "Each grade maps to a margin for the reward model's loss -log sigmoid(r_chosen - r_rejected - margin), on "
        "the two scales of Llama 2 (Touvron et al., 2023, Table 27). Pairs from rankings and votes from before "
        "grades have no margin.\n\n"
        + share._table(
            ("grade", "margin_small", "margin_large"),
            [
                (records.GRADE_LABELS[g], f"{records.margin(g, 'small'):.4g}", f"{records.margin(g, 'large'):.4g}")
                for g in records.GRADES
            ],
        )
        + "\n",
        "## Files\n",
        "- `pairs` (`pairs/train.parquet`, the default config): one training pair per row in TRL's layout, "
        "`prompt`, `chosen` and `rejected` as role/content messages, with `grade`, `margin_small`, `margin_large`, "
        "`group` (the ranking a pair came from), `chosen_model`, `rejected_model`, `annotator`, `time` (seconds "
        "since 1970, UTC) and `vote_id`.\n"
        "- `votes` (`votes/train.parquet`): every vote as cast: `vote_id`, `kind` (pair or rank), `prompt`, "
        "`answers`, `models`, `ranks` (1 the best; a tie is [1, 1]; empty for both bad), `outcome` (preferred, "
        "tie, both_bad or ranked), `grade`, `annotator`, `time`.\n",
        "## How to train on it\n",
        "```python\nfrom datasets import load_dataset\n\n"
        f'pairs = load_dataset("{repo}", "pairs", split="train")\n'
        "# TRL's RewardTrainer uses a `margin` column when there is one (Llama 2's margin loss):\n"
        'pairs = pairs.map(lambda row: {"margin": row["margin_small"] or 0.0})\n```\n',
        "A ranking of K answers gives K(K-1)/2 pairs sharing one `group`; InstructGPT weighed each ranking as a "
        "single comparison (each of its pairs 1/P), so one prompt with many answers does not dominate.\n\n"
        "In RLHF Studio the set trains a reward model with the margin loss, pairs of a ranking weighed as one, by "
        f"`rlhf-studio train presets/rm-hh-tiny.yaml --set data.source=votes --set data.votes.set={vote_set.name} "
        "--set data.path= --set reward.use_margin=true`, and the next policy with "
        f"`rlhf-studio votes next-round {vote_set.name} --stage ppo`.\n",
    ]
    return "\n".join(parts)


# ---------------------------------------------------------------- writing and pushing


def _write(name: str, folder: Path, repo_id: str | None = None) -> Path:
    vote_set = sets.load(name)
    vote_log = sets.read(name)
    if not vote_log.votes:
        raise StudioError(f"the vote set {name!r} has no votes yet; vote in the Compare tab's Vote view first")
    tables = {
        "pairs": pa.Table.from_pylist(pair_rows(vote_log.votes), schema=PAIR_COLUMNS),
        "votes": pa.Table.from_pylist(vote_rows(vote_log.votes), schema=VOTE_COLUMNS),
    }
    for config, path in DATA_FILES.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(tables[config], folder / path)
    card = dataset_card(sets.summarize(name, vote_log), vote_set, repo_id)
    (folder / CARD).write_text(card, encoding="utf-8")
    return folder


def export(set_name: str, folder: str | Path) -> Path:
    """Write the set as a dataset folder (a new or empty one) and return it."""
    out = Path(folder).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StudioError(f"'{out}' already exists and is not empty; give a new or empty folder")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _write(set_name, out)
    except BaseException:  # no half-written dataset left behind; an empty folder given stays
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for child in out.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise


def push(set_name: str, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Upload the set's dataset folder to a Hub dataset repository (created if need be); returns its URL. A bad
    repo id or a missing token is refused before anything is written."""
    name = sets.load(set_name).name
    repo_id = share.check_repo_id(repo_id)
    token = share.hub_token(token)
    staged = studio_home() / "share" / "votes" / name
    if staged.exists():
        shutil.rmtree(staged)  # what is staged is what this push uploads, nothing left from an earlier one
    staged.mkdir(parents=True)
    _write(name, staged, repo_id)
    return share._upload(staged, repo_id, "dataset", private, token, f"RLHF Studio vote set {name}")
