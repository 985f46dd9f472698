"""llama.cpp's Hugging Face -> GGUF converter: where it is, how to get it, what it can write, and running it.

    folder = install()                       # pip download the llama-cpp-python source, keep only the converter
    folder = install(sdist="llama_cpp_python-0.3.36.tar.gz")   # the same from a file already here (offline)
    folder = find()                          # $RLHF_STUDIO_LLAMA_CPP, else the installed copy; one line if missing
    "LlamaForCausalLM" in architectures(folder)
    convert(folder, "merged/", "out/model.gguf", "f16")
    rlhf-studio install-gguf-converter [--sdist FILE]

The converter (convert_hf_to_gguf.py, its `conversion` package and the `gguf` package it is written against) is
not on PyPI as a module: it ships inside the llama-cpp-python source package, so that is where it comes from. It is
kept in the Python environment (<prefix>/share/rlhf-studio/), like anything pip installs, and never in this
project. It runs in a child process (`python -m studio.publish.converter`) with the `gguf` of its own release first
on sys.path, so the two always match, and with the one thing it cannot know about the studio's tiny model added
(plain_byte_level below).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from studio.errors import StudioError

LLAMA_CPP_PYTHON = "0.3.36"  # the llama-cpp-python release whose converter (and gguf-py) the studio drives
FOLDER_ENV = "RLHF_STUDIO_LLAMA_CPP"  # a llama.cpp checkout (or any folder laid out like one) to use instead
SCRIPT = "convert_hf_to_gguf.py"
# What is kept of the source package: the script, the model classes it registers, the gguf-py it was written
# against and llama.cpp's licence.
KEEP = (SCRIPT, "conversion/", "gguf-py/gguf/", "LICENSE")
VENDOR = "vendor/llama.cpp/"
INSTALL_COMMAND = "rlhf-studio install-gguf-converter"
TYPES = ("f16", "q8_0")  # the GGUF types an export offers (the converter's --outtype)
TYPE_HELP = "f16: half-precision weights; q8_0: 8-bit weights, about half the size, answers close to f16's"


def installed_folder() -> Path:
    return Path(sys.prefix) / "share" / "rlhf-studio" / f"llama.cpp-{LLAMA_CPP_PYTHON}"


def find() -> Path:
    """The folder holding convert_hf_to_gguf.py: $RLHF_STUDIO_LLAMA_CPP when set, else the installed copy."""
    chosen = os.environ.get(FOLDER_ENV)
    folder = Path(chosen).expanduser() if chosen else installed_folder()
    if (folder / SCRIPT).is_file() and (folder / "conversion" / "__init__.py").is_file():
        return folder
    if chosen:
        raise StudioError(f"{FOLDER_ENV}={chosen} holds no {SCRIPT} with its conversion/ folder (a llama.cpp checkout)")
    raise StudioError(
        "llama.cpp's GGUF converter is not installed: run `"
        + INSTALL_COMMAND
        + "` (it downloads the llama-cpp-python source, about 77 MB, and keeps the converter), or set "
        f"{FOLDER_ENV} to a llama.cpp checkout"
    )


def available() -> bool:
    try:
        find()
    except StudioError:
        return False
    return True


def install(sdist: str | Path | None = None) -> Path:
    """Put the converter of llama-cpp-python LLAMA_CPP_PYTHON in installed_folder(), from `sdist` (its source
    package) or downloaded with pip; returns the folder."""
    target = installed_folder()
    with tempfile.TemporaryDirectory(prefix="llama-cpp-src-") as tmp:
        if sdist is None:
            sdist = _download(Path(tmp))
        sdist = Path(sdist).expanduser()
        if not sdist.is_file():
            raise StudioError(f"no file '{sdist}': give the llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz source package")
        staging = Path(tmp) / "converter"
        _extract(sdist, staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        shutil.move(str(staging), target)
        shutil.rmtree(old, ignore_errors=True)
    return target


def _download(folder: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", f"llama-cpp-python=={LLAMA_CPP_PYTHON}"]
        + ["--no-deps", "--no-binary", ":all:", "--quiet", "-d", str(folder)],
        capture_output=True,
        text=True,
    )
    found = sorted(folder.glob("llama_cpp_python-*.tar.gz"))
    if done.returncode != 0 or not found:
        last = (done.stderr.strip().splitlines() or ["no source package came back"])[-1]
        raise StudioError(
            f"could not download the llama-cpp-python {LLAMA_CPP_PYTHON} source with pip ({last}); on a machine "
            f"with no access to PyPI, fetch llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz elsewhere and run "
            f"`{INSTALL_COMMAND} --sdist FILE`"
        )
    return found[0]


def _extract(sdist: Path, out: Path) -> None:
    """Write the KEEP files of the source package's vendor/llama.cpp/ into `out` (plain files only, by name)."""
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            for member in tar:
                top, _, rest = member.name.partition("/")
                if not member.isfile() or not rest.startswith(VENDOR):
                    continue
                relative = rest[len(VENDOR) :]
                parts = Path(relative).parts
                if ".." in parts or not any(relative == k or relative.startswith(k) for k in KEEP if k):
                    continue
                path = out.joinpath(*parts)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(tar.extractfile(member).read())
    except (tarfile.TarError, OSError, EOFError) as err:
        raise StudioError(f"'{sdist}' is not a readable llama-cpp-python source package: {err}") from None
    if not (out / SCRIPT).is_file():
        raise StudioError(f"'{sdist}' holds no {VENDOR}{SCRIPT}: is it the llama-cpp-python source package?")


