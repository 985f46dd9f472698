"""The next pair (or ranking) to vote on, made while the person reads the current one: one session's queue with one
item ahead, for the Compare tab's Vote view (components/vote_view.py).

    queue = VoteQueue()
    plan = Plan("helpful-v1", ("base (tiny)", run_id), PAIR, settings=GenerationSpec())
    item = queue.next(plan)          # the item to show; the one after it starts generating in a background thread
    item.shown.answers, item.note    # a BlindPair (or BlindRanking), and where its prompt came from
    queue.next(plan)                 # at once when the item ahead is ready; a failed one raises its error here
    queue.next(other_plan)           # models, set, mode, K, settings or prompts changed: the item ahead is dropped

Prompts, in this order: the typed ones of the plan, in turn; else the set's (studio/data/votes/sets.py): held-out
prompts of its prompts_from run, each not shown yet this session while there are any, or its typed prompts in turn;
else held-out prompts of the first run among the plan's models. Each item samples with its own seed: the settings'
seed plus the set's vote-log length when the plan started plus the item's number, so a prompt drawn again (later in
the session, or in another session) gets new answers rather than a pair already voted on.

Generation shares studio.serve.generate.shared()'s lock with every tab, so the item ahead waits while another tab
generates, never the other way round for longer than one item. A dropped item cannot be interrupted mid-generation;
it finishes and is thrown away.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

from studio.config import GenerationSpec
from studio.data.votes import records, sets
from studio.errors import StudioError
from studio.serve import compare, generate, voting

PAIR, RANK = "pair", "rank"
MODES = (PAIR, RANK)


@dataclass(frozen=True)
class Plan:
    """Everything that decides the items: when any part changes, the item made ahead is dropped."""

    set_name: str
    models: tuple[str, ...]  # answering-model keys (generate.answering_models)
    mode: str = PAIR
    k: int = 4  # answers per ranking (RANK)
    settings: GenerationSpec = field(default_factory=GenerationSpec)
    typed: tuple[str, ...] = ()  # typed prompts, drawn in turn; empty: the set's

    def check(self) -> Plan:
        """The plan, or a one-line StudioError naming what to change."""
        sets.load(self.set_name)
        if self.mode not in MODES:
            raise StudioError(f"vote mode {self.mode!r}: pick {' or '.join(MODES)}")
        if len(set(self.models)) != len(self.models):
            raise StudioError("the same model is picked twice; pick each model once")
        if self.mode == PAIR and len(self.models) != 2:
            raise StudioError(f"pick two models to vote between ({len(self.models)} picked)")
        if self.mode == RANK:
            if self.k not in records.RANK_SIZES:
                sizes = records.RANK_SIZES
                raise StudioError(f"rank {self.k} answers: pick {sizes[0]} to {sizes[-1]}")
            if not self.models:
                raise StudioError("pick at least one model to rank the answers of")
            if len(self.models) > self.k:
                raise StudioError(f"{len(self.models)} models for {self.k} answers: pick at most {self.k} models")
        return self


@dataclass
class Item:
    plan: Plan
    number: int  # 0 for the plan's first item
    shown: voting.BlindPair | voting.BlindRanking
    note: str  # where the prompt came from, in words
    seed: int


@dataclass
class _Slot:
    """One item being made: filled by the thread that makes it, read by next()."""

    plan: Plan
    epoch: int
    number: int
    seed: int
    done: threading.Event = field(default_factory=threading.Event)
    item: Item | None = None
    error: BaseException | None = None


class VoteQueue:
    """One session's items, one made ahead in a background thread. Thread-safe."""

    def __init__(self, generator: generate.Generator | None = None):
        self._lock = threading.Lock()
        self._generator = generator
        self._plan: Plan | None = None
        self._epoch = 0  # bumped on every plan change: a slot of an older epoch is thrown away
        self._made = 0  # items started for this plan
        self._seed_base = 0
        self._shown: list[str] = []  # prompt texts drawn for this plan (held-out draws avoid them)
        self._ahead: _Slot | None = None

    def next(self, plan: Plan, ahead: bool = True) -> Item:
        """The item to show now: the one made ahead when it was made for this plan (waiting for it if it is still
        generating), else one made now. Then, with `ahead`, the item after it starts in the background. A failure of
        the item ahead is raised here, once; the next call makes a new one."""
        plan = plan.check()
        with self._lock:
            if plan != self._plan:
                self._reset(plan)
            slot, self._ahead = self._ahead, None
            if slot is None:
                slot = self._new_slot()
                made_here = True
            else:
                made_here = False
        if made_here:
            self._fill(slot)
        slot.done.wait()
        if slot.error is not None:
            raise slot.error
        if ahead:
            self.prefetch()
        return slot.item

    def prefetch(self) -> None:
        """Start making the item after the current one, unless one is ahead already (next() calls this)."""
        with self._lock:
            if self._plan is None or self._ahead is not None:
                return
            slot = self._ahead = self._new_slot()
        threading.Thread(target=self._fill, args=(slot,), name="vote-ahead", daemon=True).start()

    def ready(self) -> bool:
        """Whether an item is waiting, made (or failed), for the current plan."""
        with self._lock:
            return self._ahead is not None and self._ahead.done.is_set()

    def cancel(self) -> None:
        """Drop the plan and the item ahead (the session ended)."""
        with self._lock:
            self._epoch += 1
            self._plan, self._ahead = None, None

    # ---------------------------------------------------------------- under the lock

    def _reset(self, plan: Plan) -> None:
        self._epoch += 1
        self._plan, self._ahead, self._made, self._shown = plan, None, 0, []
        self._seed_base = len(sets.read_lines(sets.load(plan.set_name).votes_path))

    def _new_slot(self) -> _Slot:
        number = self._made
        self._made += 1
        return _Slot(self._plan, self._epoch, number, self._plan.settings.seed + self._seed_base + number)

    # ---------------------------------------------------------------- making one item

    def _fill(self, slot: _Slot) -> None:
        try:
            with self._lock:
                shown = list(self._shown)
            prompt, note, started_over = draw(slot.plan, slot.number, shown)
            with self._lock:
                if slot.epoch == self._epoch:
                    text = compare.prompt_text(prompt)
                    self._shown = [text] if started_over else [*self._shown, text]
            slot.item = self._make(slot, prompt, note)
        except BaseException as err:  # raised again by next(), in the thread that shows it
            slot.error = err
        finally:
            slot.done.set()

    def _make(self, slot: _Slot, prompt: list[dict], note: str) -> Item:
        plan = slot.plan
        settings = replace(plan.settings, seed=slot.seed)
        targets = [generate.target_for(m) for m in plan.models]
        if plan.mode == PAIR:
            shown = voting.blind_pair(prompt, targets[0], targets[1], settings, self._generator)
        else:
            shown = voting.blind_ranking(prompt, targets, plan.k, settings, self._generator)
        return Item(plan=plan, number=slot.number, shown=shown, note=note, seed=slot.seed)


