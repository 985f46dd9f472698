"""Graded votes, rankings and vote sets (studio/data/votes/): Llama 2's margins, the pairs of a ranking, agreement
between annotators (Cohen's kappa), undo, the dataset export loaded back with `datasets`, and `rlhf-studio votes`.

    OMP_NUM_THREADS=1 python -m pytest tests/test_feedback.py -q
"""

from __future__ import annotations

import json
import secrets
from fractions import Fraction
from pathlib import Path

import pytest

from studio import data
from studio.config import DataSpec, VotesSpec
from studio.data.fields import RowProblem
from studio.data.votes import agreement, records, sets
from studio.errors import StudioError
from studio.publish import share, vote_sets
from studio.serve.voting import BlindPair, BlindRanking, record_ranking, record_vote
from tests.conftest import one_error_line, run_cli

SET = "helpful-v1"
GUIDELINES = "Prefer the answer that helps.\nA rude answer is never better."
GRADES = ("significantly_better", "better", "slightly_better", "negligibly_better")


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


@pytest.fixture
def vote_set(never_the_real_home) -> str:
    sets.create(sets.VoteSet(SET, guidelines=GUIDELINES, models=["base (tiny)", "run-1"]))
    return SET


# ---------------------------------------------------------------- margins, ties and rankings


def test_each_grade_gives_llama_2s_margin_on_both_scales():
    # Llama 2, Table 27: significantly better, better, slightly better, negligibly better / unsure
    assert [records.margin(g, "small") for g in GRADES] == [1.0, 2 / 3, 1 / 3, 0.0]
    assert [Fraction(records.margin(g, "small")).limit_denominator(10) for g in GRADES] == [
        1,
        Fraction(2, 3),
        Fraction(1, 3),
        0,
    ]
    assert [records.margin(g, "large") for g in GRADES] == [3.0, 2.0, 1.0, 0.0]
    assert records.margin(None, "large") is None  # a vote from before grades

    prompt = [user("Hi?")]
    for grade, small, large in zip(GRADES, (1.0, 2 / 3, 1 / 3, 0.0), (3.0, 2.0, 1.0, 0.0)):
        vote = records.pair_vote(prompt, "Hello!", "Go away.", ("run-1", "base (tiny)"), grade, "ana")
        row = {"prompt": prompt, "chosen": [assistant("Hello!")], "rejected": [assistant("Go away.")]}
        assert records.pairs(vote, "small") == [row | {"margin": small}]
        assert records.pairs(vote, "large") == [row | {"margin": large}]


def test_ties_and_both_bad_are_counted_but_give_no_training_rows(vote_set):
    prompt = [user("Name a fruit.")]
    pair = BlindPair(prompt, ("Apple.", "Pear."), ("run-1", "base (tiny)"))
    record_vote(SET, pair, "a", "better", "ana")
    record_vote(SET, pair, "tie", annotator="bob")
    record_vote(SET, BlindPair(prompt, ("Rock.", "Chair."), ("run-1", "base (tiny)")), "both_bad", annotator="ana")
    record_vote(SET, BlindPair(prompt, ("Plum.", "Chair."), ("run-1", "base (tiny)")), "b", "slightly_better", "cy")

    summary = sets.summarize(SET)
    assert (summary.votes, summary.pairs, summary.rankings) == (4, 2, 0)
    assert summary.by_level == {"better": 1, "tie": 1, "both_bad": 1, "slightly_better": 1}
    assert [summary.share(level) for level in ("better", "tie", "both_bad", "significantly_better")] == [
        0.25,
        0.25,
        0.25,
        0.0,
    ]
    assert summary.annotators == {"ana": 2, "bob": 1, "cy": 1}
    tie, both_bad = sets.read(SET).votes[1:3]
    assert records.pairs(tie) == records.pairs(both_bad) == []
    rows = data.load(DataSpec(source="votes", votes=VotesSpec(set=SET)), "preference").rows
    assert rows == [
        {"prompt": prompt, "chosen": [assistant("Apple.")], "rejected": [assistant("Pear.")], "margin": 2 / 3},
        {"prompt": prompt, "chosen": [assistant("Chair.")], "rejected": [assistant("Plum.")], "margin": 1 / 3},
    ]


