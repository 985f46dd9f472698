"""Experiment trackers: every row of a run's metrics.jsonl, and its config, also sent to Trackio, TensorBoard,
Weights & Biases or MLflow (`train.report_to`), through each tracker's own package.

    relay = trackers.start(config, run)     # in the training process, before the stage trains
    ...                                      # the trainer writes metrics.jsonl as always
    relay.close("completed")                 # sends what is left, ends the tracker runs, writes trackers.json

One relay serves every stage, TRL's trainers and our own PPO and rejection loops alike: a thread that reads
metrics.jsonl as it grows (metrics.MetricsReader) and hands each new row to each tracker, with the same keys.
So metrics.jsonl stays the studio's truth and a tracker's waits never hold up a training step: a tracker whose
server is gone fails in the relay's thread, is logged once and dropped, and the run goes on (bench/trackers.py).
(TRL's own `report_to` callbacks rename the keys, train/loss for loss, and an exception in one of them ends the run;
hence not those.)
Tokens come from each tracker's usual environment variables (WANDB_API_KEY, MLFLOW_TRACKING_URI and
MLFLOW_TRACKING_TOKEN, HF_TOKEN for a Trackio Space), never from the config. trackers.json in the run folder says
where each tracker keeps the run and the command that shows it, for the Runs tab and `rlhf-studio show`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import netrc
import os
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from studio.config import TRACKERS, RunConfig, to_dict
from studio.errors import ConfigError
from studio.paths import studio_home
from studio.runs.metrics import MetricsReader
from studio.runs.rundir import RunDir

log = logging.getLogger(__name__)

PROJECT = "rlhf-studio"  # the Trackio project, MLflow experiment and W&B project the runs go to
POLL_SECONDS = 1.0  # how often the relay looks for new rows
CLOSE_SECONDS = 30.0  # how long the end of a run waits for a slow tracker before it leaves it behind
NOT_METRICS = ("step", "time")  # the row's position, not a measurement: the tracker's own step and timestamp

# tracker name -> (the module it imports, the package to install)
PACKAGES = {
    "trackio": ("trackio", "trackio"),
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
}


def check(config: RunConfig) -> None:
    """Refuse, in one line and before a run exists, a tracker whose package is missing or, for W&B, whose login
    is nowhere to be found."""
    for name in config.train.report_to:
        module, package = PACKAGES[name]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"train.report_to = {name}: its package is not installed; pip install {package}")
    if "wandb" in config.train.report_to and not _wandb_can_log():
        raise ConfigError(
            "train.report_to = wandb: no W&B login; set WANDB_API_KEY, run `wandb login`, or set "
            "WANDB_MODE=offline to keep the run on this machine (`wandb sync` uploads it later)"
        )


def _wandb_can_log() -> bool:
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


# ---------------------------------------------------------------- what the relay sends


def numbers(row: dict) -> dict[str, float]:
    """The measurements of one metrics row: every number but the step and the time (NaN stays NaN)."""
    out = {}
    for key, value in row.items():
        if key in NOT_METRICS or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) or value in ("nan", "inf", "-inf"):
            out[key] = float(value)
    return out


def flat_params(config: RunConfig) -> dict[str, str]:
    """The config as flat `section.key` -> text pairs: MLflow's parameters."""
    out: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        else:
            out[prefix] = value if isinstance(value, str) else json.dumps(value)

    walk("", to_dict(config))
    return out


@dataclass(frozen=True)
class Point:
    """One metrics row as a tracker takes it."""

    metrics: dict[str, float]
    step: int
    when: float  # the row's time (seconds since the epoch)

    @classmethod
    def of(cls, row: dict) -> Point:
        return cls(numbers(row), int(row.get("step") or 0), float(row.get("time") or time.time()))


# ---------------------------------------------------------------- the trackers, one class each


class Tracker:
    """One tracker's run: opened with the config, fed rows, ended with the run's state."""

    name = ""
    where = ""  # a link or a folder, for trackers.json
    view = ""  # the command that shows it, when `where` is not a web page

    def __init__(self, config: RunConfig, run: RunDir, run_name: str):
        raise NotImplementedError

    def log(self, points: list[Point]) -> None:
        """Send the rows read since the last call, oldest first."""
        raise NotImplementedError

    def finish(self, state: str) -> None:
        raise NotImplementedError


