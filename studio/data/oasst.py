"""OpenAssistant oasst1 (OpenAssistant/oasst1) -> SFT rows and preference pairs.

Raw rows are single messages of conversation trees: message_id, parent_id (null for the first message),
user_id, created_date, text, role (prompter or assistant), lang, review_count, review_result, deleted,
rank (null, or 0 for the best-ranked reply among its siblings, 1 for the next, ...), synthetic, model_name,
detoxify, message_tree_id, tree_state, emojis, labels. A message's row can only be read with the rest of
its tree, so this source has convert_rows rather than convert, and the order of rows in a file is free.

- Deleted messages and those that failed review (review_result false) are left out with every reply
  below them; that is not a problem with the data.
- `data.languages` keeps the trees whose first message is in one of those languages (empty keeps all).
- Roles: prompter -> user, assistant -> assistant.
- sft: one row per tree, along the best-ranked path: at each turn the reply with the lowest rank (unranked
  replies after ranked ones; ties by created_date, then message_id). A prompter turn left at the end is
  dropped; the last assistant turn is the completion and everything before it the prompt.
- preference: every prompter turn with at least two ranked assistant replies gives one pair per reply
  ranked below the best one (chosen = the best, rejected = the lower one), ordered by the rejected rank.
  The prompt is the conversation from the first message down to and including that prompter turn.
  "margin" = rejected rank - chosen rank, as a float, for margin losses (reward modelling, DPO variants):
  best against fourth is a clearer preference than best against second.

Problems are reported once, on the row of the message at fault, and the replies below it are left out
without further report: a message_id missing or repeated, a parent_id that no row has (or a loop of
replies), a role other than prompter or assistant (or one that does not take turns: a conversation opens
with a prompter message and the roles alternate), empty or non-text text, a rank that is not a number.
Messages in trees that the language filter leaves out are not checked, beyond the message_id and parent_id
every row needs to be placed in a tree.

Rows come out tree by tree, in the order of the trees' first messages in the input, with each problem at
the position of its own row. A canonical row's number is that of the message that ends it (the completion,
or the rejected reply), so a later message about it (too long, say) points at one message.

    load(DataSpec(source="oasst", path="sample", languages=["en", "de"]), "preference")
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from studio.data.fields import RowProblem, text

HUB_ID = "OpenAssistant/oasst1"
KEEPS_COLUMNS = False  # a row is a path through a message tree, not one raw row
ROLES = {"prompter": "user", "assistant": "assistant"}  # oasst role -> chat role
SFT, PREFERENCE = "sft", "preference"


@dataclass(eq=False)
class Message:
    number: int  # 1-based position of its row in the input
    row: dict
    message_id: str
    parent_id: str | None
    children: list[Message] = field(default_factory=list)  # every row that names it as parent
    replies: list[Message] = field(default_factory=list)  # the children that passed the checks
    role: str = ""
    content: str = ""
    rank: float | None = None


def convert_rows(rows, spec, fmt: str):
    """(row number, canonical row or RowProblem) for every tree and every message at fault, in input order."""
    if fmt not in (SFT, PREFERENCE):
        raise ValueError(f"oasst gives sft or preference rows, not {fmt!r}")
    by_id, problems = _index(rows)
    roots, orphans = [], []
    for message in by_id.values():
        if message.parent_id is None:
            roots.append(message)
        elif message.parent_id in by_id:
            by_id[message.parent_id].children.append(message)
        else:
            orphans.append(message)

    results = []  # (position, row number, item): a tree's rows sit at its first message's row
    for root in roots:
        if not _language_kept(root.row, spec) or not _accept(root, None, problems):
            continue
        _grow(root, problems)
        for number, row in _rows_of(root, fmt):
            results.append((root.number, number, row))
    for message in orphans:
        _report_unplaced(message, spec, problems, RowProblem("parent_id", "parent message not found"))
    for message in _in_loops(by_id, roots + orphans):
        _report_unplaced(
            message, spec, problems, RowProblem("parent_id", "replies form a loop with no first message above them")
        )
    results.extend((number, number, problem) for number, problem in problems.items())
    results.sort(key=lambda item: item[0])  # stable: a tree's rows keep their order
    for _, number, item in results:
        yield number, item


# ---------------------------------------------------------------- building and checking trees


def _index(rows) -> tuple[dict[str, Message], dict[int, RowProblem]]:
    by_id, problems = {}, {}
    for number, row in enumerate(rows, start=1):
        try:
            message_id = text(row, "message_id")
            parent_id = text(row, "parent_id", required=False) or None  # null, or "" from a CSV
        except RowProblem as problem:
            problems[number] = problem
            continue
        if message_id in by_id:
            problems[number] = RowProblem("message_id", f"repeats the message_id of row {by_id[message_id].number}")
            continue
        by_id[message_id] = Message(number, row, message_id, parent_id)
    return by_id, problems


def _grow(root: Message, problems: dict) -> None:
    """Check every message below root, top down, linking the usable ones as replies."""
    stack = [root]
    while stack:  # a loop rather than recursion: a file may hold arbitrarily deep chains
        message = stack.pop()
        for child in message.children:
            if _accept(child, message.role, problems):
                message.replies.append(child)
                stack.append(child)


def _accept(message: Message, parent_role: str | None, problems: dict) -> bool:
    """Whether the message is usable; a message at fault is recorded in problems."""
    row = message.row
    try:
        if _left_out(row):
            return False
        role = text(row, "role")
        if role not in ROLES:
            raise RowProblem("role", f"expected prompter or assistant, got {role!r}")
        if parent_role is None and role != "prompter":
            raise RowProblem("role", "a conversation must open with a prompter message")
        if role == parent_role:
            raise RowProblem("role", f"a {role} message replies to another {role} message")
        message.content = text(row, "text")
        message.rank = _rank(row)
    except RowProblem as problem:
        problems[message.number] = problem
        return False
    message.role = role
    return True


def _left_out(row: dict) -> bool:
    """Deleted, or failed review: left out with its replies, and not a problem."""
    return _flag(row, "deleted") is True or _flag(row, "review_result") is False


def _flag(row: dict, column: str) -> bool | None:
    value = row.get(column)
    if value is None or isinstance(value, bool):
        return value
    raise RowProblem(column, f"expected true, false or null, got {type(value).__name__}")


def _rank(row: dict) -> float | None:
    value = row.get("rank")
    if value is None or (isinstance(value, float) and math.isnan(value)):  # NaN: a null from pandas
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowProblem("rank", f"expected a number or null, got {type(value).__name__}")
    return value


def _language_kept(row: dict, spec) -> bool:
    languages = {language.lower() for language in (spec.languages or [])}
    lang = row.get("lang")
    return not languages or (isinstance(lang, str) and lang.strip().lower() in languages)


def _report_unplaced(message: Message, spec, problems: dict, problem: RowProblem) -> None:
    """A message with no first message above it; its own language stands in for its tree's."""
    try:
        if _left_out(message.row) or not _language_kept(message.row, spec):
            return
    except RowProblem as flag_problem:
        problem = flag_problem
    problems[message.number] = problem


