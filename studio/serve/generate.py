"""Answers from a base model and from finished runs, for Compare, Chat and the generation timeline.

    generator = shared()                                   # one per process: the UI and the CLI use this one
    tuned, base = run_target("20261101-120000-sft-ab12"), base_target("20261101-120000-sft-ab12")
    out = generator.generate(tuned, [[{"role": "user", "content": "Name a fruit."}]], GenerationSpec())
    out.texts, out.tokens_per_second
    for part in generator.stream(base, messages, GenerationSpec()):   # the answer so far, token by token
        print(part.text)

One base model is held in memory. A run trained with LoRA is that base plus its adapter (and its parents'
adapters, for a run started from an earlier run), so switching between the base and any number of such runs
loads each adapter once and never reloads the base. A run trained without LoRA is a whole model of its own and
becomes the held model instead. Every answer in a comparison is generated with the same settings and the same
seed, batch by batch, so the only difference between two columns is the weights.

The plain batched generation underneath, shared with training, is studio/modeling/generation.py.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from studio import config as cfg
from studio.config import GenerationSpec, ModelSpec
from studio.errors import StudioError
from studio.modeling.generation import (
    Generated,
    generate_batch,
    prompt_ids,
    sampling_kwargs,
    stop_token_ids,
)
from studio.runs.rundir import RunDir
from studio.runs.status import State

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- what answers: a target


@dataclass(frozen=True)
class Target:
    """A model to generate with: base weights, adapters merged into them, and adapters switched on top."""

    label: str  # "base (tiny)" or the run's id, as columns and messages name it
    model: ModelSpec  # how the base weights load (name, revision, dtype, quantization)
    weights: Path | None = None  # a whole model folder (a run trained without LoRA) instead of model.name
    merged: tuple[Path, ...] = ()  # adapters folded into the base when it loads (DoRA chains, see run_target)
    adapters: tuple[Path, ...] = ()  # LoRA adapters active together on top of the base, oldest first
    tokenizer_dir: Path | None = None  # the tokenizer the run saved (its chat template, pad token); None: the base's
    run_id: str | None = None

    @property
    def base_key(self) -> tuple:
        """Targets with the same key share one loaded base model."""
        m = self.model
        return (
            m.name,
            m.revision,
            m.dtype,
            m.quantization,
            m.double_quant,
            m.trust_remote_code,
            str(self.weights),
            tuple(map(str, self.merged)),
        )


def _completed_run(run_id: str) -> tuple[RunDir, cfg.RunConfig]:
    from studio.runs import manager

    run = manager.open_run(run_id)
    if run.config.stage not in cfg.GENERATING_STAGES:
        raise StudioError(
            f"run '{run.id}' is a {run.config.stage} run: it scores answers and writes none; pick a run of "
            f"a stage that trains a policy ({', '.join(cfg.GENERATING_STAGES)})"
        )
    run.require_completed("run has weights to answer with")
    return run.folder, run.config


def _is_adapter(folder: Path) -> bool:
    return (folder / "adapter_config.json").is_file()


def _uses_dora(folder: Path) -> bool:
    import json

    return bool(json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")).get("use_dora"))


def run_target(run_id: str) -> Target:
    """The weights a completed run trained: its adapter on top of its parents' (init.from_run), down to the base
    model or to the newest run in the chain that was trained without LoRA (a whole model)."""
    run, config = _completed_run(run_id)
    adapters: list[Path] = []
    weights = None
    current, current_config = run, config
    while True:
        if not _is_adapter(current.adapter_dir):
            weights = current.adapter_dir
            break
        adapters.insert(0, current.adapter_dir)
        parent = current_config.init.from_run
        if not parent:
            break
        current = RunDir.of(parent)
        if not current.adapter_dir.is_dir():
            raise StudioError(
                f"run '{run.id}' starts from run '{parent}', whose weights are gone; it cannot be rebuilt"
            )
        current_config = cfg.load_config(current.config_path)
    merged: tuple[Path, ...] = ()
    # LoRA updates add up, so a parent's adapter active beside the child's equals the parent merged in, which is
    # what the child trained on. DoRA rescales each weight by its norm, which does not add up: merge the parents.
    if len(adapters) > 1 and any(_uses_dora(a) for a in adapters):
        merged, adapters = tuple(adapters[:-1]), adapters[-1:]
    return Target(
        label=run.id,
        model=config.model,
        weights=weights,
        merged=merged,
        adapters=tuple(adapters),
        tokenizer_dir=run.adapter_dir,
        run_id=run.id,
    )


def base_target(run_id: str) -> Target:
    """The base model a completed run was tuned from (model.name, loaded as the run loaded it): the model the
    run's answers are compared against."""
    _, config = _completed_run(run_id)
    return model_target(config.model)


