"""Alpaca raw schema: instruction, input ("" when the task needs none), output, text (the example rendered
into one prompt string). About 40% of the tasks carry an input, as in the real data."""

from __future__ import annotations

import random

from sample_gen.words import (
    ACTIVITIES,
    DAYS,
    FRUITS,
    IMAGES,
    OPPOSITES,
    PEOPLE,
    RIVERS,
    TOPICS,
    TOWNS,
    TRADES,
    VEGETABLES,
)

SOURCE = "alpaca"
SEED = 52

GOALS = {
    "sleeping better": [
        "Go to bed at the same time every night.",
        "Keep screens out of the bedroom.",
        "Avoid coffee after lunch.",
    ],
    "saving money on food": [
        "Plan the week's meals before shopping.",
        "Cook larger batches and freeze some.",
        "Buy fruit and vegetables that are in season.",
    ],
    "learning a new language": [
        "Practise a little every day rather than a lot once a week.",
        "Label things around the house with their new names.",
        "Listen to simple podcasts or songs in the language.",
    ],
    "keeping a tidy desk": [
        "Clear the desk at the end of each day.",
        "Give every item a fixed place.",
        "Keep only what you use daily within reach.",
    ],
    "staying focused while studying": [
        "Work in short blocks with breaks in between.",
        "Put your phone in another room.",
        "Write down the one goal of each session before you start.",
    ],
}
PAST_TENSE = {
    "walks": "walked",
    "opens": "opened",
    "paints": "painted",
    "visits": "visited",
    "cleans": "cleaned",
    "repairs": "repaired",
    "plants": "planted",
    "counts": "counted",
}
PLACES = ["the market", "the old mill", "the harbour", "the library", "the bakery", "the school"]
SHOPS = {
    "bakery": ["The Rising Loaf", "Crumb and Crust"],
    "bookshop": ["Dog-Eared Pages", "The Quiet Shelf"],
    "bicycle repair shop": ["Spoke and Chain", "Two Wheels Mended"],
    "flower stall": ["Petal Cart", "Stem Corner"],
}

PREAMBLE = "Here is a task to carry out."
PREAMBLE_WITH_INPUT = "Here is a task to carry out, with the material it refers to."


def render(instruction: str, extra: str, output: str) -> str:
    if extra:
        return (
            f"{PREAMBLE_WITH_INPUT}\n\n### Instruction:\n{instruction}\n\n### Input:\n{extra}\n\n"
            f"### Response:\n{output}"
        )
    return f"{PREAMBLE}\n\n### Instruction:\n{instruction}\n\n### Response:\n{output}"


def rows(rng: random.Random) -> list[dict]:
    rows = []

    def add(instruction: str, output: str, extra: str = "") -> None:
        rows.append(
            {"instruction": instruction, "input": extra, "output": output, "text": render(instruction, extra, output)}
        )

    def town_paragraph():
        town, river, trade, founder = rng.choice(TOWNS), rng.choice(RIVERS), rng.choice(TRADES), rng.choice(PEOPLE)
        year = rng.randrange(1400, 1900)
        paragraph = (
            f"{town} lies on the river {river}. {founder} founded it in {year}, and it soon became "
            f"known for {trade}. Its market is held every {rng.choice(DAYS)}."
        )
        return town, river, trade, founder, year, paragraph

    # Tasks without an input: 90 rows.
    for _ in range(18):
        goal = rng.choice(list(GOALS))
        add(f"Give three tips for {goal}.", "\n".join(f"{i}. {tip}" for i, tip in enumerate(GOALS[goal], 1)))
    for _ in range(18):
        a, b = rng.randrange(2, 13), rng.randrange(2, 13)
        add(f"What is {a} multiplied by {b}?", f"{a} multiplied by {b} is {a * b}.")
    for _ in range(18):
        word, opposite = rng.choice(OPPOSITES)
        add(f'Give the opposite of the word "{word}".', f'The opposite of "{word}" is "{opposite}".')
    for _ in range(18):
        minutes = rng.randrange(61, 600)
        hours, rest = divmod(minutes, 60)
        add(
            f"Convert {minutes} minutes into hours and minutes.",
            f"{minutes} minutes is {hours} hour{'s' if hours > 1 else ''} and {rest} minute{'' if rest == 1 else 's'}.",
        )
    for _ in range(18):
        kind = rng.choice(list(SHOPS))
        town = rng.choice(TOWNS)
        name = rng.choice(SHOPS[kind])
        add(
            f"Suggest a name for a new {kind} in {town}.",
            f'How about "{name}"? It is short, easy to remember and says what the {kind} offers.',
        )

    # Tasks with an input: 60 rows.
    for _ in range(12):
        items = rng.sample(FRUITS, 2) + rng.sample(VEGETABLES, 2)
        rng.shuffle(items)
        add(
            "Classify each item as a fruit or a vegetable.",
            "\n".join(f"{x}: {'fruit' if x in FRUITS else 'vegetable'}" for x in items),
            ", ".join(items),
        )
    for _ in range(12):
        numbers = rng.sample(range(1, 100), rng.choice([4, 5, 6]))
        add(
            "Sort these numbers from smallest to largest.",
            ", ".join(map(str, sorted(numbers))),
            ", ".join(map(str, numbers)),
        )
    for _ in range(12):
        person, verb, place, town = (
            rng.choice(PEOPLE),
            rng.choice(list(PAST_TENSE)),
            rng.choice(PLACES),
            rng.choice(TOWNS),
        )
        add(
            "Rewrite the sentence in the past tense.",
            f"{person} {PAST_TENSE[verb]} {place} in {town}.",
            f"{person} {verb} {place} in {town}.",
        )
    for _ in range(12):
        town, river, trade, founder, year, paragraph = town_paragraph()
        if rng.random() < 0.5:
            add(
                "Summarize the paragraph in one sentence.",
                f"{town} is a town on the {river}, founded by {founder} in {year} and known for {trade}.",
                paragraph,
            )
        else:
            add("Who founded the town, and in which year?", f"{founder} founded {town} in {year}.", paragraph)
    for _ in range(12):
        topic = rng.choice(TOPICS)
        first, second = IMAGES[topic]
        if rng.random() < 0.5:
            add(
                "Write a two-line poem that uses both of the given words.",
                f"The {first} came first, the {second} came after,\nand both stayed with me like a friend's laughter.",
                f"{first}, {second}",
            )
        else:
            idea, day = rng.choice(ACTIVITIES), rng.choice(DAYS)
            add(
                "Turn the note into a polite request.",
                f"Could you please {idea} with me on {day}? I would really enjoy it.",
                f"{idea} with me on {day}",
            )

    rng.shuffle(rows)
    return rows