def test_a_rank_4_vote_gives_six_pairs_with_its_group_when_grouping_is_on(vote_set):
    prompt = [user("Suggest a name for a cat.")]
    shown = BlindRanking(prompt, ["Luna.", "Whiskers.", "Cat.", "No."], ["run-1", "run-1", "base (tiny)", "run-1"])
    vote = record_ranking(SET, shown, [2, 1, 3, 4], annotator="ana")  # Whiskers > Luna > Cat > No

    def pair(chosen: str, rejected: str) -> dict:
        return {"prompt": prompt, "chosen": [assistant(chosen)], "rejected": [assistant(rejected)]}

    six = [
        pair("Whiskers.", "Luna."),
        pair("Luna.", "Cat."),
        pair("Luna.", "No."),
        pair("Whiskers.", "Cat."),
        pair("Whiskers.", "No."),
        pair("Cat.", "No."),
    ]
    assert records.pairs(vote, group=True) == [row | {"group": vote["id"]} for row in six]
    assert records.pairs(vote, group=False) == six  # grouping off: no group key at all

    grouped = data.load(DataSpec(source="votes", votes=VotesSpec(set=SET, group_rankings=True)), "preference")
    assert grouped.rows == [row | {"group": vote["id"]} for row in six]
    plain = data.load(DataSpec(source="votes", votes=VotesSpec(set=SET, group_rankings=False)), "preference")
    assert plain.rows == six
    summary = sets.summarize(SET)
    assert (summary.votes, summary.rankings, summary.pairs, summary.by_level) == (1, 1, 6, {})

    # Ties in a ranking state no preference between the tied answers: 1, 2, 2, 3 gives five pairs, 1, 1, 2, 2 four.
    tied = records.ranking(prompt, shown.answers, shown.models, [1, 2, 2, 3], "bob")
    assert records.pairs(tied) == [
        pair("Luna.", "Whiskers."),
        pair("Luna.", "Cat."),
        pair("Luna.", "No."),
        pair("Whiskers.", "No."),
        pair("Cat.", "No."),
    ]
    halves = records.ranking(prompt, shown.answers, shown.models, [1, 1, 2, 2], "bob")
    assert records.pairs(halves) == [
        pair("Luna.", "Cat."),
        pair("Luna.", "No."),
        pair("Whiskers.", "Cat."),
        pair("Whiskers.", "No."),
    ]


def test_a_ranking_with_one_answer_or_no_order_is_refused_in_one_line(vote_set):
    prompt = [user("Name a colour.")]
    with pytest.raises(StudioError) as raised:
        record_ranking(SET, BlindRanking(prompt, ["Blue."], ["run-1"]), [1], annotator="ana")
    assert str(raised.value) == "ranking: a ranking of 1 answer ranks nothing; rank 2 or more"
    three = BlindRanking(prompt, ["Blue.", "Red.", "Green."], ["run-1"] * 3)
    with pytest.raises(StudioError) as raised:
        record_ranking(SET, three, [2, 2, 2], annotator="ana")
    assert str(raised.value) == "ranking: every answer has the same rank, so the ranking prefers none"
    with pytest.raises(StudioError) as raised:
        record_ranking(SET, three, [1, 2], annotator="ana")
    assert str(raised.value) == "ranking: expected one rank per answer"
    with pytest.raises(RowProblem, match="ranks nothing"):
        records.ranking(prompt, [], [], [], "ana")
    assert not sets.load(SET).votes_path.exists()


