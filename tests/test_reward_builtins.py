"""The built-in rule rewards (studio.rewards.builtins): exact scores for each rule, its edge cases, and the one-line
errors for args a config gets wrong. Fast, no model: `.venv/bin/pytest -q tests/test_reward_builtins.py`."""

from __future__ import annotations

import re

import pytest

from studio.errors import ConfigError, RewardError
from studio.rewards.builtins import BUILTINS, KINDS, REQUIRED, get

WHERE = "rewards.sources[0]"


def scores(name: str, args: dict, answers: list[str], columns: dict | None = None, count_tokens=None) -> list:
    builtin = BUILTINS[name]
    return builtin.score(answers, builtin.check(args, WHERE), columns or {}, count_tokens)


def refused(message: str):
    """pytest.raises for a ConfigError whose whole message is `message`."""
    return pytest.raises(ConfigError, match=f"^{re.escape(message)}$")


# ---------------------------------------------------------------- the table


def test_builtins_are_listed_in_order_and_found_by_name():
    assert list(BUILTINS) == [
        "format",
        "length",
        "contains",
        "excludes",
        "reference_match",
        "json_valid",
        "no_repetition",
    ]
    assert get("length", WHERE) is BUILTINS["length"]


def test_an_unknown_builtin_lists_the_builtins_and_the_closest_name():
    names = "format, length, contains, excludes, reference_match, json_valid, no_repetition"
    with refused(f"{WHERE}: unknown built-in reward 'fromat'; built-ins are {names}; did you mean 'format'?"):
        get("fromat", WHERE)
    with refused(f"{WHERE}: unknown built-in reward 'sentiment'; built-ins are {names}"):
        get("sentiment", WHERE)


@pytest.mark.parametrize("name", list(BUILTINS))
def test_every_param_has_help_and_a_default_that_passes_its_own_check(name):
    builtin = BUILTINS[name]
    assert builtin.help.strip() and "\n" not in builtin.help
    required = {}
    for param in builtin.params:
        assert param.kind in KINDS
        assert param.help.strip() and "\n" not in param.help, param.name
        assert param.kind != "choice" or param.default in param.choices, param.name
        if param.default is REQUIRED:
            required[param.name] = {"text": "x", "int": 5, "texts": ["x"]}[param.kind]
    checked = builtin.check(required, WHERE)
    assert list(checked) == [p.name for p in builtin.params]
    # Checking the filled args again changes nothing: every default is an allowed value.
    assert builtin.check(checked, WHERE) == checked


def test_check_fills_the_defaults():
    assert BUILTINS["format"].check({"pattern": "x"}, WHERE) == {
        "pattern": "x",
        "match": "search",
        "dotall": True,
        "ignore_case": False,
    }
    # falloff defaults to the target
    assert BUILTINS["length"].check({"target": 50}, WHERE) == {
        "target": 50,
        "unit": "words",
        "tolerance": 0,
        "falloff": 50,
    }
    assert BUILTINS["length"].check({"target": 50, "falloff": 5}, WHERE)["falloff"] == 5
    assert BUILTINS["reference_match"].check(None, WHERE) == {"column": "answer", "mode": "normalized"}
    assert BUILTINS["json_valid"].check({}, WHERE) == {"keys": [], "fenced": True}
    assert BUILTINS["no_repetition"].check({}, WHERE) == {"n": 3}
    # a form's text box sends one keyword per line
    assert BUILTINS["contains"].check({"keywords": "cat\n\nred fox\n"}, WHERE)["keywords"] == ["cat", "red fox"]


def test_needs_columns_names_the_reference_column_only():
    assert BUILTINS["reference_match"].needs_columns({"column": "solution", "mode": "exact"}) == ("solution",)
    assert BUILTINS["format"].needs_columns({"pattern": "x"}) == ()


