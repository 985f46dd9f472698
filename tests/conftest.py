"""Shared fixtures: an isolated studio home per test, with the tiny model built once per session."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Tests never reach the network: the hub code paths must fail fast and clearly, not wait on timeouts.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent


# Trained session fixtures that several test files share. With the suite split over two processes (pytest-xdist,
# as scripts/test.sh runs it: whole files per process), the files using one of these run in the same process, so
# it trains once per session.
SHARED_TRAININGS = {"rule_preset_runs": "rule-presets", "demo_runs": "demo"}
SHARED_TRAINING_FILES = {
    "tests/test_math_presets.py": "rule-presets",
    "tests/test_rollouts.py": "rule-presets",
    "tests/test_browser_rollouts.py": "rule-presets",
    "tests/test_demo.py": "demo",
    "tests/test_eval.py": "demo",
}


def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile, with the files of one shared training as one unit. (xdist's loadgroup would do it with
    marks, but pytest 9 ignores the test ids xdist 3.8 rewrites for it.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FilesByTraining(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SHARED_TRAINING_FILES.get(module, module)

    config.option.loadscopereorder = False  # the order pytest_collection_modifyitems gives: the long units first
    return FilesByTraining(config, log)


def pytest_collection_modifyitems(config, items):
    """A file that uses a shared training must be listed with it in SHARED_TRAINING_FILES (the scheduler only sees
    test ids, not fixtures). Those files go first, so the two longest units of work start at once rather than
    last."""
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        for fixture, group in SHARED_TRAININGS.items():
            if fixture in item.fixturenames and SHARED_TRAINING_FILES.get(module) != group:
                raise pytest.UsageError(f"{module} uses {fixture}: list it in SHARED_TRAINING_FILES as {group!r}")
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in SHARED_TRAINING_FILES)  # stable


@pytest.fixture(autouse=True)
def never_the_real_home(tmp_path, monkeypatch):
    """No test writes to the user's ~/.rlhf-studio; tests that need models use `studio_home` on top."""
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(tmp_path / "isolated-home"))


@pytest.fixture(scope="session")
def shared_models(tmp_path_factory) -> Path:
    """The built-in tiny model, built once for the whole session."""
    home = tmp_path_factory.mktemp("shared-home")
    subprocess.run(
        [sys.executable, "-c", "from studio.modeling.models import tiny_model_path; tiny_model_path()"],
        check=True,
        env={**os.environ, "RLHF_STUDIO_HOME": str(home)},
        capture_output=True,
    )
    return home / "models"


@pytest.fixture
def no_stored_login(tmp_path, monkeypatch):
    """No token anywhere: HF_TOKEN unset and an empty huggingface_hub home."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_TOKEN_PATH", raising=False)


@pytest.fixture
def studio_home(tmp_path, monkeypatch, shared_models) -> Path:
    """A fresh $RLHF_STUDIO_HOME whose models/ folder is the session's shared one."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(shared_models)
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(home))
    return home


@contextmanager
def checked_page(browser, url: str) -> Iterator:
    """A fresh page of the studio at `url` in a playwright browser; the test fails on any script error in it."""
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(url)
    yield page
    page.close()
    assert not errors, errors