def _in_loops(by_id: dict[str, Message], starts: list[Message]) -> list[Message]:
    """The messages whose chain of parents goes round in a circle (never reaching a first message)."""
    reached, stack = set(), list(starts)
    while stack:
        message = stack.pop()
        reached.add(message.message_id)
        stack.extend(message.children)
    looped = []
    for message in by_id.values():
        if message.message_id in reached:
            continue
        seen, current = set(), by_id.get(message.parent_id)
        while current is not None and current.message_id not in seen and current is not message:
            seen.add(current.message_id)
            current = by_id.get(current.parent_id)
        if current is message:  # on the loop itself, not a reply hanging below it
            looped.append(message)
    return looped


# ---------------------------------------------------------------- canonical rows


def _order(message: Message) -> tuple:
    """Best first: ranked before unranked, lower rank, earlier, then by id so the order is fixed."""
    unranked = message.rank is None
    return unranked, 0 if unranked else message.rank, str(message.row.get("created_date") or ""), message.message_id


def _chat(message: Message) -> dict:
    return {"role": ROLES[message.role], "content": message.content}


def _rows_of(root: Message, fmt: str) -> list[tuple[int, dict]]:
    """(row number of the message that ends the example, canonical row) for one checked tree."""
    return _best_path_row(root) if fmt == SFT else _preference_pairs(root)


def _best_path_row(root: Message) -> list[tuple[int, dict]]:
    path = [root]
    while path[-1].replies:
        path.append(min(path[-1].replies, key=_order))
    if path[-1].role == "prompter":
        path.pop()
    if not path or path[-1].role != "assistant":
        return []  # a prompt nobody answered
    return [(path[-1].number, {"prompt": [_chat(m) for m in path[:-1]], "completion": [_chat(path[-1])]})]


def _preference_pairs(root: Message) -> list[tuple[int, dict]]:
    pairs = []
    stack = [(root, ())]
    while stack:  # depth first, best-ranked replies first
        message, above = stack.pop()
        conversation = above + (message,)
        if message.role == "prompter":
            ranked = sorted((r for r in message.replies if r.role == "assistant" and r.rank is not None), key=_order)
            for worse in ranked[1:]:
                if worse.rank > ranked[0].rank:  # an equal rank states no preference
                    pairs.append(
                        (
                            worse.number,
                            {
                                "prompt": [_chat(m) for m in conversation],
                                "chosen": [_chat(ranked[0])],
                                "rejected": [_chat(worse)],
                                "margin": float(worse.rank - ranked[0].rank),
                            },
                        )
                    )
        for reply in sorted(message.replies, key=_order, reverse=True):
            stack.append((reply, conversation))
    return pairs
