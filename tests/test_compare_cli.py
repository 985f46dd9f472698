"""`rlhf-studio compare` and `rlhf-studio chat` on the session's tuned tiny runs (same engine as the UI), their
errors, and studio/serve/compare.py's summaries and exports on a hand-made comparison (no model).

    OMP_NUM_THREADS=1 python -m pytest tests/test_compare_cli.py -q
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys

import pytest

from studio import data
from studio.cli import build_parser, generation_spec_from_args
from studio.config import GenerationSpec, load_config
from studio.errors import ConfigError, StudioError
from studio.modeling import models
from studio.pipelines.preview import run_summary
from studio.runs.rundir import RunDir
from studio.serve import compare
from studio.serve.compare import Comparison, prompt_text, read_prompts, to_csv, to_jsonl
from studio.serve.generate import Generator, base_target, run_target
from tests.conftest import ANSWERS, QUESTIONS, REPO, RUDE, run_cli, write_jsonl

PROMPTS = QUESTIONS[:2]
SETTINGS = GenerationSpec(max_new_tokens=16)  # the other settings are the defaults the CLI must read from config
FAST = ("--max-new-tokens", "16")


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


@pytest.fixture(scope="module")
def expected(tuned_runs) -> Comparison:
    """What the engine answers to PROMPTS, scored by the tuned reward run: what the CLI must print."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RLHF_STUDIO_HOME", str(tuned_runs["home"]))
        return compare.compare(
            [tuned_runs["sft"]], PROMPTS, SETTINGS, reward_run=tuned_runs["reward"], generator=Generator()
        )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single "error:" line a failed command printed, checked to be its last word and no traceback."""
    assert result.returncode != 0 and result.stdout == ""
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.endswith(errors[0] + "\n"), result.stderr
    return errors[0]


# ---------------------------------------------------------------- compare


def test_compare_prints_both_answers_with_scores_and_a_summary(in_tuned_home, expected):
    sft, reward = in_tuned_home["sft"], in_tuned_home["reward"]
    result = run_cli("compare", sft, "--prompt", PROMPTS[0], "--prompt", PROMPTS[1], "--reward-run", reward, *FAST)
    assert result.returncode == 0, result.stderr

    assert expected.labels == ["base (tiny)", sft]
    blocks = [
        f"=== prompt {i + 1}/2\n{prompt}\n"
        + "".join(
            f"--- {label}  score {expected.scores[label][i]:.3f}\n{expected.answers[label][i]}\n"
            for label in expected.labels
        )
        + "\n"
        for i, prompt in enumerate(PROMPTS)
    ]
    assert result.stdout.startswith("".join(blocks))
    summary = result.stdout[len("".join(blocks)) :]
    base_row, tuned_row = expected.summary()
    assert summary.startswith(
        f"summary: mean score {base_row['mean_score']:.3f} base, {tuned_row['mean_score']:.3f} "
        f"tuned; tuned wins {tuned_row['win_rate']:.0%} of prompts against base (ties count "
        "half); tokens/s "
    )
    speeds = re.fullmatch(r".*tokens/s ([\d.]+) base, ([\d.]+) tuned\n", summary).groups()
    assert all(float(speed) > 0 for speed in speeds)


def test_compare_json_from_a_prompts_file(in_tuned_home, expected, tmp_path):
    sft, reward = in_tuned_home["sft"], in_tuned_home["reward"]
    path = tmp_path / "prompts.txt"
    path.write_text(f"{PROMPTS[0]}\n\n  {PROMPTS[1]}  \n", encoding="utf-8")  # blank lines and margins ignored
    result = run_cli("compare", sft, "--prompts", str(path), "--reward-run", reward, "--json", *FAST)
    assert result.returncode == 0, result.stderr

    rows = json.loads(result.stdout)  # stdout holds the JSON list and nothing else
    base = expected.base
    assert rows == [
        {
            "prompt": prompt,
            "base": expected.answers[base][i],
            "tuned": expected.answers[sft][i],
            "base_score": expected.scores[base][i],
            "tuned_score": expected.scores[sft][i],
        }
        for i, prompt in enumerate(PROMPTS)
    ]
    assert all(isinstance(row["base_score"], float) and isinstance(row["tuned_score"], float) for row in rows)


def test_compare_jsonl_prompts_and_held_out_prompts(in_tuned_home, tmp_path):
    sft = in_tuned_home["sft"]
    conversation = [{"role": "system", "content": "Be brief."}, user(PROMPTS[1])]
    path = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": PROMPTS[0], "id": 1}, {"prompt": conversation}])
    result = run_cli("compare", sft, "--prompts", str(path), "--held-out", "2", "--json", *FAST)
    assert result.returncode == 0, result.stderr

    rows = json.loads(result.stdout)
    assert [sorted(row) for row in rows] == [["base", "base_score", "prompt", "tuned", "tuned_score"]] * 4
    assert all(isinstance(row["base"], str) and isinstance(row["tuned"], str) for row in rows)
    assert all(row["base_score"] is None and row["tuned_score"] is None for row in rows)
    assert [row["prompt"] for row in rows[:2]] == [PROMPTS[0], "system: Be brief.\nuser: " + PROMPTS[1]]

    # The other two come from the rows the run held out of training, as its data_report.json records them: the
    # trainer's own split (prepared again here as the trainer prepares it).
    run = RunDir.of(sft)
    config = load_config(run.config_path)
    _, held_out = data.prepare(config, "sft", models.load_tokenizer(config.model))
    report = json.loads((run.path / "data_report.json").read_text(encoding="utf-8"))
    assert report["held_out"] == held_out.row_numbers and held_out.rows
    drawn = [row["prompt"] for row in rows[2:]]
    assert len(set(drawn)) == 2 and set(drawn) <= {prompt_text(row["prompt"]) for row in held_out.rows}


def test_a_run_without_a_record_of_its_held_out_rows_is_told_so(tuned_runs, studio_home):
    """A run trained before runs recorded their held-out rows (a copy of the tuned SFT run, its record taken out):
    one line, never a split made again."""
    run = RunDir.of(tuned_runs["sft"])
    shutil.copytree(tuned_runs["home"] / "runs" / run.id, run.path)
    report = run.path / "data_report.json"
    old = {k: v for k, v in json.loads(report.read_text(encoding="utf-8")).items() if k != "held_out"}
    report.write_text(json.dumps(old), encoding="utf-8")
    result = run_cli("compare", run.id, "--held-out", "2", *FAST)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"error: run '{run.id}' has no record of the rows it held out of training (it was trained before runs "
        "kept one); type prompts instead\n"
    )


@pytest.mark.slow
def test_a_ppo_run_compared_on_held_out_prompts_gets_prompts_it_did_not_train_on(studio_home, tmp_path):
    """The tiny InstructGPT pipeline (SFT -> reward model -> PPO, 2 steps each; about a minute on 2 CPU cores), PPO's
    prompts from a preference file: compare --held-out 4 answers 4 of the 6 prompts PPO held out, none it trained on,
    and the Train tab's summary of that PPO config counts the split the run made."""
    pairs = [
        {
            "prompt": f"{i}. {QUESTIONS[i % len(QUESTIONS)]}",
            "chosen": ANSWERS[i % len(ANSWERS)],
            "rejected": RUDE[i % 6],
        }
        for i in range(60)
    ]
    path = write_jsonl(tmp_path / "pairs.jsonl", pairs)
    ppo_data = ("stages.ppo.data.source=file", f"stages.ppo.data.path={path}", "stages.ppo.data.eval_fraction=0.1")
    sets = [arg for text in ("train.max_steps=2", *ppo_data) for arg in ("--set", text)]
    trained = run_cli("train", "presets/ppo-tiny.yaml", *sets, timeout=900)
    assert trained.returncode == 0, trained.stderr
    ppo = RunDir.of(next(r["id"] for r in json.loads(run_cli("runs", "--json").stdout) if r["stage"] == "ppo"))

    report = json.loads((ppo.path / "data_report.json").read_text(encoding="utf-8"))
    assert (report["format"], report["origin"], report["rows"]) == ("preference", str(path), 60)
    assert (report["train_rows"], report["held_out_rows"], len(report["held_out"])) == (54, 6, 6)
    held_out = {pairs[number - 1]["prompt"] for number in report["held_out"]}
    trained_on = {row["prompt"] for number, row in enumerate(pairs, 1) if number not in report["held_out"]}
    assert len(held_out) == 6 and len(trained_on) == 54

    result = run_cli("compare", ppo.id, "--held-out", "4", "--json", *FAST)
    assert result.returncode == 0, result.stderr
    prompts = [row["prompt"] for row in json.loads(result.stdout)]
    assert len(set(prompts)) == 4 and set(prompts) <= held_out and not set(prompts) & trained_on

    summary = run_summary(load_config(ppo.config_path))
    assert (summary.rows.usable, summary.rows.train, summary.rows.held_out) == (60, 54, 6)


