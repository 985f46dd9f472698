"""The rule-based rewards a run config names as `builtin: NAME` with `args`: each scores a sampled answer from 0 to 1.

    BUILTINS["format"].check({"pattern": r"\\d+$"}, "rewards.sources[0]")  -> the args with defaults filled
    BUILTINS["format"].score(["It is 42"], args, columns={})                -> [1.0]

Each built-in lists its parameters (kind, help line, default, range) for the UI and for `check`, which turns a
wrong value into a one-line ConfigError naming the key. Standard library only, so a config can be checked before
any model is loaded. Tests: `.venv/bin/pytest -q tests/test_reward_builtins.py`.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from studio.errors import ConfigError, RewardError

REQUIRED = object()  # the default of a parameter the config must give

KINDS = ("text", "int", "float", "bool", "texts", "choice")


@dataclass(frozen=True)
class Param:
    """One argument of a built-in: its kind, the help line shown next to its field, its default and allowed values."""

    name: str
    kind: str  # one of KINDS; "texts" is a list of non-empty strings
    help: str
    default: Any = REQUIRED  # None: optional, and the built-in derives the value from the other args
    choices: tuple[str, ...] = ()
    ge: float | None = None
    le: float | None = None


@dataclass(frozen=True)
class Builtin:
    """A named rule: its parameters, the data columns it reads, and how it scores one answer."""

    name: str
    help: str
    params: tuple[Param, ...]
    needs_columns: Callable[[dict], tuple[str, ...]]
    # rule(answer, args, row, count_tokens) -> score; row holds this answer's values of needs_columns(args)
    rule: Callable[[str, dict, dict, Callable[[str], int] | None], float | None]
    # refine(args, where) -> args: checks beyond each value's kind (a valid regex) and values derived from others
    refine: Callable[[dict, str], dict] | None = None

    def check(self, args: dict | None, where: str) -> dict:
        """The args with defaults filled, each value checked; ConfigError names the first one at fault."""
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ConfigError(f"{where}.args = {_show(args)}: expected a mapping of argument names to values")
        names = [p.name for p in self.params]
        for key in args:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                allowed = ", ".join(names)
                raise ConfigError(f"{where}.args: unknown argument {_show(key)}{hint} ({self.name} takes {allowed})")
        checked = {p.name: _check_param(p, args.get(p.name, p.default), f"{where}.args.{p.name}") for p in self.params}
        return self.refine(checked, where) if self.refine else checked

    def score(
        self,
        answers: list[str],
        args: dict,
        columns: dict[str, list],
        count_tokens: Callable[[str], int] | None = None,
    ) -> list[float | None]:
        """One score per answer, from args already checked; columns hold one value per answer for each data column."""
        needed = self.needs_columns(args)
        for col in needed:
            if col not in columns:
                have = ", ".join(sorted(columns)) or "none"
                raise RewardError(f"{self.name}: the data has no column '{col}'; its columns are {have}")
            if len(columns[col]) != len(answers):
                # A caller's bug, not the user's: the rows and answers must pair up one to one.
                raise ValueError(f"column '{col}' has {len(columns[col])} values for {len(answers)} answers")
        scores = []
        for i, answer in enumerate(answers):
            row = {col: columns[col][i] for col in needed}
            value = self.rule(answer, args, row, count_tokens)
            scores.append(None if value is None else float(value))
        return scores


# ---------------------------------------------------------------- checking one argument


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _check_param(param: Param, value: Any, key: str) -> Any:
    if value is REQUIRED or (value is None and param.default is REQUIRED):  # `pattern:` left empty in YAML
        raise ConfigError(f"{key}: a value is required ({param.help})")
    if value is None and param.default is None:
        return None
    kind = param.kind
    if kind == "bool" and not isinstance(value, bool):
        raise ConfigError(f"{key} = {_show(value)}: expected true or false")
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{key} = {_show(value)}: expected an integer")
    if kind == "float":
        value = _as_float(value, key)
    if kind in ("text", "choice") and not isinstance(value, str):
        raise ConfigError(f"{key} = {_show(value)}: expected text")
    if kind == "text" and not value:
        raise ConfigError(f"{key} = '': expected non-empty text")
    if kind == "choice" and value not in param.choices:
        raise ConfigError(f"{key} = {_show(value)}: allowed values are {', '.join(param.choices)}")
    if kind == "texts":
        value = _as_texts(value, key, required=param.default is REQUIRED)
    if param.ge is not None and value < param.ge:
        raise ConfigError(f"{key} = {_show(value)}: must be at least {_show_bound(param.ge)}")
    if param.le is not None and value > param.le:
        raise ConfigError(f"{key} = {_show(value)}: must be at most {_show_bound(param.le)}")
    return value


def _show_bound(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _as_float(value: Any, key: str) -> float:
    if isinstance(value, str):  # YAML reads 1e-3 (no dot) as text
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{key} = {_show(value)}: expected a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} = {_show(value)}: expected a number")
    if not math.isfinite(value):
        raise ConfigError(f"{key} = {value}: expected a finite number")
    return float(value)


def _as_texts(value: Any, key: str, required: bool) -> list[str]:
    if isinstance(value, str):  # a form's text box: one text per line
        value = [line for line in value.splitlines() if line.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{key} = {_show(value)}: expected a list of non-empty texts")
    if required and not value:
        raise ConfigError(f"{key} = []: expected at least one text")
    return list(value)


# ---------------------------------------------------------------- format


def _format_refine(args: dict, where: str) -> dict:
    try:
        re.compile(args["pattern"])
    except re.error as err:
        raise ConfigError(
            f"{where}.args.pattern = {args['pattern']!r}: not a valid regular expression ({err})"
        ) from None
    return args


def _format(answer: str, args: dict, row: dict, count_tokens: Callable | None) -> float:
    flags = (re.DOTALL if args["dotall"] else 0) | (re.IGNORECASE if args["ignore_case"] else 0)
    find = re.fullmatch if args["match"] == "full" else re.search
    return 1.0 if find(args["pattern"], answer, flags) else 0.0


# ---------------------------------------------------------------- length


def _length_refine(args: dict, where: str) -> dict:
    if args["falloff"] is None:  # by default: with no tolerance, 0 at an empty answer and at twice the target
        args = {**args, "falloff": args["target"]}
    return args


def _length(answer: str, args: dict, row: dict, count_tokens: Callable | None) -> float:
    unit = args["unit"]
    if unit == "tokens":
        if count_tokens is None:
            raise RewardError("length: unit tokens needs the policy's tokenizer")
        size = count_tokens(answer)
    else:
        size = len(answer.split()) if unit == "words" else len(answer)
    beyond = abs(size - args["target"]) - args["tolerance"]
    if beyond <= 0:
        return 1.0
    return max(0.0, 1.0 - beyond / args["falloff"])


# ---------------------------------------------------------------- contains and excludes


def _present(keywords: list[str], answer: str, case_sensitive: bool) -> int:
    """How many keywords the answer holds: a word of letters and digits as a whole word, anything else as text."""
    flags = 0 if case_sensitive else re.IGNORECASE
    found = 0
    for keyword in keywords:
        pattern = re.escape(keyword)
        if keyword.isalnum():  # "cat" must not count inside "concatenate"
            pattern = rf"\b{pattern}\b"
        found += bool(re.search(pattern, answer, flags))
    return found


def _contains(answer: str, args: dict, row: dict, count_tokens: Callable | None) -> float:
    keywords = args["keywords"]
    found = _present(keywords, answer, args["case_sensitive"])
    if args["match"] == "any":
        return 1.0 if found else 0.0
    if args["match"] == "all":
        return 1.0 if found == len(keywords) else 0.0
    return found / len(keywords)


def _excludes(answer: str, args: dict, row: dict, count_tokens: Callable | None) -> float:
    keywords = args["keywords"]
    found = _present(keywords, answer, args["case_sensitive"])
    if args["match"] == "any":
        return 0.0 if found else 1.0
    if args["match"] == "all":
        return 0.0 if found == len(keywords) else 1.0
    return (len(keywords) - found) / len(keywords)


# ---------------------------------------------------------------- reference_match

# A number as people write it: optional minus (ASCII or Unicode), thousands commas, decimals.
_NUMBER = re.compile(r"[-\u2212]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?")
_ARTICLES = {"a", "an", "the"}


def _is_punctuation(char: str) -> bool:
    return char in string.punctuation or unicodedata.category(char).startswith("P")


def _normalize(text: str) -> str:
    """Lowercase; punctuation becomes a space, except a sign or separator inside a number; no articles."""
    text = text.lower()
    kept = []
    for i, char in enumerate(text):
        before = text[i - 1] if i else ""
        after = text[i + 1] if i + 1 < len(text) else ""
        in_number = (char in ".," and before.isdigit() and after.isdigit()) or (
            char == "-" and after.isdigit() and not before.isalnum()
        )
        kept.append(" " if _is_punctuation(char) and not in_number else char)
    return " ".join(word for word in "".join(kept).split() if word not in _ARTICLES)


def _last_number(text: str) -> float | None:
    numbers = list(_NUMBER.finditer(text))
    if not numbers:
        return None
    found = numbers[-1]
    digits = found.group().replace(",", "").replace("\u2212", "-")
    if digits.startswith("-") and found.start() and text[found.start() - 1].isalnum():
        digits = digits[1:]  # "pages 3-5": a hyphen between two numbers is not a minus sign
    return float(digits)


def _last_boxed(text: str) -> str | None:
    """The content of the last complete \\boxed{...}, its own braces balanced (an outer box wins over one inside)."""
    content, start = None, 0
    while (begin := text.find("\\boxed{", start)) != -1:
        depth, end = 0, None
        for i in range(begin + len("\\boxed"), len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                end = i
                break
        if end is None:  # never closed: a complete box may still sit inside it
            start = begin + 1
            continue
        content, start = text[begin + len("\\boxed{") : end], end + 1
    return content


def _reference_number(value: Any, column: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    number = _last_number(str(value))
    if number is None:
        raise RewardError(f"reference_match: column '{column}' value {_show(value)} holds no number (mode last_number)")
    return number


def _reference_match(answer: str, args: dict, row: dict, count_tokens: Callable | None) -> float | None:
    column, mode = args["column"], args["mode"]
    reference = row[column]
    if reference is None or str(reference).strip() == "":
        return None  # no reference for this row: nothing to compare with
    if mode == "exact":
        return 1.0 if answer.strip() == str(reference).strip() else 0.0
    if mode == "normalized":
        return 1.0 if _normalize(answer) == _normalize(str(reference)) else 0.0
    if mode == "last_number":
        expected = _reference_number(reference, column)
        got = _last_number(answer)
        return 1.0 if got is not None and math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12) else 0.0
    boxed = _last_boxed(answer)
    if boxed is None:
        return 0.0
    expected = _last_boxed(str(reference))
    return 1.0 if _normalize(boxed) == _normalize(str(reference) if expected is None else expected) else 0.0


# ---------------------------------------------------------------- json_valid

_FENCE = re.compile(r"```(?:json)?[ \t]*\n?(.*?)\n?[ \t]*```", re.DOTALL | re.IGNORECASE)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _json_valid(answer: str, args: dict, row: dict, count_tokens: Callable | None) -> float:
    text = answer
    if args["fenced"] and (fence := _FENCE.fullmatch(answer.strip())):
        text = fence.group(1)
    try:
        # Python's parser also takes NaN and Infinity; JSON does not.
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return 0.0
    keys = args["keys"]
    if keys and not (isinstance(value, dict) and all(key in value for key in keys)):
        return 0.0
    return 1.0


# ---------------------------------------------------------------- no_repetition


def _no_repetition(answer: str, args: dict, row: dict, count_tokens: Callable | None) -> float:
    n, words = args["n"], answer.lower().split()
    if len(words) < n:
        return 1.0
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams)


# ---------------------------------------------------------------- the table


def _no_columns(args: dict) -> tuple[str, ...]:
    return ()


_KEYWORD_PARAMS = (
    Param("keywords", "texts", "the words or phrases to look for, one per line; a single word must match whole"),
    Param(
        "match",
        "choice",
        "share: the fraction of keywords present; any: one is enough; all: every keyword must be present",
        "share",
        ("share", "any", "all"),
    ),
    Param("case_sensitive", "bool", "tell upper and lower case apart", False),
)

_LIST: tuple[Builtin, ...] = (
    Builtin(
        name="format",
        help="1 when the answer matches the regular expression `pattern`, 0 when it does not.",
        params=(
            Param("pattern", "text", "a Python regular expression the answer must match"),
            Param(
                "match",
                "choice",
                "search: the pattern may match anywhere in the answer; full: it must match the whole answer",
                "search",
                ("search", "full"),
            ),
            Param("dotall", "bool", "let . match newlines too", True),
            Param("ignore_case", "bool", "match upper and lower case alike", False),
        ),
        needs_columns=_no_columns,
        rule=_format,
        refine=_format_refine,
    ),
    Builtin(
        name="length",
        help="1 when the answer's length is within `tolerance` of `target`; beyond that the score falls linearly "
        "and reaches 0 at `falloff` units outside the band.",
        params=(
            Param("target", "int", "the length to aim for, in units", ge=1),
            Param(
                "unit",
                "choice",
                "what to count: words (split on whitespace), the policy's tokens, or characters",
                "words",
                ("words", "tokens", "characters"),
            ),
            Param("tolerance", "int", "how far from the target a length still scores 1", 0, ge=0),
            Param(
                "falloff",
                "int",
                "units beyond the tolerance over which the score falls to 0 (default: target)",
                None,
                ge=1,
            ),
        ),
        needs_columns=_no_columns,
        rule=_length,
        refine=_length_refine,
    ),
    Builtin(
        name="contains",
        help="The share of `keywords` the answer holds (or 1/0 with match any or all); "
        "a single word counts only as a whole word.",
        params=_KEYWORD_PARAMS,
        needs_columns=_no_columns,
        rule=_contains,
    ),
    Builtin(
        name="excludes",
        help="1 when the answer holds none of `keywords`, less the share it holds (with match any, 0 if any is "
        "present; with all, 0 only if all are); a single word counts only as a whole word.",
        params=_KEYWORD_PARAMS,
        needs_columns=_no_columns,
        rule=_excludes,
    ),
    Builtin(
        name="reference_match",
        help="1 when the answer agrees with the reference answer in the data column `column`, 0 when it does not; "
        "rows with an empty reference get no score.",
        params=(
            Param("column", "text", "the data column holding each prompt's reference answer", "answer"),
            Param(
                "mode",
                "choice",
                "normalized: same words ignoring case, punctuation and a/an/the; exact: same text; "
                "last_number: same last number; boxed: same \\boxed{...} content",
                "normalized",
                ("normalized", "exact", "last_number", "boxed"),
            ),
        ),
        needs_columns=lambda args: (args.get("column", "answer"),),
        rule=_reference_match,
    ),
    Builtin(
        name="json_valid",
        help="1 when the answer is valid JSON (an object holding every name in `keys`, when keys are given), "
        "0 when it is not.",
        params=(
            Param("keys", "texts", "names the JSON object must hold, one per line; none: any JSON value will do", ()),
            Param("fenced", "bool", "also accept the JSON inside a ``` or ```json code fence", True),
        ),
        needs_columns=_no_columns,
        rule=_json_valid,
    ),
    Builtin(
        name="no_repetition",
        help="The share of the answer's word n-grams that are distinct: 1 when nothing repeats, near 0 when "
        "the answer loops; answers shorter than n words score 1.",
        params=(Param("n", "int", "words per n-gram (case is ignored)", 3, ge=1, le=10),),
        needs_columns=_no_columns,
        rule=_no_repetition,
    ),
)

BUILTINS: dict[str, Builtin] = {b.name: b for b in _LIST}


def get(name: str, where: str) -> Builtin:
    """The built-in called `name`; ConfigError at `where` lists the built-ins and the closest name."""
    if isinstance(name, str) and name in BUILTINS:
        return BUILTINS[name]
    close = difflib.get_close_matches(str(name), list(BUILTINS), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"{where}: unknown built-in reward {_show(name)}; built-ins are {', '.join(BUILTINS)}{hint}")