# ---------------------------------------------------------------- refused args


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        (
            "format",
            {"patern": "x"},
            f"{WHERE}.args: unknown argument 'patern'; did you mean 'pattern'? "
            "(format takes pattern, match, dotall, ignore_case)",
        ),
        ("no_repetition", {"size": 2}, f"{WHERE}.args: unknown argument 'size' (no_repetition takes n)"),
        (
            "format",
            {},
            f"{WHERE}.args.pattern: a value is required (a Python regular expression the answer must match)",
        ),
        (
            "contains",
            {"keywords": None},
            f"{WHERE}.args.keywords: a value is required "
            "(the words or phrases to look for, one per line; a single word must match whole)",
        ),
        ("format", {"pattern": ""}, f"{WHERE}.args.pattern = '': expected non-empty text"),
        ("format", {"pattern": 5}, f"{WHERE}.args.pattern = 5: expected text"),
        ("format", {"pattern": "x", "dotall": "yes"}, f"{WHERE}.args.dotall = 'yes': expected true or false"),
        (
            "format",
            {"pattern": "x", "match": "prefix"},
            f"{WHERE}.args.match = 'prefix': allowed values are search, full",
        ),
        (
            "format",
            {"pattern": "(\\d+"},
            f"{WHERE}.args.pattern = '(\\\\d+': not a valid regular expression "
            "(missing ), unterminated subpattern at position 0)",
        ),
        ("length", {"target": 0}, f"{WHERE}.args.target = 0: must be at least 1"),
        ("length", {"target": "50"}, f"{WHERE}.args.target = '50': expected an integer"),
        ("length", {"target": 2.5}, f"{WHERE}.args.target = 2.5: expected an integer"),
        ("length", {"target": True}, f"{WHERE}.args.target = True: expected an integer"),
        ("length", {"target": 5, "tolerance": -1}, f"{WHERE}.args.tolerance = -1: must be at least 0"),
        ("length", {"target": 5, "falloff": 0}, f"{WHERE}.args.falloff = 0: must be at least 1"),
        (
            "length",
            {"target": 5, "unit": "lines"},
            f"{WHERE}.args.unit = 'lines': allowed values are words, tokens, characters",
        ),
        ("no_repetition", {"n": 11}, f"{WHERE}.args.n = 11: must be at most 10"),
        ("contains", {"keywords": []}, f"{WHERE}.args.keywords = []: expected at least one text"),
        (
            "contains",
            {"keywords": ["cat", ""]},
            f"{WHERE}.args.keywords = ['cat', '']: expected a list of non-empty texts",
        ),
        ("excludes", {"keywords": 3}, f"{WHERE}.args.keywords = 3: expected a list of non-empty texts"),
        ("json_valid", {"keys": [1]}, f"{WHERE}.args.keys = [1]: expected a list of non-empty texts"),
        (
            "reference_match",
            {"mode": "fuzzy"},
            f"{WHERE}.args.mode = 'fuzzy': allowed values are normalized, exact, last_number, boxed",
        ),
        (
            "reference_match",
            ["answer"],
            f"{WHERE}.args = ['answer']: expected a mapping of argument names to values",
        ),
    ],
)
def test_refused_args_get_one_line_naming_the_key_and_what_is_allowed(name, args, message):
    with refused(message):
        BUILTINS[name].check(args, WHERE)


# ---------------------------------------------------------------- format


def test_format_search_and_full_match():
    args = {"pattern": r"The answer is -?\d+\.$"}
    answers = ["Working... The answer is -12.", "The answer is 12. Done", "", "the answer is 3."]
    assert scores("format", args, answers) == [1.0, 0.0, 0.0, 0.0]
    assert scores("format", {**args, "ignore_case": True}, answers) == [1.0, 0.0, 0.0, 1.0]
    assert scores("format", {**args, "match": "full"}, answers) == [0.0, 0.0, 0.0, 0.0]
    assert scores("format", {"pattern": ".*", "match": "full"}, [""]) == [1.0]


def test_format_dotall_lets_dot_cross_lines():
    answers = ["<think>a\nb</think> 4", "<think>é</think>"]
    assert scores("format", {"pattern": "<think>.*</think>"}, answers) == [1.0, 1.0]
    assert scores("format", {"pattern": "<think>.*</think>", "dotall": False}, answers) == [0.0, 1.0]