def test_compare_errors_are_one_line(in_tuned_home, tmp_path):
    sft, reward = in_tuned_home["sft"], in_tuned_home["reward"]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    cases = [
        (["nope", "--prompt", "Hi"], "error: no run with id 'nope' (see `rlhf-studio runs`)"),
        ([reward, "--prompt", "Hi"], f"error: run '{reward}' is a reward run: it scores answers and writes none"),
        ([sft, "--prompt", "Hi", "--reward-run", sft], f"error: run '{sft}' is not a reward model (its stage is sft)"),
        ([sft, "--prompts", str(empty)], f"error: {empty}: no prompts in the file"),
        ([sft], "error: no prompts: give --prompt TEXT, --prompts FILE or --held-out N"),
    ]
    for args, start in cases:
        assert one_error_line(run_cli("compare", *args)).startswith(start), args


def test_generation_options_default_to_the_config_and_are_checked_by_it():
    parser = build_parser()
    for command in ("compare", "chat"):
        assert generation_spec_from_args(parser.parse_args([command, "run"])) == GenerationSpec()
        args = parser.parse_args([command, "run", "--top-p", "0.5", "--max-new-tokens", "7", "--seed", "3"])
        assert generation_spec_from_args(args) == GenerationSpec(top_p=0.5, max_new_tokens=7, seed=3)
    with pytest.raises(ConfigError, match=r"^--top-p = 0.0: must be greater than 0.0$"):
        generation_spec_from_args(parser.parse_args(["compare", "run", "--top-p", "0"]))
    with pytest.raises(ConfigError, match=r"^--max-new-tokens = 0: must be at least 1$"):
        generation_spec_from_args(parser.parse_args(["chat", "run", "--max-new-tokens", "0"]))


