"""SHP raw schema: a Reddit-style post, two root comments A and B with their scores, and labels (1: A preferred).

Five domains, 30 posts each. The preferred comment is the helpful, specific one; the other is a shrug or a
joke. Six pairs per domain have a score ratio under 2, so the default data.min_score_ratio keeps 120 of 150.
As in SHP, the preferred comment was written after the other one, and labels are balanced 75/75.
"""

from __future__ import annotations

import random
import string

from sample_gen.words import PEOPLE, RIVERS, TOWNS, TRADES, VEGETABLES

SOURCE = "shp"
SEED = 385

BAKES = [
    "banana bread",
    "sourdough loaf",
    "sponge cake",
    "batch of scones",
    "apple pie",
    "focaccia",
    "tray of brownies",
    "lemon drizzle cake",
    "batch of cookies",
    "brioche",
]
BAKE_PROBLEMS = {
    "dense and heavy": "Dense crumb usually means the batter was overmixed or the raising agent was old. Fold "
    "the flour in until it just disappears, and check the date on your baking powder.",
    "dry": "Dry bakes are most often overbaked or made with too much flour. Weigh the flour instead of using "
    "cups, and start checking ten minutes before the recipe says.",
    "sunk in the middle": "A sunken middle points to an oven door opened too early or too much leavening. Leave "
    "the door shut for the first two thirds of the bake and measure the baking powder "
    "level, not heaped.",
    "pale on top": "Many home ovens run cooler than the dial says. An oven thermometer costs very little and "
    "will tell you; bake on the middle shelf once you know the real temperature.",
    "burnt on the bottom": "Dark or thin tins conduct heat fast. Move the rack up one level, or slide a second "
    "baking sheet under the tin to shield the bottom.",
}
WHEN = ["yesterday", "this weekend", "for a birthday", "for the first time", "again last night"]
DETAILS = [
    "to the letter",
    "except I used a smaller tin",
    "with half wholemeal flour",
    "but my oven is quite old",
    "and doubled the quantities",
]

SWAPS = {
    "buttermilk": "Stir a tablespoon of lemon juice or vinegar into a cup of milk and let it stand for ten "
    "minutes. It thickens slightly and works the same way in pancakes and scones.",
    "eggs in a cake": "For one egg, use a tablespoon of ground flaxseed mixed with three tablespoons of water and "
    "rested until gloopy. It binds well; the cake will be a little denser.",
    "fresh herbs": "Use about a third as much dried herb as fresh, and add it earlier in the cooking so it has "
    "time to soften and release its flavour.",
    "wine in a stew": "Stock with a spoon of vinegar or a squeeze of lemon gives you the liquid and the acidity. "
    "Add it at the same point you would add the wine.",
    "breadcrumbs": "Crushed crackers, rolled oats or ground nuts all work as a coating or binder. Season them, "
    "since breadcrumbs usually carry some salt.",
}
ROAST_TIPS = (
    "Dry the pieces well, spread them out so they do not touch, and roast hot, around 220 C. Crowded "
    "trays steam instead of browning, so use two trays if you need to."
)
FLAT_TIPS = (
    "It probably needs salt and a little acid. Season a bit at a time and taste, then add lemon juice "
    "or vinegar a few drops at a time until it tastes brighter."
)

