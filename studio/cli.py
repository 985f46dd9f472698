"""The `rlhf-studio` command (also `python -m studio`): everything the UI does, from a terminal.

    rlhf-studio train presets/sft-dolly-tiny.yaml --set train.max_steps=20
    rlhf-studio train sft-dolly-tiny                  # a bundled (or saved) preset by name, from any folder
    rlhf-studio train presets/sft-dpo-tiny.yaml       # a pipeline: its stages run in order, linked
    rlhf-studio resume RUN_ID | cancel RUN_ID
    rlhf-studio runs [--json]
    rlhf-studio show RUN_ID [--json]
    rlhf-studio data hh-rlhf --path FILE [--model tiny] [--json]     # `data votes`: a vote set's training pairs
    rlhf-studio compare RUN_ID --prompt TEXT [--prompts FILE] [--held-out N] [--reward-run RM_ID] [--json]
    rlhf-studio chat RUN_ID [--base] [--system TEXT]    # streamed replies; /reset, /exit; Ctrl+C stops a reply
    rlhf-studio serve RUN_ID [RUN_ID ...] [base] [--port 8000]   # an OpenAI-compatible API at http://127.0.0.1:8000/v1
    rlhf-studio serve base --model tiny [--host H --api-key-env NAME]   # another host needs a key, named by its env var
    rlhf-studio rewards try CONFIG_OR_RUN --answer TEXT [--answer TEXT ...] [--prompt TEXT] [--column K=V] [--json]
    rlhf-studio rollouts RUN_ID [--step N | --last | --all] [--sort reward|kl|length] [--top K | --bottom K]
        [--filter TEXT] [--json]                        # the answers an online run sampled, with scores and KL
    rlhf-studio eval-rm RM_ID --data FILE [--limit N] [--json]   # a reward run's accuracy on a preference file
        # compare and chat also take --max-new-tokens, --temperature, --top-p, --seed, ... (config.GenerationSpec)
    rlhf-studio demo [--json]                          # offline: SFT, RM, PPO, DPO on the tiny model, compared
    rlhf-studio push RUN_ID REPO_ID [--merged] [--private]       # adapter or merged weights + model card + charts
    rlhf-studio export-space RUN_ID OUT_DIR [--push REPO_ID] [--private]   # a gradio Space that chats with the run
    rlhf-studio export-gguf RUN_ID OUT_DIR [--type f16|q8_0]   # one GGUF file (llama.cpp, Ollama) + an Ollama Modelfile
    rlhf-studio install-gguf-converter [--sdist FILE]   # llama.cpp's converter, which export-gguf drives
        # the Hub token comes from $HF_TOKEN or `huggingface-cli login`, never from the command line
    rlhf-studio votes list [--json] | show SET [--json]     # vote sets: counts, share per level, agreement, rounds
    rlhf-studio votes export SET --out DIR | push SET --repo ID [--private]   # Parquet + dataset card; Hub dataset
    rlhf-studio votes next-round SET --stage ppo|rejection [--set KEY=VALUE]   # RLHF-V(n+1) from the set's votes
    rlhf-studio ui [--host 127.0.0.1] [--port 7860] [--auth USER:PASSWORD]   # another host needs a login

A user mistake prints one line starting with "error:" and exits non-zero, never a traceback.
One training runs at a time: `train` and `resume` of a run started while another runs say which run it waits
behind, and follow it once it starts; Ctrl+C while it waits takes it out of the queue.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import time

from studio import config as cfg
from studio import stages
from studio.errors import ConfigError, StudioError
from studio.runs.rollouts import SORT_KEYS as ROLLOUT_SORT_KEYS

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlhf-studio", description="RLHF Studio: train, watch and compare.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="train a run config or a pipeline in the foreground, with progress",
        epilog=_stages_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument(
        "config", help="a run config or pipeline YAML file, or the name of a bundled or saved preset (see presets/)"
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.max_steps=20 (repeatable); in a pipeline a "
        "plain key applies to every stage and stages.NAME.KEY=VALUE to one",
    )
    train.set_defaults(handler=cmd_train)

    resume = sub.add_parser("resume", help="continue a failed or cancelled run from its last complete checkpoint")
    resume.add_argument("run_id", help="a run id, or a unique prefix of one")
    resume.set_defaults(handler=cmd_resume)

    cancel = sub.add_parser("cancel", help="stop a run: it saves a checkpoint and ends as cancelled")
    cancel.add_argument("run_id", help="a run id, or a unique prefix of one")
    cancel.set_defaults(handler=cmd_cancel)

    runs = sub.add_parser("runs", help="list runs: id, stage, state, step, last loss")
    runs.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list: each run's row, with its queue place, time left and latest metrics",
    )
    runs.set_defaults(handler=cmd_runs)

    show = sub.add_parser("show", help="a run's status, config and latest metrics")
    show.add_argument("run_id", help="a run id, or a unique prefix of one")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=cmd_show)

    data = sub.add_parser("data", help="load, convert and check a dataset: kept and dropped rows, examples")
    data.add_argument("source", choices=cfg.DATA_SOURCES, help="dataset source")
    data.add_argument(
        "--path",
        help="a local file in the source's raw schema, 'sample' or 'hub' (default: the "
        "bundled sample; for votes, the vote set data.votes.set names: --set data.votes.set=NAME)",
    )
    data.add_argument("--subset", help="hub configuration or data directory, e.g. helpful-base for hh-rlhf")
    data.add_argument("--limit", type=int, help="keep at most this many rows")
    data.add_argument("--format", choices=("sft", "preference"), help="rows to make, for sources that give both")
    data.add_argument(
        "--on-bad-rows",
        choices=("drop", "fail"),
        default="drop",
        help="drop bad rows and count them (default), or stop at the first one",
    )
    data.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any data option, e.g. --set data.min_score_ratio=3 --set data.columns.prompt=question",
    )
    data.add_argument(
        "--model",
        help="also check lengths and preview the chat template of this model's tokenizer "
        "(a hub id, a local folder or tiny)",
    )
    data.add_argument("--max-length", type=int, help="token limit for --model (default: data.max_length)")
    data.add_argument("--examples", type=int, default=3, help="how many examples to print (default 3)")
    data.add_argument("--json", action="store_true", help="print one JSON object")
    data.set_defaults(handler=cmd_data)

    compare = sub.add_parser(
        "compare", help="a finished run's answers beside its base model's, scored by a reward model"
    )
    compare.add_argument("run_id", help="a completed run id (or unique prefix) of a stage that writes answers")
    compare.add_argument("--prompt", action="append", default=[], metavar="TEXT", help="a prompt (repeatable)")
    compare.add_argument(
        "--prompts",
        metavar="FILE",
        help='a .txt file with one prompt per line, or a .jsonl file with a "prompt" field (text or messages) per line',
    )
    compare.add_argument(
        "--held-out",
        type=int,
        metavar="N",
        help="also N prompts drawn (with --seed) from the rows the run held out of training",
    )
    compare.add_argument("--reward-run", metavar="RM_ID", help="a completed reward run that scores every answer")
    _add_generation_options(compare)
    compare.add_argument(
        "--json", action="store_true", help="print a JSON list: prompt, base, tuned, base_score, tuned_score per prompt"
    )
    compare.set_defaults(handler=cmd_compare)

    evaluate = sub.add_parser(
        "eval",
        help="judge finished runs against a baseline on held-out prompts: win rate with a 95% interval",
        description="Each run answers prompts it held out of training, the baseline answers the same ones, and the "
        "judge says which answer is better. Judges: a name in <home>/judges.yaml, or reward_run:RUN_ID, "
        "builtin:RULE, llm:MODEL (a hub id, a folder, tiny or a run id). Results are saved in each run's eval/ "
        "folder.",
    )
    evaluate.add_argument("run_ids", nargs="+", metavar="RUN", help="completed runs that write answers")
    evaluate.add_argument("--judge", required=True, metavar="NAME", help="the judge (see above)")
    evaluate.add_argument(
        "--baseline", default="base", metavar="base|RUN", help="what each run is compared with (default: base model)"
    )
    evaluate.add_argument(
        "--held-out", type=int, default=32, metavar="N", help="held-out prompts per run (default 32, fewer if fewer)"
    )
    evaluate.add_argument(
        "--prompts",
        metavar="FILE",
        help='prompts to use instead of the held-out rows: a .txt file (one per line) or .jsonl (a "prompt" field)',
    )
    _add_generation_options(evaluate, cfg.EVAL_GENERATION)
    evaluate.add_argument("--json", action="store_true", help="print the results as a JSON list, answers included")
    evaluate.set_defaults(handler=cmd_eval)

    chat = sub.add_parser("chat", help="chat with a finished run (or its base model) in the terminal")
    chat.add_argument("run_id", help="a completed run id (or unique prefix) of a stage that writes answers")
    chat.add_argument("--base", action="store_true", help="chat with the base model the run was tuned from")
    chat.add_argument("--system", metavar="TEXT", help="a system message that opens the conversation")
    _add_generation_options(chat)
    chat.set_defaults(handler=cmd_chat)

    serve = sub.add_parser(
        "serve", help="an OpenAI-compatible API (/v1/chat/completions, /v1/models) for finished runs and their base"
    )
    serve.add_argument(
        "targets",
        nargs="+",
        metavar="TARGET",
        help="a completed run id (or unique prefix) of a stage that writes answers, or `base`: the runs' base model",
    )
    serve.add_argument("--model", metavar="NAME", help="with `base` and no run: the base model (hub id, folder, tiny)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="the environment variable holding the API key requests must send (Authorization: Bearer KEY); "
        "needed to bind another address than 127.0.0.1",
    )
    serve.set_defaults(handler=cmd_serve)

    rewards = sub.add_parser("rewards", help="try reward sources on answers before training with them")
    rewards_sub = rewards.add_subparsers(dest="rewards_command", required=True, metavar="ACTION")
    try_ = rewards_sub.add_parser(
        "try",
        help="score answers with the reward sources of a config, a preset or a run, each source's score shown",
    )
    try_.add_argument("source", metavar="CONFIG_OR_RUN", help="a run config or preset (file or name), or a run id")
    try_.add_argument("--answer", action="append", required=True, help="an answer to score (repeat for several)")
    try_.add_argument("--prompt", default="", help="the prompt the answers reply to (default: empty)")
    try_.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a data column the sources read, e.g. answer=42 for reference_match (repeat for several)",
    )
    try_.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    try_.add_argument("--json", action="store_true", help="print the scores as JSON")
    try_.set_defaults(handler=cmd_rewards_try)

    rollouts = sub.add_parser(
        "rollouts", help="the answers an online run sampled at a step: prompt, answer, scores, KL, length"
    )
    rollouts.add_argument("run_id", help="a ppo, grpo, rloo or rejection run id (or unique prefix)")
    which = rollouts.add_mutually_exclusive_group()
    which.add_argument("--step", type=int, help="the step to show (rejection: the round)")
    which.add_argument("--last", action="store_true", help="the newest recorded step (the default)")
    which.add_argument("--all", action="store_true", help="every recorded step")
    rollouts.add_argument("--sort", choices=ROLLOUT_SORT_KEYS, help="order answers by this, highest first")
    count = rollouts.add_mutually_exclusive_group()
    count.add_argument("--top", type=int, metavar="K", help="the K highest (by --sort, default reward)")
    count.add_argument("--bottom", type=int, metavar="K", help="the K lowest, lowest first")
    rollouts.add_argument("--filter", default="", metavar="TEXT", help="only answers whose prompt or answer holds TEXT")
    rollouts.add_argument("--json", action="store_true", help="print the rows as JSON")
    rollouts.set_defaults(handler=cmd_rollouts)

    eval_rm = sub.add_parser(
        "eval-rm",
        help="a completed reward run's accuracy on a preference file: overall, per subset, by length difference",
    )
    eval_rm.add_argument("run_id", help="a completed reward run id, or a unique prefix of one")
    eval_rm.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help="a .jsonl, .json, .csv or .parquet file with prompt, chosen and rejected columns (RewardBench's layout "
        "too); a subset or category column splits the accuracy",
    )
    eval_rm.add_argument("--limit", type=int, metavar="N", help="score only the first N pairs")
    eval_rm.add_argument(
        "--json", action="store_true", help="print the report as JSON (as saved in the run's eval/ folder)"
    )
    eval_rm.set_defaults(handler=cmd_eval_rm)

    demo = sub.add_parser(
        "demo",
        help="the offline end-to-end demo: SFT, reward model, PPO and DPO on the tiny model, "
        "then base and tuned models compared (a few minutes on a CPU)",
    )
    demo.add_argument(
        "--json",
        action="store_true",
        help='print {"stages": [...], "table": [{"model", "reward", "check"}...]} (progress on stderr)',
    )
    demo.set_defaults(handler=cmd_demo)

    push = sub.add_parser(
        "push",
        help="upload a finished run (adapter, or merged weights) with its model card and "
        "charts to the Hugging Face Hub (token: $HF_TOKEN or huggingface-cli login)",
    )
    push.add_argument("run_id", help="a completed run id, or a unique prefix of one")
    push.add_argument("repo_id", help="the model repository, owner/name (created if it does not exist)")
    push.add_argument(
        "--merged",
        action="store_true",
        help="upload full weights with every adapter merged in, "
        "loadable with plain transformers (needed for a run "
        "started from another run)",
    )
    push.add_argument("--private", action="store_true", help="create the repository private")
    push.set_defaults(handler=cmd_push)

    space = sub.add_parser(
        "export-space",
        help="write a Hugging Face Space folder (gradio app.py, requirements, "
        "README, weights) that chats with a finished run",
    )
    space.add_argument("run_id", help="a completed run id (or unique prefix) of a stage that writes answers")
    space.add_argument("out_dir", help="a new or empty folder to write the Space into")
    space.add_argument("--push", metavar="REPO_ID", help="also upload it to this Space, owner/name")
    space.add_argument("--private", action="store_true", help="with --push: create the Space private")
    space.set_defaults(handler=cmd_export_space)

    from studio.publish import converter  # standard library only: cheap for every command

    gguf = sub.add_parser(
        "export-gguf",
        help="write a finished run's merged weights as one GGUF file (llama.cpp, Ollama) with an Ollama Modelfile",
    )
    gguf.add_argument("run_id", help="a completed run id (or unique prefix) of a stage that writes answers")
    gguf.add_argument("out_dir", help="a new or empty folder to write <run id>-<type>.gguf and Modelfile into")
    gguf.add_argument("--type", choices=converter.TYPES, default=converter.TYPES[0], help=converter.TYPE_HELP)
    gguf.set_defaults(handler=cmd_export_gguf)

    installer = sub.add_parser(
        "install-gguf-converter",
        help="get llama.cpp's converter for export-gguf from the llama-cpp-python source package (pip download)",
    )
    installer.add_argument("--sdist", metavar="FILE", help="use this llama_cpp_python-*.tar.gz instead of downloading")
    installer.set_defaults(handler=cmd_install_gguf_converter)

    _add_votes_commands(sub)

    ui = sub.add_parser("ui", help="serve the studio in the browser")
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    ui.add_argument(
        "--auth",
        metavar="USER:PASSWORD",
        help="a login for the browser, needed to bind another address than 127.0.0.1 (or set "
        "RLHF_STUDIO_AUTH, which keeps the password out of the process list)",
    )
    ui.set_defaults(handler=cmd_ui)
    return parser


def _add_votes_commands(sub) -> None:
    votes = sub.add_parser(
        "votes", help="vote sets from the Compare tab's Vote view: list, show, export, push, train the next round"
    )
    actions = votes.add_subparsers(dest="votes_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every vote set: votes, training pairs, annotators, rounds")
    listing.add_argument("--json", action="store_true", help="print a JSON list, one object per set")
    listing.set_defaults(handler=cmd_votes_list)

    show = actions.add_parser(
        "show",
        help="a vote set: guidelines, counts, share per level, ties, rankings, annotators, agreement (Cohen's "
        "kappa), lines skipped, rounds",
    )
    show.add_argument("set_name", metavar="SET", help="the vote set's name")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=cmd_votes_show)

    export = actions.add_parser(
        "export", help="write the set as a dataset folder: pairs and votes as Parquet, and a dataset card"
    )
    export.add_argument("set_name", metavar="SET", help="the vote set's name")
    export.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder to write into")
    export.set_defaults(handler=cmd_votes_export)

    push = actions.add_parser(
        "push",
        help="upload the set as a Hugging Face Hub dataset (token: $HF_TOKEN or huggingface-cli login)",
    )
    push.add_argument("set_name", metavar="SET", help="the vote set's name")
    push.add_argument(
        "--repo", required=True, metavar="ID", help="the dataset repository, owner/name (created if it does not exist)"
    )
    push.add_argument("--private", action="store_true", help="create the repository private")
    push.set_defaults(handler=cmd_votes_push)

    next_round = actions.add_parser(
        "next-round",
        help="train the set's next round (RLHF-V1, V2, ...): a reward model on all its votes, then PPO or rejection "
        "sampling from the current policy, then the new policy compared with the round before",
    )
    next_round.add_argument("set_name", metavar="SET", help="the vote set's name")
    next_round.add_argument("--stage", required=True, choices=cfg.ROUND_STAGES, help="how the new policy is trained")
    next_round.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key of both of the round's stages, e.g. --set train.max_steps=20, or of one: "
        "stages.rm.KEY=VALUE (the reward model), stages.ppo.KEY=VALUE or stages.rejection.KEY=VALUE (repeatable)",
    )
    next_round.set_defaults(handler=cmd_votes_next_round)


def _stages_help() -> str:
    """The stages a config's `stage` may name, one line each, as the registry has them when the parser is built."""
    width = max(len(s.name) for s in stages.all_stages())
    return "stages (a run config's `stage`):\n" + "\n".join(
        f"  {s.name:<{width}}  {s.summary}" for s in stages.all_stages()
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StudioError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_CANCELLED


# ---------------------------------------------------------------- train


def cmd_train(args) -> int:
    from studio.pipelines import presets, recipe, twins

    path = presets.resolve(args.config)  # a file, or a bundled or saved preset by name
    raw = cfg.read_yaml(path)
    if recipe.is_pipeline(raw):
        pipeline = recipe.from_dict(raw, args.set, default_name=path.stem)
        _warn(twins.gpu_warning([stage.config for stage in pipeline.stages]))
        return _train_pipeline(pipeline, str(raw.get("description") or ""))
    code, _ = _start_and_follow(cfg.from_dict(cfg.apply_overrides(raw, args.set)))
    return code


def _warn(line: str | None) -> None:
    """A warning that does not stop the command (a GPU preset on a machine without one), on stderr."""
    if line:
        print(f"warning: {line}", file=sys.stderr)


def _start_and_follow(config: cfg.RunConfig, pipeline_id: str | None = None) -> tuple[int, str]:
    """(exit code, run id) of a run started now and followed to its end; a run sized for a GPU, started on a
    machine without one, gets a warning naming its tiny twin (after the start checks: a refused run gets only its
    refusal)."""
    from studio.pipelines import twins
    from studio.runs import manager

    run, proc = manager.start(config, pipeline_id)
    if pipeline_id is None:  # a pipeline's recipe was warned about before its first stage
        _warn(twins.gpu_warning([config]))
    print(f"run {run.id}")
    print(f"dir {run.path}")
    return _follow(run, proc), run.id


def _train_pipeline(pipeline, description: str = "") -> int:
    """Run the stages in order through the pipeline engine (studio.pipelines.runner), each run followed here with its
    progress bar; the first stage that does not complete stops it."""
    code, final = _run_pipeline(pipeline, description)
    if code == 0:
        run_ids = {s["name"]: s["run_id"] for s in final["stages"]}
        print(f"pipeline {pipeline.name} completed: " + ", ".join(f"{n} {r}" for n, r in run_ids.items()))
    return code


def _run_pipeline(pipeline, description: str = "") -> tuple[int, dict]:
    """(exit code, the pipeline's final state) of a pipeline run now with progress bars."""
    from studio.pipelines import runner
    from studio.runs.status import State

    record = runner.create(pipeline, description)
    print(f"pipeline {record.id}")

    def on_stage(number, total, stage, run) -> None:
        print(f"stage {number}/{total}: {stage.name} ({stage.config.stage})")
        print(f"run {run.id}")
        print(f"dir {run.path}")

    final = runner.run(record, follow=_follow, on_stage=on_stage)
    if final["state"] != State.COMPLETED:
        stopped = final.get("current") or "?"
        if not any(s["run_id"] for s in final["stages"] if s["name"] == stopped):  # _follow never said why
            print(f"error: {final.get('error')}", file=sys.stderr)
        print(f"error: pipeline {pipeline.name} stopped at stage {stopped}", file=sys.stderr)
        return (EXIT_CANCELLED if final["state"] == State.CANCELLED else EXIT_FAILED), final
    return 0, final


# ---------------------------------------------------------------- demo


def cmd_demo(args) -> int:
    import contextlib

    from studio import demo
    from studio.pipelines import recipe

    paths = demo.write_data(demo.demo_home() / "data")
    raw = demo.pipeline_raw(paths)
    started = time.monotonic()
    # With --json, stdout holds the JSON alone: the stages' progress goes to stderr.
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        code, final = _run_pipeline(recipe.from_dict(raw), raw["description"])
        if code != 0:
            return code
        print("comparing the base model and the tuned models on held-out questions...")
        runs = {s["name"]: s["run_id"] for s in final["stages"]}
        rows, answers = demo.evaluate(runs, paths["held_out"])
    stages = [{"name": s["name"], "stage": s["stage"], "run_id": s["run_id"]} for s in final["stages"]]
    table = [{"model": r.model, "reward": round(r.reward, 4), "check": round(r.check, 4)} for r in rows]
    if args.json:
        print(json.dumps({"stages": stages, "table": table}))
        return 0
    print(
        f"\ndemo finished in {time.monotonic() - started:.0f} s; {len(answers['base'])} held-out questions, "
        f"reward model {runs['rm']}"
    )
    print(f"{'model':<6} {'reward':>8} {'in format':>10}  run")
    for r in rows:
        print(f"{r.model:<6} {r.reward:>8.2f} {r.check:>10.0%}  {r.run_id or 'tiny (no tuning)'}")
    print(f'\nreward: mean score of the reward model; in format: answers that open with "{demo.OPENER}"')
    for name, texts in answers.items():
        print(f"{name:<6} {texts[0]!r}")
    print("\nopen `rlhf-studio ui` to see these runs' charts, compare them side by side and chat with them")
    return 0


def cmd_resume(args) -> int:
    from studio.runs import manager

    run = manager.find(args.run_id)
    proc = manager.resume(run)
    print(f"run {run.id} resumed from step {run.read_status().resumed_from}")
    return _follow(run, proc)


def cmd_cancel(args) -> int:
    from studio.runs import manager

    status = manager.cancel(manager.find(args.run_id))
    print(f"run {args.run_id}: {status.state}")
    return 0


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _wait_in_queue(run):
    """Return once the run has left the queue (started, or cancelled elsewhere), saying whom it waits behind;
    returns its worker if this process is the one that launched it, else None."""
    from studio.runs import manager
    from studio.runs.status import State

    said = ""
    while True:
        launched = manager.start_next()  # the run ahead may have died without handing on: do it from here
        if launched and launched[0].id == run.id:
            return launched[1]
        if manager.status(run).state is not State.QUEUED:
            return None
        place = manager.queue_places().get(run.id)
        if place:
            behind = f"behind run {place['queued_behind']}" if place["queued_behind"] else "to start"
            line = f"queued ({manager.ordinal(place['queue_position'])}): waiting {behind}"
            if line != said:
                print(line, flush=True)
                said = line
        time.sleep(1.0)


def _ended(run, proc) -> bool:
    """Whether the worker is gone: our own child is polled; one another process launched is looked up."""
    from studio.runs import manager

    return proc.poll() is not None if proc else manager.status(run).final


def _follow(run, proc) -> int:
    """Wait while the run is queued, then show progress until it ends; Ctrl+C or SIGTERM cancels the run
    (a running one saves a checkpoint first). `proc` is the worker when this process launched it, else None."""
    from studio.runs import manager
    from studio.runs.metrics import MetricsReader
    from studio.runs.status import State

    signal.signal(signal.SIGTERM, _raise_interrupt)
    reader = MetricsReader(run.metrics_path)
    bar = None
    try:
        if proc is None:
            proc = _wait_in_queue(run)
        # The bar starts with the first training step, so its rate and ETA leave the model and data loading out.
        print(f"{run.id}: loading the model and data", file=sys.stderr)
        while not _ended(run, proc):
            time.sleep(0.5)
            bar = _update_bar(bar, run.read_status(), reader, run.id)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print("cancelling: saving a checkpoint and stopping the worker...", file=sys.stderr)
        status = manager.cancel(run)
        print(f"run {status.state}", file=sys.stderr)
        return EXIT_CANCELLED
    status = manager.status(run, exit_code=proc.returncode if proc else None)
    bar = _update_bar(bar, status, reader, run.id)
    if bar is not None:
        bar.close()
    if status.state is State.COMPLETED:
        print(f"completed: {status.step} steps; adapter in {run.adapter_dir}")
        return 0
    if status.state is State.CANCELLED:
        print("run cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    print(f"error: {status.error or 'the run failed'} (log: {run.log_path})", file=sys.stderr)
    return EXIT_FAILED


def _update_bar(bar, status, reader, run_id: str):
    """The progress bar, made once the run knows its total steps (None before); redrawn only when the step or the
    loss moved, so a log file of the output stays short. `status` is the run's RunStatus."""
    from tqdm import tqdm

    total, step = status.total_steps, status.step
    if bar is None:
        if not total:
            return None
        bar = tqdm(
            total=total, unit="step", desc=run_id, file=sys.stderr, dynamic_ncols=True, leave=True, mininterval=1.0
        )
    losses = [row["loss"] for row in reader.read_new() if "loss" in row]
    if total == bar.total and step == bar.n and not losses:
        return bar
    bar.total = total or bar.total
    bar.n = step
    if losses:
        bar.set_postfix(loss=losses[-1], refresh=False)
    bar.refresh()
    return bar


# ---------------------------------------------------------------- runs and show


def _fmt_loss(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def cmd_runs(args) -> int:
    from studio.runs import table

    rows = table.run_rows()  # the Runs tab's rows too
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=1))
        return 0
    if not rows:
        print("no runs yet; start one with `rlhf-studio train sft-dolly-tiny`")
        return 0
    print(f"{'ID':<32} {'STAGE':<9} {'STATE':<13} {'STEP':>11} {'LOSS':>8}  {'NAME':<20} FROM")
    for r in rows:
        step = f"{r.step}/{r.total_steps or '?'}"
        print(
            f"{r.id:<32} {r.stage:<9} {r.state_label:<13} {step:>11} {_fmt_loss(r.last_loss):>8}  "
            f"{(r.name or r.model):<20} {r.parent}".rstrip()
        )
    return 0


def cmd_show(args) -> int:
    import yaml

    from studio.runs import manager, trackers
    from studio.runs.metrics import read_all

    run = manager.find(args.run_id)
    status = manager.status(run)
    place = manager.queue_places().get(run.id, {})
    tracked = trackers.read_records(run)
    config = yaml.safe_load(run.config_path.read_text(encoding="utf-8"))
    latest = {}
    for row in read_all(run.metrics_path):
        latest.update(row)
    if args.json:
        print(
            json.dumps(
                {
                    "id": run.id,
                    "dir": str(run.path),
                    "status": {**status.to_json(), **place},
                    "config": config,
                    "metrics": latest,
                    "trackers": [dataclasses.asdict(record) for record in tracked],
                },
                indent=1,
            )
        )
        return 0
    print(
        f"run    {run.id}\ndir    {run.path}\nstate  {manager.state_label({'state': status.state, **place})}  "
        f"step {status.step}/{status.total_steps}"
    )
    if place.get("queued_behind"):
        print(f"behind {place['queued_behind']}")
    if status.error:
        print(f"error  {status.error}")
    if status.log_tail:  # a worker killed from outside could not say more: its last words are in the log
        print(
            "\nlog tail (train.log when it ended):\n" + "\n".join("  " + line for line in status.log_tail.splitlines())
        )
    for record in tracked:
        stopped = f"; stopped: {record.error}" if record.state == "failed" else ""
        view = f"; {record.view}" if record.view else ""
        print(f"{record.name:<6} {record.where or 'not opened'} ({record.rows} rows{view}{stopped})")
    print("\nconfig:\n" + "\n".join("  " + line for line in yaml.safe_dump(config, sort_keys=False).splitlines()))
    if latest:
        print("\nlatest metrics:")
        for key, value in latest.items():
            print(f"  {key:<28} {value}")
    return 0


# ---------------------------------------------------------------- data


def data_spec_from_args(args) -> cfg.DataSpec:
    from studio import data

    path = args.path
    if path is None:  # the bundled sample, or for a source with a file of its own (votes) that file
        path = None if hasattr(data.source_module(args.source), "default_path") else data.SAMPLE
    raw = {"data": {"source": args.source, "path": path, "on_bad_rows": args.on_bad_rows}}
    for key in ("subset", "limit", "max_length"):
        if getattr(args, key) is not None:
            raw["data"][key] = getattr(args, key)
    raw = cfg.apply_overrides(raw, args.set)
    unknown = sorted(set(raw) - {"data"})
    if unknown:
        raise ConfigError(f"--set {unknown[0]}...: only data.* keys apply to `rlhf-studio data`")
    return cfg.from_dict(raw["data"], cfg.DataSpec, "data.")


def cmd_data(args) -> int:
    from studio import data
    from studio.data.preflight import marked

    spec = data_spec_from_args(args)
    loaded = data.load(spec, args.format)
    previews = None
    if args.model:
        from studio.data.lengths import check_lengths
        from studio.data.preflight import preview
        from studio.modeling import models

        tokenizer = models.load_tokenizer(cfg.ModelSpec(name=args.model))
        check_lengths(loaded, tokenizer, spec.max_length, spec.on_bad_rows)
        previews = preview(loaded.rows[: args.examples], tokenizer)
    examples = loaded.rows[: args.examples]
    if args.json:
        report = {
            **loaded.counts(),
            "examples": examples,
        }
        if previews is not None:
            report["previews"] = previews
        print(json.dumps(report, indent=1, ensure_ascii=False))
        return 0
    print(f"{loaded.source}: {len(loaded.rows)} {loaded.format} rows from {loaded.origin}")
    dropped = ", ".join(f"{reason}: {count}" for reason, count in loaded.dropped.most_common())
    print(f"dropped: {sum(loaded.dropped.values())} ({dropped})" if dropped else "dropped: none")
    for problem in loaded.problems:
        print(f"  {problem}")
    for i, example in enumerate(previews or examples, start=1):
        print(f"\n--- example {i}" + (" (the trained part is between >>> and <<<)" if previews else ""))
        print(marked(example) if previews else _messages_text(example))
    return 0


def _messages_text(row: dict) -> str:
    lines = [f"{m['role']}: {m['content']}" for m in row["prompt"]]
    for name in ("completion", "chosen", "rejected"):
        if name in row:
            lines += [f"[{name}] {m['role']}: {m['content']}" for m in row[name]]
    if "margin" in row:
        lines.append(f"[margin] {row['margin']}")
    return "\n".join(lines)


# ---------------------------------------------------------------- compare and chat


def _add_generation_options(parser: argparse.ArgumentParser, defaults: cfg.GenerationSpec | None = None) -> None:
    """--max-new-tokens, --temperature, ...: one option per GenerationSpec field, its help from there and its default
    from `defaults` (GenerationSpec's own when not given)."""
    for name, info in cfg.field_info(cfg.GenerationSpec).items():
        default = getattr(defaults, name) if defaults is not None else info["default"]
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=info["type"],
            default=default,
            help=f"{info['help']} (default {default})",
        )