# ---------------------------------------------------------------- length


def test_length_band_and_linear_falloff_in_words():
    args = {"target": 10, "tolerance": 2, "falloff": 4}
    answers = [" ".join(["w"] * k) for k in (10, 12, 8, 13, 7, 14, 16, 30)]
    assert scores("length", args, answers) == [1.0, 1.0, 1.0, 0.75, 0.75, 0.5, 0.0, 0.0]


def test_length_falloff_defaults_to_the_target():
    answers = ["", "one two", "one two three", "a b c d e f", "a b c d e f g h i"]
    assert scores("length", {"target": 4}, answers) == [0.0, 0.5, 0.75, 0.5, 0.0]


def test_length_in_characters_counts_unicode_characters():
    assert scores("length", {"target": 5, "unit": "characters", "falloff": 2}, ["héllo", "日本語", "hello!"]) == [
        1.0,
        0.0,
        0.5,
    ]


def test_length_in_tokens_uses_the_given_counter_and_needs_one():
    def count(text):
        return len(text.split(","))

    args = {"target": 4, "unit": "tokens", "falloff": 2}
    assert scores("length", args, ["a,b,c,d", "a b c d", "a,b,c"], count_tokens=count) == [1.0, 0.0, 0.5]
    with pytest.raises(RewardError, match="^length: unit tokens needs the policy's tokenizer$"):
        scores("length", {"target": 3, "unit": "tokens"}, ["a,b,c"])


# ---------------------------------------------------------------- contains and excludes


ANSWERS = [
    "The cat sat by the red fox.",  # both
    "We concatenate strings.",  # "cat" only inside a word: not found
    "CAT!",  # case ignored by default
    "",
    "Le chat a mangé.",  # unicode, neither
    "the red foxes ran",  # a phrase matches as a substring
]


def test_contains_share_any_all_and_word_boundaries():
    keywords = {"keywords": ["cat", "red fox"]}
    assert scores("contains", keywords, ANSWERS) == [1.0, 0.0, 0.5, 0.0, 0.0, 0.5]
    assert scores("contains", {**keywords, "match": "any"}, ANSWERS) == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert scores("contains", {**keywords, "match": "all"}, ANSWERS) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert scores("contains", {**keywords, "case_sensitive": True}, ANSWERS) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.5]
    assert scores("contains", {"keywords": ["mangé", "chat", "a", "x"]}, ANSWERS[4:5]) == [0.75]


def test_excludes_share_any_all():
    keywords = {"keywords": ["cat", "red fox"]}
    assert scores("excludes", keywords, ANSWERS) == [0.0, 1.0, 0.5, 1.0, 1.0, 0.5]
    assert scores("excludes", {**keywords, "match": "any"}, ANSWERS) == [0.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    assert scores("excludes", {**keywords, "match": "all"}, ANSWERS) == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert scores("excludes", {"keywords": ["as an ai", "sorry", "cannot"]}, ["Sorry, as an AI I cannot."]) == [0.0]


# ---------------------------------------------------------------- reference_match


def match(mode: str, answers: list[str], references: list, column: str = "answer") -> list:
    return scores("reference_match", {"column": column, "mode": mode}, answers, {column: references})


def test_reference_match_exact_strips_only_the_ends():
    answers = ["  Paris \n", "paris", "Paris.", "42"]
    assert match("exact", answers, ["Paris", "Paris", "Paris", 42]) == [1.0, 0.0, 0.0, 1.0]


def test_reference_match_normalized():
    answers = [
        "The  Eiffel Tower!",
        "an apple, a pear",
        "It is 3.5 metres.",
        "It is 3 5 metres",
        "-4",
        "Émile",
        "",
        "pages 3-5",
    ]
    references = ["eiffel tower", "apple pear", "it is 3.5 metres", "It is 3.5 metres", "4", "émile", "x", "pages 3 5"]
    assert match("normalized", answers, references) == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]


