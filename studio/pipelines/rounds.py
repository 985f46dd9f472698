"""The next round, as Llama 2 ran RLHF-V1 to V5: train on a vote set's votes so far, starting from the newest policy.

    plan("helpful-v1", "ppo")               # the checked pipeline the next round would run; nothing is written
    start("helpful-v1", "ppo")              # "Train on these votes": the round in its own OS process
    run("helpful-v1", "rejection", ["stages.rm.train.max_steps=40"])   # the same in the foreground, lines to on_line
    rounds("helpful-v1")                    # RLHF-V1, V2, ...: lineage, state, win rates against the round before
    voting_models(sets.load("helpful-v1"))  # what the next votes sample from: the newest policy and the one before
    python -m studio.pipelines.rounds SET VERSION    # the process `start` launches

A round
1. copies the set's votes.jsonl as it is now into <set>/rounds/V<n>/votes.jsonl: training reads that copy, so votes
   cast while the round trains wait for the next one;
2. runs a recorded pipeline (studio/pipelines/runner.py) of two stages, both started from the current policy (a run's
   weights, or a base model): `rm`, a reward model on the copy (Llama 2's margin loss when any vote is graded), then
   `ppo` or `rejection` scored by it, on the prompts of the same copy;
3. answers the new policy's held-out prompts with the new and the previous policy (and their base model), scored by
   the round's reward model, into <set>/rounds/V<n>/compare.json; and measures the new policy's win rate against
   the previous one with each judge the set names (VoteSet.judges), or, when it names none, with the round's own
   reward model, keyed as the reward the round trained against (it rises with training, so it is no independent
   check).

Overrides are --set style: `KEY=VALUE` applies to both stages, `stages.rm.KEY=VALUE` or `stages.ppo.KEY=VALUE` to one.

<home>/votes/<set>/rounds.jsonl holds the rounds, one line per change (append-only; a later line of a version
updates it). A round reads "running" until its process records the end; its pipeline's failure or cancellation, or
its process gone without a word, is read as the round's end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from studio import config as cfg
from studio.data.votes import records, sets
from studio.errors import StudioError
from studio.eval import judges
from studio.paths import PACKAGE
from studio.pipelines import recipe, runner
from studio.pipelines.recipe import Pipeline
from studio.runs import folder, manager, process
from studio.runs.status import State

log = logging.getLogger(__name__)

STAGES = cfg.ROUND_STAGES  # how a round trains its policy against the round's reward model
MIN_PAIRS = 4  # fewer training pairs teach a reward model nothing and leave none to hold out
HELD_OUT_SHARE = 0.1  # of each stage's rows: the reward model's accuracy, and the prompts the compare answers
COMPARE_PROMPTS = 32  # held-out prompts the new and the previous policy answer, at most
RM_STAGE = "rm"
WIN_RATE_KEYS = ("win_rate", "ci_low", "ci_high", "wins", "ties", "losses", "n", "path")  # of each judge's entry
ROUNDS_FILE = "rounds.jsonl"
RUNNING, COMPLETED = State.RUNNING.value, State.COMPLETED.value  # a round's states are a run's words
FAILED, CANCELLED = State.FAILED.value, State.CANCELLED.value

Say = Callable[[str], object]


@dataclass
class Round:
    """One round of a vote set: a line of rounds.jsonl."""

    version: int  # 1, 2, ...
    stage: str  # "ppo" | "rejection"
    pipeline_id: str
    started: float
    votes: int  # live votes in the set when the round started
    pairs: int  # training pairs they gave
    previous_policy: str  # the policy it started from: a run id, or a base model key like "base (tiny)"
    reward_run: str | None = None
    policy_run: str | None = None
    state: str = RUNNING  # running | completed | failed | cancelled
    win_rate: dict | None = None  # judge -> {win_rate, ci_low, ci_high, wins, ties, losses, n, ...} vs the round before
    comparison: str | None = None  # compare.json: the new policy, the previous one and their base, side by side
    error: str | None = None
    pid: int | None = None  # the process that runs the round (None until it is launched)
    pid_started: float | None = None  # that process's start time, so a reused pid is not taken for it

    @property
    def label(self) -> str:
        return f"RLHF-V{self.version}"


# ---------------------------------------------------------------- where a round lives


def round_folder(vote_set: sets.VoteSet, version: int) -> Path:
    return vote_set.folder / "rounds" / f"V{version}"


def _rounds_path(vote_set: sets.VoteSet) -> Path:
    return vote_set.folder / ROUNDS_FILE


def _record(vote_set: sets.VoteSet, round_: Round) -> Round:
    """Append the round's current state (flushed: a crash loses at most the line being written)."""
    with open(_rounds_path(vote_set), "a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(round_), ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return round_


def _read(vote_set: sets.VoteSet) -> list[Round]:
    """The rounds as recorded, oldest first: each version's lines merged in order. A line that is not a round (cut off
    by a crash, edited by hand) is named in the log and skipped."""
    path = _rounds_path(vote_set)
    if not path.is_file():
        return []
    known = {f.name for f in fields(Round)}
    merged: dict[int, dict] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            version = int(raw["version"])
        except (ValueError, TypeError, KeyError):
            log.warning("%s line %d: not a round; skipped", path, number)
            continue
        merged[version] = merged.get(version, {}) | {k: v for k, v in raw.items() if k in known}
    found = []
    for version, raw in sorted(merged.items()):
        try:
            found.append(Round(**raw))
        except TypeError:
            log.warning("%s: round %d lacks a field; skipped", path, version)
    return found


def rounds(set_name: str) -> list[Round]:
    """The set's rounds, oldest first, each running one's state read again from its pipeline and its process."""
    vote_set = sets.load(set_name)
    return [_refreshed(vote_set, r) for r in _read(vote_set)]


def _refreshed(vote_set: sets.VoteSet, round_: Round) -> Round:
    """A running round with its stages' run ids, ended (and the end recorded) when its pipeline failed or was
    cancelled or its process is gone."""
    if round_.state != RUNNING:
        return round_
    record = runner.PipelineRecord.of(round_.pipeline_id)
    if not record.state_path.is_file():
        return _record(vote_set, replace(round_, state=FAILED, error=f"its pipeline {round_.pipeline_id} is gone"))
    pipeline = runner.status(record)
    round_ = _with_runs(round_, pipeline)
    if pipeline["state"] in (FAILED, CANCELLED):
        return _record(vote_set, replace(round_, state=pipeline["state"], error=pipeline.get("error")))
    if round_.pid is None or process.is_alive(round_.pid, round_.pid_started):
        return round_
    # Its process may have recorded the end between the two reads: read again before calling it gone.
    again = next(r for r in _read(vote_set) if r.version == round_.version)
    if again.state != RUNNING:
        return again
    log_path = round_folder(vote_set, round_.version) / "round.log"
    return _record(
        vote_set, replace(round_, state=FAILED, error=f"its process ended without recording the end; see {log_path}")
    )


def _with_runs(round_: Round, pipeline: dict) -> Round:
    ids = {s["name"]: s.get("run_id") for s in pipeline.get("stages", [])}
    return replace(
        round_,
        reward_run=ids.get(RM_STAGE) or round_.reward_run,
        policy_run=ids.get(round_.stage) or round_.policy_run,
    )


# ---------------------------------------------------------------- lineage


def _completed(vote_set: sets.VoteSet) -> list[Round]:
    return [r for r in rounds(vote_set.name) if r.state == COMPLETED and r.policy_run]


def _base_model(key: str) -> str | None:
    """The model name in a base model key ("base (tiny)" -> "tiny"), or None for a run id."""
    return key[len("base (") : -1] if key.startswith("base (") and key.endswith(")") else None


def current_policy(vote_set: sets.VoteSet) -> str:
    """What the next round starts from: the newest completed round's policy, else the set's policy run, else the
    first base model among the models it votes on."""
    done = _completed(vote_set)
    if done:
        return done[-1].policy_run
    if vote_set.policy:
        return vote_set.policy
    base = next((m for m in vote_set.models if _base_model(m)), None)
    if base is None:
        raise StudioError(
            f"vote set {vote_set.name!r} names no policy to train from: set its policy (a completed run) or add a "
            "base model to its models"
        )
    return base


def voting_models(vote_set: sets.VoteSet) -> list[str]:
    """The answering models the next votes sample from: the set's models until a round completes, then the newest
    round's policy and the policy it started from (Llama 2 sampled each batch from the newest models)."""
    done = _completed(vote_set)
    if not done:
        return list(vote_set.models)
    return [done[-1].policy_run, done[-1].previous_policy]


# ---------------------------------------------------------------- the pipeline


def _check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise StudioError(f"stage {stage!r}: a round trains its policy with {' or '.join(STAGES)}")
    return stage


def _check_pairs(vote_set: sets.VoteSet, summary: sets.Summary) -> None:
    if summary.pairs < MIN_PAIRS:
        raise StudioError(
            f"vote set {vote_set.name!r} has {summary.pairs} training pair{'' if summary.pairs == 1 else 's'} "
            f"(from {summary.votes} votes); a round needs at least {MIN_PAIRS}: vote on more pairs (ties and "
            '"both bad" give none)'
        )


def _graded(votes: list[dict]) -> bool:
    return any(records.kind(v) == records.PAIR and v.get("grade") for v in votes)


def _start_from(policy: str) -> dict:
    """The model and init keys of a stage that starts from `policy`: a completed run's weights (and its base model),
    or a base model."""
    name = _base_model(policy)
    if name is not None:
        return {"model": {"name": name}}
    run = manager.open_run(policy).require_completed("run can be trained from", subject=f"the policy run {policy!r}")
    if run.config.stage not in cfg.GENERATING_STAGES:
        raise StudioError(
            f"the policy run {policy!r} is a {run.config.stage} run, which writes no answers; name a policy run "
            f"({', '.join(cfg.GENERATING_STAGES)})"
        )
    return {"model": {"name": run.config.model.name}, "init": {"from_run": run.id}}


def _pipeline(
    vote_set: sets.VoteSet,
    version: int,
    stage: str,
    policy: str,
    votes_path: Path,
    graded: bool,
    overrides: list[str] | None,
) -> Pipeline:
    """The round's two stages from `policy` on the votes file, --set overrides applied, every stage checked."""
    start_from = _start_from(policy)
    data = {
        "source": "votes",
        "path": str(votes_path),
        "eval_fraction": HELD_OUT_SHARE,
        "votes": {"set": vote_set.name},
    }
    raw = {
        "pipeline": f"{vote_set.name}-rlhf-v{version}",
        "stages": [
            {"name": RM_STAGE, "stage": "reward", **start_from, "data": data, "reward": {"use_margin": graded}},
            {"name": stage, "stage": stage, "rewards_from": RM_STAGE, **start_from, "data": data},
        ],
    }
    pipeline = recipe.from_dict(raw, overrides)
    policy_stage = pipeline.stages[-1].config
    if policy_stage.data.eval_fraction <= 0:
        raise StudioError(
            f"stages.{stage}.data.eval_fraction = {policy_stage.data.eval_fraction}: the round compares the new "
            "policy with the previous one on prompts it held out of training; give a share above 0"
        )
    return pipeline


def _next_version(vote_set: sets.VoteSet) -> int:
    return max((r.version for r in _read(vote_set)), default=0) + 1


def plan(set_name: str, stage: str, overrides: list[str] | None = None) -> Pipeline:
    """The checked pipeline the set's next round would run on its votes now; refuses a set with too few pairs, a
    stage other than ppo or rejection, a judge the set names that does not resolve. Writes nothing."""
    _check_stage(stage)
    vote_set = sets.load(set_name)
    vote_log = sets.read(set_name)
    _check_pairs(vote_set, sets.summarize(set_name, vote_log))
    _resolve_judges(vote_set)
    version = _next_version(vote_set)
    votes_path = round_folder(vote_set, version) / sets.VOTES_FILE
    return _pipeline(vote_set, version, stage, current_policy(vote_set), votes_path, _graded(vote_log.votes), overrides)


def _resolve_judges(vote_set: sets.VoteSet) -> list[cfg.JudgeSpec]:
    return [judges.resolve(name) for name in vote_set.judges]


def _snapshot(vote_set: sets.VoteSet, target: Path) -> None:
    """The set's votes file as it is now, whole lines only (the last may be mid-write)."""
    text = vote_set.votes_path.read_text(encoding="utf-8") if vote_set.votes_path.is_file() else ""
    target.write_text(text[: text.rfind("\n") + 1], encoding="utf-8")


def _begin(set_name: str, stage: str, overrides: list[str] | None, pid: int | None) -> tuple[sets.VoteSet, Round]:
    """Snapshot the votes, record the pipeline and the round (state running). One round of a set at a time."""
    _check_stage(stage)
    vote_set = sets.load(set_name)
    with folder.locked(vote_set.folder / ".rounds.lock"):  # two clicks at once: the second sees the first's round
        running = [r for r in rounds(set_name) if r.state == RUNNING]
        if running:
            raise StudioError(
                f"{running[0].label} of vote set {set_name!r} is still running (pipeline {running[0].pipeline_id}); "
                "wait for it to end or cancel that pipeline"
            )
        _resolve_judges(vote_set)
        policy = current_policy(vote_set)
        version = _next_version(vote_set)
        target = round_folder(vote_set, version)
        shutil.rmtree(target, ignore_errors=True)  # left by an attempt that was refused before it was recorded
        target.mkdir(parents=True)
        try:
            votes_path = target / sets.VOTES_FILE
            _snapshot(vote_set, votes_path)
            vote_log = sets.read_file(votes_path)
            summary = sets.summarize(set_name, vote_log)
            _check_pairs(vote_set, summary)
            pipeline = _pipeline(vote_set, version, stage, policy, votes_path, _graded(vote_log.votes), overrides)
            description = (
                f"RLHF-V{version} of vote set {set_name}: a reward model on {summary.pairs} pairs from "
                f"{summary.votes} votes, then {stage} from {policy}"
            )
            record = runner.create(pipeline, description)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            with contextlib.suppress(OSError):
                target.parent.rmdir()  # "rounds/", when this refused attempt was to be the first
            raise
        round_ = Round(
            version=version,
            stage=stage,
            pipeline_id=record.id,
            started=time.time(),
            votes=summary.votes,
            pairs=summary.pairs,
            previous_policy=policy,
            pid=pid,
            pid_started=process.start_time(pid) if pid else None,
        )
        return vote_set, _record(vote_set, round_)


# ---------------------------------------------------------------- running a round


def start(set_name: str, stage: str, overrides: list[str] | None = None) -> Round:
    """Start the set's next round in its own OS process (the UI's "Train on these votes"); returns it running."""
    vote_set, round_ = _begin(set_name, stage, overrides, pid=None)
    log_path = round_folder(vote_set, round_.version) / "round.log"
    command = [sys.executable, "-m", "studio.pipelines.rounds", vote_set.name, str(round_.version)]
    try:  # cwd: the folder holding the studio package, so that `-m` finds it from a checkout too
        proc = folder.start_detached(command, log_path, cwd=str(PACKAGE.parent))
    except OSError as err:  # recorded, or the round would read "running" for ever and hold the set's next one back
        runner.PipelineRecord.of(round_.pipeline_id).write_state(state=FAILED, error=f"could not start: {err}")
        _record(vote_set, replace(round_, state=FAILED, error=f"its process could not start: {err}"))
        raise StudioError(f"{round_.label} of vote set {vote_set.name!r} could not start: {err}") from None
    started = process.start_time(proc.pid)
    # The round's process is its pipeline's runner: a pipeline whose runner is gone reads failed.
    runner.PipelineRecord.of(round_.pipeline_id).write_state(pid=proc.pid, started=started)
    return _record(vote_set, replace(round_, pid=proc.pid, pid_started=started))


def run(set_name: str, stage: str, overrides: list[str] | None = None, on_line: Say = print) -> Round:
    """Run the set's next round here, to its end, saying what it does in lines to `on_line`; returns the ended
    round (`rlhf-studio votes next-round SET --stage ppo`)."""
    vote_set, round_ = _begin(set_name, stage, overrides, pid=os.getpid())
    return _carry_out(vote_set, round_, on_line)


def _carry_out(vote_set: sets.VoteSet, round_: Round, say: Say) -> Round:
    """Train (the recorded pipeline), then compare and judge; the round's end is recorded whatever happens."""
    say(
        f"{round_.label} of vote set {vote_set.name}: {round_.pairs} pairs from {round_.votes} votes, "
        f"{round_.stage} from {round_.previous_policy}"
    )
    say(f"pipeline {round_.pipeline_id}")
    record = runner.PipelineRecord.of(round_.pipeline_id)
    try:
        runner.run(
            record,
            on_stage=lambda n, total, stage, run_dir: say(
                f"stage {n}/{total}: {stage.name} ({stage.config.stage}) run {run_dir.id}"
            ),
        )
        return _finish(vote_set, round_, say)
    except BaseException as err:  # recorded before it goes up: a round never stays "running" with nobody on it
        state = CANCELLED if isinstance(err, KeyboardInterrupt) else FAILED
        _record(vote_set, replace(round_, state=state, error=f"{type(err).__name__}: {err}".rstrip(": ")))
        raise


def _finish(vote_set: sets.VoteSet, round_: Round, say: Say) -> Round:
    """After the pipeline: the round's end when it did not complete, else the compare and the win rates."""
    pipeline = runner.status(runner.PipelineRecord.of(round_.pipeline_id))
    round_ = _with_runs(round_, pipeline)
    if pipeline["state"] != COMPLETED:
        say(f"{round_.label} {pipeline['state']}: {pipeline.get('error')}")
        return _record(vote_set, replace(round_, state=pipeline["state"], error=pipeline.get("error")))
    try:
        say(f"comparing {round_.policy_run} with {round_.previous_policy} on held-out prompts")
        round_ = _record(vote_set, replace(round_, comparison=str(_compare(vote_set, round_))))
        win_rate = _win_rates(vote_set, round_, say)
    except StudioError as err:
        say(f"{round_.label} failed: {err}")
        error = f"trained, but comparing with the previous policy failed: {err}"
        return _record(vote_set, replace(round_, state=FAILED, error=error))
    say(f"{round_.label} completed: policy {round_.policy_run}, reward model {round_.reward_run}")
    return _record(vote_set, replace(round_, state=COMPLETED, win_rate=win_rate, error=None))


def _compare(vote_set: sets.VoteSet, round_: Round) -> Path:
    """The new policy, the previous one and their base answering the new policy's held-out prompts, scored by the
    round's reward model; saved as compare.json in the round's folder."""
    from studio.serve import compare

    prompts = compare.held_out_prompts(round_.policy_run, COMPARE_PROMPTS)
    previous = [] if _base_model(round_.previous_policy) else [round_.previous_policy]
    result = compare.compare([*previous, round_.policy_run], prompts, cfg.EVAL_GENERATION, reward_run=round_.reward_run)
    path = round_folder(vote_set, round_.version) / "compare.json"
    saved = {
        "round": round_.label,
        "new_policy": round_.policy_run,
        "previous_policy": round_.previous_policy,
        **asdict(result),
        "summary": result.summary(),
    }
    folder.write_json_atomic(path, saved)
    return path


def _win_rates(vote_set: sets.VoteSet, round_: Round, say: Say) -> dict:
    """judge -> the new policy's win rate against the previous one: each judge the set names, or the round's own
    reward model keyed as the reward it trained against. A judge that cannot finish gives its error, not the round's
    end."""
    from studio.eval import evaluate

    named = [(spec.label, spec, False) for spec in _resolve_judges(vote_set)]
    own = cfg.JudgeSpec(kind="reward_run", run=round_.reward_run, name=f"rlhf-v{round_.version}-reward")
    chosen = named or [(f"{round_.label} reward (trained against)", own, True)]
    baseline = "base" if _base_model(round_.previous_policy) else round_.previous_policy
    found = {}
    for key, spec, trained_against in chosen:
        say(f"judge {spec.label}: {round_.policy_run} against {round_.previous_policy}")
        entry = {"judge": spec.label, "trained_against": trained_against}
        try:
            result = evaluate.evaluate(
                [round_.policy_run], spec, baseline=baseline, held_out=COMPARE_PROMPTS, settings=cfg.EVAL_GENERATION
            )[0]
        except StudioError as err:
            found[key] = {**dict.fromkeys(WIN_RATE_KEYS), **entry, "error": str(err)}
            continue
        summary = result["summary"]
        found[key] = {
            **{k: summary[k] for k in ("win_rate", "ci_low", "ci_high", "wins", "ties", "losses")},
            "n": summary["wins"] + summary["ties"] + summary["losses"],
            **entry,
            "path": result["path"],
        }
    return found


def main(argv: list[str]) -> int:
    """`python -m studio.pipelines.rounds SET VERSION`: carry out a round `start` recorded (what it launches)."""
    if len(argv) != 3:
        print("usage: python -m studio.pipelines.rounds SET VERSION", file=sys.stderr)
        return 2
    vote_set = sets.load(argv[1])
    round_ = next((r for r in _read(vote_set) if r.version == int(argv[2])), None)
    if round_ is None:
        print(f"vote set {argv[1]!r} has no round {argv[2]}", file=sys.stderr)
        return 2
    ended = _carry_out(vote_set, round_, lambda line: print(line, flush=True))
    return 0 if ended.state == COMPLETED else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise SystemExit(main(sys.argv))