def test_prompt_files_name_the_file_and_line(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text("Name a fruit.\n\nWhat is 2 + 2?\n", encoding="utf-8")
    assert read_prompts(txt) == ["Name a fruit.", "What is 2 + 2?"]

    path = tmp_path / "p.jsonl"
    for second_line, problem in (
        ('{"prompt": "cut', "not valid JSON"),
        ('{"question": "Hi"}', 'expected an object with a "prompt" field'),
        ('{"prompt": "  "}', 'expected an object with a "prompt" field'),
        (
            '{"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}',
            "the prompt must end with a user message",
        ),
        ('{"prompt": [{"role": "bot", "content": "Hi"}]}', "message 1 has role 'bot'"),
    ):
        path.write_text('{"prompt": "Fine."}\n' + second_line + "\n", encoding="utf-8")
        with pytest.raises(StudioError) as raised:
            read_prompts(path)
        assert str(raised.value).startswith(f"{path} line 2: ") and problem in str(raised.value)
    for name, problem in (("p.csv", "use a .txt file"), ("missing.txt", "no such file")):
        with pytest.raises(StudioError, match=problem):
            read_prompts(tmp_path / name)


# ---------------------------------------------------------------- chat


def test_chat_streams_replies_and_keeps_the_conversation(in_tuned_home):
    sft = in_tuned_home["sft"]
    # Greedy, with a repetition penalty: it also weighs the tokens of earlier turns, so a reply that saw the
    # conversation differs from one that did not.
    settings = GenerationSpec(temperature=0.0, repetition_penalty=1.5, max_new_tokens=24)
    system = [{"role": "system", "content": "Answer in one short sentence."}]
    lines = [PROMPTS[0], PROMPTS[1], "/reset", PROMPTS[1], "/exit", "never read"]
    result = run_cli(
        "chat",
        sft,
        "--system",
        system[0]["content"],
        "--temperature",
        "0",
        "--repetition-penalty",
        "1.5",
        "--max-new-tokens",
        "24",
        input="\n".join(lines) + "\n",
    )
    assert result.returncode == 0, result.stderr

    generator, target = Generator(), run_target(sft)

    def reply(conversation: list[dict]) -> str:
        return generator.generate(target, [conversation], settings).texts[0]

    first = reply(system + [user(PROMPTS[0])])
    second = reply(system + [user(PROMPTS[0]), assistant(first), user(PROMPTS[1])])
    after_reset = reply(system + [user(PROMPTS[1])])
    assert first != reply([user(PROMPTS[0])])  # the system message shows in the answer...
    assert second != after_reset  # ...and so does the first exchange
    assert result.stdout == (
        f"you> {PROMPTS[0]}\nassistant> {first}\n"
        f"you> {PROMPTS[1]}\nassistant> {second}\n"
        f"(conversation cleared)\nyou> {PROMPTS[1]}\nassistant> {after_reset}\n"
    )


def test_ctrl_c_stops_the_reply_and_the_chat_goes_on(in_tuned_home):
    sft = in_tuned_home["sft"]
    settings = GenerationSpec(temperature=0.0, max_new_tokens=1500)  # the base model never ends this on its own
    # Unbuffered bytes: what is read here byte by byte must not also sit in a reader's buffer that communicate()
    # never sees.
    chat = subprocess.Popen(
        [sys.executable, "-m", "studio", "chat", sft, "--base", "--temperature", "0", "--max-new-tokens", "1500"],
        cwd=REPO,
        bufsize=0,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        chat.stdin.write(f"{PROMPTS[0]}\n".encode())
        shown = b""
        while not shown.endswith(b"assistant> "):
            byte = chat.stdout.read(1)
            assert byte, "the chat ended before replying"
            shown += byte
        shown += chat.stdout.read(1)  # the reply has started
        chat.send_signal(signal.SIGINT)
        out, err = chat.communicate(f"{PROMPTS[1]}\n".encode(), timeout=120)
    finally:
        chat.kill()
    assert chat.returncode == 0, err.decode()
    transcript = (shown + out).decode()
    stopped = re.fullmatch(
        rf"you> {re.escape(PROMPTS[0])}\nassistant> (.*) \[stopped\]\n"
        rf"you> {re.escape(PROMPTS[1])}\nassistant> (.*)\n",
        transcript,
        re.DOTALL,
    )
    assert stopped, transcript[:500]
    partial, second = stopped.groups()

    generator, target = Generator(), base_target(sft)
    whole = generator.generate(target, [[user(PROMPTS[0])]], settings).texts[0]
    assert whole.startswith(partial) and len(partial) < len(whole) / 2
    # The stopped reply stays in the conversation as far as it got.
    assert (
        second
        == generator.generate(target, [[user(PROMPTS[0]), assistant(partial), user(PROMPTS[1])]], settings).texts[0]
    )


# ---------------------------------------------------------------- summaries and exports, no model


def hand_made(scores: bool = True) -> Comparison:
    return Comparison(
        prompts=[
            [user("Name a fruit.")],
            [{"role": "system", "content": "Be brief."}, user("Hi")],
            [user('Say "yes", then stop.')],
        ],
        labels=["base (tiny)", "run-a", "run-b"],
        answers={
            "base (tiny)": ["Apple.", "Hello!", "yes"],
            "run-a": ["A pear,\nripe.", "Hi.", '"yes"'],
            "run-b": ["Plum.", "Hey.", "No."],
        },
        tokens_per_second={"base (tiny)": 120.04, "run-a": 80.0, "run-b": 99.96},
        reward_run="rm" if scores else None,
        scores={"base (tiny)": [1.0, 2.0, 0.5], "run-a": [2.0, 2.0, 0.0], "run-b": [1.5, 2.5, 1.0]} if scores else {},
    )


def test_summary_mean_scores_and_win_rates_with_ties_counting_half():
    assert hand_made().summary() == [
        {"model": "base (tiny)", "tokens_per_second": 120.0, "mean_score": pytest.approx(3.5 / 3)},
        {
            "model": "run-a",
            "tokens_per_second": 80.0,
            "mean_score": pytest.approx(4 / 3),
            "win_rate": pytest.approx(1.5 / 3),
        },  # won, tied, lost
        {"model": "run-b", "tokens_per_second": 100.0, "mean_score": pytest.approx(5 / 3), "win_rate": 1.0},
    ]
    assert hand_made(scores=False).summary() == [
        {"model": "base (tiny)", "tokens_per_second": 120.0},
        {"model": "run-a", "tokens_per_second": 80.0},
        {"model": "run-b", "tokens_per_second": 100.0},
    ]


def test_records_and_exports():
    records = [
        {
            "prompt": "Name a fruit.",
            "base (tiny)": "Apple.",
            "base (tiny) score": 1.0,
            "run-a": "A pear,\nripe.",
            "run-a score": 2.0,
            "run-b": "Plum.",
            "run-b score": 1.5,
        },
        {
            "prompt": "system: Be brief.\nuser: Hi",
            "base (tiny)": "Hello!",
            "base (tiny) score": 2.0,
            "run-a": "Hi.",
            "run-a score": 2.0,
            "run-b": "Hey.",
            "run-b score": 2.5,
        },
        {
            "prompt": 'Say "yes", then stop.',
            "base (tiny)": "yes",
            "base (tiny) score": 0.5,
            "run-a": '"yes"',
            "run-a score": 0.0,
            "run-b": "No.",
            "run-b score": 1.0,
        },
    ]
    result = hand_made()
    assert result.records() == records
    assert to_jsonl(result) == "".join(json.dumps(record) + "\n" for record in records)
    assert to_csv(result) == (
        "prompt,base (tiny),base (tiny) score,run-a,run-a score,run-b,run-b score\r\n"
        'Name a fruit.,Apple.,1.0,"A pear,\nripe.",2.0,Plum.,1.5\r\n'
        '"system: Be brief.\nuser: Hi",Hello!,2.0,Hi.,2.0,Hey.,2.5\r\n'
        '"Say ""yes"", then stop.",yes,0.5,"""yes""",0.0,No.,1.0\r\n'
    )
    assert hand_made(scores=False).records()[0] == {
        "prompt": "Name a fruit.",
        "base (tiny)": "Apple.",
        "run-a": "A pear,\nripe.",
        "run-b": "Plum.",
    }