def test_undo_takes_back_the_annotators_newest_vote(vote_set):
    prompt = [user("How do I boil an egg?")]
    first = record_vote(
        SET, BlindPair(prompt, ("Nine minutes.", "No."), ("run-1", "base (tiny)")), "a", "better", "ana"
    )
    record_vote(SET, BlindPair(prompt, ("Ten minutes.", "No."), ("run-1", "base (tiny)")), "b", "better", "bob")
    second = record_vote(
        SET, BlindPair(prompt, ("Eight minutes.", "No."), ("run-1", "base (tiny)")), "tie", None, "ana"
    )

    assert sets.undo_last(SET, "ana") == second
    vote_log = sets.read(SET)
    assert [v["id"] for v in vote_log.votes] == [first["id"], vote_log.votes[1]["id"]] and vote_log.undone == 1
    assert [v["annotator"] for v in vote_log.votes] == ["ana", "bob"]
    assert sets.summarize(SET).by_level == {"better": 2} and sets.summarize(SET).undone == 1
    assert sets.undo_last(SET, "ana") == first
    assert sets.read(SET).votes[0]["annotator"] == "bob"
    with pytest.raises(StudioError, match=f"^nothing to undo: no vote by ana in the set '{SET}'$"):
        sets.undo_last(SET, "ana")
    # The log is append-only: both undos are lines of it, and a vote undone can be cast again.
    assert [json.loads(line).get("kind") for line in sets.load(SET).votes_path.read_text().splitlines()] == [
        "pair",
        "pair",
        "pair",
        "undo",
        "undo",
    ]
    record_vote(
        SET, BlindPair(prompt, ("Nine minutes.", "No."), ("run-1", "base (tiny)")), "a", "slightly_better", "ana"
    )
    assert len(sets.read(SET).votes) == 2


def test_a_rankings_pairs_stay_on_one_side_and_its_prompt_is_judged_once(studio_home, vote_set):
    """Three rankings of four answers give six pairs each. A reward run on them holds out whole rankings (one of three
    at eval_fraction 0.34), so its six held-out rows share one prompt: the held-out prompts a compare or an evaluation
    answers name it once, not six times (which would count one prompt six times in a win rate)."""
    from studio.modeling import models
    from studio.runs import manager
    from studio.serve import compare

    questions = ["Name a colour.", "Name a fruit.", "Name a tree."]
    for question in questions:
        answers = [f"{question} answer {i}" for i in range(4)]
        record_ranking(SET, BlindRanking([user(question)], answers, ["m"] * 4), [1, 2, 3, 4], "ana")
    config = cfg_for_votes(stage="reward", eval_fraction=0.34)
    run = manager.create(config)
    train, held_out = data.prepare(config, "preference", models.load_tokenizer(config.model), run)
    assert (len(train.rows), len(held_out.rows)) == (12, 6)
    assert len({json.dumps(row["prompt"]) for row in held_out.rows}) == 1
    assert compare.held_out_prompts(run.id, 32) == [held_out.rows[0]["prompt"]]


def cfg_for_votes(**changes):
    from studio.config import RunConfig, from_dict

    stage = changes.pop("stage")
    return from_dict(
        {"stage": stage, "model": {"name": "tiny"}, "data": {"source": "votes", "votes": {"set": SET}, **changes}},
        RunConfig,
    )


# ---------------------------------------------------------------- agreement


# Ten answer pairs, each with its own prompt; the answer texts start "A" and "B", so "first" (of the two in sorted
# order) is the A answer whichever way round it was shown.
ANA = ["first", "first", "first", "first", "second", "second", "second", "tie", "tie", "both_bad"]
BOB = ["first", "first", "first", "second", "second", "second", "tie", "tie", "both_bad", "both_bad"]
#   agree on items 1, 2, 3, 5, 6, 8, 10: p_o = 7/10
#   ana uses first 4, second 3, tie 2, both_bad 1; bob first 3, second 3, tie 2, both_bad 2
#   p_e = (4*3 + 3*3 + 2*2 + 1*2) / 10^2 = 27/100
#   kappa = (70/100 - 27/100) / (1 - 27/100) = 43/73
CY = {0: "first", 1: "second", 8: "tie"}  # a third annotator on items 1, 2 and 9
#   ana-cy on items 1, 2, 9: ana first, first, tie; cy first, second, tie. p_o = 2/3
#     p_e = (first 2*1 + tie 1*1) / 9 = 1/3; kappa = (2/3 - 1/3) / (2/3) = 1/2
#   bob-cy: bob first, first, both_bad; cy first, second, tie. p_o = 1/3
#     p_e = (first 2*1) / 9 = 2/9; kappa = (1/3 - 2/9) / (7/9) = 1/7
#   pooled: 16 items, 7 + 2 + 1 = 10 agreed, p_o = 5/8
#     p_e = (27/100 * 10 + 1/3 * 3 + 2/9 * 3) / 16 = 131/480; kappa = (5/8 - 131/480) / (349/480) = 169/349