class TensorBoard(Tracker):
    """Event files in the run's tensorboard/ folder: `tensorboard --logdir <run>/tensorboard`."""

    name = "tensorboard"

    def __init__(self, config, run, run_name):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run.tensorboard_dir), flush_secs=5)
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in flat_params(config).items()))
        self.where = str(run.tensorboard_dir)
        self.view = f"tensorboard --logdir {run.tensorboard_dir}"

    def log(self, points):
        for point in points:
            for key, value in point.metrics.items():
                self.writer.add_scalar(key, value, global_step=point.step, walltime=point.when)

    def finish(self, state):
        self.writer.close()


class MLflow(Tracker):
    """A run in the experiment "rlhf-studio" of MLFLOW_TRACKING_URI (else <home>/mlflow.db), its parameters the
    config's keys."""

    name = "mlflow"
    STATES = {"completed": "FINISHED", "cancelled": "KILLED"}  # anything else ended as FAILED

    def __init__(self, config, run, run_name):
        # A server that is gone would hold each call for minutes under MLflow's own retry defaults; the relay's
        # thread waits for nothing else, but the end of the run waits for it (CLOSE_SECONDS). Set here, in the
        # training process that opens the tracker, and a user's own setting wins.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow import MlflowClient
        from mlflow.entities import Param

        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{studio_home() / 'mlflow.db'}"
        # The file store keeps each key as a file path, so "reward" (a file) and "reward/three_words" (a file in a
        # folder of the same name) cannot both exist there: on that store alone, / in a key is written as a dot.
        self.slash = "." if "://" not in uri or uri.startswith("file:") else "/"
        self.client = MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(PROJECT)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(PROJECT)
        self.run_id = self.client.create_run(
            experiment_id, run_name=run_name, tags={"rlhf_studio.run_id": run.id, "rlhf_studio.stage": config.stage}
        ).info.run_id
        params = [Param(key, value[:6000]) for key, value in flat_params(config).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters in one batch
            self.client.log_batch(self.run_id, params=params[start : start + 100])
        if uri.startswith(("http://", "https://")):
            self.where = f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{self.run_id}"
        else:
            self.where, self.view = f"{uri} (run {self.run_id})", f"mlflow ui --backend-store-uri {uri}"

    def log(self, points):
        from mlflow.entities import Metric

        batch = [
            Metric(_mlflow_key(key).replace("/", self.slash), value, int(point.when * 1000), point.step)
            for point in points
            for key, value in point.metrics.items()
        ]
        for start in range(0, len(batch), 1000):  # one call per 1000 values, MLflow's limit, not one per row
            self.client.log_batch(self.run_id, metrics=batch[start : start + 1000])

    def finish(self, state):
        self.client.set_terminated(self.run_id, status=self.STATES.get(state, "FAILED"))


def _mlflow_key(key: str) -> str:
    """A metric key as MLflow allows it (letters, digits, _ - . / and spaces): any other character becomes _."""
    return re.sub(r"[^\w\-./ ]", "_", key)


class Trackio(Tracker):
    """A run in the Trackio project "rlhf-studio": the local store ($TRACKIO_DIR, else ~/.cache/huggingface/trackio;
    `trackio show --project rlhf-studio`), or the Space TRACKIO_SPACE_ID names."""

    name = "trackio"

    def __init__(self, config, run, run_name):
        import trackio
        from trackio.utils import TRACKIO_DIR

        self.run = trackio.init(project=PROJECT, name=run_name, config=to_dict(config), embed=False)
        space = os.environ.get("TRACKIO_SPACE_ID")
        if space:
            self.where = f"https://huggingface.co/spaces/{space}"
        else:
            self.where, self.view = str(TRACKIO_DIR), f"trackio show --project {PROJECT}"

    def log(self, points):
        for point in points:
            self.run.log(point.metrics, step=point.step)

    def finish(self, state):
        self.run.finish()


class WandB(Tracker):
    """A W&B run in the project "rlhf-studio" (WANDB_PROJECT and WANDB_ENTITY override); offline with
    WANDB_MODE=offline, its folder in the run's wandb/ folder."""

    name = "wandb"

    def __init__(self, config, run, run_name):
        import wandb

        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", PROJECT),
            name=run_name,
            config=to_dict(config),
            dir=str(run.path),
            reinit="create_new",
        )
        self.where = self.run.url or str(Path(self.run.dir).parent)
        if not self.run.url:  # offline
            self.view = f"wandb sync {self.where}"

    def log(self, points):
        for point in points:
            self.run.log(point.metrics, step=point.step)

    def finish(self, state):
        self.run.finish(exit_code=0 if state in ("completed", "cancelled") else 1)


