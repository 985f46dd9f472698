"""Dolly-15k raw schema: instruction, context, response, category (8 categories)."""

from __future__ import annotations

import random

from sample_gen.words import (
    ACTIVITIES,
    BIRDS,
    DAYS,
    FRUITS,
    IMAGES,
    LEGS,
    MAMMALS,
    OPPOSITES,
    PEOPLE,
    RIVERS,
    TOPICS,
    TOWNS,
    TRADES,
    VEGETABLES,
)

SOURCE = "dolly"
SEED = 15


def rows(rng: random.Random) -> list[dict]:
    rows = []

    def add(instruction, response, category, context=""):
        rows.append({"instruction": instruction, "context": context, "response": response, "category": category})

    for _ in range(25):  # open_qa: small facts
        kind = rng.randrange(4)
        if kind == 0:
            a, b = rng.randrange(2, 40), rng.randrange(2, 40)
            add(f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.", "open_qa")
        elif kind == 1:
            word, opposite = rng.choice(OPPOSITES)
            add(f"What is the opposite of {word}?", f"The opposite of {word} is {opposite}.", "open_qa")
        elif kind == 2:
            i = rng.randrange(7)
            add(f"What day comes after {DAYS[i]}?", f"{DAYS[(i + 1) % 7]} comes after {DAYS[i]}.", "open_qa")
        else:
            animal = rng.choice(list(LEGS))
            add(f"How many legs does a {animal} have?", f"A {animal} has {LEGS[animal]} legs.", "open_qa")

    for _ in range(25):  # classification
        if rng.random() < 0.5:
            items = rng.sample(FRUITS, 2) + rng.sample(VEGETABLES, 2)
            rng.shuffle(items)
            answer = "\n".join(f"{x}: {'fruit' if x in FRUITS else 'vegetable'}" for x in items)
            add(
                f"Classify each of the following as a fruit or a vegetable: {', '.join(items)}",
                answer,
                "classification",
            )
        else:
            items = rng.sample(MAMMALS, 2) + rng.sample(BIRDS, 2)
            rng.shuffle(items)
            answer = "\n".join(f"{x}: {'mammal' if x in MAMMALS else 'bird'}" for x in items)
            add(f"Which of these are mammals and which are birds? {', '.join(items)}", answer, "classification")

    def town_story():
        town, river, trade = rng.choice(TOWNS), rng.choice(RIVERS), rng.choice(TRADES)
        year, people = rng.randrange(1400, 1900), rng.randrange(800, 40000)
        founder = rng.choice(PEOPLE)
        context = (
            f"{town} is a town on the river {river}. It was founded in {year} by {founder} and is known "
            f"for {trade}. About {people:,} people live there today, and a market is held every "
            f"{rng.choice(DAYS)}."
        )
        return town, river, trade, year, people, founder, context

    for _ in range(25):  # closed_qa: answer from the context
        town, river, trade, year, people, founder, context = town_story()
        question, answer = rng.choice(
            [
                (f"When was {town} founded?", f"{town} was founded in {year}."),
                (f"Which river is {town} on?", f"{town} is on the river {river}."),
                (f"What is {town} known for?", f"{town} is known for {trade}."),
                (f"Who founded {town}?", f"{town} was founded by {founder}."),
            ]
        )
        add(question, answer, "closed_qa", context)

    for _ in range(25):  # information_extraction
        town, river, trade, year, people, founder, context = town_story()
        if rng.random() < 0.5:
            add(
                "Extract the year and the founder's name from this passage.",
                f"Year: {year}\nFounder: {founder}",
                "information_extraction",
                context,
            )
        else:
            add(
                "List the place names mentioned in the text, separated by commas.",
                f"{town}, {river}",
                "information_extraction",
                context,
            )

    for _ in range(25):  # summarization
        town, river, trade, year, people, founder, context = town_story()
        add(
            "Summarize this passage in one sentence.",
            f"{town} is a town on the {river} founded in {year}, known for {trade}.",
            "summarization",
            context,
        )

    for _ in range(25):  # brainstorming
        n = rng.choice([3, 4, 5])
        ideas = rng.sample(ACTIVITIES, n)
        add(
            f"Give me {n} ideas for a rainy afternoon at home.",
            "\n".join(f"{i}. {idea.capitalize()}" for i, idea in enumerate(ideas, start=1)),
            "brainstorming",
        )

    for _ in range(25):  # creative_writing
        topic = rng.choice(TOPICS)
        first, second = IMAGES[topic]
        add(
            f"Write a short two-line poem about {topic}.",
            f"Of {topic} I keep the {first} and the {second},\nand carry them home when the day is done.",
            "creative_writing",
        )

    for _ in range(25):  # general_qa
        question, answer = rng.choice(
            [
                (
                    "Why do people write shopping lists?",
                    "A list keeps you from forgetting things and from buying what you do not need.",
                ),
                (
                    "Why should you stretch before running?",
                    "Stretching warms the muscles, which makes strains less likely and running easier.",
                ),
                (
                    "Why do we water plants in the morning?",
                    "In the morning the water soaks in before the sun is strong, so less of it evaporates.",
                ),
                (
                    "What makes a good password?",
                    "A good password is long, unique to one site and hard to guess, such as several random words.",
                ),
                (
                    "Why do bakers let dough rest?",
                    "Resting lets the gluten relax and the yeast work, so the bread rises and shapes more easily.",
                ),
            ]
        )
        add(question, answer, "general_qa")

    rng.shuffle(rows)
    return rows