def generation_spec_from_args(args) -> cfg.GenerationSpec:
    values = {name: getattr(args, name) for name in cfg.field_info(cfg.GenerationSpec)}
    try:
        return cfg.from_dict(values, cfg.GenerationSpec)
    except ConfigError as err:  # name the option that was typed, not the config field behind it
        name, _, why = str(err).partition(" ")
        raise ConfigError(f"--{name.replace('_', '-')} {why}") from None


def cmd_compare(args) -> int:
    from studio.serve import compare, generate

    settings = generation_spec_from_args(args)
    generate.run_target(args.run_id)  # an unknown, unfinished or reward run fails here, before any prompt loads
    if args.reward_run:
        from studio.serve import scoring  # only now: it brings in the training stack

        scoring.check_reward_run(args.reward_run)
    prompts = list(args.prompt)
    if args.prompts:
        prompts += compare.read_prompts(args.prompts)
    if args.held_out is not None:
        if args.held_out < 1:
            raise ConfigError(f"--held-out {args.held_out}: give at least 1")
        prompts += compare.held_out_prompts(args.run_id, args.held_out, settings.seed)
    if not prompts:
        raise StudioError("no prompts: give --prompt TEXT, --prompts FILE or --held-out N")
    result = compare.compare([args.run_id], prompts, settings, reward_run=args.reward_run)
    base, tuned = result.labels
    rows = [
        {
            "prompt": compare.prompt_text(prompt),
            "base": result.answers[base][i],
            "tuned": result.answers[tuned][i],
            "base_score": result.scores[base][i] if result.scores else None,
            "tuned_score": result.scores[tuned][i] if result.scores else None,
        }
        for i, prompt in enumerate(result.prompts)
    ]
    if args.json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return 0
    for number, row in enumerate(rows, start=1):
        print(f"=== prompt {number}/{len(rows)}\n{row['prompt']}")
        for label, side in ((base, "base"), (tuned, "tuned")):
            score = row[f"{side}_score"]
            print(f"--- {label}" + (f"  score {score:.3f}" if score is not None else ""))
            print(row[side] or "(empty answer)")
        print()
    print(_summary_line(result))
    return 0


