"""Python reward functions named in a config as FILE.py:NAME, loaded and called the way TRL's GRPOTrainer calls
its reward functions, so one written for TRL works here unchanged:

    def my_reward(prompts, completions, **columns) -> list[float | None]: ...

    fn = load("rewards/math.py:my_reward", "rewards.sources[1].function")
    scores = call(fn, "my_reward", prompts, completions, columns, time_limit=60)   # checked: one number per answer

Prompts are role/content message lists and completions [assistant message] lists (the studio's data is always
chat), every other data column arrives as a keyword list (one value per answer), plus TRL's own keywords
(completion_ids, trainer_state) where the stage has them. A None score means "no score for this answer". A file
runs as Python in the training process: who may name one is decided by `check_allowed` (studio/access.py says
when the studio is open to others).
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from studio import access
from studio.errors import ConfigError, RewardError

ALLOW_ENV = "RLHF_STUDIO_ALLOW_REWARD_CODE"  # set to 1 to allow Python reward files on a studio open to others


def parse_reference(text: str, where: str) -> tuple[Path, str]:
    """'rewards/math.py:exact' -> (Path('rewards/math.py'), 'exact'), or one line saying what the shape is."""
    file, sep, name = (text or "").strip().rpartition(":")
    if not sep or not file.endswith(".py") or not name.isidentifier():
        raise ConfigError(f"{where} = {text!r}: expected FILE.py:NAME, e.g. rewards/math.py:correct_answer")
    return Path(file).expanduser(), name


def check_allowed(text: str, where: str) -> Path:
    """The function's file, made absolute, if this studio may run it: a file that exists, readable by the rules for
    data files (access.check_readable), and, on a studio others can open, only with ALLOW_ENV=1."""
    file, _ = parse_reference(text, where)
    if access.exposed() and os.environ.get(ALLOW_ENV) != "1":
        raise ConfigError(
            f"{where} = {text!r}: this studio can be opened by others, and a reward function runs as Python on "
            f"this server; use a built-in reward, or have the studio's owner set {ALLOW_ENV}=1"
        )
    access.check_readable(str(file), where)
    if not file.is_file():
        raise ConfigError(f"{where} = {text!r}: no such file {file}")
    return file.absolute()


def load(text: str, where: str) -> Callable:
    """Import FILE.py and return its NAME, or one RewardError line: a missing file or function, an import that
    fails (with its line), a name that is not a function."""
    file, name = parse_reference(text, where)
    if not file.is_file():
        raise RewardError(f"{where} = {text!r}: no such file {file}")
    module_name = f"studio_reward_{abs(hash(str(file.absolute())))}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.absolute().parent))  # so the file can import its neighbours, as a script would
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - any error in the user's file is reported in one line
        raise RewardError(f"{where}: importing {file.name} failed: {_where_in(err, file)}") from None
    finally:
        sys.path.remove(str(file.absolute().parent))
    fn = getattr(module, name, None)
    if fn is None:
        found = sorted(n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_"))
        listed = ", ".join(found) if found else "none"
        raise RewardError(f"{where}: {file.name} has no function '{name}' (its functions: {listed})")
    if not callable(fn):
        raise RewardError(f"{where}: '{name}' in {file.name} is a {type(fn).__name__}, not a function")
    return fn


def call(
    fn: Callable,
    label: str,
    prompts: list,
    completions: list,
    columns: dict[str, list],
    time_limit: float,
    extra: dict | None = None,
) -> list[float | None]:
    """fn's scores for the completions, checked: a list of one number or None per completion, no NaN, within
    time_limit seconds. Anything else raises one RewardError line naming the source, the answer and the fault."""
    began = time.monotonic()
    try:
        with _time_limit(time_limit):
            scores = fn(prompts=prompts, completions=completions, **columns, **(extra or {}))
    except _TooSlow:
        raise RewardError(_too_slow(label, len(completions), time_limit)) from None
    except RewardError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's function failed: one line, not a traceback
        code = getattr(fn, "__code__", None)
        file = Path(code.co_filename) if code else None
        raise RewardError(
            f"reward '{label}' failed on {len(completions)} answers (first: {_preview(completions[:1])}): "
            f"{_where_in(err, file)}"
        ) from None
    if time.monotonic() - began > time_limit:  # the alarm only works on the main thread; measured anywhere
        raise RewardError(_too_slow(label, len(completions), time_limit))
    return check_scores(scores, label, completions)


def check_scores(scores, label: str, completions: list) -> list[float | None]:
    """Scores as floats (None kept), or one line saying which answer got what, and why that is not a score."""
    if hasattr(scores, "tolist"):  # a tensor or an array of scores
        scores = scores.tolist()
    if not isinstance(scores, (list, tuple)):
        raise RewardError(
            f"reward '{label}' returned {type(scores).__name__}, not a list of scores (one number or None per answer)"
        )
    if len(scores) != len(completions):
        raise RewardError(
            f"reward '{label}' returned {len(scores)} scores for {len(completions)} answers; return one per answer"
        )
    checked = []
    for i, value in enumerate(scores):
        if value is None:
            checked.append(None)
            continue
        what = None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            what = f"{type(value).__name__} {value!r:.60}, not a number"
        elif math.isnan(value) or math.isinf(value):
            what = f"{value}, not a finite number"
        if what:
            raise RewardError(
                f"reward '{label}' gave answer {i + 1} of {len(completions)} ({_preview(completions[i : i + 1])}) "
                f"{what}; return a float, or None for no score"
            )
        checked.append(float(value))
    return checked


class _TooSlow(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Interrupt the block after `seconds` with _TooSlow, where a signal can (the main thread on Unix); elsewhere the
    caller measures the time afterwards."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def alarm(signum, frame):
        raise _TooSlow

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _too_slow(label: str, answers: int, limit: float) -> str:
    return (
        f"reward '{label}' took longer than {limit:g} s for {answers} answers (rewards.time_limit); make it "
        "faster or raise the limit"
    )


def _preview(completions: list) -> str:
    """The first answer, short, in quotes: '"The answer is 4..."'."""
    if not completions:
        return "none"
    answer = completions[0]
    if isinstance(answer, list) and answer and isinstance(answer[-1], dict):
        answer = answer[-1].get("content", "")
    text = " ".join(str(answer).split())
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _where_in(err: BaseException, file: Path | None) -> str:
    """'ZeroDivisionError: division by zero (math.py line 7)': the error and the deepest line of the user's file."""
    line = None
    tb = err.__traceback__
    while tb is not None:
        if file is not None and Path(tb.tb_frame.f_code.co_filename) == file.absolute():
            line = tb.tb_lineno
        tb = tb.tb_next
    if isinstance(err, SyntaxError) and err.lineno:
        line = err.lineno
    message = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {message[0]}" if message else type(err).__name__
    return f"{text} ({file.name} line {line})" if line and file else text
