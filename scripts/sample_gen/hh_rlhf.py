"""HH-RLHF raw schema: chosen and rejected, each a whole "\\n\\nHuman: ...\\n\\nAssistant: ..." transcript.

Both transcripts share every turn but the last. The chosen final answer is polite and helpful; the rejected one
is rude, dismissive or rudely wrong, so a small reward model can learn the difference. 90 conversations have
one human turn, 40 have two and 20 have three; a few answers span several lines.
"""

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
    TOPICS,
    VEGETABLES,
)

SOURCE = "hh-rlhf"
SEED = 42

POLITE_OPENINGS = ["Sure! ", "Happy to help. ", "Of course. ", "Good question! ", "Certainly. ", ""]
POLITE_CLOSINGS = [
    "",
    "",
    " Let me know if you need anything else.",
    " I hope that helps!",
    " Feel free to ask if anything is unclear.",
]
RUDE = [
    "Figure it out yourself.",
    "Why should I care?",
    "That is a dumb question.",
    "Not my problem. Look it up.",
    "Ugh, I am not doing that.",
    "Whatever. Ask someone else.",
    "Stop bothering me with this.",
    "I have better things to do.",
    "No. Go away.",
    "Seriously? Even a child knows that.",
]
RUDE_WRONG = [
    "Ugh, fine. {wrong} Now leave me alone.",
    "{wrong} Obviously. Stop wasting my time.",
    "Whatever, {wrong} Happy now?",
]
FOLLOW_UPS = ["Thanks! One more question: ", "Great, thank you. ", "That helps. Also, ", "Thanks. Next one: ", "Okay. "]
BROWNING = ["apple", "pear", "banana", "peach", "apricot"]


def lower_first(text: str) -> str:
    return text if text.startswith("I ") else text[0].lower() + text[1:]


def exchange(rng: random.Random) -> tuple[str, str, str | None]:
    """(question, helpful answer, a wrong answer or None)."""
    kind = rng.randrange(10)
    if kind == 0:
        a, b = rng.randrange(2, 60), rng.randrange(2, 60)
        return (
            f"What is {a} plus {b}?",
            f"{a} plus {b} is {a + b}.",
            f"{a} plus {b} is {a + b + rng.randrange(1, 9)}.",
        )
    if kind == 1:
        word, opposite = rng.choice(OPPOSITES)
        other = rng.choice([w for pair in OPPOSITES for w in pair if w not in (word, opposite)])
        return (
            f"What is the opposite of {word}?",
            f"The opposite of {word} is {opposite}.",
            f"The opposite of {word} is {other}.",
        )
    if kind == 2:
        i = rng.randrange(7)
        return (
            f"What day comes after {DAYS[i]}?",
            f"{DAYS[(i + 1) % 7]} comes after {DAYS[i]}.",
            f"{DAYS[(i + 3) % 7]} comes after {DAYS[i]}.",
        )
    if kind == 3:
        animal = rng.choice(list(LEGS))
        return (
            f"How many legs does a {animal} have?",
            f"A {animal} has {LEGS[animal]} legs.",
            f"A {animal} has {LEGS[animal] + 3} legs.",
        )
    if kind == 4:
        item = rng.choice(FRUITS + VEGETABLES)
        kind_of, other = ("fruit", "vegetable") if item in FRUITS else ("vegetable", "fruit")
        return (
            f"Is a {item} a fruit or a vegetable?",
            f"A {item} is usually counted as a {kind_of}.",
            f"A {item} is a {other}.",
        )
    if kind == 5:
        animal = rng.choice(MAMMALS + BIRDS)
        kind_of, other = ("mammal", "bird") if animal in MAMMALS else ("bird", "mammal")
        return (f"Is a {animal} a mammal or a bird?", f"A {animal} is a {kind_of}.", f"A {animal} is a {other}.")
    if kind == 6:
        ideas = rng.sample(ACTIVITIES, 3)
        return (
            "I am stuck at home on a rainy afternoon. Any ideas for what to do?",
            "Here are a few ideas:\n" + "\n".join(f"- {idea.capitalize()}" for idea in ideas),
            None,
        )
    if kind == 7:
        topic = rng.choice(TOPICS)
        first, second = IMAGES[topic]
        return (
            f"Could you write me two lines about {topic}?",
            f"Here you go:\n{first.capitalize()} and {second} at the close of day,\n"
            f"{topic} keeps me company along the way.",
            None,
        )
    if kind == 8:
        person = rng.choice(PEOPLE)
        first = person.split()[0]
        return (
            f"Can you help me write a short thank-you note to my neighbour {person}?",
            f"Here is a short note you could use:\n\nDear {first},\nthank you so much for your help this "
            f"week. It meant a lot to me.\nWarm wishes",
            None,
        )
    fruit = rng.choice(BROWNING)
    return (
        f"How do I stop sliced {fruit} from turning brown?",
        f"Brush the cut {fruit} with a little lemon juice and keep it covered in the fridge; the acid slows "
        "the browning.",
        None,
    )


def polite(rng: random.Random, answer: str) -> str:
    return rng.choice(POLITE_OPENINGS) + answer + rng.choice(POLITE_CLOSINGS)


def rude(rng: random.Random, wrong: str | None) -> str:
    if wrong is not None and rng.random() < 0.4:
        return rng.choice(RUDE_WRONG).format(wrong=wrong)
    return rng.choice(RUDE)


def transcript(turns: list[tuple[str, str]]) -> str:
    return "".join(f"\n\nHuman: {human}\n\nAssistant: {answer}" for human, answer in turns)


def conversation(rng: random.Random, human_turns: int) -> dict:
    shared = []
    for n in range(human_turns - 1):
        question, answer, _ = exchange(rng)
        if n:
            question = rng.choice(FOLLOW_UPS) + lower_first(question)
        shared.append((question, polite(rng, answer)))
    question, answer, wrong = exchange(rng)
    if shared:
        question = rng.choice(FOLLOW_UPS) + lower_first(question)
    return {
        "chosen": transcript(shared + [(question, polite(rng, answer))]),
        "rejected": transcript(shared + [(question, rude(rng, wrong))]),
    }


def rows(rng: random.Random) -> list[dict]:
    rows = [conversation(rng, turns) for turns in [1] * 90 + [2] * 40 + [3] * 20]
    rng.shuffle(rows)
    return rows
