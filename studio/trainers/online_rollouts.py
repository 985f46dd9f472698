"""Rollouts of TRL's GRPO and RLOO trainers: every sampled answer with its scores, group, advantage and KL, written
to the run's rollouts.jsonl once per optimizer step (studio/runs/rollouts.py says what a row holds).

    trainer_class = recording(GRPOTrainer)   # a subclass that records; built by online.build_trainer

TRL keeps what a row needs in three places, so the subclass collects it in three hooks:
- `_generate_and_score_completions` samples and scores a step's answers: the prompts, answers and scores come from
  our CombinedReward (which TRL calls there), the advantages and completion tokens from its output, and the reference's
  token log-probs from its output (GRPO) or from the last log-prob pass it makes (RLOO: the policy's, then the
  reference's). Each answer is tagged with its index (`rollout_index`), which TRL shuffles and splits with the rest.
- `_compute_loss` computes the policy's token log-probs on each micro-batch; the first time an answer is seen
  (before any update from this batch of answers) they are the log-probs it was sampled with.
- at the end of the optimizer step the rows are complete: KL is the policy-minus-reference log-prob summed over the
  answer, as the PPO stage records it, and the main process writes every process's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import TrainerCallback

from studio.runs.rollouts import RolloutWriter
from studio.trainers.rollout_rows import add_token_detail, answer_rows

INDEX_KEY = "rollout_index"  # the key TRL carries through its shuffle and split of a generation batch


@dataclass
class _Pending:
    """One generation batch being recorded (this process's answers)."""

    step: int
    rows: list[dict]
    answer_ids: list[list[int]]
    masks: torch.Tensor  # [answers, tokens] completion mask
    ref_logps: torch.Tensor | None  # [answers, tokens], None without a reference
    policy_logps: list[torch.Tensor | None] = field(default_factory=list)


class RecordsRollouts:
    """The mixin: put before GRPOTrainer or RLOOTrainer (see `recording`), then call `start_recording`."""

    def start_recording(self, writer: RolloutWriter, reward, token_samples: int) -> None:
        """Record into `writer`; `reward` is the CombinedReward TRL calls (it keeps its last scores)."""
        self._rollouts = writer
        self._rollout_reward = reward
        self._token_samples = token_samples
        self._pending: _Pending | None = None
        self._logps_calls: list[torch.Tensor] | None = None
        self.add_callback(_WriteAtStepEnd(self))

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        result = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        if self._logps_calls is not None:
            self._logps_calls.append(result[0].detach())
        return result

    def _generate_and_score_completions(self, inputs):
        step = self.state.global_step + 1
        if not (self.model.training and self._rollouts.due(step)):
            return super()._generate_and_score_completions(inputs)
        self._logps_calls = []
        try:
            output = super()._generate_and_score_completions(inputs)
        finally:
            calls, self._logps_calls = self._logps_calls, None
        reference = output.get("ref_per_token_logps")
        if reference is None and self.beta != 0 and calls:
            reference = calls[-1]  # RLOO scores the policy, then the reference
        self._pending = self._pending_rows(step, output, reference)
        output[INDEX_KEY] = torch.arange(len(self._pending.rows), device=output["completion_ids"].device)
        return output

    def _pending_rows(self, step: int, output: dict, reference: torch.Tensor | None) -> _Pending:
        scored = self._rollout_reward.last
        ids, mask = output["completion_ids"], output["completion_mask"]
        eos = self.processing_class.eos_token_id
        count = ids.shape[0]
        first = self.accelerator.process_index * count  # this process's answers in the gathered order
        rows = answer_rows(
            step,
            scored.prompts,
            scored.answers,
            scored.combined,
            scored.per_source,
            lengths=mask.sum(dim=1),
            ended=((ids == eos) & mask.bool()).any(dim=1),
            group=[(first + i) // self.num_generations for i in range(count)],
            advantage=output["advantages"].reshape(count, -1)[:, 0],
        )
        lengths = mask.sum(dim=1).tolist()
        answer_ids = [row[: int(n)] for row, n in zip(ids.tolist(), lengths)]
        return _Pending(step, rows, answer_ids, mask.detach(), reference, [None] * count)

    def _compute_loss(self, model, inputs):
        pending, index = self._pending, inputs.get(INDEX_KEY)
        if pending is None or index is None:
            return super()._compute_loss(model, inputs)
        self._logps_calls = []
        try:
            loss = super()._compute_loss(model, inputs)
        finally:
            calls, self._logps_calls = self._logps_calls, None
        if calls:
            for row, i in enumerate(index.tolist()):
                if i < len(pending.policy_logps) and pending.policy_logps[i] is None:
                    pending.policy_logps[i] = calls[0][row]
        return loss

    def _write_pending(self) -> None:
        """Finish this step's rows (KL, token detail), gather them on the main process and write them."""
        from accelerate.utils import gather_object

        pending, self._pending = self._pending, None
        if pending is None:
            return
        rows, reference = pending.rows, pending.ref_logps
        if all(p is not None for p in pending.policy_logps):
            policy = torch.stack(pending.policy_logps)
            if reference is not None:
                for row, value in zip(rows, ((policy - reference) * pending.masks).sum(dim=1).tolist()):
                    row["kl"] = value
            if self.accelerator.is_main_process:
                ref_rows = None if reference is None else reference.tolist()
                add_token_detail(
                    rows, self.processing_class, pending.answer_ids, policy.tolist(), ref_rows, self._token_samples
                )
        gathered = gather_object(rows)
        if self.accelerator.is_main_process:
            self._rollouts.write(pending.step, gathered)


class _WriteAtStepEnd(TrainerCallback):
    """Writes the recorded rows when the optimizer step they were sampled for ends, before its metrics are logged."""

    def __init__(self, trainer: RecordsRollouts):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer._write_pending()


def recording(trainer_class: type) -> type:
    """`trainer_class` (GRPOTrainer, RLOOTrainer) with RecordsRollouts mixed in."""
    return type(f"Recording{trainer_class.__name__}", (RecordsRollouts, trainer_class), {})