def test_reference_match_last_number():
    answers = [
        "3 apples and 4 pears make 7.",
        "The total is 1,234.50 dollars",
        "It drops to -3.5 degrees",
        "So x = -3.5 ... wait, 8",
        "no number here",
        "",
        "Answer: 72",
        "pages 3-5",
        "code 1,2345",  # not a thousands grouping: two numbers, 1 and 2345
    ]
    references = [7, "1234.5", -3.5, "-3.5", 1, 1, "She sold 48 + 24 clips.\n#### 72", "5", 2345]
    assert match("last_number", answers, references) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]


def test_reference_match_boxed_takes_the_last_balanced_box():
    answers = [
        r"So \boxed{\frac{1}{2}}.",
        r"First \boxed{3}, then \boxed{ 4 }",
        r"First \boxed{3}, then \boxed{4",  # the last box never closes: the complete one before it counts
        "4",  # no box scores 0
        r"\boxed{The Answer}",
        r"\boxed{x^{2}}",
        r"\boxed{oops \boxed{5}",  # the outer box never closes: the complete one inside it counts
    ]
    references = [r"\frac{1}{2}", "4", "3", "4", "answer", r"\boxed{x^{2}}", "5"]
    assert match("boxed", answers, references) == [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]


def test_reference_match_gives_no_score_without_a_reference():
    assert match("exact", ["a", "b", "c"], [None, "", "c"]) == [None, None, 1.0]
    assert match("last_number", ["1", "2"], [None, 2], column="solution") == [None, 1.0]


def test_reference_match_errors_name_the_column_and_value():
    builtin = BUILTINS["reference_match"]
    args = builtin.check({"column": "solution"}, WHERE)
    with pytest.raises(
        RewardError, match=r"^reference_match: the data has no column 'solution'; its columns are answer, prompt$"
    ):
        builtin.score(["x"], args, {"prompt": ["p"], "answer": ["a"]})
    with pytest.raises(
        RewardError, match=r"^reference_match: the data has no column 'solution'; its columns are none$"
    ):
        builtin.score(["x"], args, {})
    with pytest.raises(
        RewardError, match=r"^reference_match: column 'answer' value 'unknown' holds no number \(mode last_number\)$"
    ):
        match("last_number", ["7"], ["unknown"])


# ---------------------------------------------------------------- json_valid


def test_json_valid_plain_fenced_and_keys():
    answers = [
        '{"name": "Ada", "age": 36}',
        '```json\n{"name": "Ada"}\n```',
        '```\n["a", 1]\n```',
        'Here it is: {"name": 1}',
        "",
        "{'name': 'Ada'}",
        "NaN",
        '  "text"  ',
    ]
    assert scores("json_valid", {}, answers) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert scores("json_valid", {"fenced": False}, answers) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert scores("json_valid", {"keys": ["name", "age"]}, answers) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert scores("json_valid", {"keys": ["name"]}, answers) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]


# ---------------------------------------------------------------- no_repetition


def test_no_repetition_counts_distinct_word_ngrams():
    answers = ["a b c a b c", "A b C a B c", "one two three four", "", "a b", "go go go go go"]
    assert scores("no_repetition", {}, answers) == [0.75, 0.75, 1.0, 1.0, 1.0, 1 / 3]
    assert scores("no_repetition", {"n": 1}, answers) == [0.5, 0.5, 1.0, 1.0, 1.0, 0.2]


def test_every_score_is_a_python_float_in_the_unit_range():
    answers = ["", "The answer is 4.", r"\boxed{4}", '{"a": 1}', "a a a a"]
    for name, args in [
        ("format", {"pattern": r"\d"}),
        ("length", {"target": 3}),
        ("contains", {"keywords": ["answer"]}),
        ("excludes", {"keywords": ["a"]}),
        ("json_valid", {}),
        ("no_repetition", {"n": 2}),
        ("reference_match", {"mode": "last_number"}),
    ]:
        for value in scores(name, args, answers, {"answer": ["4"] * len(answers)}):
            assert type(value) is float and 0.0 <= value <= 1.0, (name, value)