def _vote(annotator: str, item: int, category: str, swapped: bool) -> None:
    prompt = [user(f"Question {item}?")]
    a, b = f"A answer {item}.", f"B answer {item}."
    shown = BlindPair(prompt, (b, a) if swapped else (a, b), ("run-1", "base (tiny)"))
    if category in records.OUTCOMES:
        record_vote(SET, shown, category, annotator=annotator)
    else:
        winner = a if category == "first" else b
        choice = "a" if shown.answers[0] == winner else "b"
        record_vote(SET, shown, choice, GRADES[item % 4], annotator)


def test_agreement_and_kappa_of_two_annotators_on_the_same_pairs(vote_set):
    for item, (ana, bob) in enumerate(zip(ANA, BOB)):
        _vote("ana", item, ana, swapped=False)
        _vote("bob", item, bob, swapped=item % 2 == 1)  # shown the other way round every other time
    result = sets.summarize(SET).agreement
    assert result.overall is None  # one pair of annotators: its own row is the whole story
    (row,) = result.pairs
    assert (row.annotators, row.items, row.agreed) == (("ana", "bob"), 10, 7)
    assert row.percent == 0.7
    assert row.chance == float(Fraction(27, 100))
    assert row.kappa == float(Fraction(43, 73))

    for item, category in CY.items():
        _vote("cy", item, category, swapped=True)
    result = agreement.measure(sets.read(SET).votes)
    assert [(r.annotators, r.items, r.agreed) for r in result.pairs] == [
        (("ana", "bob"), 10, 7),
        (("ana", "cy"), 3, 2),
        (("bob", "cy"), 3, 1),
    ]
    assert [r.kappa for r in result.pairs] == [float(Fraction(43, 73)), 0.5, float(Fraction(1, 7))]
    overall = result.overall
    assert (overall.annotators, overall.items, overall.agreed, overall.percent) == (("ana", "bob", "cy"), 16, 10, 0.625)
    assert overall.chance == float(Fraction(131, 480)) and overall.kappa == float(Fraction(169, 349))
    assert result.table()[-1] == ("all, pooled", 16, 10, "62.5%", "0.484")


def test_a_ranking_judges_every_two_answers_and_the_newest_judgment_counts(vote_set):
    prompt = [user("Pick a drink.")]
    sets.append(SET, records.ranking(prompt, ["Tea.", "Juice.", "Water."], ["m"] * 3, [1, 2, 2], "ana"))
    # In sorted order the items are (Juice, Tea), (Juice, Water), (Tea, Water).
    # ana's ranking: Tea over Juice (second), Tea over Water (first), Juice and Water tie.
    sets.append(SET, records.pair_vote(prompt, "Tea.", "Juice.", ("m", "m"), "better", "bob"))  # second: agrees
    sets.append(SET, records.pair_vote(prompt, "Water.", "Tea.", ("m", "m"), "better", "bob"))  # second: differs
    sets.append(SET, records.outcome_vote(prompt, ["Water.", "Juice."], ["m", "m"], "tie", "bob"))  # tie: agrees
    #   p_o = 2/3; ana second 1, first 1, tie 1; bob second 2, tie 1; p_e = (1*2 + 1*1) / 9 = 1/3; kappa = 1/2
    (row,) = agreement.measure(sets.read(SET).votes).pairs
    assert (row.items, row.agreed, row.chance, row.kappa) == (3, 2, float(Fraction(1, 3)), 0.5)

    # Judged again later, bob's newest word counts: now all three agree, and both use every category once,
    # p_e = 3/9 = 1/3, kappa = (1 - 1/3) / (2/3) = 1.
    sets.append(SET, records.pair_vote(prompt, "Tea.", "Water.", ("m", "m"), "slightly_better", "bob"))
    (row,) = agreement.measure(sets.read(SET).votes).pairs
    assert (row.items, row.agreed, row.kappa) == (3, 3, 1.0)

    # Two people who only ever say one thing agree by chance alone: kappa is undefined.
    one = [user("One more?")]
    votes = [
        records.pair_vote(one, "Yes.", "No.", ("m", "m"), "better", "dee"),
        records.pair_vote(one, "No.", "Yes.", ("m", "m"), "better", "dee"),  # dee changed her mind: "No." wins
        records.pair_vote(one, "No.", "Yes.", ("m", "m"), "better", "eve"),
    ]
    (row,) = agreement.measure(votes).pairs
    assert (row.annotators, row.items, row.agreed, row.percent, row.chance, row.kappa) == (
        ("dee", "eve"),
        1,
        1,
        1.0,
        1.0,
        None,
    )
    assert agreement.measure(votes[:2]).pairs == []  # one person alone agrees with no one


