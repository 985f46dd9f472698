"""GGUF export: llama.cpp (llama-cpp-python) loads the tiny run's GGUF and answers as the studio does, token for token;
the q8_0 file loads; a reward run and an architecture the converter does not know are refused in one line before
anything is written; the Ollama Modelfile's template, system prompt and stop tokens are the tokenizer's.

llama.cpp's converter must be installed (`rlhf-studio install-gguf-converter`): without it these tests fail with
that line, never pass. llama-cpp-python is optional (it compiles llama.cpp): the tests that load a GGUF skip
without it.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from studio.config import GenerationSpec
from studio.errors import StudioError
from studio.modeling.models import CHATML_TEMPLATE
from studio.publish import converter, gguf, ollama
from tests.conftest import one_error_line, run_cli

PROMPTS = [
    "How many legs does a spider have?",
    "Write a short two-line poem about a lighthouse.",
    "What is a good name for a cat?",
]
GREEDY = GenerationSpec(temperature=0.0, max_new_tokens=24)
needs_llama_cpp = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed (pip builds llama.cpp from source for it: about 6 minutes on 2 cores)",
)


@pytest.fixture(scope="module")
def exported(tuned_runs, tmp_path_factory) -> dict:
    """The tuned SFT run exported once as f16 and once as q8_0: {type: gguf.Exported}."""
    out = tmp_path_factory.mktemp("gguf")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLHF_STUDIO_HOME", str(tuned_runs["home"]))
        return {t: gguf.export_gguf(tuned_runs["sft"], out / t, type=t) for t in converter.TYPES}


def _llama(path: Path):
    from llama_cpp import Llama

    return Llama(model_path=str(path), n_ctx=512, n_threads=1, seed=0, verbose=False)


def _studio_greedy(run_id: str) -> tuple[list[list[int]], list[list[int]], list[str], list[int]]:
    """(prompt ids, greedy answer ids up to and with the stop token, the studio's answer texts, stop ids)."""
    import torch

    from studio.modeling.generation import prompt_ids, sampling_kwargs, stop_token_ids
    from studio.serve.generate import Generator, run_target

    generator, target = Generator(), run_target(run_id)
    texts = generator.generate(target, [[{"role": "user", "content": p}] for p in PROMPTS], GREEDY).texts
    prompts, answers = [], []
    with generator.holding(target) as (model, tokenizer), torch.no_grad():
        stops = stop_token_ids(tokenizer, model.generation_config)
        for prompt in PROMPTS:
            ids = prompt_ids(tokenizer, [{"role": "user", "content": prompt}])
            out = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=GREEDY.max_new_tokens,
                eos_token_id=stops,
                pad_token_id=tokenizer.pad_token_id,
                **sampling_kwargs(GREEDY),
            )
            answer = out[0, len(ids) :].tolist()
            prompts.append(ids)
            answers.append(answer[: next((i + 1 for i, t in enumerate(answer) if t in stops), len(answer))])
    return prompts, answers, texts, stops


def _llama_greedy(llm, ids: list[int], stops: list[int]) -> list[int]:
    got = []
    for token in llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
        got.append(token)
        if token in stops or len(got) >= GREEDY.max_new_tokens:
            return got
    return got


# ---------------------------------------------------------------- what the file holds, and llama.cpp's answers


