"""studio/serve/generate.py on the session's tuned tiny runs: switching adapters gives what loading each run fresh
gives, the base stays the base, streaming agrees with batched generation and stops when asked, and runs that cannot
answer are refused in one line.

    OMP_NUM_THREADS=1 python -m pytest tests/test_generate.py -q
"""

from __future__ import annotations

import threading

import pytest
import torch
from peft import PeftModel

from studio.config import GenerationSpec, ModelSpec, RunConfig
from studio.errors import StudioError
from studio.modeling import models
from studio.modeling.generation import generate_batch, prompt_ids
from studio.runs import manager
from studio.runs.rundir import RunDir
from studio.serve.generate import Generator, base_target, run_target, stream_one
from tests.conftest import QUESTIONS

PROMPTS = [[{"role": "user", "content": question}] for question in QUESTIONS[:4]]
SAMPLED = GenerationSpec(temperature=1.0, top_p=1.0, max_new_tokens=24, seed=3)
GREEDY = GenerationSpec(temperature=0.0, max_new_tokens=24)
TINY = ModelSpec(name="tiny")


def adapter(run_id: str) -> str:
    return str(RunDir.of(run_id).adapter_dir)


def trained_as_loaded(run_id: str, merged_parent: str | None = None):
    """A run's model built the way training loads it: the base (a parent merged in), the run's adapter on top."""
    base = models.load_causal_lm(TINY, RunDir.of(merged_parent).adapter_dir if merged_parent else None)
    return PeftModel.from_pretrained(base, adapter(run_id))


def test_switching_adapters_gives_what_loading_the_run_fresh_gives(in_tuned_home):
    sft = in_tuned_home["sft"]
    generator = Generator()
    tuned, base = run_target(sft), base_target(sft)
    switched = [generator.generate(target, PROMPTS, SAMPLED).texts for target in (base, tuned, base, tuned)]

    tokenizer = models.load_tokenizer(TINY)
    fresh_tuned = generate_batch(trained_as_loaded(sft), tokenizer, PROMPTS, SAMPLED).texts
    fresh_base = generate_batch(models.load_causal_lm(TINY), tokenizer, PROMPTS, SAMPLED).texts
    assert fresh_tuned != fresh_base  # the adapter changes the answers, so a wrong switch would show
    assert switched == [fresh_base, fresh_tuned, fresh_base, fresh_tuned]
    assert generator.loads == 1


def test_a_chained_run_is_its_parent_and_its_own_adapter_together(in_tuned_home):
    sft, chained = in_tuned_home["sft"], in_tuned_home["chained"]
    target = run_target(chained)
    assert [str(a) for a in target.adapters] == [adapter(sft), adapter(chained)] and not target.merged

    generator = Generator()
    parent_only = generator.generate(run_target(sft), PROMPTS, GREEDY).texts  # the chain then reuses this adapter
    answers = generator.generate(target, PROMPTS, GREEDY).texts

    # What the chained run trained: the parent merged into the base, its own adapter on top.
    expected = generate_batch(
        trained_as_loaded(chained, merged_parent=sft), models.load_tokenizer(TINY), PROMPTS, GREEDY
    ).texts
    assert answers == expected
    assert answers != parent_only
    assert generator.loads == 1


def test_the_base_answers_as_before_once_adapters_are_switched_off(in_tuned_home):
    generator = Generator()
    base = base_target(in_tuned_home["sft"])
    before = generator.generate(base, PROMPTS, GREEDY).texts
    tuned = [generator.generate(run_target(in_tuned_home[name]), PROMPTS, GREEDY).texts for name in ("sft", "chained")]
    after = generator.generate(base, PROMPTS, GREEDY).texts
    assert after == before
    assert before not in tuned
    assert before == generate_batch(models.load_causal_lm(TINY), models.load_tokenizer(TINY), PROMPTS, GREEDY).texts
    assert generator.loads == 1


