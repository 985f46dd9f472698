"""Your own file (source "file"), conversational layout: one "messages" list of role/content turns per row.

Some rows open with a system message, some run over two or three user/assistant exchanges; the last
message is always the assistant's, as the layout needs.
"""

from __future__ import annotations

import random

from sample_gen.words import DAYS, LEGS, OPPOSITES, PEOPLE, RIVERS, TOWNS, TRADES

SOURCE = "file"
SEED = 31
N_ROWS = 120

SYSTEMS = ["You are a friendly assistant. Answer in one or two sentences.", "Answer briefly and plainly."]
TOPIC_SYSTEMS = {  # template name -> a system prompt that suits it, used beside the general ones
    "_arithmetic": "You are a patient maths tutor who shows the working.",
    "_town": "You are a helpful guide at a small-town visitor centre.",
    "_cooking": "You are a kitchen helper who gives practical cooking advice.",
    "_packing": "You are a travel assistant who keeps lists short.",
    "_polite": "You help people write kind, clear messages.",
    "_facts": "You are a quiz host who answers in full sentences.",
}
# dish -> (ingredients, minutes); made up for the sample
DISHES = {
    "a vegetable soup": ("carrots, leeks, potatoes, an onion and stock", 40),
    "a lentil stew": ("red lentils, tomatoes, garlic, cumin and stock", 35),
    "pancakes": ("flour, eggs, milk and a pinch of salt", 20),
    "a plum crumble": ("plums, flour, butter, sugar and oats", 50),
    "flatbread": ("flour, water, yoghurt and salt", 25),
    "a potato salad": ("potatoes, spring onions, mustard and mayonnaise", 30),
}
TRIPS = {
    "camping for a weekend": ["a tent", "a sleeping bag", "a torch", "warm socks", "a water bottle"],
    "to the beach for a day": ["sun cream", "a towel", "a hat", "water", "a book"],
    "on a long train journey": ["snacks", "headphones", "a charger", "a light jumper", "a book"],
    "hiking in the hills": ["walking boots", "a map", "a rain jacket", "water", "a packed lunch"],
}
BLUNT = [  # blunt, polite, polite and short
    ("Send me the report now.", "Could you send me the report when you have a moment?", "The report, when you can?"),
    ("Your music is too loud.", "Would you mind turning the music down a little?", "Music a bit lower, please?"),
    ("Move your bike.", "Could you please move your bike out of the doorway?", "Could you move your bike?"),
    (
        "I need an answer today.",
        "Would it be possible to have an answer by the end of today?",
        "An answer today, if possible?",
    ),
    ("Stop interrupting me.", "Could I finish my point before we go on?", "May I finish?"),
]


def _arithmetic(rng: random.Random) -> list[tuple[str, str]]:
    a, b, c = rng.randrange(2, 13), rng.randrange(2, 13), rng.randrange(1, 30)
    return [
        (f"What is {a} times {b}?", f"{a} times {b} is {a * b}."),
        (f"And if I add {c} to that?", f"{a * b} plus {c} is {a * b + c}."),
        ("Is that number even?", f"{a * b + c} is {'even' if (a * b + c) % 2 == 0 else 'odd'}."),
    ]


def _town(rng: random.Random) -> list[tuple[str, str]]:
    town, river, trade = rng.choice(TOWNS), rng.choice(RIVERS), rng.choice(TRADES)
    founder, year, day = rng.choice(PEOPLE), rng.randrange(1400, 1900), rng.choice(DAYS)
    return [
        (f"Tell me about {town}.", f"{town} is a small town on the river {river}, known for {trade}."),
        ("Who founded it?", f"It was founded by {founder} in {year}."),
        ("When is the market?", f"The market in {town} is held every {day}."),
    ]


def _cooking(rng: random.Random) -> list[tuple[str, str]]:
    dish = rng.choice(list(DISHES))
    ingredients, minutes = DISHES[dish]
    return [
        (f"What do I need to make {dish}?", f"For {dish} you need {ingredients}."),
        ("How long does it take?", f"About {minutes} minutes from start to finish."),
        (
            "Can I make it the day before?",
            f"Yes; keep {dish} covered and cool, and warm it through or serve it as it is the next day.",
        ),
    ]


def _packing(rng: random.Random) -> list[tuple[str, str]]:
    trip = rng.choice(list(TRIPS))
    items = rng.sample(TRIPS[trip], 3)
    return [
        (f"I am going {trip}. What should I pack?", f"Pack {items[0]}, {items[1]} and {items[2]}."),
        ("Anything else?", "Check the weather the day before and take a small first-aid kit."),
    ]


def _polite(rng: random.Random) -> list[tuple[str, str]]:
    blunt, polite, short = rng.choice(BLUNT)
    return [(f'Rewrite this more politely: "{blunt}"', polite), ("Now make it shorter.", short)]


def _facts(rng: random.Random) -> list[tuple[str, str]]:
    if rng.random() < 0.5:
        word, opposite = rng.choice(OPPOSITES)
        return [
            (f"What is the opposite of {word}?", f"The opposite of {word} is {opposite}."),
            (f"And the opposite of {opposite}?", f"The opposite of {opposite} is {word}."),
        ]
    animal = rng.choice(list(LEGS))
    return [
        (f"How many legs does a {animal} have?", f"A {animal} has {LEGS[animal]} legs."),
        ("And two of them?", f"Two of them have {2 * LEGS[animal]} legs."),
    ]


TEMPLATES = [_arithmetic, _town, _cooking, _packing, _polite, _facts]


def rows(rng: random.Random) -> list[dict]:
    rows = []
    for i in range(N_ROWS):
        template = TEMPLATES[i % len(TEMPLATES)]
        exchanges = template(rng)
        turns = 1 if rng.random() < 0.5 else rng.randrange(2, len(exchanges) + 1)
        messages = []
        if rng.random() < 0.4:
            messages.append({"role": "system", "content": rng.choice(SYSTEMS + [TOPIC_SYSTEMS[template.__name__]])})
        for question, answer in exchanges[:turns]:
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        rows.append({"messages": messages})
    rng.shuffle(rows)
    return rows
