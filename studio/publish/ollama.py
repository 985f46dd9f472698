"""An Ollama Modelfile for an exported GGUF: the tokenizer's chat template in Ollama's Go-template syntax, its default
system prompt and its stop tokens.

    chat = chat_format(tokenizer)            # ChatFormat, or None for a template that is not one translated here
    text, note = modelfile("run-f16.gguf", tokenizer, stop_ids=[2])
    ollama create my-model -f Modelfile      # then, in the folder holding both files

A Jinja chat template is not translated by reading it: the tokenizer renders a probe conversation, and the
rendering is matched against the few turn layouts Ollama models use (ChatML, as the tiny model, Qwen2 and SmolLM2
use it, and Llama 3). A template that adds a system turn when the conversation has none becomes the Modelfile's
SYSTEM, which Ollama adds the same way. Anything else gets a Modelfile without TEMPLATE (and a note saying so):
Ollama then picks a template from the chat template stored in the GGUF when it recognises it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """How one turn is written: opens + role + role_end + content + close; the answer starts after
    opens + "assistant" + role_end."""

    name: str
    opens: str
    role_end: str
    close: str

    @property
    def end_of_turn(self) -> str:
        return self.close.strip()

    def render(self, messages: list[dict]) -> str:
        turns = "".join(self.opens + m["role"] + self.role_end + m["content"] + self.close for m in messages)
        return turns + self.opens + "assistant" + self.role_end

    def go_template(self) -> str:
        """The same rendering for Ollama: its .Messages hold the conversation, system turn included."""
        turn = self.opens + "{{ .Role }}" + self.role_end + "{{ .Content }}" + self.close
        return "{{ range .Messages }}" + turn + "{{ end }}" + self.opens + "assistant" + self.role_end


LAYOUTS = (
    Layout("ChatML", "<|im_start|>", "\n", "<|im_end|>\n"),
    Layout("Llama 3", "<|start_header_id|>", "<|end_header_id|>\n\n", "<|eot_id|>"),
)
# Contents without surrounding blanks or template syntax, so a template that trims contents renders them as given.
PROBE = [
    {"role": "system", "content": "Probe system line."},
    {"role": "user", "content": "First probe question?"},
    {"role": "assistant", "content": "First probe answer."},
    {"role": "user", "content": "Second probe\nquestion?"},
]


@dataclass(frozen=True)
class ChatFormat:
    layout: Layout
    system: str | None  # the system turn the template adds to a conversation that has none


def rendered(tokenizer, messages: list[dict]) -> str:
    """The tokenizer's chat template for the conversation, ready for the answer, as the GGUF's runtime sees it:
    without a leading BOS text when the tokenizer adds BOS itself (llama.cpp and Ollama add it then)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]:
        text = text[len(bos) :]
    return text


def chat_format(tokenizer) -> ChatFormat | None:
    """The layout (and default system prompt) the tokenizer's chat template renders, or None."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    try:
        with_system, without = rendered(tokenizer, PROBE), rendered(tokenizer, PROBE[1:])
    except Exception:  # a template that refuses the probe (no system role, say) is not one of these layouts
        return None
    for layout in LAYOUTS:
        if with_system != layout.render(PROBE):
            continue
        rest = layout.render(PROBE[1:])
        if without == rest:
            return ChatFormat(layout, None)
        head, tail = layout.opens + "system" + layout.role_end, layout.close
        added = without[: -len(rest)] if without.endswith(rest) else ""
        if added.startswith(head) and added.endswith(tail) and len(added) > len(head) + len(tail):
            return ChatFormat(layout, added[len(head) : -len(tail)])
    return None


def _quoted(text: str) -> str:
    """A Modelfile value in triple quotes (they keep newlines and quotes as they are)."""
    if '"""' in text:
        raise ValueError("a Modelfile value cannot hold three double quotes")
    return f'"""{text}"""'


def stop_tokens(tokenizer, stop_ids: list[int], chat: ChatFormat | None) -> list[str]:
    """The texts of the tokens that end an answer: the layout's end-of-turn token and the model's eos tokens."""
    tokens = [chat.layout.end_of_turn] if chat else []
    tokens += [tokenizer.convert_ids_to_tokens(i) for i in stop_ids]
    return [t for i, t in enumerate(tokens) if t and t not in tokens[:i]]


def modelfile(gguf_name: str, tokenizer, stop_ids: list[int]) -> tuple[str, str | None]:
    """(the Modelfile's text, a note when the chat template could not be translated)."""
    chat = chat_format(tokenizer)
    lines = [
        "# Ollama: `ollama create NAME -f Modelfile` in this folder, then `ollama run NAME`.",
        f"FROM ./{gguf_name}",
    ]
    note = None
    if chat:
        lines.append(f"# The tokenizer's chat template ({chat.layout.name}), in Ollama's template syntax.")
        lines.append(f"TEMPLATE {_quoted(chat.layout.go_template())}")
        if chat.system is not None:
            lines.append(f"SYSTEM {_quoted(chat.system)}")
    else:
        note = (
            "the chat template is not one the studio translates for Ollama (ChatML, Llama 3): the Modelfile has no "
            "TEMPLATE, so Ollama uses the chat template stored in the GGUF if it recognises it"
        )
        lines.append(f"# No TEMPLATE: {note}.")
    lines += [f'PARAMETER stop "{token}"' for token in stop_tokens(tokenizer, stop_ids, chat)]
    return "\n".join(lines) + "\n", note