@pytest.mark.slow
def test_the_gguf_holds_the_tensors_vocabulary_merges_special_tokens_and_chat_template(exported, tuned_runs):
    import gguf as gguf_py
    from transformers import AutoTokenizer

    done = exported["f16"]
    assert done.gguf.name == f"{tuned_runs['sft']}-f16.gguf" and sorted(p.name for p in done.gguf.parent.iterdir()) == [
        done.gguf.name,
        "Modelfile",
    ]
    tokenizer = AutoTokenizer.from_pretrained(tuned_runs["home"] / "runs" / tuned_runs["sft"] / "adapter")
    reader = gguf_py.GGUFReader(done.gguf)
    fields = {name: field.contents() for name, field in reader.fields.items()}
    names = {t.name for t in reader.tensors}
    assert {"token_embd.weight", "output_norm.weight", "blk.0.attn_q.weight", "blk.1.ffn_down.weight"} <= names
    assert fields["general.architecture"] == "llama"
    vocab = tokenizer.get_vocab()
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.ggml.tokens"] == sorted(vocab, key=vocab.get)
    assert len(fields["tokenizer.ggml.merges"]) == len(
        json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    )
    assert fields["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id
    assert fields["tokenizer.ggml.padding_token_id"] == tokenizer.pad_token_id
    assert fields["tokenizer.chat_template"] == tokenizer.chat_template
    assert not fields.get("tokenizer.ggml.add_bos_token", False)  # the tiny model has no BOS


@pytest.mark.slow
@needs_llama_cpp
def test_llama_cpp_answers_the_f16_gguf_as_the_studio_does_token_for_token(exported, tuned_runs, monkeypatch):
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(tuned_runs["home"]))
    prompts, answers, texts, stops = _studio_greedy(tuned_runs["sft"])
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tuned_runs["home"] / "runs" / tuned_runs["sft"] / "adapter")
    llm = _llama(exported["f16"].gguf)
    for prompt, ids, answer, text in zip(PROMPTS, prompts, answers, texts):
        messages = [{"role": "user", "content": prompt}]
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert llm.tokenize(rendered.encode(), add_bos=False, special=True) == ids  # split as the studio splits
        got = _llama_greedy(llm, ids, stops)
        assert got == answer, prompt
        words = got[:-1] if got[-1] in stops else got
        assert len(words) > 3 and llm.detokenize(words).decode().strip() == text


@pytest.mark.slow
@needs_llama_cpp
def test_the_q8_0_gguf_is_smaller_and_llama_cpp_answers_with_it(exported, tuned_runs, monkeypatch):
    import gguf as gguf_py

    done = exported["q8_0"]
    assert done.gguf.stat().st_size < 0.75 * exported["f16"].gguf.stat().st_size
    types = {t.tensor_type for t in gguf_py.GGUFReader(done.gguf).tensors}
    assert gguf_py.GGMLQuantizationType.Q8_0 in types
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(tuned_runs["home"]))
    prompts, answers, _texts, stops = _studio_greedy(tuned_runs["sft"])
    llm = _llama(done.gguf)
    for ids, answer in zip(prompts, answers):
        got = _llama_greedy(llm, ids, stops)
        # 8-bit weights: the same most likely first token, and a whole answer
        assert got[0] == answer[0] and (len(got) == GREEDY.max_new_tokens or got[-1] in stops)


# ---------------------------------------------------------------- refused before anything is written


def test_a_reward_run_is_refused_in_one_line_and_nothing_is_written(tuned_runs, in_tuned_home, tmp_path):
    out = tmp_path / "out" / "gguf"
    line = one_error_line(run_cli("export-gguf", tuned_runs["reward"], str(out)))
    assert tuned_runs["reward"] in line and "scores answers and writes none" in line
    with pytest.raises(StudioError):
        gguf.export_gguf(tuned_runs["reward"], out, type="q8_0")
    assert not (tmp_path / "out").exists()


