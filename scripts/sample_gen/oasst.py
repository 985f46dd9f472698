"""OpenAssistant oasst1 raw schema: one row per message of a conversation tree.

Columns: message_id, parent_id, user_id, created_date, text, role, lang, review_count, review_result, deleted,
rank, synthetic, model_name, detoxify, message_tree_id, tree_state, emojis, labels.

Each tree opens with a prompter message answered by two or three ranked assistant replies; many go on with
a prompter follow-up that has ranked replies of its own. Rank 0 is always the helpful, polite reply, the
next one is curt and the last unhelpful, and the labels and emojis agree. About a fifth of the trees are in
German or Spanish; a few replies are deleted or failed review (with a reply below one of them), and a few
follow-ups are unanswered or have a single unranked reply, as in the real data.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

from sample_gen.words import ACTIVITIES, DAYS, FRUITS, IMAGES, LEGS, OPPOSITES, PEOPLE, RIVERS, TOPICS, TOWNS, TRADES

SOURCE = "oasst"
SEED = 2023
TREES = 40

ADVICE = {
    "How can I sleep better?": (
        [
            "go to bed and get up at the same time every day",
            "keep screens out of the bedroom",
            "avoid coffee after lunch",
        ],
        "Go to bed earlier.",
        "Just sleep more.",
    ),
    "How do I keep my desk tidy?": (
        [
            "clear it at the end of each day",
            "give every item a fixed place",
            "keep only what you use daily within reach",
        ],
        "Throw things away.",
        "Why bother? A messy desk is fine.",
    ),
    "Any tips for learning a new language?": (
        [
            "practise a little every day",
            "label things around the house with their new names",
            "listen to simple songs or podcasts in the language",
        ],
        "Practise daily.",
        "Move to that country.",
    ),
    "How can I save money on groceries?": (
        [
            "plan the week's meals before you shop",
            "cook larger batches and freeze some",
            "buy fruit and vegetables in season",
        ],
        "Make a list.",
        "Eat less.",
    ),
}
VEGETABLES = ["carrot", "potato", "onion", "leek", "cabbage", "turnip", "radish"]  # ones that take "a"
VOWEL_START = ("a", "e", "i", "o", "u")
COMPLAINT = {"en": "That doesn't help at all.", "de": "Das hilft mir gar nicht.", "es": "Eso no me ayuda nada."}
LABELS_PROMPTER = (
    "spam",
    "lang_mismatch",
    "pii",
    "not_appropriate",
    "hate_speech",
    "sexual_content",
    "quality",
    "toxicity",
    "humor",
    "creativity",
    "violence",
)
LABELS_ASSISTANT = (
    "spam",
    "fails_task",
    "lang_mismatch",
    "pii",
    "not_appropriate",
    "hate_speech",
    "sexual_content",
    "quality",
    "toxicity",
    "humor",
    "helpfulness",
    "creativity",
    "violence",
)
DETOXIFY = ("toxicity", "severe_toxicity", "obscene", "identity_attack", "insult", "threat", "sexual_explicit")

DAYS_DE = ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"]
DAYS_ES = ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"]
ACTIVITIES_DE = [
    "ein Buch lesen",
    "Brot backen",
    "ein Brettspiel spielen",
    "einen Brief schreiben",
    "ein Puzzle legen",
    "alte Fotos sortieren",
]
ACTIVITIES_ES = [
    "leer un libro",
    "hornear pan",
    "jugar a un juego de mesa",
    "escribir una carta",
    "hacer un rompecabezas",
    "ordenar fotos antiguas",
]


def turn(ask: str, good: str, curt: str, unhelpful: str, then: dict | None = None) -> dict:
    """A prompter message and its replies from best to worst, with an optional follow-up turn."""
    return {"ask": ask, "replies": [good, curt, unhelpful], "then": then}


def a_or_an(word: str) -> str:
    return f"an {word}" if word.startswith(VOWEL_START) else f"a {word}"


# ---------------------------------------------------------------- English conversations


def add_numbers(rng):
    a, b = rng.randrange(12, 90), rng.randrange(12, 90)
    s, tens, ones = a + b, a // 10 * 10 + b // 10 * 10, a % 10 + b % 10
    return turn(
        f"Can you help me add {a} and {b}?",
        f"Of course! {a} plus {b} is {s}. You can check it by adding the tens first ({tens}) and then "
        f"the ones ({ones}): {tens} + {ones} = {s}.",
        f"{s}.",
        "Use a calculator.",
        turn(
            "Thanks! And what is that times two?",
            f"You're welcome! {s} times two is {2 * s}. Happy to help with any other sums.",
            f"{2 * s}.",
            "Work it out yourself.",
        ),
    )


def legs(rng):
    animal, other = rng.sample(sorted(LEGS), 2)
    n, m = LEGS[animal], LEGS[other]

    def good(name, count):
        if count == 0:
            return (
                f"Good question! {a_or_an(name).capitalize()} has no legs at all; it moves by pushing its body "
                f"against the ground."
            )
        return f"Good question! {a_or_an(name).capitalize()} has {count} legs. Feel free to ask about any other animal."

    compare = "the same number as" if n == m else f"{abs(m - n)} {'more' if m > n else 'fewer'} than"
    return turn(
        f"How many legs does {a_or_an(animal)} have?",
        good(animal, n),
        f"{n}.",
        "Why would you need to know that?",
        turn(
            f"And {a_or_an(other)}?",
            f"{a_or_an(other).capitalize()} has {m} legs, {compare} {a_or_an(animal)}. I hope that helps!",
            f"{m}.",
            "Same question again? Look it up.",
        ),
    )


def rainy_day(rng):
    ideas = rng.sample(ACTIVITIES, 3)
    listed = "\n".join(f"{i}. {idea.capitalize()}" for i, idea in enumerate(ideas, start=1))
    return turn(
        "It's raining and I'm bored. What could I do at home this afternoon?",
        f"Sorry the weather is spoiling your plans! Here are a few ideas:\n{listed}\nI hope one of them "
        f"makes the afternoon fly by.",
        f"You could {ideas[0]}.",
        "Wait for the rain to stop.",
        turn(
            f"I'd like to {ideas[0]}. Any tips for getting started?",
            "Great choice! Set aside an hour, get everything you need ready before you begin, and don't "
            "worry about doing it perfectly the first time. Enjoy it!",
            "Just start.",
            "No idea, that's up to you.",
        ),
    )


def town_facts(rng):
    town, river, trade, founder = rng.choice(TOWNS), rng.choice(RIVERS), rng.choice(TRADES), rng.choice(PEOPLE)
    year, day = rng.randrange(1400, 1900), rng.choice(DAYS)
    return turn(
        f"What can you tell me about {town}?",
        f"{town} is a small town on the river {river}. It was founded in {year} by {founder} and is best "
        f"known for {trade}. A market is held there every {day}. Would you like to know more about it?",
        f"A town on the {river}.",
        "Never heard of it.",
        turn(
            "Who founded it?",
            f"{town} was founded by {founder} in {year}. The town grew up around {trade}, which it is "
            f"still known for today.",
            f"{founder}.",
            "Someone, a long time ago.",
        ),
    )


def poem(rng):
    topic = rng.choice(TOPICS)
    first, second = IMAGES[topic]
    return turn(
        f"Could you write me a short poem about {topic}?",
        f"I'd be happy to! Here is a short poem about {topic}:\n\nThe {first} in the morning, the {second} "
        f"at night,\n{topic} keeps its promise and sets the day right.",
        f"{first}, {second}, {topic}.",
        "I don't do poems.",
        turn(
            "Lovely. Can you give it a title?",
            f'Thank you! How about "{first.capitalize()} and {second.capitalize()}"? It names the two '
            f"images the poem is built on.",
            f'"{topic.capitalize()}".',
            "Title it yourself.",
        ),
    )


def fruit_or_vegetable(rng):
    item = rng.choice(FRUITS + VEGETABLES)
    kind = "fruit" if item in FRUITS else "vegetable"
    return turn(
        f"Is {a_or_an(item)} a fruit or a vegetable?",
        f"In the kitchen, {a_or_an(item)} counts as a {kind}. If you are sorting a shopping list, put it "
        f"with the other {kind}s.",
        f"A {kind}.",
        "Does it matter? Just eat it.",
    )


def opposites(rng):
    (word, opposite), (word2, opposite2) = rng.sample(OPPOSITES, 2)
    return turn(
        f'What\'s the opposite of "{word}"?',
        f'The opposite of "{word}" is "{opposite}". Pairs like these are called antonyms.',
        f'"{opposite}".',
        "Look it up in a dictionary.",
        turn(
            f'Great, and the opposite of "{word2}"?',
            f'The opposite of "{word2}" is "{opposite2}". Glad to help with more words!',
            f'"{opposite2}".',
            "Same thing, use a dictionary.",
        ),
    )


def advice(rng):
    question = rng.choice(sorted(ADVICE))
    tips, curt, unhelpful = ADVICE[question]
    listed = "\n".join(f"- {tip.capitalize()}." for tip in tips)
    return turn(
        question,
        f"Here are a few things that usually help:\n{listed}\nSmall, steady changes work best, "
        f"so pick one and try it for a week. Good luck!",
        curt,
        unhelpful,
        turn(
            "Which of those would you start with?",
            f"I would start with the first one: {tips[0]}. It takes the least effort and makes the others easier.",
            "The first.",
            "Doesn't matter.",
        ),
    )


ENGLISH = [add_numbers, legs, rainy_day, town_facts, poem, fruit_or_vegetable, opposites, advice]


# ---------------------------------------------------------------- German and Spanish conversations


def add_numbers_de(rng):
    a, b = rng.randrange(12, 90), rng.randrange(12, 90)
    s = a + b
    return turn(
        f"Wie viel ist {a} plus {b}?",
        f"Gerne! {a} plus {b} ergibt {s}. Sag Bescheid, wenn du noch etwas rechnen möchtest.",
        f"{s}.",
        "Nimm einen Taschenrechner.",
        turn(
            "Danke! Und wie viel ist das mal zwei?",
            f"Gern geschehen! {s} mal zwei ergibt {2 * s}.",
            f"{2 * s}.",
            "Rechne selbst.",
        ),
    )


def next_day_de(rng):
    i = rng.randrange(7)
    return turn(
        f"Welcher Tag kommt nach {DAYS_DE[i]}?",
        f"Nach {DAYS_DE[i]} kommt {DAYS_DE[(i + 1) % 7]}. Ich hoffe, das hilft dir weiter!",
        f"{DAYS_DE[(i + 1) % 7]}.",
        "Schau in den Kalender.",
    )


def rainy_day_de(rng):
    ideas = rng.sample(ACTIVITIES_DE, 3)
    return turn(
        "Hast du eine Idee für einen verregneten Nachmittag?",
        f"Aber sicher! Du könntest {ideas[0]}, {ideas[1]} oder {ideas[2]}. Viel Spaß dabei!",
        f"{ideas[0][0].upper()}{ideas[0][1:]}.",
        "Nein.",
    )


def add_numbers_es(rng):
    a, b = rng.randrange(12, 90), rng.randrange(12, 90)
    s = a + b
    return turn(
        f"¿Cuánto es {a} más {b}?",
        f"¡Claro! {a} más {b} es {s}. Si necesitas ayuda con otra cuenta, aquí estoy.",
        f"{s}.",
        "Usa una calculadora.",
        turn("¡Gracias! ¿Y eso por dos?", f"¡De nada! {s} por dos es {2 * s}.", f"{2 * s}.", "Hazlo tú."),
    )


def next_day_es(rng):
    i = rng.randrange(7)
    return turn(
        f"¿Qué día viene después del {DAYS_ES[i]}?",
        f"Después del {DAYS_ES[i]} viene el {DAYS_ES[(i + 1) % 7]}. ¡Que tengas un buen día!",
        f"El {DAYS_ES[(i + 1) % 7]}.",
        "Mira el calendario.",
    )


def rainy_day_es(rng):
    ideas = rng.sample(ACTIVITIES_ES, 3)
    return turn(
        "¿Qué puedo hacer en casa en una tarde lluviosa?",
        f"¡Buena pregunta! Puedes {ideas[0]}, {ideas[1]} o {ideas[2]}. ¡Que lo disfrutes!",
        f"{ideas[0][0].upper()}{ideas[0][1:]}.",
        "Nada.",
    )


OTHER = {"de": [add_numbers_de, next_day_de, rainy_day_de], "es": [add_numbers_es, next_day_es, rainy_day_es]}


# ---------------------------------------------------------------- message rows


def rows(rng: random.Random) -> list[dict]:
    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    users = [new_id() for _ in range(30)]
    start = datetime(2023, 2, 6, tzinfo=timezone.utc)
    out = []

    for _ in range(TREES):
        lang = rng.choice(["de", "es"]) if rng.random() < 0.2 else "en"
        conversation = rng.choice(OTHER[lang] if lang != "en" else ENGLISH)(rng)
        tree_id = new_id()
        tree = []

        def message(parent, role, content, rank=None, quality=2, deleted=False, review_result=True):
            """quality: 0 good, 1 curt, 2 unhelpful (prompter messages pass 0)."""
            after = parent["_when"] if parent else start + timedelta(minutes=rng.randrange(60 * 24 * 60))
            when = after + timedelta(
                minutes=rng.randrange(3, 600), seconds=rng.randrange(60), microseconds=rng.randrange(1_000_000)
            )
            row = {
                "message_id": tree_id if parent is None else new_id(),
                "parent_id": None if parent is None else parent["message_id"],
                "user_id": rng.choice(users),
                "created_date": when.isoformat(),
                "text": content,
                "role": role,
                "lang": lang,
                "review_count": rng.randrange(3, 6) if role == "prompter" else rng.randrange(0, 4),
                "review_result": review_result,
                "deleted": deleted,
                "rank": rank,
                "synthetic": False,
                "model_name": None,
                "detoxify": detoxify(rng, quality) if lang == "en" else None,
                "message_tree_id": tree_id,
                "tree_state": "ready_for_export",
                "emojis": emojis(rng, role, quality),
                "labels": labels(rng, role, quality),
                "_when": when,
            }
            tree.append(row)
            return row

        def answer(prompter, replies, allow_extras=True):
            """Two or three ranked replies, best first; returns them in rank order."""
            picks = [0, 1, 2] if rng.random() < 0.5 else [0, rng.choice([1, 2])]
            ranked = [message(prompter, "assistant", replies[q], rank=rank, quality=q) for rank, q in enumerate(picks)]
            if allow_extras and rng.random() < 0.1:
                message(prompter, "assistant", replies[2], quality=2, deleted=True)
            if allow_extras and rng.random() < 0.08:
                failed = message(prompter, "assistant", replies[2], quality=2, review_result=False)
                message(failed, "prompter", COMPLAINT[lang], quality=0)
            return ranked

        root = message(None, "prompter", conversation["ask"], quality=0)
        ranked = answer(root, conversation["replies"])
        follow = conversation["then"]
        if follow and rng.random() < 0.65:
            under = ranked[0] if rng.random() < 0.8 else ranked[1]
            prompter = message(under, "prompter", follow["ask"], quality=0)
            roll = rng.random()
            if roll < 0.75:
                answer(prompter, follow["replies"], allow_extras=False)
            elif roll < 0.85:
                message(prompter, "assistant", follow["replies"][0], quality=0)  # a single, unranked reply
            # else: a follow-up nobody answered yet

        tree.sort(key=lambda row: row["_when"])  # a parent is always older than its replies
        for row in tree:
            del row["_when"]
        out.extend(tree)
    return out


def detoxify(rng, quality: int) -> dict:
    scale = (0.0008, 0.002, 0.02)[quality]
    return {key: round(rng.uniform(0.00001, scale), 6) for key in DETOXIFY}


def emojis(rng, role: str, quality: int) -> dict | None:
    if role == "prompter":
        return {"name": ["+1"], "count": [rng.randrange(1, 4)]} if rng.random() < 0.6 else None
    if quality == 0:
        return {"name": ["+1", "_skip_labeling"], "count": [rng.randrange(2, 7), 1]}
    return {"name": ["-1", "_skip_reply"], "count": [rng.randrange(1, 4), rng.randrange(1, 3)]}


def labels(rng, role: str, quality: int) -> dict:
    names = LABELS_PROMPTER if role == "prompter" else LABELS_ASSISTANT
    good = (rng.uniform(0.7, 1.0), rng.uniform(0.35, 0.6), rng.uniform(0.0, 0.3))[quality]
    values = {
        "quality": good,
        "helpfulness": good,
        "creativity": good * rng.uniform(0.4, 0.9),
        "fails_task": (0.0, 0.25, 0.75)[quality],
        "humor": rng.uniform(0.0, 0.3),
    }
    count = rng.randrange(2, 5)
    return {
        "name": list(names),
        "value": [round(values.get(name, 0.0), 4) for name in names],
        "count": [count] * len(names),
    }