def cmd_eval(args) -> int:
    from studio.eval import evaluate, judges
    from studio.serve import compare

    settings = generation_spec_from_args(args)
    judge = judges.resolve(args.judge)
    quiet = args.json
    say = (lambda line: None) if quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        prompts = compare.read_prompts(args.prompts) if args.prompts else None
        results = evaluate.evaluate(
            args.run_ids, judge, args.baseline, args.held_out, settings, progress=say, prompts=prompts
        )
    except evaluate.EvaluationStopped as stopped:  # what was judged is saved; show it, then the reason
        _print_evaluations(stopped.results, args.json)
        raise
    _print_evaluations(results, args.json)
    return 0


def _print_evaluations(results: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=1, ensure_ascii=False))
        return
    for result in results:
        for warning in result["warnings"]:
            print(f"warning: {warning}")
        s = result["summary"]
        rate = (
            "no verdicts"
            if s["win_rate"] is None
            else (
                f"win rate {s['win_rate']:.1%} [{s['ci_low']:.1%}, {s['ci_high']:.1%}], "
                f"length-controlled {s['length_controlled_win_rate']:.1%}"
            )
        )
        print(
            f"{result['run_name']} vs {result['baseline_name']} (judge {result['judge']['label']}): {rate}; "
            f"{s['wins']} wins, {s['ties']} ties, {s['losses']} losses"
            + (f", {s['no_verdict']} without a verdict" if s["no_verdict"] else "")
            + f" of {s['prompts']}; mean length {s['mean_length']:.1f} vs {s['baseline_mean_length']:.1f} words"
        )
        bias = result["position_bias"]
        if bias and bias["first_position_share"] is not None:
            print(
                f"  position bias: {bias['first_position_share']:.0%} of picks went to the answer shown first; the "
                f"two orders disagreed on {bias['orders_disagreed']} prompts (counted as ties)"
            )
        print(f"  saved {result['path']}" + (" (partial)" if result["partial"] else ""))