def test_an_architecture_the_converter_does_not_know_is_refused_in_one_line(tuned_runs, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "runs").mkdir(parents=True)
    (home / "models").symlink_to(tuned_runs["home"] / "models")
    run = shutil.copytree(tuned_runs["home"] / "runs" / tuned_runs["sft"], home / "runs" / tuned_runs["sft"])
    model = tmp_path / "gptj-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"architectures": ["GPTJForCausalLM"], "model_type": "gptj"}))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["model"]["name"] = str(model)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(home))

    out = tmp_path / "out" / "gguf"
    line = one_error_line(run_cli("export-gguf", tuned_runs["sft"], str(out)))
    assert line == (
        f"error: llama.cpp's converter cannot write '{model}' as GGUF: its architecture (GPTJForCausalLM) is not "
        "one it knows"
    )
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_not_empty_and_a_bad_type_are_refused(tuned_runs, in_tuned_home, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(StudioError, match="already exists and is not empty"):
        gguf.export_gguf(tuned_runs["sft"], tmp_path / "full")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    with pytest.raises(StudioError, match="type 'q4' is not one of f16, q8_0"):
        gguf.export_gguf(tuned_runs["sft"], tmp_path / "new", type="q4")


def test_the_converter_writes_the_architectures_of_the_gpu_presets_and_the_tiny_model():
    known = converter.architectures(converter.find())
    assert {"LlamaForCausalLM", "Qwen2ForCausalLM"} <= known and "GPTJForCausalLM" not in known


def test_a_missing_converter_is_one_line_naming_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr(converter, "installed_folder", lambda: tmp_path / "none")
    with pytest.raises(StudioError) as err:
        converter.find()
    assert "rlhf-studio install-gguf-converter" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setenv(converter.FOLDER_ENV, str(tmp_path))
    with pytest.raises(StudioError, match=f"{converter.FOLDER_ENV}=.* holds no convert_hf_to_gguf.py"):
        converter.find()


def test_installing_from_a_file_that_is_not_the_source_package_is_one_line(tmp_path):
    bad = tmp_path / "llama_cpp_python-0.3.36.tar.gz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(StudioError, match="is not a readable llama-cpp-python source package"):
        converter.install(bad)


# ---------------------------------------------------------------- the tiny tokenizer's pre-tokenizer


def test_only_a_plain_gpt2_byte_level_split_is_given_llama_cpps_gpt2_pre_tokenizer(studio_home):
    from studio.modeling.models import tiny_model_path

    tiny = json.loads((tiny_model_path() / "tokenizer.json").read_text())
    assert converter.plain_byte_level(tiny)
    assert not converter.plain_byte_level(
        {**tiny, "pre_tokenizer": {**tiny["pre_tokenizer"], "add_prefix_space": True}}
    )
    assert not converter.plain_byte_level({**tiny, "pre_tokenizer": {**tiny["pre_tokenizer"], "use_regex": False}})
    assert not converter.plain_byte_level({**tiny, "normalizer": {"type": "NFC"}})
    assert not converter.plain_byte_level({**tiny, "pre_tokenizer": {"type": "Metaspace", "replacement": "▁"}})


# ---------------------------------------------------------------- the Modelfile


ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def go_render(template: str, messages: list[dict]) -> str:
    """Go's text/template for the actions an exported Modelfile holds: {{ range .Messages }} ... {{ end }} with
    {{ .Role }} and {{ .Content }} inside, and {{- -}} trimming. Any other action fails the test (a Modelfile using
    more needs a real Go template engine here)."""
    pieces: list[tuple[str, str]] = []
    pos, trim_next = 0, False
    for match in ACTION.finditer(template):
        text = template[pos : match.start()]
        text = text.lstrip(" \t\r\n") if trim_next else text
        pieces.append(("text", text.rstrip(" \t\r\n") if match.group(1) else text))
        pieces.append(("action", match.group(2)))
        pos, trim_next = match.end(), bool(match.group(3))
    tail = template[pos:]
    pieces.append(("text", tail.lstrip(" \t\r\n") if trim_next else tail))

    def run(i: int, dot: dict) -> tuple[str, int]:
        out = ""
        while i < len(pieces):
            kind, value = pieces[i]
            if kind == "text":
                out, i = out + value, i + 1
            elif value == "end":
                return out, i + 1
            elif value == "range .Messages":
                end = None
                for message in dot["Messages"]:
                    body, end = run(i + 1, message)
                    out += body
                assert end is not None, "an empty conversation"
                i = end
            elif value in (".Role", ".Content"):
                out, i = out + dot[value[1:]], i + 1
            else:
                raise AssertionError(f"{{{{ {value} }}}} is beyond this test's Go template renderer")
        return out, i

    conversation = [{"Role": m["role"], "Content": m["content"]} for m in messages]
    return run(0, {"Messages": conversation})[0]


def _parts(text: str) -> dict:
    template = re.search(r'^TEMPLATE """(.*?)"""$', text, re.S | re.M)
    system = re.search(r'^SYSTEM """(.*?)"""$', text, re.S | re.M)
    return {
        "from": re.findall(r"^FROM (.*)$", text, re.M),
        "template": template.group(1) if template else None,
        "system": system.group(1) if system else None,
        "stops": re.findall(r'^PARAMETER stop "(.*)"$', text, re.M),
    }


def ollama_prompt(modelfile: str, messages: list[dict]) -> str:
    """The prompt Ollama builds: the Modelfile's SYSTEM first when the conversation has no system turn, then the
    TEMPLATE over the conversation."""
    parts = _parts(modelfile)
    if parts["system"] is not None and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": parts["system"]}, *messages]
    return go_render(parts["template"], messages)


CONVERSATIONS = [
    [{"role": "user", "content": "Name a fruit."}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a fruit."},
        {"role": "assistant", "content": "A pear."},
        {"role": "user", "content": "And a colour,\nplease?"},
    ],
]
# Chat templates written for these tests in the layouts the GPU presets' models use.
CHATML_WITH_DEFAULT_SYSTEM = (
    "{%- if messages[0]['role'] != 'system' -%}{{ '<|im_start|>system\nYou answer briefly and kindly.<|im_end|>\n' }}"
    "{%- endif -%}" + CHATML_TEMPLATE
)
LLAMA3_LAYOUT = (
    "{%- for m in messages -%}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] | trim"
    " + '<|eot_id|>' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif -%}"
)
INST_LAYOUT = "{%- for m in messages -%}{{ '[INST] ' + m['content'] + ' [/INST]' }}{%- endfor -%}"


@pytest.mark.slow
def test_the_exported_modelfile_renders_conversations_as_the_tokenizers_chat_template(exported, tuned_runs):
    from transformers import AutoTokenizer

    done = exported["f16"]
    text = done.modelfile.read_text(encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(tuned_runs["home"] / "runs" / tuned_runs["sft"] / "adapter")
    parts = _parts(text)
    assert parts["from"] == [f"./{done.gguf.name}"] and done.note is None
    for messages in CONVERSATIONS:
        assert ollama_prompt(text, messages) == tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
    assert parts["system"] is None
    assert parts["stops"] == [tokenizer.eos_token] == ["<|im_end|>"]


@pytest.fixture
def tiny_tokenizer(studio_home):
    from transformers import AutoTokenizer

    from studio.modeling.models import tiny_model_path

    return AutoTokenizer.from_pretrained(tiny_model_path())


@pytest.mark.parametrize(
    ("template", "system", "stops"),
    [
        (CHATML_TEMPLATE, None, ["<|im_end|>"]),
        (CHATML_WITH_DEFAULT_SYSTEM, "You answer briefly and kindly.", ["<|im_end|>"]),
        (LLAMA3_LAYOUT, None, ["<|eot_id|>", "<|im_end|>"]),
    ],
    ids=["chatml", "chatml-default-system", "llama3"],
)
def test_a_modelfile_carries_the_chat_templates_layout_system_prompt_and_stops(tiny_tokenizer, template, system, stops):
    tiny_tokenizer.chat_template = template
    text, note = ollama.modelfile("m.gguf", tiny_tokenizer, [tiny_tokenizer.eos_token_id])
    assert note is None and _parts(text)["system"] == system and _parts(text)["stops"] == stops
    for messages in CONVERSATIONS:
        assert ollama_prompt(text, messages) == tiny_tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )


def test_a_chat_template_of_another_layout_gets_no_template_and_a_note(tiny_tokenizer):
    tiny_tokenizer.chat_template = INST_LAYOUT
    text, note = ollama.modelfile("m.gguf", tiny_tokenizer, [tiny_tokenizer.eos_token_id])
    parts = _parts(text)
    assert parts["template"] is None and parts["stops"] == ["<|im_end|>"] and parts["from"] == ["./m.gguf"]
    assert note.startswith("the chat template is not one the studio translates for Ollama") and "\n" not in note