def model_target(model: ModelSpec) -> Target:
    """A base model by its spec, with no run on top (to chat with a model before any training)."""
    return Target(label=f"base ({model.name})", model=model)


def generating_runs() -> list[dict]:
    """Completed runs that can answer, newest first: {"id", "name", "stage", "model"}."""
    from studio.runs import manager

    rows = [r for r in manager.list_runs() if r["state"] == State.COMPLETED and r["stage"] in cfg.GENERATING_STAGES]
    return [{"id": r["id"], "name": r["name"], "stage": r["stage"], "model": r["model"]} for r in reversed(rows)]


def answering_models() -> list[tuple[str, str]]:
    """(label, key) of every model that can answer, for a picker: each distinct base model of the completed runs
    ("base (tiny)", keyed by that label), then every completed run that can answer (keyed by its id)."""
    runs = generating_runs()
    bases = list(dict.fromkeys(model_target(ModelSpec(name=r["model"])).label for r in runs))
    return [(label, label) for label in bases] + [
        (f"{r['id']} ({r['name']})" if r["name"] else r["id"], r["id"]) for r in runs
    ]


def target_for(key: str) -> Target:
    """The target an answering_models() key names: a base model label, loaded as its newest completed run loaded
    it, or a run id (or unique prefix)."""
    key = (key or "").strip()
    if not key:
        raise StudioError("pick a model: a base model or a completed run")
    if key.startswith("base (") and key.endswith(")"):
        for r in generating_runs():
            if model_target(ModelSpec(name=r["model"])).label == key:
                return base_target(r["id"])
        raise StudioError(
            f"no completed run starts from {key[len('base (') : -1]}, so the studio does not know how "
            "to load it; pick a listed model"
        )
    return run_target(key)


# ---------------------------------------------------------------- streaming


@dataclass
class Partial:
    """The answer so far while it streams; the last one yielded is the whole answer."""

    text: str
    tokens: int
    seconds: float
    done: bool = False

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


class _TokenQueue:
    """A generate() streamer that hands each new token to the reading thread (the first put is the prompt)."""

    def __init__(self):
        self.tokens: queue.Queue = queue.Queue()
        self._prompt_seen = False

    def put(self, value):
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.tokens.put(token)

    def end(self):
        self.tokens.put(None)


class _StopWhenSet:
    """A stopping criterion that ends generation at the next token once any of the events is set (the Stop
    button, or the reader gone)."""

    def __init__(self, *events: threading.Event):
        self.events = events

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        stop = any(event.is_set() for event in self.events)
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


def stream_one(
    model, tokenizer, messages: list[dict], settings: GenerationSpec, stop: threading.Event | None = None
) -> Iterator[Partial]:
    """Answer one conversation token by token, yielding the text so far; setting `stop` ends it early."""
    import torch
    from transformers import StoppingCriteriaList, set_seed

    stop = stop or threading.Event()
    # Our own event for "the reader is gone": setting the caller's `stop` instead would leave it set, and a chat
    # that keeps one Stop event for every reply would then cut each later reply off at its first token.
    reader_gone = threading.Event()
    device = next(model.parameters()).device
    stop_ids = stop_token_ids(tokenizer, model.generation_config)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    ids = torch.tensor([prompt_ids(tokenizer, messages)], device=device)
    streamer = _TokenQueue()
    errors: list[BaseException] = []
    stopping = StoppingCriteriaList([_StopWhenSet(stop, reader_gone)])

    def work():
        try:
            set_seed(settings.seed)
            with torch.no_grad():
                model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    streamer=streamer,
                    max_new_tokens=settings.max_new_tokens,
                    pad_token_id=pad_id,
                    eos_token_id=stop_ids,
                    use_cache=True,
                    stopping_criteria=stopping,
                    **sampling_kwargs(settings),
                )
        except BaseException as err:  # raised again in the reading thread, where the caller sees it
            errors.append(err)
        finally:
            streamer.end()

    model.eval()
    started = time.perf_counter()
    worker = threading.Thread(target=work, name="generate", daemon=True)
    worker.start()
    answer: list[int] = []
    generated = 0
    try:
        while True:
            token = streamer.tokens.get()
            if token is None:
                break
            generated += 1
            if token in stop_ids:
                continue
            answer.append(token)
            text = tokenizer.decode(answer, skip_special_tokens=True)  # whole answer: multi-byte characters intact
            yield Partial(text=text.strip(), tokens=generated, seconds=time.perf_counter() - started)
    finally:
        reader_gone.set()  # finished, stopped, or the browser closed: end generation now
        worker.join()
    if errors:
        raise errors[0]
    yield Partial(
        text=tokenizer.decode(answer, skip_special_tokens=True).strip(),
        tokens=generated,
        seconds=time.perf_counter() - started,
        done=True,
    )