def cmd_rewards_try(args) -> int:
    from studio.serve.rewards import RewardSet

    spec, left_out = _rewards_of(args.source, args.set)
    columns = {}
    for text in args.column:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--column {text!r}: expected NAME=VALUE, e.g. answer=42")
        columns[name.strip()] = [value] * len(args.answer)
    prompt = [{"role": "user", "content": args.prompt}]
    scored = RewardSet(spec).score([prompt] * len(args.answer), list(args.answer), columns)
    if args.json:
        rows = [
            {
                "answer": answer,
                "combined": scored.combined[i],
                "sources": {name: scores[i] for name, scores in scored.per_source.items()},
            }
            for i, answer in enumerate(args.answer)
        ]
        print(json.dumps({"combine": spec.combine, "left_out": left_out, "answers": rows}, indent=1))
        return 0
    for line in left_out:
        print(f"note: {line}", file=sys.stderr)
    names = list(scored.per_source)
    weights = {source.label: source.weight for source in spec.sources}
    print("sources: " + ", ".join(f"{name} (weight {weights[name]:g})" for name in names) + f"; combine {spec.combine}")
    for i, answer in enumerate(args.answer):
        shown = " ".join(answer.split())
        print(f"=== answer {i + 1}: {shown if len(shown) <= 70 else shown[:70] + '...'}")
        for name in names:
            value = scored.per_source[name][i]
            print(f"  {name:<20} {'no score' if value is None else f'{value:.4g}'}")
        print(f"  {'combined':<20} {scored.combined[i]:.4g}")
    return 0