CLASSES: dict[str, type[Tracker]] = {cls.name: cls for cls in (Trackio, TensorBoard, WandB, MLflow)}
assert set(CLASSES) == set(TRACKERS) == set(PACKAGES), "a tracker in config.TRACKERS needs its class and package"


# ---------------------------------------------------------------- the relay


@dataclass
class Record:
    """One line of trackers.json: where a tracker keeps the run, and how its logging went."""

    name: str
    where: str = ""
    view: str = ""  # the command that shows it, when `where` is not a web page
    state: str = "starting"  # starting, logging, finished, or failed
    error: str = ""
    rows: int = 0  # metrics rows sent


def read_records(run: RunDir) -> list[Record]:
    """The trackers of a run as trackers.json last said; none for a run without trackers."""
    try:
        return [Record(**item) for item in json.loads(run.trackers_path.read_text(encoding="utf-8"))]
    except (OSError, ValueError, TypeError):
        return []


class Relay:
    """Reads metrics.jsonl as it grows and sends each row to every tracker still working (see the module)."""

    def __init__(self, config: RunConfig, run: RunDir):
        self.config, self.run = config, run
        self.run_name = config.train.run_name or run.id
        self.records = {name: Record(name) for name in config.train.report_to}
        self.trackers: dict[str, Tracker] = {}
        self.reader = MetricsReader(run.metrics_path)
        self.final_state = "failed"  # close() says how the run ended
        self._stop = threading.Event()
        self._saving = threading.Lock()  # close() may drop a tracker while the thread saves
        self._thread = threading.Thread(target=self._work, name="trackers", daemon=True)
        self._save()

    def start(self) -> Relay:
        self._thread.start()
        return self

    def close(self, state: str) -> None:
        """Send the rows still unsent, end each tracker's run as `state` (completed, failed, cancelled), and wait
        at most CLOSE_SECONDS for it: a tracker still stuck then is left behind and marked failed."""
        self.final_state = state
        self._stop.set()
        self._thread.join(CLOSE_SECONDS)
        if self._thread.is_alive():
            for record in self.records.values():
                if record.state not in ("finished", "failed"):
                    self._drop(record.name, f"did not answer within {CLOSE_SECONDS:.0f} s at the end of the run")

    def _work(self) -> None:
        for name in list(self.records):
            self._call(name, self._open, name)
        while not self._stop.wait(POLL_SECONDS):
            self._send()
        self._send()
        for name in list(self.trackers):
            if self._call(name, self.trackers[name].finish, self.final_state):
                self.records[name].state = "finished"
        self._save()

    def _open(self, name: str) -> None:
        tracker = CLASSES[name](self.config, self.run, self.run_name)
        self.trackers[name] = tracker
        record = self.records[name]
        record.where, record.view, record.state = tracker.where, tracker.view, "logging"
        log.info("tracker %s: %s", name, tracker.where)
        self._save()

    def _send(self) -> None:
        points = [point for point in map(Point.of, self.reader.read_new()) if point.metrics]
        if not points:
            return
        for name in list(self.trackers):
            if self._call(name, self.trackers[name].log, points):
                self.records[name].rows += len(points)
        self._save()

    def _call(self, name: str, method, *args) -> bool:
        """Call one tracker; an error drops it (logged once) and the others go on."""
        try:
            method(*args)
            return True
        except Exception as err:  # noqa: BLE001 - whatever a tracker raises, the run goes on without it
            self._drop(name, _one_line(err))
            return False

    def _drop(self, name: str, error: str) -> None:
        self.trackers.pop(name, None)
        record = self.records[name]
        record.state, record.error = "failed", error
        log.warning("tracker %s stopped: %s; the run goes on without it (metrics.jsonl has every row)", name, error)
        self._save()

    def _save(self) -> None:
        with self._saving:
            text = json.dumps([asdict(r) for r in self.records.values()], indent=1)
            tmp = self.run.trackers_path.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.run.trackers_path)


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else ""
    return f"{type(err).__name__}: {text}"[:300]


def start(config: RunConfig, run: RunDir) -> Relay | None:
    """The relay for the run's trackers, started; None when train.report_to is empty."""
    if not config.train.report_to:
        return None
    return Relay(config, run).start()
