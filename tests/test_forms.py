"""Form values become a nested config dict: dotted keys nest, empty text falls back to the default."""

from components.forms import to_config


def test_form_values_nest_by_key_and_skip_empty_text():
    keys = ["stage", "model.name", "lora.r", "model.revision", "train.learning_rate", "lora.enabled"]
    values = ["dpo", " tiny ", 8, "  ", 0.001, False]
    assert to_config(keys, values) == {
        "stage": "dpo",
        "model": {"name": "tiny"},
        "lora": {"r": 8, "enabled": False},
        "train": {"learning_rate": 0.001},
    }
