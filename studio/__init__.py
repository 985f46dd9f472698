"""RLHF Studio engine: configs, data, models, trainers and runs. Never imports gradio."""

__version__ = "0.1.0"