# ---------------------------------------------------------------- export


def _fill(set_name: str = SET) -> dict:
    """A graded pair, a tie, a "both bad", a ranking of three, a vote taken back and a vote from the first studio
    (no id, annotator or grade); returns the live votes by role."""
    prompt = [user("Name a fruit.")]
    graded = record_vote(
        set_name, BlindPair(prompt, ("Pear.", "Apple."), ("base (tiny)", "run-1")), "b", "better", "ana"
    )
    tie = record_vote(set_name, BlindPair(prompt, ("Plum.", "Fig."), ("run-1", "base (tiny)")), "tie", annotator="bob")
    bad = record_vote(set_name, BlindPair(prompt, ("Rock.", "Chair."), ("run-1", "run-1")), "both_bad", annotator="ana")
    shown = BlindRanking([user("A colour?")], ["Red.", "Blue.", "Green."], ["run-1", "base (tiny)", "run-1"])
    ranked = record_ranking(set_name, shown, [2, 1, 2], annotator="bob")  # Blue first, Red and Green tie
    record_vote(set_name, BlindPair(prompt, ("Kiwi.", "Stone."), ("run-1", "run-1")), "a", "better", "ana")
    sets.undo_last(set_name, "ana")
    legacy = {
        "prompt": [user("Hi?")],
        "chosen": [assistant("Hello!")],
        "rejected": [assistant("Go away.")],
        "chosen_model": "run-0",
        "rejected_model": "base (tiny)",
        "time": 1700000000.5,
    }
    with open(sets.load(set_name).votes_path, "a", encoding="utf-8") as f:
        f.write(json.dumps(legacy) + "\n")
    return {"graded": graded, "tie": tie, "bad": bad, "ranked": ranked, "legacy": legacy}


def _load_parquet(path: Path, cache: Path) -> list[dict]:
    from datasets import load_dataset

    return load_dataset("parquet", data_files={"train": str(path)}, split="train", cache_dir=str(cache)).to_list()