def architectures(folder: Path) -> set[str]:
    """The Hugging Face architectures (config.json's `architectures`) the converter writes as text models: the keys
    of its TEXT_MODEL_MAP, read from the source without importing it (that would load torch)."""
    source = (folder / "conversion" / "__init__.py").read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign):
            target = node.target
        elif isinstance(node, ast.Assign):
            target = node.targets[0]
        else:
            continue
        if isinstance(target, ast.Name) and target.id == "TEXT_MODEL_MAP" and node.value is not None:
            return set(ast.literal_eval(node.value))
    raise StudioError(f"cannot read the models the converter in '{folder}' writes (no TEXT_MODEL_MAP in conversion/)")


def convert(folder: Path, model_dir: Path, outfile: Path, type: str) -> None:
    """Run the converter on a Hugging Face model folder; a failure is one line (the converter's last words)."""
    done = subprocess.run(
        [sys.executable, "-m", "studio.publish.converter", str(folder), str(model_dir)]
        + ["--outtype", type, "--outfile", str(outfile)],
        capture_output=True,
        text=True,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    if done.returncode != 0 or not outfile.is_file():
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise StudioError(f"llama.cpp's converter failed: {lines[-1] if lines else f'exit code {done.returncode}'}")


# ---------------------------------------------------------------- in the child process


def plain_byte_level(tokenizer_json: dict) -> bool:
    """Whether a tokenizers.json splits text exactly as GPT-2 does (one ByteLevel pre-tokenizer with GPT-2's regex,
    no prefix space, no normaliser): llama.cpp's "gpt-2" pre-tokenizer then splits it the same way. The converter
    recognises pre-tokenizers by a hash of the tokens of a fixed text, so a tokenizer trained here (the tiny model's)
    is unknown to it though its splitting is GPT-2's."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    return (
        tokenizer_json.get("normalizer") is None
        and tokenizer_json.get("model", {}).get("type") == "BPE"
        and pre.get("type") == "ByteLevel"
        and pre.get("add_prefix_space") is False
        and pre.get("use_regex", True) is True
    )


def _run_converter(folder: Path, argv: list[str]) -> None:
    """The converter's own main(), with its gguf-py first on sys.path and the GPT-2 fallback for plain_byte_level
    tokenizers it does not recognise."""
    sys.path[:0] = [str(folder / "gguf-py"), str(folder)]
    import importlib.util

    from conversion import base  # the converter's package, found through sys.path above

    recognise = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer) -> str:
        try:
            return recognise(self, tokenizer)
        except NotImplementedError:
            backend = getattr(tokenizer, "backend_tokenizer", None)
            if backend is not None and plain_byte_level(json.loads(backend.to_str())):
                return "gpt-2"
            raise

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    spec = importlib.util.spec_from_file_location("convert_hf_to_gguf", folder / SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.argv = [SCRIPT, *argv]
    module.main()


if __name__ == "__main__":
    _run_converter(Path(sys.argv[1]), sys.argv[2:])