def cmd_rollouts(args) -> int:
    from studio.runs import rollouts

    for flag in ("top", "bottom"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ConfigError(f"--{flag} {getattr(args, flag)}: give at least 1")
    rows = rollouts.load(
        args.run_id,
        step=args.step,
        sort=args.sort,
        top=args.top,
        bottom=args.bottom,
        text=args.filter,
        every_step=args.all,
    )
    if args.json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return 0
    if not rows:
        print(f"no answers hold {args.filter!r}" if args.filter else "no answers")
        return 0
    for row in rows:
        print(_rollout_heading(row))
        print(_indented("prompt", row.get("prompt", "")))
        print(_indented("answer", row.get("answer", "")))
        scores = ", ".join(f"{name} {_fmt_score(value)}" for name, value in (row.get("scores") or {}).items())
        print(f"  scores: {scores}")
    return 0


def _rollout_heading(row: dict) -> str:
    parts = [f"step {row['step']}", f"reward {_fmt_score(row.get('reward'))}"]
    if row.get("kl") is not None:
        parts.append(f"kl {row['kl']:.3f}")
    parts.append(f"{row.get('length')} tokens" + ("" if row.get("ended") else ", cut off"))
    if row.get("penalty"):
        parts.append(f"missing-EOS penalty {row['penalty']:g}")
    if "group" in row:
        parts.append(f"group {row['group']}")
    if "advantage" in row:
        parts.append(f"advantage {row['advantage']:.3f}")
    if row.get("best"):
        parts.append("best" + (", kept" if row.get("kept") else ", not kept"))
    return "=== " + " · ".join(parts)


def _fmt_score(value) -> str:
    return "no score" if not isinstance(value, (int, float)) else f"{value:.4g}"


def _indented(label: str, text: str) -> str:
    lines = str(text).splitlines() or [""]
    return "\n".join([f"  {label}: {lines[0]}", *(f"          {line}" for line in lines[1:])])


def _rewards_of(source: str, overrides: list[str]) -> tuple[cfg.RewardsSpec, list[str]]:
    """(the rewards section to try, notes on sources left out) of a run config or preset, a pipeline (its online
    stage; sources naming its own reward stages cannot score before those ran, so they are left out), or a run id."""
    from pathlib import Path

    from studio.pipelines import presets, recipe

    given = Path(source).expanduser()
    looks_like_a_file = given.exists() or len(given.parts) != 1 or given.suffix in (".yaml", ".yml")
    if not looks_like_a_file and source not in presets.listing():  # a run id (or a unique start of one)
        from studio.serve.rewards import run_rewards

        return run_rewards(source), []
    path = presets.resolve(source)
    raw = cfg.read_yaml(path)
    if not recipe.is_pipeline(raw):
        config = cfg.from_dict(cfg.apply_overrides(raw, overrides))
        if config.stage not in cfg.ONLINE_STAGES:
            raise ConfigError(
                f"{source}: a {config.stage} config has no reward sources; give a ppo, grpo, rloo or rejection config"
            )
        return config.rewards, []
    online = [stage for stage in recipe.from_dict(raw, overrides).stages if stage.config.stage in cfg.ONLINE_STAGES]
    if len(online) != 1:
        names = ", ".join(stage.name for stage in online) or "none"
        raise ConfigError(
            f"{source}: a pipeline with {len(online)} stages that score answers ({names}); give one stage's config"
        )
    stage = online[0]
    spec = stage.config.rewards
    pending = set(stage.reward_stages)
    left_out = [f"{name}: the pipeline's reward stage, which has not run yet" for name in stage.reward_stages]
    kept = [s for s in spec.sources if s.run not in pending]
    if not kept:
        raise ConfigError(f"{source}: stage {stage.name} is scored only by reward stages that have not run yet")
    spec.sources = kept
    return spec, left_out


def _summary_line(result) -> str:
    base, tuned = result.summary()
    speed = f"tokens/s {base['tokens_per_second']} base, {tuned['tokens_per_second']} tuned"
    if "mean_score" not in tuned:
        return f"summary: {speed} (add --reward-run RM_ID for scores)"
    return (
        f"summary: mean score {base['mean_score']:.3f} base, {tuned['mean_score']:.3f} tuned; tuned wins "
        f"{tuned['win_rate']:.0%} of prompts against base (ties count half); {speed}"
    )


def cmd_eval_rm(args) -> int:
    from studio.eval import reward_model

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit {args.limit}: give at least 1")
    report = reward_model.evaluate(args.run_id, args.data, limit=args.limit)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1, ensure_ascii=False))
        return 0
    print(f"reward run {report.run_id} on {report.data}")
    ties = f"; {report.ties} ties, counted wrong" if report.ties else ""
    print(
        f"accuracy {report.accuracy:.1%} ({report.right} of {report.n} pairs{ties}), "
        f"mean margin {report.mean_margin:.3f}"
    )
    if report.subsets:
        print()
        _print_table(
            [report.subset_column, "pairs", "accuracy", "mean margin"],
            [[s.subset, s.n, f"{s.accuracy:.1%}", f"{s.mean_margin:.3f}"] for s in report.subsets],
        )
    print()
    _print_table(
        ["length, chosen against rejected (words)", "pairs", "accuracy"],
        [[b.bin, b.n, "-" if b.accuracy is None else f"{b.accuracy:.1%}"] for b in report.by_length],
    )
    if report.length_pairs:
        print(
            f"the longer answer scored higher in {report.longer_won:.1%} of the {report.length_pairs} pairs whose "
            f"lengths differ (the file's chosen answer is the longer one in {report.longer_chosen:.1%})"
        )
    print(f"\nsaved {report.saved}")
    return 0