def test_an_exported_set_loads_back_with_datasets(vote_set, tmp_path):
    v = _fill()
    folder = vote_sets.export(SET, tmp_path / "out")
    assert folder == tmp_path / "out"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "README.md",
        "pairs/train.parquet",
        "votes/train.parquet",
    ]
    fruit, colour = [user("Name a fruit.")], [user("A colour?")]
    blank = {"grade": None, "margin_small": None, "margin_large": None, "group": None}

    def ranked(chosen, rejected, models):
        row = {"prompt": colour, "chosen": [assistant(chosen)], "rejected": [assistant(rejected)]}
        return row | blank | {"group": v["ranked"]["id"], "chosen_model": models[0], "rejected_model": models[1]}

    by = {"annotator": "bob", "time": v["ranked"]["time"], "vote_id": v["ranked"]["id"]}
    pairs = [
        {
            "prompt": fruit,
            "chosen": [assistant("Apple.")],
            "rejected": [assistant("Pear.")],
            "grade": "better",
            "margin_small": 2 / 3,
            "margin_large": 2.0,
            "group": None,
            "chosen_model": "run-1",
            "rejected_model": "base (tiny)",
            "annotator": "ana",
            "time": v["graded"]["time"],
            "vote_id": v["graded"]["id"],
        },
        ranked("Blue.", "Red.", ("base (tiny)", "run-1")) | by,
        ranked("Blue.", "Green.", ("base (tiny)", "run-1")) | by,
        {
            "prompt": [user("Hi?")],
            "chosen": [assistant("Hello!")],
            "rejected": [assistant("Go away.")],
            **blank,
            "chosen_model": "run-0",
            "rejected_model": "base (tiny)",
            "annotator": "",
            "time": 1700000000.5,
            "vote_id": None,
        },
    ]
    assert _load_parquet(folder / "pairs/train.parquet", tmp_path / "cache") == pairs

    def vote(row, kind, prompt, answers, models, ranks, outcome, grade=None):
        return {
            "vote_id": row.get("id"),
            "kind": kind,
            "prompt": prompt,
            "answers": answers,
            "models": models,
            "ranks": ranks,
            "outcome": outcome,
            "grade": grade,
            "annotator": row.get("annotator", ""),
            "time": row["time"],
        }

    votes = [
        vote(v["graded"], "pair", fruit, ["Apple.", "Pear."], ["run-1", "base (tiny)"], [1, 2], "preferred", "better"),
        vote(v["tie"], "pair", fruit, ["Plum.", "Fig."], ["run-1", "base (tiny)"], [1, 1], "tie"),
        vote(v["bad"], "pair", fruit, ["Rock.", "Chair."], ["run-1", "run-1"], None, "both_bad"),
        vote(
            v["ranked"],
            "rank",
            colour,
            ["Red.", "Blue.", "Green."],
            ["run-1", "base (tiny)", "run-1"],
            [2, 1, 2],
            "ranked",
        ),
        vote(v["legacy"], "pair", [user("Hi?")], ["Hello!", "Go away."], ["run-0", "base (tiny)"], [1, 2], "preferred"),
    ]
    assert _load_parquet(folder / "votes/train.parquet", tmp_path / "cache") == votes

    # The card's front matter declares both configs: the folder loads by config name, pairs by default.
    from datasets import load_dataset

    by_name = load_dataset(str(folder), "votes", split="train", cache_dir=str(tmp_path / "cache"))
    assert by_name.to_list() == votes
    assert load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "cache")).to_list() == pairs

    card = (folder / "README.md").read_text(encoding="utf-8")
    for line in (
        f"Human preference votes from the vote set **{SET}** of RLHF Studio",
        "> Prefer the answer that helps.\n> A rude answer is never better.",
        "| live votes | 5 |",
        "| training pairs | 4 |",
        "| rankings | 1 |",
        "| ties | 1 |",
        "| both bad | 1 |",
        "| votes taken back (undone) | 1 |",
        "| Better | 1 | 25.0% |",
        "| Tie | 1 | 25.0% |",
        "| Ungraded (voted before grades) | 1 | 25.0% |",
        "| Slightly better | 0.3333 | 1 |",
        "| Significantly better | 1 | 3 |",
        "No two annotators judged the same pair of answers yet",
        f"--set data.votes.set={SET}",
    ):
        assert line in card, line