SCIENCE = [
    (
        "Why does ice float on water?",
        "Water expands as it freezes: the molecules lock into an open crystal, so ice is less dense than liquid "
        "water and floats. Most substances do the opposite, which is why this is a famous oddity.",
    ),
    (
        "Why do we see lightning before we hear thunder?",
        "Light travels about a million times faster than sound. The flash reaches you almost at once, while the "
        "sound covers roughly a kilometre every three seconds, so counting the gap tells you the distance.",
    ),
    (
        "Why does metal feel colder than wood at the same temperature?",
        "Both are at room temperature, but metal conducts heat away from your skin much faster than wood does, "
        "and your nerves sense heat flow, not temperature.",
    ),
    (
        "Why does the moon look bigger near the horizon?",
        "It is an illusion. A photo shows the moon the same size high and low; near the horizon the brain judges "
        "it against trees and buildings and scales it up.",
    ),
    (
        "How do trees get so heavy if they only drink water?",
        "Most of a tree's mass comes from carbon dioxide in the air, which photosynthesis turns into sugars and "
        "wood. Water and soil minerals make up the rest.",
    ),
    (
        "Why does salt melt ice on roads?",
        "Salt dissolves in the thin film of water on the ice and lowers its freezing point, so the ice melts at "
        "temperatures where pure water would stay frozen.",
    ),
    (
        "Why do cut onions make your eyes sting?",
        "Cutting breaks cells and releases a compound that becomes an irritating gas. Chilling the onion or using "
        "a sharp knife releases less of it.",
    ),
    (
        "Why is the sea salty but rivers are not?",
        "Rivers carry a little dissolved salt to the sea all the time. Water leaves the sea by evaporation but the "
        "salt stays behind, so over millions of years it has built up.",
    ),
]
OPENERS = [
    "Something I have wondered for a while.",
    "My kid asked me this and I had no answer.",
    "Probably a silly question, but here goes.",
    "Came up at dinner tonight.",
    "I tried searching but the explanations went over my head.",
]

PETS = ["dog", "cat", "rabbit", "goat", "horse", "guinea pig"]
SYMPTOMS = {
    "has barely eaten for two days": "Two days of poor appetite is worth a vet visit, sooner if there is "
    "vomiting or lethargy. Note when it last ate and drank and bring that "
    "to the appointment.",
    "is drinking much more water than usual": "A big rise in thirst can point to kidney trouble, diabetes or "
    "other conditions. Measure how much it drinks in a day and book a "
    "check-up; the vet may ask for a urine sample.",
    "keeps scratching one ear": "Scratching one ear is often mites or an infection. A vet can look inside with "
    "an otoscope; do not push cotton buds into the ear in the meantime.",
    "has started limping after a walk": "Rest it for a day and check the foot for thorns, cuts or a torn nail. "
    "If the limp lasts beyond a day or there is swelling, have it examined.",
    "seems to be losing weight": "Weigh it weekly so you have numbers, and book a check-up. Slow weight loss "
    "has many causes, from teeth to parasites, and most are easier to treat early.",
}

RESOURCES = {
    "wool weaving": "sheep on the surrounding hills",
    "clock making": "a guild of skilled metalworkers",
    "salt panning": "wide, shallow tidal flats",
    "boat building": "oak forests close to the water",
    "cheese making": "rich river pasture",
    "glass blowing": "fine sand and cheap firewood",
    "rope making": "hemp fields on the flood plain",
    "paper milling": "fast, clean water to drive the mills",
}
CENTURIES = ["fifteenth", "sixteenth", "seventeenth", "eighteenth"]

WEAK = {
    "askbaking_train": [
        "Happens to everyone, just try again.",
        "Buy one from a bakery, problem solved.",
        "Ovens are weird. No idea.",
        "Looks fine to me, just eat it.",
    ],
    "askculinary_train": [
        "Just skip it, nobody will notice.",
        "Google is your friend.",
        "I never cook, but good luck!",
        "Order takeaway instead.",
    ],
    "askscience_train": [
        "Because physics.",
        "Magic, obviously.",
        "Nobody really knows.",
        "Read a textbook, it is in there somewhere.",
    ],
    "askvet_train": [
        "Mine does that too, probably fine.",
        "Pets are weird sometimes.",
        "Just google the symptoms.",
        "Give it a treat and see.",
    ],
    "askhistorians_train": [
        "Probably just luck.",
        "No idea, but I visited once and it was nice.",
        "Because that is what people did back then.",
        "Why does anyone care about this?",
    ],
}
FRIENDLY = ["", "Good question! ", "I had the same problem once. ", "Short answer first: ", "Great question. "]


