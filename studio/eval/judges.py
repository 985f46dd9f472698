"""Judges: what says whether a run's answer beats its baseline's, other than the reward the run trained against.

    judge = build(JudgeSpec(kind="llm", model="tiny"))
    verdicts = judge.compare(prompts, run_answers, baseline_answers)   # one Verdict per prompt
    verdicts[0].outcome        # 1.0 the run's answer is better, 0.0 the baseline's, 0.5 a tie, None no verdict
    judge.score(prompts, answers)   # score judges only (reward_run, builtin): one number per answer

Score judges (a reward run, a built-in rule) score each answer and the higher score wins. Pairwise judges (a local
chat model, an OpenAI-compatible server) read the judging prompt with both answers, once with the run's answer as
A and once as B: agreeing orders give a win or a loss, disagreeing orders a tie (the judge preferred a position,
not an answer), and the share of verdicts that went to the first position is reported as position bias.
A local model's verdict is read from the probabilities of the labels A and B at the verdict position, so it never
fails to parse. A server's is parsed from its text; one that cannot be parsed is "no verdict".

Judges are named in <home>/judges.yaml (a list of judge mappings, as eval.judges holds them), or on the command line
as reward_run:RUN_ID, builtin:RULE or llm:MODEL; resolve() turns a name into a checked JudgeSpec.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from studio import config as cfg
from studio.config import JudgeSpec
from studio.errors import ConfigError, StudioError
from studio.eval import endpoint
from studio.paths import studio_home

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (pairs judged, pairs in all)
LOCAL_BATCH = 8  # judging prompts per forward pass of a local judge


@dataclass
class Verdict:
    """A judge's word on one prompt: the run's answer against the baseline's."""

    outcome: float | None  # 1.0 run better, 0.0 baseline better, 0.5 tie, None no verdict
    orders: list[str | None] = field(default_factory=list)  # pairwise: the pick with the run as A, then as B
    detail: dict = field(default_factory=dict)  # scores, label probabilities or the server's replies


class JudgeStopped(StudioError):
    """A judge cannot go on (a server gone, a refused key): the verdicts given so far are kept with the message."""

    def __init__(self, message: str, verdicts: list[Verdict]):
        super().__init__(message)
        self.verdicts = verdicts


# ---------------------------------------------------------------- naming judges


def judges_file() -> Path:
    return studio_home() / "judges.yaml"


def saved_judges() -> list[JudgeSpec]:
    """The judges in <home>/judges.yaml, checked; none when there is no file."""
    path = judges_file()
    if not path.is_file():
        return []
    raw = cfg.read_yaml(path)
    entries = raw.get("judges") if isinstance(raw, dict) else raw
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected a list of judges (or a 'judges:' key holding one)")
    return [
        cfg.check_judge(cfg.from_dict(entry, JudgeSpec, f"{path}[{i}]."), f"{path}[{i}]")
        for i, entry in enumerate(entries)
    ]