def _print_table(headers: list[str], rows: list[list]) -> None:
    """Columns padded to their widest cell: text left, numbers right."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    for row in [headers, *rows]:
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip())


def cmd_chat(args) -> int:
    from studio.serve import generate

    settings = generation_spec_from_args(args)
    target = generate.base_target(args.run_id) if args.base else generate.run_target(args.run_id)
    generator = generate.shared()
    opening = [{"role": "system", "content": args.system.strip()}] if args.system and args.system.strip() else []
    conversation = list(opening)
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"chatting with {target.label}: /reset starts over, /exit or Ctrl+D ends, Ctrl+C stops a reply")
    while True:
        try:
            line = input("you> " if interactive else "")
        except (EOFError, KeyboardInterrupt):  # Ctrl+D, the end of piped input, or Ctrl+C at the prompt
            if interactive:
                print()
            return 0
        text = line.strip()
        if not text:
            continue
        if text == "/exit":
            return 0
        if text == "/reset":
            conversation = list(opening)
            print("(conversation cleared)")
            continue
        if not interactive:
            print(f"you> {text}")  # piped input is not echoed by a terminal: keep the transcript readable
        conversation.append({"role": "user", "content": text})
        reply = _stream_reply(generator, target, conversation, settings)
        conversation.append({"role": "assistant", "content": reply})


def _stream_reply(generator, target, conversation: list[dict], settings: cfg.GenerationSpec) -> str:
    """Print the reply as it is generated and return it; Ctrl+C stops this reply, not the chat."""
    import threading

    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    print("assistant> ", end="", flush=True)
    shown, text = "", ""
    try:
        for part in generator.stream(target, conversation, settings, stop):
            text = part.text
            # A character split across tokens decodes as U+FFFD until its last byte arrives: show it then.
            ready = text.rstrip("\ufffd")
            if ready.startswith(shown) and len(ready) > len(shown):
                print(ready[len(shown) :], end="", flush=True)
                shown = ready
    finally:
        signal.signal(signal.SIGINT, previous)
    if not text.startswith(shown):  # the final decode differs from what was shown: show it whole
        print("\n" + text, end="")
    elif text != shown:
        print(text[len(shown) :], end="")
    print(" [stopped]" if stop.is_set() else "", flush=True)
    return text


def cmd_serve(args) -> int:
    from studio.serve import openai_api

    try:
        openai_api.serve(args.targets, args.host, args.port, args.api_key_env, args.model)
    except KeyboardInterrupt:  # Ctrl+C is how a server is stopped, not a failure
        pass
    return 0


# ---------------------------------------------------------------- votes


def _set_rounds(name: str) -> list:
    from studio.pipelines import rounds

    return rounds.rounds(name)


def cmd_votes_list(args) -> int:
    from studio.data.votes import sets

    rows = []
    for name in sets.names():
        summary = sets.summarize(name)
        rows.append(
            {
                "name": name,
                "votes": summary.votes,
                "pairs": summary.pairs,
                "annotators": summary.annotators,
                "rounds": len(_set_rounds(name)),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return 0
    if not rows:
        print("no vote sets yet; vote in the Compare tab's Vote view (its first set is called default)")
        return 0
    _print_table(
        ["SET", "VOTES", "PAIRS", "ANNOTATORS", "ROUNDS"],
        [[r["name"], r["votes"], r["pairs"], len(r["annotators"]), r["rounds"]] for r in rows],
    )
    return 0


def _round_json(round_) -> dict:
    from dataclasses import asdict

    return {"label": round_.label, **asdict(round_)}


def _win_rate_text(entry: dict) -> str:
    if entry.get("error"):
        return f"no win rate: {entry['error']}"
    if entry.get("win_rate") is None:
        return "no win rate"
    interval = f" (95% {entry['ci_low']:.0%} to {entry['ci_high']:.0%})" if entry.get("ci_low") is not None else ""
    caveat = " (the reward it trained against: no independent check)" if entry.get("trained_against") else ""
    return f"win rate {entry['win_rate']:.1%}{interval} over {entry.get('n')} prompts{caveat}"


def cmd_votes_show(args) -> int:
    from dataclasses import asdict

    from studio.data.votes import records, sets

    vote_set = sets.load(args.set_name)
    summary = sets.summarize(vote_set.name)
    rounds = _set_rounds(vote_set.name)
    levels = [lv for lv in (*records.GRADES, "ungraded", *records.OUTCOMES) if summary.by_level.get(lv)]
    if args.json:
        report = {
            **asdict(vote_set),
            "folder": str(vote_set.folder),
            "votes": summary.votes,
            "pairs": summary.pairs,
            "rankings": summary.rankings,
            "ties": summary.by_level.get("tie", 0),
            "both_bad": summary.by_level.get("both_bad", 0),
            "by_level": summary.by_level,
            "share": {lv: summary.share(lv) for lv in levels},
            "annotators": summary.annotators,
            "undone": summary.undone,
            "agreement": summary.agreement.to_json(),
            "problems": summary.problems,
            "rounds": [_round_json(r) for r in rounds],
        }
        print(json.dumps(report, indent=1, ensure_ascii=False))
        return 0
    print(f"vote set  {vote_set.name}\nfolder    {vote_set.folder}")
    guidelines = vote_set.guidelines.strip()
    lines = [f"  {line}" for line in guidelines.splitlines()]
    print("\n".join(["guidelines:", *lines]) if lines else "guidelines: none")
    print(f"models    {', '.join(vote_set.models) or '-'}")
    prompts = f"held-out prompts of run {vote_set.prompts_from}" if vote_set.prompts_from else None
    print(f"prompts   {prompts or (f'{len(vote_set.prompts)} typed' if vote_set.prompts else '-')}")
    print(f"policy    {vote_set.policy or '-'}")
    ties, both_bad = summary.by_level.get("tie", 0), summary.by_level.get("both_bad", 0)
    print(
        f"\nvotes     {summary.votes} live, {summary.undone} taken back; ties {ties}, both bad {both_bad}, "
        f"rankings {summary.rankings}; training pairs {summary.pairs}"
    )
    if levels:
        labels = {**records.GRADE_LABELS, **records.OUTCOME_LABELS, "ungraded": "Ungraded"}
        print("share per level:")
        _print_table(
            ["  LEVEL", "VOTES", "SHARE"],
            [[f"  {labels[lv]}", summary.by_level[lv], f"{summary.share(lv):.1%}"] for lv in levels],
        )
    people = ", ".join(f"{who} {count}" for who, count in sorted(summary.annotators.items()))
    print(f"annotators  {people or '-'}")
    if summary.agreement.pairs:
        print("agreement on pairs two annotators both judged:")
        _print_table(
            ["  ANNOTATORS", "PAIRS", "AGREED", "AGREEMENT", "KAPPA"],
            [[f"  {who}", *rest] for who, *rest in summary.agreement.table()],
        )
    else:
        print("agreement: no pair judged by two annotators yet")
    if summary.problems:
        print("lines skipped:")
        for problem in summary.problems:
            print(f"  {problem}")
    if rounds:
        print("rounds:")
    for r in rounds:
        print(
            f"  {r.label}  {r.state}  {r.stage} from {r.previous_policy}: policy {r.policy_run or '-'}, "
            f"reward model {r.reward_run or '-'}, {r.pairs} pairs from {r.votes} votes"
        )
        for judge, entry in (r.win_rate or {}).items():
            print(f"    against {r.previous_policy}, judged by {judge}: {_win_rate_text(entry)}")
        if r.error:
            print(f"    error: {r.error}")
    return 0


def cmd_votes_export(args) -> int:
    from studio.publish import vote_sets

    folder = vote_sets.export(args.set_name, args.out)
    print(
        f"exported vote set {args.set_name} to {folder} "
        f"({', '.join([vote_sets.CARD, *vote_sets.DATA_FILES.values()])}); "
        f'load it with datasets.load_dataset("{folder}", "pairs") or "votes"'
    )
    return 0


def cmd_votes_push(args) -> int:
    from studio.publish import vote_sets

    url = vote_sets.push(args.set_name, args.repo, private=args.private)
    print(f"pushed vote set {args.set_name} to {url}")
    return 0


def cmd_votes_next_round(args) -> int:
    from studio.pipelines import rounds

    ended = rounds.run(args.set_name, args.stage, args.overrides, on_line=print)
    for judge, entry in (ended.win_rate or {}).items():
        print(f"{ended.label} against {ended.previous_policy}, judged by {judge}: {_win_rate_text(entry)}")
    return 0 if ended.state == rounds.COMPLETED else EXIT_FAILED


# ---------------------------------------------------------------- push and export-space


def cmd_push(args) -> int:
    from studio.publish import share

    url = share.push(args.run_id, args.repo_id, merged=args.merged, private=args.private)
    print(f"pushed {args.run_id} to {url}")
    return 0


def cmd_export_space(args) -> int:
    from studio.publish import share

    if args.push:  # a bad repo id or a missing token fails before anything is written
        share.check_repo_id(args.push)
        share.hub_token(None)
    folder = share.export_space(args.run_id, args.out_dir)
    print(f"space written to {folder}; try it with `python {folder / 'app.py'}`")
    if args.push:
        print(f"pushed to {share.push_space(folder, args.push, private=args.private)}")
    return 0


def cmd_export_gguf(args) -> int:
    from studio.publish import gguf

    done = gguf.export_gguf(args.run_id, args.out_dir, type=args.type)
    print(f"gguf written to {done.gguf}")
    print(f"Modelfile written to {done.modelfile}; in that folder: `ollama create NAME -f Modelfile`")
    _warn(done.note)
    return 0


def cmd_install_gguf_converter(args) -> int:
    from studio.publish import converter

    print(f"llama.cpp's converter installed in {converter.install(args.sdist)}")
    return 0


# ---------------------------------------------------------------- ui


def cmd_ui(args) -> int:
    # The UI lives in components/, which imports studio/, never the other way round: hand over the process.
    import os

    from studio import access

    if args.auth is not None:  # handed on in the environment: the new process's argv never shows the password
        access.parse_login(args.auth)
        os.environ[access.AUTH_ENV] = args.auth
    access.check_exposure(args.host, access.login_from_env())  # one line here, before gradio loads
    # Loading gradio and building the tabs takes seconds: say so now; the server says when the page is ready.
    print(f"RLHF Studio is starting on http://{args.host}:{args.port} ...", flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "components", "--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    raise SystemExit(main())
