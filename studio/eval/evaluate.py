"""Evaluate finished runs against a baseline with a judge: win rate, its interval, and the length-controlled rate.

    results = evaluate(["20261101-120000-ppo-ab12"], resolve("llm:tiny"), baseline="base", held_out=32)
    results[0]["summary"]["win_rate"], results[0]["summary"]["ci_low"], results[0]["path"]
    evaluations(run_id)                   # every evaluation saved in the run's folder, newest first
    summary_csv(results), rows_csv(results[0])
    rlhf-studio eval RUN [RUN ...] --judge NAME [--baseline base|RUN] [--held-out N] [--json]

Each run answers prompts it held out of training (its own recorded split, sampled with a fixed seed), and the
baseline (the runs' base model, or another run) answers the same prompts, every model with the same settings and
seed; the judge compares each pair. A result is saved as <run>/eval/<time>-<judge>.json with every answer and
verdict, so a result can always be read back and checked. A judge that stops part way (a server gone) leaves the
verdicts it gave: the result is saved with them, marked partial, and the error is raised after.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

from studio import config as cfg
from studio.config import GenerationSpec, JudgeSpec
from studio.errors import StudioError
from studio.eval import judges as judging
from studio.eval import stats
from studio.runs.rundir import RunDir

KIND = "win_rate"  # what an evaluation file holds (a reward model's evaluation lives in the same folder)
DEFAULT_HELD_OUT = 32

Progress = Callable[[str], None]  # one line saying what is being done


def evaluate(
    run_ids: list[str],
    judge: JudgeSpec,
    baseline: str = "base",
    held_out: int = DEFAULT_HELD_OUT,
    settings: GenerationSpec | None = None,
    progress: Progress | None = None,
    prompts: list[str | list[dict]] | None = None,
) -> list[dict]:
    """Each run against the baseline, judged; one saved result per run (see the module docstring). `prompts`, when
    given, replace the held-out rows for every run (the first `held_out` of them)."""
    from studio.serve import compare, generate

    settings = settings or cfg.EVAL_GENERATION
    say = progress or (lambda line: None)
    if not run_ids:
        raise StudioError("pick at least one finished run to evaluate")
    if len(set(run_ids)) != len(run_ids):
        raise StudioError("the same run is picked twice")
    if held_out < 1:
        raise StudioError(f"--held-out {held_out}: ask for at least 1 prompt")
    the_judge = judging.build(judge)
    the_judge.check()  # a missing run or key fails now, before any answer is generated
    targets = [generate.run_target(r) for r in run_ids]
    base_target = None if baseline == "base" else generate.run_target(baseline)
    if base_target is not None and base_target.run_id in {t.run_id for t in targets}:
        raise StudioError(f"--baseline {baseline}: a run cannot be its own baseline")
    generator = generate.shared()

    plans = []  # (target, baseline target, held-out rows, warnings): everything checked before the first answer
    for target in targets:
        run_config = cfg.load_config(RunDir.of(target.run_id).config_path)
        if prompts is not None:
            rows = [{"prompt": p} for p in prompts[:held_out]]
        else:
            rows = compare.held_out_sample(target.run_id, held_out)
        warnings = []
        if judging.optimised_against(judge, run_config):
            warnings.append(
                f"judge {judge.label} is a reward run {target.run_id} trained against: its verdicts say how well "
                "the run optimised it, not whether the answers got better"
            )
        plans.append((target, base_target or generate.base_target(target.run_id), rows, warnings))

    results = []
    baseline_answers: dict[tuple, list[str]] = {}  # (baseline label, prompt texts) -> answers, generated once
    for target, versus, rows, warnings in plans:
        asked = [compare.as_messages(row["prompt"]) for row in rows]
        texts = tuple(compare.prompt_text(p) for p in asked)
        say(f"{target.run_id}: answering {len(asked)} prompts")
        answers = generator.generate(target, asked, settings).texts
        key = (versus.label, texts)
        if key not in baseline_answers:
            say(f"{versus.label}: answering the same prompts")
            baseline_answers[key] = generator.generate(versus, asked, settings).texts
        theirs = baseline_answers[key]
        columns = {c: [row.get(c) for row in rows] for c in rows[0] if c != "prompt"} if rows else {}
        say(f"{target.run_id}: judge {the_judge.name} compares {len(asked)} pairs")
        error = None
        try:
            verdicts = the_judge.compare(
                asked,
                answers,
                theirs,
                columns,
                progress=lambda done, total, run=target.run_id: say(f"{run}: judged {done} of {total}"),
            )
        except judging.JudgeStopped as stopped:
            verdicts, error = stopped.verdicts, str(stopped)
        verdicts += [judging.Verdict(None) for _ in range(len(asked) - len(verdicts))]
        result = _result(target, versus, judge, settings, asked, answers, theirs, verdicts, warnings, error)
        result["path"] = str(save(target.run_id, result))
        results.append(result)
        if error:
            raise EvaluationStopped(error, results)
    return results


class EvaluationStopped(StudioError):
    """The judge stopped part way; `results` holds what was saved, the last one partial."""

    def __init__(self, message: str, results: list[dict]):
        super().__init__(message)
        self.results = results


def _result(target, versus, judge, settings, prompts, answers, theirs, verdicts, warnings, error) -> dict:
    from studio.serve import compare

    outcomes = [v.outcome for v in verdicts]
    return {
        "kind": KIND,
        "run": target.run_id,
        "run_name": compare.run_name(target.run_id),
        "baseline": versus.run_id or versus.label,
        "baseline_name": compare.run_name(versus.run_id) if versus.run_id else versus.label,
        "judge": {"label": judge.label, **judging.plain(judge)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "settings": cfg.to_dict(settings),
        "summary": stats.summarise(outcomes, answers, theirs).to_dict(),
        "position_bias": judging.position_bias(verdicts) if judge.pairwise else None,
        "warnings": warnings,
        "error": error,
        "partial": error is not None,
        "rows": [
            {
                "prompt": compare.prompt_text(p),
                "answer": a,
                "baseline_answer": b,
                "outcome": v.outcome,
                "orders": v.orders,
                "detail": v.detail,
            }
            for p, a, b, v in zip(prompts, answers, theirs, verdicts)
        ],
    }


def save(run_id: str, result: dict) -> Path:
    """Write the result into the run's eval/ folder, named by time and judge (never over an earlier one)."""
    folder = RunDir.of(run_id).eval_dir
    folder.mkdir(exist_ok=True)
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{result['judge']['label']}"
    path, n = folder / f"{stem}.json", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)  # whole or not at all: a reader never sees half a result
    return path