# ---------------------------------------------------------------- one base model, adapters switched


@dataclass
class _Held:
    key: tuple
    model: object  # the base, wrapped in a PeftModel once an adapter has been loaded
    adapter_names: dict[str, str] = field(default_factory=dict)  # adapter folder -> its name in the PeftModel


class Generator:
    """Holds one base model and switches finished runs' adapters on and off on top of it.

    Thread-safe: one generation at a time (the UI may ask from several sessions at once)."""

    def __init__(self):
        # A plain lock, not an RLock: gradio may resume a streaming generator on another thread, and an RLock
        # must be released by the thread that took it.
        self._lock = threading.Lock()
        self._held: _Held | None = None
        self._tokenizers: dict[str, object] = {}
        self.loads = 0  # base models loaded so far: what tests and the benchmark count

    def generate(self, target: Target, prompts: list[list[dict]], settings: GenerationSpec) -> Generated:
        """Answers to the prompts from the target, in order."""
        with self._lock:
            model, tokenizer = self._activate(target)
            return generate_batch(model, tokenizer, prompts, settings)

    def stream(
        self, target: Target, messages: list[dict], settings: GenerationSpec, stop: threading.Event | None = None
    ) -> Iterator[Partial]:
        """One answer to a conversation, token by token; other generations wait until it ends."""
        with self._lock:
            model, tokenizer = self._activate(target)
            yield from stream_one(model, tokenizer, messages, settings, stop)

    @contextlib.contextmanager
    def holding(self, target: Target) -> Iterator[tuple[object, object]]:
        """(model, tokenizer) of the target for a caller's own forward passes (a judge reading label
        probabilities); other generations wait until the block ends."""
        with self._lock:
            yield self._activate(target)

    def unload(self) -> None:
        """Free the held model (memory back for training)."""
        with self._lock:
            self._held = None
            torch = sys.modules.get("torch")  # never loaded: nothing to free
            if torch is not None and torch.cuda.is_available():
                torch.cuda.empty_cache()

    def tokenizer(self, target: Target):
        key = str(target.tokenizer_dir or target.model.name)
        if key not in self._tokenizers:
            if target.tokenizer_dir is not None and (target.tokenizer_dir / "tokenizer_config.json").is_file():
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(str(target.tokenizer_dir))
                if tokenizer.pad_token is None:
                    tokenizer.pad_token = tokenizer.eos_token
            else:
                from studio.modeling import models

                tokenizer = models.load_tokenizer(target.model)
            self._tokenizers[key] = tokenizer
        return self._tokenizers[key]

    def _activate(self, target: Target):
        """(model, tokenizer) with exactly the target's adapters active, loading only what is not held yet."""
        if self._held is None or self._held.key != target.base_key:
            self._held = None  # drop the old base before loading the new one
            self._held = _Held(key=target.base_key, model=self._load_base(target))
        held = self._held
        for folder in target.adapters:
            if str(folder) not in held.adapter_names:
                held.model = self._load_adapter(held, folder)
        model = held.model
        if hasattr(model, "peft_config"):
            names = [held.adapter_names[str(f)] for f in target.adapters]
            if names:
                model.base_model.set_adapter(names)  # several at once: a run's adapter with its parents'
                model.base_model.enable_adapter_layers()
            else:
                model.base_model.disable_adapter_layers()  # the base alone, exactly
        model.eval()
        return model, self.tokenizer(target)

    def _load_base(self, target: Target):
        import torch

        from studio.modeling import models

        log.info("loading %s for generation", target.weights or target.model.name)
        model = models.load_causal_lm(target.model, target.weights)
        for folder in target.merged:
            model = models.merge_adapter(model, folder)
        if target.model.quantization == "none":
            model.to(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
        self.loads += 1
        return model.eval().requires_grad_(False)

    @staticmethod
    def _load_adapter(held: _Held, folder: Path):
        from peft import PeftConfig, PeftModel

        from studio.modeling import models

        models.check_safe_weights(folder)  # peft would fall back to a pickle adapter_model.bin
        name = f"a{len(held.adapter_names)}"  # run ids hold characters PEFT does not take in module names
        config = PeftConfig.from_pretrained(str(folder))
        config.inference_mode = True
        if hasattr(held.model, "peft_config"):
            held.model.load_adapter(str(folder), adapter_name=name, is_trainable=False)
        else:
            held.model = PeftModel.from_pretrained(held.model, str(folder), adapter_name=name, config=config)
        held.adapter_names[str(folder)] = name
        return held.model


_SHARED: Generator | None = None
_SHARED_LOCK = threading.Lock()


def shared() -> Generator:
    """The process's generator: every tab and command shares its one loaded model."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = Generator()
        return _SHARED