def test_the_card_shows_agreement_and_a_bad_export_leaves_nothing(vote_set, tmp_path):
    for item, (ana, bob) in enumerate(zip(ANA, BOB)):
        _vote("ana", item, ana, swapped=False)
        _vote("bob", item, bob, swapped=True)
    card = (vote_sets.export(SET, tmp_path / "out") / "README.md").read_text(encoding="utf-8")
    assert "| ana and bob | 10 | 7 | 70.0% | 0.589 |" in card  # 43/73 = 0.589

    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(StudioError, match=f"^'{full}' already exists and is not empty; give a new or empty folder$"):
        vote_sets.export(SET, full)
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    sets.create(sets.VoteSet("empty"))
    with pytest.raises(StudioError, match="^the vote set 'empty' has no votes yet; vote in the Compare tab"):
        vote_sets.export("empty", tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


# ---------------------------------------------------------------- the CLI


def test_votes_list_and_show(vote_set):
    assert run_cli("votes", "list").stdout == (
        "SET         VOTES  PAIRS  ANNOTATORS  ROUNDS\nhelpful-v1      0      0           0       0\n"
    )
    _fill()
    for item, (ana, bob) in enumerate(zip(ANA, BOB)):
        _vote("ana", item, ana, swapped=False)
        _vote("bob", item, bob, swapped=False)
    sets.create(sets.VoteSet("second"))
    path = sets.load(SET).votes_path
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"kind": "pair", "prompt": "hand-edited"}\n')
    listed = run_cli("votes", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == (
        "SET         VOTES  PAIRS  ANNOTATORS  ROUNDS\n"
        "helpful-v1     25     17           3       0\n"
        "second          0      0           0       0\n"
    )  # _fill: 5 live votes, 4 pairs, one voter unnamed; ana and bob: 20 votes, 13 neither a tie nor both bad
    rows = json.loads(run_cli("votes", "list", "--json").stdout)
    assert rows[0] == {
        "name": SET,
        "votes": 25,
        "pairs": 17,
        "annotators": {"ana": 12, "bob": 12, "(unnamed)": 1},
        "rounds": 0,
    }

    shown = run_cli("votes", "show", SET, "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert (report["name"], report["guidelines"], report["models"]) == (SET, GUIDELINES, ["base (tiny)", "run-1"])
    assert (report["votes"], report["pairs"], report["rankings"], report["ties"], report["both_bad"]) == (
        25,
        17,
        1,
        5,
        4,
    )
    assert report["undone"] == 1 and report["rounds"] == []
    assert report["problems"] == [
        f"votes.jsonl line {len(path.read_text().splitlines())}: column 'prompt': "
        "expected a non-empty list of role/content messages, got str; skipped"
    ]
    ana_bob = report["agreement"]["pairs"][0]
    assert (ana_bob["annotators"], ana_bob["items"], ana_bob["agreed"]) == (["ana", "bob"], 10, 7)
    assert ana_bob["kappa"] == float(Fraction(43, 73))
    assert report["share"]["tie"] == 5 / 24  # of the 24 pair votes (the ranking has no level)

    text = run_cli("votes", "show", SET).stdout
    for line in (
        f"vote set  {SET}",
        "guidelines:\n  Prefer the answer that helps.\n  A rude answer is never better.",
        "models    base (tiny), run-1",
        "votes     25 live, 1 taken back; ties 5, both bad 4, rankings 1; training pairs 17",
        "  Tie                             5  20.8%",
        "annotators  (unnamed) 1, ana 12, bob 12",
        "  ana and bob     10       7      70.0%  0.589",
        "lines skipped:\n  votes.jsonl line",
    ):
        assert line in text, line

    assert one_error_line(run_cli("votes", "show", "nosuch")) == (
        "error: no vote set named 'nosuch' (sets: helpful-v1, second); create it in the Compare tab's Vote view"
    )
    assert one_error_line(run_cli("votes", "show", "../etc")).startswith("error: vote set name '../etc': use 1 to 64")


def test_votes_export_writes_a_folder_and_refuses_a_full_one(vote_set, tmp_path):
    _fill()
    out = tmp_path / "exported"
    done = run_cli("votes", "export", SET, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"exported vote set {SET} to {out}")
    rows = _load_parquet(out / "pairs/train.parquet", tmp_path / "cache")
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows] == [
        ("Apple.", "Pear."),
        ("Blue.", "Red."),
        ("Blue.", "Green."),
        ("Hello!", "Go away."),
    ]
    line = one_error_line(run_cli("votes", "export", SET, "--out", str(out)))
    assert line == f"error: '{out}' already exists and is not empty; give a new or empty folder"


def test_votes_push_refuses_without_a_token_a_bad_repo_id_or_the_hub(vote_set, no_stored_login, monkeypatch):
    from studio.paths import studio_home

    _fill()
    staged = studio_home() / "share" / "votes" / SET
    assert one_error_line(run_cli("votes", "push", SET, "--repo", "me/votes")) == f"error: {share.NO_TOKEN}"
    token = "hf_" + secrets.token_hex(16)
    monkeypatch.setenv("HF_TOKEN", token)
    for bad in ("not-a-repo", "a/b/c", "me/", "me/bad name"):
        line = one_error_line(run_cli("votes", "push", SET, "--repo", bad))
        assert line.startswith(f"error: repo id '{bad}' is not owner/name")
    assert not staged.exists()  # refused before anything was written
    line = one_error_line(run_cli("votes", "push", "nosuch", "--repo", "me/votes"))
    assert line.startswith("error: no vote set named 'nosuch'")

    # Offline (the tests set HF_HUB_OFFLINE=1): staged, then one line at the hub, the token nowhere but the call.
    pushed = run_cli("votes", "push", SET, "--repo", "me/votes", "--private")
    assert one_error_line(pushed) == (
        "error: could not reach the Hugging Face Hub: offline mode is on (HF_HUB_OFFLINE=1); unset it and check "
        "your connection"
    )
    assert token not in pushed.stdout + pushed.stderr
    files = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
    assert files == ["README.md", "pairs/train.parquet", "votes/train.parquet"]
    assert 'load_dataset("me/votes", "pairs"' in (staged / "README.md").read_text(encoding="utf-8")
    assert all(token.encode() not in (staged / f).read_bytes() for f in files)


def test_there_is_no_token_option_and_next_round_takes_ppo_or_rejection():
    from studio.cli import build_parser

    votes = build_parser()._subparsers._group_actions[0].choices["votes"]
    actions = votes._subparsers._group_actions[0].choices
    assert sorted(actions) == ["export", "list", "next-round", "push", "show"]
    assert not any("token" in opt for a in actions["push"]._actions for opt in a.option_strings)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["votes", "next-round", SET, "--stage", "dpo"])
    args = build_parser().parse_args(
        ["votes", "next-round", SET, "--stage", "rejection", "--set", "a=1", "--set", "b=2"]
    )
    assert (args.set_name, args.stage, args.overrides) == (SET, "rejection", ["a=1", "b=2"])