def select_in_runs_tab(page, run_id: str) -> None:
    """Open the Runs tab and click the run's row, until the tab says that run is selected."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Runs", exact=True).click(timeout=30_000)
    # Its row in the runs table (the text also sits, hidden, in the table's sizer).
    page.locator("#runs-table").get_by_text(run_id, exact=True).locator("visible=true").first.click(timeout=30_000)
    expect(page.get_by_label("Selected run")).to_have_value(run_id, timeout=30_000)


def poll(check, what: str, timeout: float = 30.0):
    """Call `check` every 0.1 s until it returns something true, and return that; fail naming `what` after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def run_cli(*args: str, timeout: float = 300, input: str | None = None) -> subprocess.CompletedProcess:
    """`rlhf-studio ARGS` in a subprocess, with the current environment (and so the test's studio home); `input`
    is piped to its stdin."""
    return subprocess.run(
        [sys.executable, "-m", "studio", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, input=input
    )


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The one "error:" line a failed command printed on stderr, with no traceback."""
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def dolly_row(instruction: str, response: str, context: str = "", category: str = "open_qa") -> dict:
    return {"instruction": instruction, "context": context, "response": response, "category": category}


QUESTIONS = [
    "How do I boil an egg?",
    "What is a good name for a cat?",
    "How can I sleep better?",
    "What should I pack for a picnic?",
    "How do I water a cactus?",
    "Can you suggest a short walk?",
    "How do I clean a window?",
    "What is a quick breakfast?",
    "How do I start a journal?",
    "What game can two people play?",
    "How do I fold a shirt?",
    "What can I cook with rice?",
]
ANSWERS = [
    "Put it in boiling water for nine minutes.",
    "Luna or Pepper are lovely names.",
    "Keep a regular bedtime and dim the lights.",
    "Bring sandwiches, fruit, water and a blanket.",
    "Water it lightly once every two weeks.",
    "A loop around the park takes twenty minutes.",
    "Use warm soapy water, then dry it with a cloth.",
    "Oats with fruit are ready in five minutes.",
    "Write three lines every evening about your day.",
    "Chess or a simple card game works well.",
    "Fold the sleeves back, then fold it in half.",
    "Fried rice with an egg and some peas.",
]
RUDE = [
    "Figure it out yourself.",
    "That is a stupid question.",
    "Why would I tell you?",
    "Go away, I am busy.",
    "Nobody cares about that.",
    "Ask someone else, not me.",
]


def polite_rude_pairs(n: int, seed: int = 0) -> list[dict]:
    """Preference rows in HH-RLHF's raw schema that a tiny model can learn: the chosen answer is polite and
    helpful, the rejected one is rude."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        i = rng.randrange(len(QUESTIONS))
        prompt = f"\n\nHuman: {QUESTIONS[i]}\n\nAssistant:"
        rows.append(
            {
                "chosen": f"{prompt} Of course! {ANSWERS[i]} I hope that helps.",
                "rejected": f"{prompt} {rng.choice(RUDE)}",
            }
        )
    return rows


def error_shown(markdown: str) -> str | None:
    """The text of an error line as a tab shows it (components/oneline.py: escaped, in an error block); None when
    the Markdown is not an error line."""
    import html
    import re

    match = re.fullmatch(r'<div class="studio-error">(.*)</div>', markdown or "", re.S)
    return html.unescape(match[1]) if match else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served_app(argv: list[str], port: int, cwd: Path, env: dict, start_timeout: float = 90) -> Iterator[object]:
    """A gradio_client Client of a gradio app started by `argv` on this port in its own process; stopped after. If it
    does not come up, the test fails with the end of its stderr."""
    from gradio_client import Client

    server = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:  # not up yet
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    pytest.fail("the app did not start: " + server.communicate()[1][-3000:])
                time.sleep(0.5)
        yield client
    finally:
        server.terminate()
        try:
            server.communicate(timeout=10)  # also drains stderr, so a chatty server never blocks on a full pipe
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


@contextmanager
def served_studio(home: Path, start_timeout: float = 90) -> Iterator[tuple[str, object]]:
    """(url, gradio_client.Client) of `rlhf-studio ui` serving this studio home in its own process; stopped after."""
    port = free_port()
    env = {**os.environ, "RLHF_STUDIO_HOME": str(home), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with served_app(
        [sys.executable, "-m", "studio", "ui", "--port", str(port)], port, REPO, env, start_timeout
    ) as client:
        yield f"http://127.0.0.1:{port}/", client


@pytest.fixture(scope="module")
def module_home(tmp_path_factory, shared_models) -> Path:
    """One studio home for a whole test module (and the studio it serves), models/ the session's tiny model."""
    home = tmp_path_factory.mktemp("module-home")
    (home / "models").symlink_to(shared_models)
    return home


@pytest.fixture
def in_module_home(never_the_real_home, module_home, monkeypatch) -> Path:
    """The test process looks at the module's home, as its served studio does (use with pytest.mark.usefixtures)."""
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(module_home))
    return module_home


@pytest.fixture(scope="module")
def module_client(module_home):
    """A gradio_client Client of a studio served on the module's home for the whole module."""
    with served_studio(module_home) as (_url, client):
        yield client


@pytest.fixture
def sleeper():
    """A live process for a run's status to name as its worker (a run that looks running without training)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


@contextmanager
def device_held(sleeper) -> Iterator[None]:
    """A run holding the device in the current studio home (its worker the sleeping process), so that what is
    started meanwhile waits as queued rather than trains. After: the queued runs are cancelled and the holder marked
    cancelled (cancelling it would kill the sleeper's process group, which is pytest's)."""
    from studio.config import RunConfig
    from studio.runs import manager, process

    holder = manager.create(RunConfig(name="holder"))
    holder.write_status(state="running", pid=sleeper.pid, started=process.start_time(sleeper.pid))
    try:
        yield
    finally:
        for row in manager.list_runs():
            if row["state"] == "queued":
                manager.cancel(manager.find(row["id"]))
        holder.write_status(state="cancelled")


@pytest.fixture(scope="session")
def tuned_runs(tmp_path_factory, shared_models) -> dict:
    """A studio home holding three completed tiny runs, trained once per session and only read by the tests that
    use it: {"home", "sft" (an SFT run), "chained" (an SFT run started from "sft"), "reward" (a reward model that
    prefers polite answers)}. Use with `in_tuned_home`."""
    home = tmp_path_factory.mktemp("tuned-home")
    (home / "models").symlink_to(shared_models)
    env = {**os.environ, "RLHF_STUDIO_HOME": str(home), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}

    def train(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "studio", "train", *args],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=REPO,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("run "))

    sft = train("presets/sft-dolly-tiny.yaml", "--set", "train.max_steps=30", "--set", "name=tuned-sft")
    chained = train(
        "presets/sft-dolly-tiny.yaml",
        "--set",
        "train.max_steps=10",
        "--set",
        "name=tuned-chained",
        "--set",
        f"init.from_run={sft}",
    )
    reward = train("presets/rm-hh-tiny.yaml", "--set", "name=tuned-rm")
    return {"home": home, "sft": sft, "chained": chained, "reward": reward}


@pytest.fixture(scope="session")
def rule_preset_runs(tmp_path_factory, shared_models) -> dict:
    """A studio home holding the two presets scored by rules, trained once per session through the CLI and only read
    by the tests that use it: {"home", "grpo-math-tiny": {"sft": ID, "grpo": ID}, "ppo-format-tiny": {"sft": ID,
    "rm": ID, "ppo": ID}}. About 3 minutes on 2 idle cores. Use with `in_rule_preset_home`."""
    home = tmp_path_factory.mktemp("rule-presets-home")
    (home / "models").symlink_to(shared_models)
    env = {**os.environ, "RLHF_STUDIO_HOME": str(home)}
    runs: dict = {"home": home}
    for preset in ("grpo-math-tiny", "ppo-format-tiny"):
        done = subprocess.run(
            [sys.executable, "-m", "studio", "train", f"presets/{preset}.yaml"],
            capture_output=True,
            text=True,
            timeout=1200,
            cwd=REPO,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        # "pipeline NAME completed: sft RUN_ID, grpo RUN_ID"
        summary = next(
            line for line in done.stdout.splitlines() if line.startswith("pipeline ") and "completed" in line
        )
        runs[preset] = dict(part.split() for part in summary.split(": ", 1)[1].split(", "))
    return runs


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory, shared_models) -> dict:
    """A studio home where `rlhf-studio demo --json` ran once per session: {"home", "result" (its JSON), "runs"
    ({"sft", "rm", "ppo", "dpo"}: run ids)}. The tests that use it read its runs; an evaluation adds files to a
    run's eval/ folder. Use with `in_demo_home`."""
    home = tmp_path_factory.mktemp("demo-home")
    (home / "models").symlink_to(shared_models)
    done = subprocess.run(
        [sys.executable, "-m", "studio", "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
        env={**os.environ, "RLHF_STUDIO_HOME": str(home)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)  # stdout is the JSON alone; progress went to stderr
    return {"home": home, "result": result, "runs": {s["name"]: s["run_id"] for s in result["stages"]}}


@pytest.fixture
def in_demo_home(never_the_real_home, demo_runs, monkeypatch) -> dict:
    """The test process looks at the demo_runs home."""
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(demo_runs["home"]))
    return demo_runs


@pytest.fixture
def in_rule_preset_home(never_the_real_home, rule_preset_runs, monkeypatch) -> dict:
    """The test process looks at the rule_preset_runs home (read it, do not add runs to it)."""
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(rule_preset_runs["home"]))
    return rule_preset_runs


@pytest.fixture
def in_tuned_home(never_the_real_home, tuned_runs, monkeypatch) -> dict:
    """The test process looks at the tuned_runs home (read it, do not add runs to it)."""
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(tuned_runs["home"]))
    return tuned_runs
