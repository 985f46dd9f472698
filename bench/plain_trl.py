"""The plain TRL script bench/overhead.py compares the studio with: what a user would write by hand.

    python bench/plain_trl.py SETTINGS.json OUT.json

SETTINGS.json (written by bench/overhead.py) names the stage (sft, dpo, reward), the model folder, the rows file
(the rows the studio trained on, in TRL's format) and the hyperparameters. OUT.json gets the wall-clock time of
every logging step (one per optimizer step), as the studio's metrics.jsonl has them.
"""

import json
import sys
import time
from pathlib import Path

from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer, SFTConfig, SFTTrainer


class StepTimes(TrainerCallback):
    def __init__(self):
        self.times = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.times.append(time.time())


def main(settings_path, out_path):
    s = json.loads(Path(settings_path).read_text())
    rows = json.loads(Path(s["rows"]).read_text())
    tokenizer = AutoTokenizer.from_pretrained(s["model"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    common = dict(
        output_dir=s["output_dir"],
        max_steps=s["max_steps"],
        learning_rate=s["learning_rate"],
        per_device_train_batch_size=s["batch_size"],
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=s["seed"],
        lr_scheduler_type=s["lr_scheduler"],
        warmup_steps=s["warmup_ratio"],
        disable_tqdm=True,
        max_length=s["max_length"],
        bf16=False,  # TRL defaults to bf16, which a CPU refuses; the studio trains float32 there too
        # TRL turns checkpointing on by default; the studio's train.gradient_checkpointing is off
        gradient_checkpointing=s["gradient_checkpointing"],
    )
    task = "SEQ_CLS" if s["stage"] == "reward" else "CAUSAL_LM"
    lora = LoraConfig(
        r=s["lora_r"],
        lora_alpha=s["lora_alpha"],
        lora_dropout=s["lora_dropout"],
        target_modules=s["target_modules"],
        task_type=task,
    )
    times = StepTimes()
    if s["stage"] == "sft":
        model = AutoModelForCausalLM.from_pretrained(s["model"])
        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(**common, packing=s["packing"], completion_only_loss=s["completion_only_loss"]),
            processing_class=tokenizer,
            train_dataset=Dataset.from_list(rows),
            peft_config=lora,
            callbacks=[times],
        )
    elif s["stage"] == "dpo":
        model = AutoModelForCausalLM.from_pretrained(s["model"])
        trainer = DPOTrainer(
            model=model,
            args=DPOConfig(**common, beta=s["beta"]),
            processing_class=tokenizer,
            train_dataset=Dataset.from_list(rows),
            peft_config=lora,
            callbacks=[times],
        )
    else:
        model = AutoModelForSequenceClassification.from_pretrained(s["model"], num_labels=1)
        model.config.pad_token_id = tokenizer.pad_token_id
        trainer = RewardTrainer(
            model=model,
            args=RewardConfig(**common),
            processing_class=tokenizer,
            train_dataset=Dataset.from_list(rows),
            peft_config=lora,
            callbacks=[times],
        )
    trainer.train()
    Path(out_path).write_text(json.dumps({"times": times.times}))


if __name__ == "__main__":
    main(*sys.argv[1:])