def evaluations(run_id: str) -> list[dict]:
    """The win-rate evaluations saved in a run's folder, newest first, each with its "path"; a file that is not one
    (a reward model's evaluation, a file edited into something else) is passed over."""
    from studio.runs import manager

    folder = manager.find(run_id).eval_dir
    found = []
    for path in sorted(folder.glob("*.json"), reverse=True):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(result, dict) and result.get("kind") == KIND:
            found.append({**result, "path": str(path)})
    return found


SUMMARY_COLUMNS = (
    "run",
    "run_name",
    "baseline",
    "judge",
    "prompts",
    "wins",
    "ties",
    "losses",
    "no_verdict",
    "win_rate",
    "ci_low",
    "ci_high",
    "length_controlled_win_rate",
    "mean_length",
    "baseline_mean_length",
    "first_position_share",
    "partial",
    "created",
)


def summary_row(result: dict) -> dict:
    """One flat row of an evaluation: what the tables and the CSV export show."""
    bias = result.get("position_bias") or {}
    return {
        **{k: result.get(k) for k in ("run", "run_name", "baseline", "partial", "created")},
        "judge": result["judge"]["label"],
        **{k: v for k, v in result["summary"].items() if k in SUMMARY_COLUMNS},
        "first_position_share": bias.get("first_position_share"),
    }


def summary_csv(results: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(SUMMARY_COLUMNS))
    writer.writeheader()
    writer.writerows(summary_row(r) for r in results)
    return buffer.getvalue()


def rows_csv(result: dict) -> str:
    """Every prompt of one evaluation: the two answers, the outcome and each order's pick."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=["prompt", "answer", "baseline_answer", "outcome", "run_as_a", "run_as_b"]
    )
    writer.writeheader()
    for row in result["rows"]:
        orders = list(row.get("orders") or []) + [None, None]
        writer.writerow(
            {
                **{k: row[k] for k in ("prompt", "answer", "baseline_answer", "outcome")},
                "run_as_a": orders[0],
                "run_as_b": orders[1],
            }
        )
    return buffer.getvalue()
