"""Word lists for the generated samples: made-up towns and people, everyday facts."""

TOWNS = [
    "Elmford",
    "Corran Bay",
    "Hollowmere",
    "Kestrel Point",
    "Brindlewick",
    "Asterby",
    "Mossgate",
    "Tillinghurst",
    "Quarrow",
    "Fenwick Hollow",
    "Larkspur",
    "Ostervale",
]
RIVERS = ["Wend", "Sallow", "Brisk", "Tamber", "Ouse Minor", "Lathe", "Copper", "Reedwater"]
TRADES = [
    "wool weaving",
    "clock making",
    "salt panning",
    "boat building",
    "cheese making",
    "glass blowing",
    "rope making",
    "paper milling",
]
PEOPLE = [
    "Ada Venn",
    "Tomas Reyes",
    "Mira Castell",
    "Jonah Pike",
    "Lena Ortiz",
    "Samir Haddad",
    "Iris Tanaka",
    "Owen Blake",
    "Nadia Kowal",
    "Felix Marsh",
]
FRUITS = ["apple", "pear", "plum", "cherry", "mango", "banana", "grape", "peach", "apricot", "lemon"]
VEGETABLES = ["carrot", "potato", "onion", "leek", "cabbage", "turnip", "spinach", "celery", "radish", "pea"]
MAMMALS = ["dog", "horse", "whale", "bat", "rabbit", "otter", "goat", "fox"]
BIRDS = ["robin", "owl", "penguin", "sparrow", "eagle", "heron", "crow", "swan"]
OPPOSITES = [
    ("hot", "cold"),
    ("tall", "short"),
    ("early", "late"),
    ("open", "closed"),
    ("heavy", "light"),
    ("loud", "quiet"),
    ("wet", "dry"),
    ("fast", "slow"),
    ("full", "empty"),
    ("young", "old"),
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
LEGS = {"spider": 8, "ant": 6, "dog": 4, "chicken": 2, "snake": 0, "beetle": 6, "cat": 4, "crab": 10}
ACTIVITIES = [
    "read a book",
    "bake bread",
    "write a letter to a friend",
    "do a jigsaw puzzle",
    "learn a card trick",
    "sort old photos",
    "try a new recipe",
    "sketch the view from a window",
    "play a board game",
    "plan a weekend walk",
    "repot a plant",
    "listen to a new album",
]
TOPICS = [
    "the sea",
    "autumn",
    "a quiet morning",
    "the moon",
    "a city at night",
    "rain",
    "an old bridge",
    "a garden",
    "the first snow",
    "a long road",
]
IMAGES = {
    "the sea": ("waves", "salt"),
    "autumn": ("leaves", "amber"),
    "a quiet morning": ("light", "kettle"),
    "the moon": ("silver", "tide"),
    "a city at night": ("lamps", "traffic"),
    "rain": ("roofs", "puddles"),
    "an old bridge": ("stone", "river"),
    "a garden": ("roses", "bees"),
    "the first snow": ("white", "hush"),
    "a long road": ("dust", "horizon"),
}
