"""What every stage's trainer shares: TrainingArguments from the typed config, the callback that writes
metrics.jsonl and status.json and honours cancel requests, and saving the final adapter."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch
from transformers import TrainerCallback, TrainingArguments

from studio.config import RunConfig
from studio.runs import rundir
from studio.runs.metrics import MetricsWriter
from studio.runs.rundir import RunDir
from studio.trainers.throughput import ThroughputMeter, counted_model

log = logging.getLogger(__name__)

# transformers 5.2x renamed gradient_checkpointing to activation_checkpointing and warns on the old name;
# earlier 5.x releases only know the old one.
CHECKPOINTING_ARG = (
    "activation_checkpointing"
    if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
    else "gradient_checkpointing"
)


def seed_model_init(config: RunConfig) -> None:
    """Seed every generator before the model loads: a new score head and LoRA's A matrices are drawn at load time,
    before the Trainer seeds, so without this a run would depend on what ran earlier in the process."""
    from transformers import set_seed

    set_seed(config.train.seed)


def policy_pairs(config: RunConfig, tokenizer, run: RunDir) -> tuple[list[dict], list[dict]]:
    """The training and held-out prompt -> chosen / rejected rows of a stage that tunes the policy on pairs (dpo,
    orpo, simpo, cpo), loaded and checked. The margin and group columns are left out: only a reward model's loss
    reads them."""
    from studio import data

    train, held_out = data.prepare(config, "preference", tokenizer, run)
    return tuple(
        [{k: v for k, v in row.items() if k not in ("margin", "group")} for row in part.rows]
        for part in (train, held_out)
    )


def training_arguments(config: RunConfig, run: RunDir, has_eval: bool) -> dict:
    """Keyword arguments common to every TRL config class, taken from config.train."""
    t = config.train
    from studio.modeling.models import resolve_dtype

    dtype = str(resolve_dtype(config.model)).removeprefix("torch.")
    return dict(
        output_dir=str(run.checkpoints_dir),
        max_steps=t.max_steps,
        num_train_epochs=t.epochs,
        learning_rate=t.learning_rate,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a ratio of the total steps
        lr_scheduler_type=t.lr_scheduler,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_eval and t.eval_steps > 0 else "no",
        eval_steps=t.eval_steps or None,
        save_strategy="steps" if t.save_steps > 0 else "no",
        save_steps=t.save_steps or 500,
        save_total_limit=None,  # StudioCallback prunes, and only after the newer checkpoint is complete
        **{CHECKPOINTING_ARG: t.gradient_checkpointing},
        bf16=dtype == "bfloat16",
        fp16=dtype == "float16",
        seed=t.seed,
        data_seed=t.seed,
        report_to="none",
        disable_tqdm=True,  # the CLI and UI show progress from status.json
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        # Several processes without a GPU (train.processes on a CPU machine): only with use_cpu does accelerate
        # join them into one gloo group; otherwise each would train alone as a world of one.
        use_cpu=int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available(),
    )


class StudioCallback(TrainerCallback):
    """Writes every log event to metrics.jsonl (training rows with `tokens_per_second`, and `mfu` on a GPU, added),
    the step to status.json, marks complete checkpoints, and stops (after saving a checkpoint) when the run's
    cancel file appears."""

    STATUS_INTERVAL = 0.5  # seconds between status.json writes while steps fly by

    def __init__(self, run: RunDir, keep_checkpoints: int):
        self.run = run
        self.keep = keep_checkpoints
        self.metrics = MetricsWriter(run.metrics_path)
        self._last_status = 0.0
        self.meter: ThroughputMeter | None = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero:
            self.run.write_status(step=state.global_step, total_steps=state.max_steps)
            if model is not None and self.meter is None:
                self.meter = ThroughputMeter(counted_model(model), processes=args.world_size)

    def on_evaluate(self, args, state, control, **kwargs):
        if self.meter is not None:
            self.meter.since_last()  # the next training rate leaves the evaluation's time out

    def on_train_end(self, args, state, control, **kwargs):
        if self.meter is not None:
            self.meter.close()
            self.meter = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            training_row = not any(key.startswith("eval_") for key in logs)
            rates = self.meter.since_last() if self.meter is not None and training_row else {}
            self.metrics.write({**logs, **rates, "step": state.global_step, "epoch": state.epoch, "time": time.time()})

    def on_step_end(self, args, state, control, **kwargs):
        now = time.monotonic()
        if state.is_world_process_zero and (
            now - self._last_status > self.STATUS_INTERVAL or state.global_step >= state.max_steps
        ):
            self.run.write_status(step=state.global_step, total_steps=state.max_steps)
            self._last_status = now
        if self.run.cancel_requested():
            control.should_save = args.save_strategy != "no"
            control.should_training_stop = True

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:  # the Trainer saves into run.checkpoint_dir(step): output_dir is ours
            self.run.checkpoint_saved(state.global_step, self.keep)


def resume_checkpoint(run: RunDir) -> str | None:
    """The newest complete checkpoint of this run, or None to start fresh."""
    complete = run.complete_checkpoints()
    if not complete:
        return None
    log.info("resuming from %s", complete[-1].name)
    return str(complete[-1])


def save_final(trainer, tokenizer, run: RunDir) -> None:
    """Save the adapter (or full model) and tokenizer as safetensors; a reader never sees half a folder."""
    if not trainer.is_world_process_zero():
        return
    with run.publishing_adapter() as folder:
        trainer.model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)


def fit_and_save(trainer, config: RunConfig, run: RunDir) -> None:
    """What every stage does with its trainer: train (resuming from the last complete checkpoint), measure
    the final weights on the eval set unless the last step just did, and save them, unless cancelled."""
    checkpoint = resume_checkpoint(run)
    if checkpoint:
        from studio.modeling.models import check_safe_weights

        check_safe_weights(Path(checkpoint))  # TRL would fall back to a pickle .bin in a folder without safetensors
    trainer.train(resume_from_checkpoint=checkpoint)
    if run.cancel_requested():
        return
    eval_steps = config.train.eval_steps
    evaluated_at_end = eval_steps > 0 and trainer.state.global_step % eval_steps == 0
    if trainer.eval_dataset is not None and not evaluated_at_end:
        trainer.evaluate()
    save_final(trainer, trainer.processing_class, run)


def load_policy(config: RunConfig):
    """The starting weights (the base model, or init.from_run merged in) with a fresh LoRA adapter, or every weight
    trainable with LoRA off: the policy every stage but the reward model trains."""
    from studio.modeling import models

    policy = models.load_causal_lm(config.model, rundir.start_weights(config))
    policy = models.add_lora(policy, config.lora, config.model, "CAUSAL_LM", config.train.gradient_checkpointing)
    trainable, total = models.count_parameters(policy)
    log.info("policy: %s, %d parameters, %d trainable", config.model.name, total, trainable)
    return policy


def policy_and_reference(config: RunConfig):
    """(policy, reference) for the stages that train against a frozen reference (DPO, KTO, PPO).

    With LoRA the reference is None: TRL then computes reference log-probs with the adapter switched off,
    which leaves exactly the starting weights, with no second model in memory. Full fine-tuning changes every
    weight, so the reference is a separate frozen copy of the starting weights (twice the memory), loaded here
    rather than by TRL, which would reload the base by name and miss an init.from_run parent's merged adapter.
    """
    from studio.modeling import models

    policy = load_policy(config)
    reference = None
    if not config.lora.enabled:
        reference = models.load_causal_lm(config.model, rundir.start_weights(config)).eval().requires_grad_(False)
    log.info("reference: %s", "the policy with its adapter disabled" if reference is None else "a frozen copy")
    return policy, reference


def drop_ref_adapter(trainer) -> None:
    """Given a PeftModel, TRL (1.16) assumes the adapter may be pre-trained and adds a frozen copy of it named
    "ref" as the reference. Ours is freshly initialised (LoRA's B matrix is zero), so that copy equals the
    adapter-disabled model; without it TRL disables the adapter instead, which saves the copy's forward cost and
    keeps it out of checkpoints and the saved adapter folder."""
    peft_config = getattr(trainer.model, "peft_config", None)
    if peft_config and "ref" in peft_config:
        trainer.model.delete_adapter("ref")