def test_next_round_on_too_few_pairs_is_one_line(vote_set):
    prompt = [user("Name a fruit.")]
    record_vote(SET, BlindPair(prompt, ("Pear.", "Apple."), ("base (tiny)", "run-1")), "a", "better", "ana")
    record_vote(SET, BlindPair(prompt, ("Plum.", "Fig."), ("base (tiny)", "run-1")), "tie", annotator="ana")
    line = one_error_line(run_cli("votes", "next-round", SET, "--stage", "ppo"))
    assert line.startswith(f"error: vote set '{SET}' has 1 training pair (from 2 votes); a round needs at least")


def test_votes_list_and_show_name_the_rounds_with_lineage_and_win_rate(vote_set):
    from dataclasses import asdict, replace

    from studio.pipelines import rounds

    _fill()
    win = {"win_rate": 0.625, "ci_low": 0.45, "ci_high": 0.78, "wins": 18, "ties": 4, "losses": 10, "n": 32}
    done = rounds.Round(
        version=1,
        stage="ppo",
        pipeline_id="p-1",
        started=1.0,
        votes=5,
        pairs=4,
        previous_policy="base (tiny)",
        reward_run="rm-1",
        policy_run="ppo-1",
        state="completed",
        win_rate={"RLHF-V1 reward (trained against)": win | {"trained_against": True}},
    )
    failed = replace(done, version=2, stage="rejection", pipeline_id="p-2", started=2.0, previous_policy="ppo-1")
    failed = replace(failed, reward_run="rm-2", policy_run=None, state="failed", win_rate=None, error="out of memory")
    lines = [json.dumps(asdict(r)) for r in (done, failed)]
    (sets.load(SET).folder / rounds.ROUNDS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")

    assert run_cli("votes", "list").stdout.splitlines()[1] == "helpful-v1      5      4           3       2"
    text = run_cli("votes", "show", SET).stdout
    assert text.endswith(
        "rounds:\n"
        "  RLHF-V1  completed  ppo from base (tiny): policy ppo-1, reward model rm-1, 4 pairs from 5 votes\n"
        "    against base (tiny), judged by RLHF-V1 reward (trained against): win rate 62.5% (95% 45% to 78%) over 32 "
        "prompts (the reward it trained against: no independent check)\n"
        "  RLHF-V2  failed  rejection from ppo-1: policy -, reward model rm-2, 4 pairs from 5 votes\n"
        "    error: out of memory\n"
    )
    report = json.loads(run_cli("votes", "show", SET, "--json").stdout)
    assert [(r["label"], r["state"], r["previous_policy"], r["policy_run"]) for r in report["rounds"]] == [
        ("RLHF-V1", "completed", "base (tiny)", "ppo-1"),
        ("RLHF-V2", "failed", "ppo-1", None),
    ]
