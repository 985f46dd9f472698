"""Export a finished run as one GGUF file (llama.cpp, Ollama, LM Studio) with an Ollama Modelfile beside it.

    done = export_gguf(run_id, "out/gguf", type="q8_0")   # out/gguf/<run id>-q8_0.gguf and out/gguf/Modelfile
    done.gguf, done.modelfile, done.note                  # note: what the Modelfile could not carry, or None
    rlhf-studio export-gguf RUN_ID OUT_DIR [--type f16|q8_0]

The run's merged weights (share.merged_model: base + every adapter) go through llama.cpp's own converter
(converter.py), which writes the tensors, the tokenizer's vocabulary, merges, special tokens and chat template;
ollama.py writes the Modelfile. A run the converter cannot write (a reward model, an architecture it does not know)
is refused in one line before anything is written; OUT_DIR gets the two files only once both are complete.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from studio.errors import StudioError
from studio.publish import converter, ollama, share


@dataclass(frozen=True)
class Exported:
    gguf: Path
    modelfile: Path
    note: str | None  # set when the Modelfile has no TEMPLATE (a chat template not translated for Ollama)


def _architectures(target) -> list[str]:
    """config.json's `architectures` of the weights the run starts from."""
    from studio.modeling import models

    source = target.weights or models.resolve(target.model.name)
    if Path(source, "config.json").is_file():
        return json.loads(Path(source, "config.json").read_text(encoding="utf-8")).get("architectures") or []
    from transformers import AutoConfig  # a hub model: its config is in the local cache, or one line from here

    try:
        config = AutoConfig.from_pretrained(
            source, revision=target.model.revision, trust_remote_code=target.model.trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise models._load_error(target.model, err) from None
    return list(config.architectures or [])


def check(run_id: str, type: str = "f16") -> Path:
    """Everything that refuses an export before it writes: the type, the run (completed, writes text), the
    converter being there and knowing the architecture. Returns the converter's folder."""
    from studio.serve import generate

    if type not in converter.TYPES:
        raise StudioError(f"type '{type}' is not one of {', '.join(converter.TYPES)}")
    target = generate.run_target(run_id)  # one line for a run that is not completed, or that writes no text
    folder = converter.find()
    names = _architectures(target)
    known = converter.architectures(folder)
    if not names or not any(name in known for name in names):
        raise StudioError(
            f"llama.cpp's converter cannot write '{target.model.name}' as GGUF: its architecture "
            f"({', '.join(names) or 'none given in config.json'}) is not one it knows"
        )
    return folder


def export_gguf(run_id: str, out_dir: str | Path, type: str = "f16") -> Exported:
    """Write <run id>-<type>.gguf and a Modelfile naming it into `out_dir` (new or empty)."""
    from transformers import AutoTokenizer, GenerationConfig

    from studio.modeling.generation import stop_token_ids
    from studio.runs import manager

    run_id = manager.find(run_id).id
    folder = check(run_id, type)
    out = Path(out_dir).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StudioError(f"'{out}' already exists and is not empty; give a new or empty folder")
    name = f"{run_id}-{type}.gguf"
    out.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the output (merged weights can be gigabytes: not /tmp), moved in once complete.
    with tempfile.TemporaryDirectory(prefix=f".{out.name}-", dir=out.parent) as tmp:
        merged = share.merged_model(run_id, Path(tmp) / "merged")
        converter.convert(folder, merged, Path(tmp) / name, type)
        tokenizer = AutoTokenizer.from_pretrained(merged)
        saved = (merged / "generation_config.json").is_file()
        generation = GenerationConfig.from_pretrained(merged) if saved else None
        text, note = ollama.modelfile(name, tokenizer, stop_token_ids(tokenizer, generation))
        out.mkdir(parents=True, exist_ok=True)
        (out / "Modelfile").write_text(text, encoding="utf-8")
        shutil.move(Path(tmp) / name, out / name)
    return Exported(out / name, out / "Modelfile", note)