def test_streaming_grows_to_the_batched_answer_and_leaves_the_stop_event_alone(in_tuned_home):
    generator = Generator()
    tuned = run_target(in_tuned_home["sft"])
    stop = threading.Event()
    parts = list(generator.stream(tuned, PROMPTS[0], SAMPLED, stop))
    batched = generator.generate(tuned, PROMPTS[:1], SAMPLED)

    assert parts[-1].done and not any(part.done for part in parts[:-1])
    assert parts[-1].text == batched.texts[0] and parts[-1].tokens == batched.tokens[0]
    texts = [part.text for part in parts]
    assert len(texts) > 3 and len(texts[-1]) > len(texts[0])
    assert all(later.startswith(earlier) for earlier, later in zip(texts, texts[1:]))
    assert all(a.tokens < b.tokens for a, b in zip(parts[:-2], parts[1:-1]))
    # The caller's event is the Stop button: a finished reply must not press it, or reusing it cuts the next reply.
    assert not stop.is_set()
    assert list(generator.stream(tuned, PROMPTS[0], SAMPLED, stop))[-1].text == batched.texts[0]


def test_setting_the_stop_event_after_the_first_token_ends_the_answer(in_tuned_home):
    model, tokenizer = models.load_causal_lm(TINY), models.load_tokenizer(TINY)
    settings = GenerationSpec(temperature=0.0, max_new_tokens=64)
    whole = list(stream_one(model, tokenizer, PROMPTS[0], settings))[-1]
    assert whole.tokens == settings.max_new_tokens  # the base never ends this answer on its own

    stop = threading.Event()
    forward_passes = []

    def wait_for_stop(module, args, kwargs):
        # Every forward pass after the first waits until the reader has set the stop, so the answer cannot race
        # ahead of it: generation must end within a token of it.
        forward_passes.append(1)
        if len(forward_passes) > 1:
            assert stop.wait(30)

    hook = model.register_forward_pre_hook(wait_for_stop, with_kwargs=True)
    try:
        parts = []
        for part in stream_one(model, tokenizer, PROMPTS[0], settings, stop):
            parts.append(part)
            stop.set()
    finally:
        hook.remove()
    assert parts[-1].done and 1 <= parts[-1].tokens <= 2
    assert whole.text.startswith(parts[-1].text)


def test_tokens_are_counted_per_answer(in_tuned_home):
    sft = in_tuned_home["sft"]
    out = Generator().generate(run_target(sft), PROMPTS, GREEDY)
    assert out.seconds > 0 and out.tokens_per_second == pytest.approx(sum(out.tokens) / out.seconds)
    assert out.tokens_per_second > 0

    # Each prompt alone through transformers' generate: the new tokens up to and including the end-of-turn token.
    model, tokenizer = trained_as_loaded(sft), models.load_tokenizer(TINY)
    for prompt, text, count in zip(PROMPTS, out.texts, out.tokens):
        ids = prompt_ids(tokenizer, prompt)
        new = model.generate(
            input_ids=torch.tensor([ids]),
            max_new_tokens=GREEDY.max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )[0, len(ids) :].tolist()
        assert count == len(new)
        assert text == tokenizer.decode(new, skip_special_tokens=True).strip()


def test_a_reward_run_cannot_answer(in_tuned_home):
    reward = in_tuned_home["reward"]
    for refuse in (run_target, base_target):
        with pytest.raises(StudioError) as raised:
            refuse(reward)
        message = str(raised.value)
        assert f"run '{reward}' is a reward run" in message and "\n" not in message


@pytest.mark.parametrize("state", ["queued", "failed", "cancelled"])
def test_a_run_that_did_not_complete_cannot_answer(state):
    run = manager.create(RunConfig(stage="sft"))
    if state != "queued":
        run.write_status(state=state)
    with pytest.raises(StudioError) as raised:
        run_target(run.id)
    assert str(raised.value) == f"run '{run.id}' is {state}; only a completed run has weights to answer with"


def test_an_unknown_run_cannot_answer():
    with pytest.raises(StudioError, match="no run with id 'nope'"):
        run_target("nope")