def save_judge(spec: JudgeSpec) -> Path:
    """Add a judge to <home>/judges.yaml, or replace the one with its name."""
    cfg.check_judge(spec, "judge")
    kept = [j for j in saved_judges() if j.label != spec.label]
    path = judges_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = [plain(j) for j in [*kept, spec]]
    path.write_text(yaml.safe_dump({"judges": entries}, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def plain(spec: JudgeSpec) -> dict:
    """A judge as a mapping with only what differs from the defaults (the kind always)."""
    default = cfg.to_dict(JudgeSpec())
    return {k: v for k, v in cfg.to_dict(spec).items() if k == "kind" or v != default[k]}


SHORT_FORMS = {"reward_run": "run", "builtin": "builtin", "llm": "model"}


def resolve(name: str) -> JudgeSpec:
    """A judge by its name in judges.yaml, or written as reward_run:RUN_ID, builtin:RULE or llm:MODEL."""
    name = (name or "").strip()
    if not name:
        raise ConfigError("--judge: name a judge (see rlhf-studio eval --help)")
    for spec in saved_judges():
        if spec.label == name:
            return spec
    kind, colon, value = name.partition(":")
    if colon and kind in SHORT_FORMS and value:
        spec = JudgeSpec(kind=kind, **{SHORT_FORMS[kind]: value})
        return cfg.check_judge(spec, f"--judge {name}")
    known = ", ".join(j.label for j in saved_judges()) or "none yet"
    raise ConfigError(
        f"--judge {name}: no judge of that name in {judges_file()} (saved: {known}); or write reward_run:RUN_ID, "
        "builtin:RULE or llm:MODEL"
    )


def optimised_against(spec: JudgeSpec, run_config: cfg.RunConfig) -> bool:
    """Whether a score judge is one of the rewards the run trained against (its verdicts would be no check)."""
    sources = run_config.rewards.sources if run_config.stage in cfg.ONLINE_STAGES else []
    if spec.kind == "reward_run":
        return any(s.run and _same_run(s.run, spec.run) for s in sources)
    if spec.kind == "builtin":
        return any(s.builtin == spec.builtin and s.args == spec.args for s in sources)
    return False


def _same_run(a: str, b: str | None) -> bool:
    return bool(b) and (a.startswith(b) or b.startswith(a))


# ---------------------------------------------------------------- the judges


def build(spec: JudgeSpec) -> Judge:
    """The judge a spec describes, checked; models and servers are reached on first use."""
    cfg.check_judge(spec, "judge")
    kinds = {"reward_run": RewardRunJudge, "builtin": BuiltinJudge, "llm": LocalJudge, "endpoint": EndpointJudge}
    return kinds[spec.kind](spec)


class Judge:
    """The shared part: a pairwise judge implements pick(); a score judge implements score()."""

    def __init__(self, spec: JudgeSpec):
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.label

    @property
    def pairwise(self) -> bool:
        return self.spec.pairwise

    def check(self) -> None:
        """Fail in one line before minutes of generation when the judge cannot work (a missing run or key)."""

    def score(self, prompts: list[list[dict]], answers: list[str], columns: dict | None = None) -> list[float | None]:
        raise NotImplementedError(f"a {self.spec.kind} judge compares two answers; it gives no score of one")

    def picks(self, prompts: list[list[dict]], firsts: list[str], seconds: list[str]) -> list[tuple[str | None, dict]]:
        """("A", "B", "tie" or None, detail) for each prompt with answer A `firsts[i]` and answer B `seconds[i]`."""
        raise NotImplementedError(f"a {self.spec.kind} judge scores answers; it does not compare two")

    def compare(
        self,
        prompts: list[list[dict]],
        answers: list[str],
        baselines: list[str],
        columns: dict | None = None,
        progress: Progress | None = None,
    ) -> list[Verdict]:
        """One verdict per prompt on answers[i] (the run's) against baselines[i]."""
        if not self.pairwise:
            mine = self.score(prompts, answers, columns)
            theirs = self.score(prompts, baselines, columns)
            if progress:
                progress(len(prompts), len(prompts))
            return [_by_score(a, b) for a, b in zip(mine, theirs)]
        verdicts: list[Verdict] = []
        step = self.batch
        for start in range(0, len(prompts), step):
            part = slice(start, start + step)
            try:
                run_first = self.picks(prompts[part], answers[part], baselines[part])
                run_second = self.picks(prompts[part], baselines[part], answers[part])
            except JudgeStopped as stopped:
                raise JudgeStopped(str(stopped), verdicts) from None
            verdicts += [_both_orders(a, b) for a, b in zip(run_first, run_second)]
            if progress:
                progress(len(verdicts), len(prompts))
        return verdicts

    batch = LOCAL_BATCH


def _by_score(mine: float | None, theirs: float | None) -> Verdict:
    detail = {"score": mine, "baseline_score": theirs}
    if mine is None or theirs is None:
        return Verdict(None, detail=detail)
    return Verdict(1.0 if mine > theirs else 0.0 if mine < theirs else 0.5, detail=detail)


def _both_orders(run_as_a: tuple[str | None, dict], run_as_b: tuple[str | None, dict]) -> Verdict:
    """The run's answer was A in the first judgement and B in the second: a win needs both to pick it."""
    first, second = run_as_a[0], run_as_b[0]
    detail = {"run_as_a": run_as_a[1], "run_as_b": run_as_b[1]}
    if first is None or second is None:
        return Verdict(None, [first, second], detail)
    run_won = (first == "A", second == "B")
    base_won = (first == "B", second == "A")
    if all(run_won):
        outcome = 1.0
    elif all(base_won):
        outcome = 0.0
    else:  # the orders disagree (or one said tie): the judge followed a position, not an answer
        outcome = 0.5
    return Verdict(outcome, [first, second], detail)


def position_bias(verdicts: list[Verdict]) -> dict:
    """For pairwise verdicts: the share of picks that went to the first-shown answer (0.5 is none), and how many
    prompts the two orders disagreed on."""
    picks = [p for v in verdicts for p in v.orders if p in ("A", "B")]
    disagreed = sum(
        1 for v in verdicts if len(v.orders) == 2 and None not in v.orders and v.orders[0] != _swap(v.orders[1])
    )
    return {
        "first_position_share": (sum(p == "A" for p in picks) / len(picks)) if picks else None,
        "orders_disagreed": disagreed,
        "judgements": len(picks),
    }


def _swap(pick: str) -> str:
    return {"A": "B", "B": "A"}.get(pick, pick)


def judging_text(spec: JudgeSpec, prompt: list[dict], first: str, second: str) -> str:
    """The judging prompt filled in (the request as readable text, then the two answers)."""
    from studio.serve.compare import prompt_text

    template = spec.prompt or cfg.DEFAULT_JUDGE_PROMPT
    # str.replace, not str.format: answers hold braces of their own
    return template.replace("{prompt}", prompt_text(prompt)).replace("{answer_a}", first).replace("{answer_b}", second)


class RewardRunJudge(Judge):
    """A completed reward run scores each answer."""

    def check(self) -> None:
        from studio.serve import scoring

        scoring.check_reward_run(self.spec.run)

    def score(self, prompts, answers, columns=None):
        from studio.serve import scoring

        return scoring.score_batch(self.spec.run, prompts, answers)


class BuiltinJudge(Judge):
    """A built-in rule scores each answer (with the held-out rows' columns, for rules that read one)."""

    def score(self, prompts, answers, columns=None):
        from studio.rewards import builtins

        rule = builtins.get(self.spec.builtin, "judge.builtin")
        return rule.score(answers, self.spec.args, columns or {})


class LocalJudge(Judge):
    """A local chat model reads the judging prompt; the verdict is whichever of the labels A and B it gives more
    probability as the first token of its reply."""

    def check(self) -> None:
        self._target()

    def _target(self):
        from studio.config import ModelSpec
        from studio.serve import generate

        model = self.spec.model
        if re.fullmatch(r"\d{8}-\d{6}-.+", model):  # a run id: its weights (LoRA adapters on its base)
            return generate.run_target(model)
        return generate.model_target(ModelSpec(name=model))

    def picks(self, prompts, firsts, seconds):
        import torch

        from studio.modeling.generation import prompt_ids
        from studio.serve import generate

        texts = [
            [{"role": "user", "content": judging_text(self.spec, p, a, b)}] for p, a, b in zip(prompts, firsts, seconds)
        ]
        with generate.shared().holding(self._target()) as (model, tokenizer):
            labels = {label: _label_tokens(tokenizer, label) for label in ("A", "B")}
            out = []
            for messages in texts:
                ids = torch.tensor([prompt_ids(tokenizer, messages)], device=model.device)
                with torch.no_grad():
                    logits = model(input_ids=ids).logits[0, -1].float()
                probs = torch.softmax(logits, dim=-1)
                p_a = float(probs[labels["A"]].sum())
                p_b = float(probs[labels["B"]].sum())
                share = p_a / (p_a + p_b) if p_a + p_b > 0 else 0.5
                pick = "A" if p_a > p_b else "B" if p_b > p_a else "tie"
                out.append((pick, {"p_a": round(share, 6), "label_mass": round(p_a + p_b, 6)}))
        return out


class EndpointJudge(Judge):
    """An OpenAI-compatible server reads the judging prompt; its verdict is parsed from the reply's text."""

    batch = 1  # one pair at a time: a server that goes away mid-run loses no pair already judged

    def check(self) -> None:
        endpoint.api_key(self.spec)

    def picks(self, prompts, firsts, seconds):
        key = endpoint.api_key(self.spec)
        out = []
        for prompt, first, second in zip(prompts, firsts, seconds):
            try:
                reply = endpoint.ask(self.spec, judging_text(self.spec, prompt, first, second), key)
            except endpoint.EndpointGone as gone:
                raise JudgeStopped(str(gone), []) from None
            out.append((endpoint.parse_verdict(reply), {"reply": reply[:500]}))
        return out


def _label_tokens(tokenizer, label: str) -> list[int]:
    """The token ids a reply starting with the label may begin with ("A" and " A" are often different tokens)."""
    ids = {tokenizer.encode(variant, add_special_tokens=False)[0] for variant in (label, " " + label)}
    return sorted(ids)