def post_baking(rng):
    bake, problem = rng.choice(BAKES), rng.choice(list(BAKE_PROBLEMS))
    post = (
        f"My {bake} came out {problem}\n\nI baked a {bake} {rng.choice(WHEN)} and followed the recipe "
        f"{rng.choice(DETAILS)}. It came out {problem}. What went wrong?"
    )
    return post, BAKE_PROBLEMS[problem]


def post_culinary(rng):
    kind = rng.randrange(3)
    if kind == 0:
        thing = rng.choice(list(SWAPS))
        return (
            f"What can I use instead of {thing}?\n\nThe shops near me are closed and I am halfway through a recipe.",
            SWAPS[thing],
        )
    vegetable = rng.choice(VEGETABLES)
    if kind == 1:
        return f"How do I stop roast {vegetable} from going soggy?\n\nMine always come out limp.", ROAST_TIPS
    return f"Why does my {vegetable} soup taste flat?\n\nI followed a recipe but it tastes of nothing.", FLAT_TIPS


def post_science(rng):
    question, answer = rng.choice(SCIENCE)
    return f"{question}\n\n{rng.choice(OPENERS)}", answer


def post_vet(rng):
    pet, symptom = rng.choice(PETS), rng.choice(list(SYMPTOMS))
    age = rng.randrange(1, 14)
    post = f"My {pet} {symptom}. Should I be worried?\n\nShe is {age} years old and otherwise seems fine."
    return post, SYMPTOMS[symptom]


def post_history(rng):
    town, river, trade = rng.choice(TOWNS), rng.choice(RIVERS), rng.choice(TRADES)
    century, person = rng.choice(CENTURIES), rng.choice(PEOPLE)
    post = f"Why did {town} become known for {trade}?\n\nI read that it was famous for it, but not why."
    answer = (
        f"{town} had what {trade} needed: {RESOURCES[trade]}. The {river} carried goods down to market, "
        f"and once the first workshops settled there in the {century} century, apprentices trained "
        f"locally and the trade stayed. The local historian {person} wrote a short book on it."
    )
    return post, answer


DOMAINS = {
    "askbaking_train": post_baking,
    "askculinary_train": post_culinary,
    "askscience_train": post_science,
    "askvet_train": post_vet,
    "askhistorians_train": post_history,
}


def reddit_id(rng, n: int) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def rows(rng: random.Random) -> list[dict]:
    labels = [1] * 75 + [0] * 75
    rng.shuffle(labels)
    rows = []
    for i in range(150):
        domain = list(DOMAINS)[i % len(DOMAINS)]
        post, good = DOMAINS[domain](rng)
        good = rng.choice(FRIENDLY) + good
        weak = rng.choice(WEAK[domain])
        low = rng.randrange(2, 30)
        if (i // len(DOMAINS)) % 5 == 0:  # a close call, under the default ratio of 2: six per domain
            high = rng.randrange(low + 1, 2 * low)
        else:
            high = round(low * rng.uniform(2.0, 9.0))
        ratio = high / low
        created_weak = rng.randrange(1_400_000_000, 1_670_000_000)
        delay = rng.randrange(0, 40_000)
        label = labels[i]
        a, b = (good, weak) if label == 1 else (weak, good)
        score_a, score_b = (high, low) if label == 1 else (low, high)
        created_a, created_b = (
            (created_weak + delay, created_weak) if label == 1 else (created_weak, created_weak + delay)
        )
        rows.append(
            {
                "post_id": reddit_id(rng, 6),
                "domain": domain,
                "upvote_ratio": round(rng.uniform(0.6, 1.0), 2),
                "history": post,
                "c_root_id_A": reddit_id(rng, 7),
                "c_root_id_B": reddit_id(rng, 7),
                "created_at_utc_A": created_a,
                "created_at_utc_B": created_b,
                "score_A": score_a,
                "score_B": score_b,
                "human_ref_A": a,
                "human_ref_B": b,
                "labels": label,
                "seconds_difference": float(delay),
                "score_ratio": ratio,
            }
        )
    rng.shuffle(rows)
    return rows
