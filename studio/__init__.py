"""RLHF Studio engine: configs, data, models, trainers and runs. Never imports gradio."""

__version__ = "0.1.0"

import logging as _logging

# bitsandbytes (imported by peft) warns on stderr at import, on CPUs with AVX512-BF16, that an optional faster 4-bit
# kernel package is missing. Its slower built-in path works; the line would make every one-line CLI error two lines.
_logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(_logging.ERROR)