def _is_base(key: str) -> bool:
    return key.startswith("base (")


def draw(plan: Plan, number: int, shown: list[str]) -> tuple[list[dict], str, bool]:
    """(prompt messages, where it came from in words, whether every held-out prompt had been shown) of the plan's
    item `number`; `shown` are the prompt texts drawn before (a held-out draw avoids them while it can)."""
    if plan.typed:
        i = number % len(plan.typed)
        return compare.as_messages(plan.typed[i]), f"typed prompt {i + 1} of {len(plan.typed)}", False
    vote_set = sets.load(plan.set_name)
    run_id = vote_set.prompts_from
    if not run_id and vote_set.prompts:
        i = number % len(vote_set.prompts)
        return (
            compare.as_messages(vote_set.prompts[i]),
            f"prompt {i + 1} of {len(vote_set.prompts)} of the set {vote_set.name!r}",
            False,
        )
    origin = "set's"
    if not run_id:
        run_id = next((m for m in plan.models if not _is_base(m)), None)
        origin = "picked"
        if run_id is None:
            raise StudioError(
                f"the vote set {vote_set.name!r} names no prompts and only base models are picked: type prompts, or "
                "pick a run, whose held-out prompts are drawn"
            )
    prompt, started_over = compare.next_held_out_prompt(run_id, shown)
    again = "; every one was shown this session, starting over" if started_over else ""
    return prompt, f"a held-out prompt of the {origin} run {run_id}{again}", started_over
