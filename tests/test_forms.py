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


def test_an_optional_number_box_is_text_read_as_its_number_and_bad_text_is_named_by_the_config_check():
    from studio import config as cfg
    from studio.errors import ConfigError

    keys = ["data.limit", "ppo.target_kl", "data.path"]
    assert to_config(keys, ["120", " 0.5 ", "7"]) == {"data": {"limit": 120, "path": "7"}, "ppo": {"target_kl": 0.5}}
    assert to_config(keys, ["", " ", None]) == {}
    raw = to_config(["data.limit"], ["ten"])
    assert raw == {"data": {"limit": "ten"}}
    try:
        cfg.from_dict(raw)
    except ConfigError as err:
        assert str(err) == "data.limit = 'ten': expected an integer"
    else:
        raise AssertionError("data.limit = 'ten' was accepted")


def test_an_optional_number_is_built_empty_and_a_number_with_a_default_shows_it():
    import gradio as gr

    from components.fieldwidgets import widget

    with gr.Blocks():
        limit, steps = widget("data.limit"), widget("train.max_steps")
    assert isinstance(limit, gr.Textbox) and limit.value == ""  # no load event needed to empty it
    assert isinstance(steps, gr.Number) and steps.value == -1


def test_reward_sources_are_yaml_text_read_back_as_a_list_and_bad_yaml_is_named_by_the_config_check():
    import pytest

    from components.forms import yaml_keys, yaml_text
    from studio import config as cfg
    from studio.errors import ConfigError

    assert yaml_keys() == {"rewards.sources", "eval.judges"}  # the keys holding a list of mappings
    sources = [{"builtin": "format", "args": {"pattern": r"\d+$"}, "weight": 0.5}, {"run": "rm-1"}]
    text = yaml_text(sources)
    assert text == "- builtin: format\n  args:\n    pattern: \\d+$\n  weight: 0.5\n- run: rm-1\n"
    assert to_config(["rewards.sources"], [text]) == {"rewards": {"sources": sources}}
    assert yaml_text([]) == "" and to_config(["rewards.sources"], [""]) == {}
    raw = to_config(["rewards.sources"], ["- run: ["])
    assert raw == {"rewards": {"sources": "- run: ["}}  # not YAML: left as text for the check to name
    with pytest.raises(ConfigError) as err:
        cfg.from_dict(raw)
    assert str(err.value) == "rewards.sources = '- run: [': expected a list of mappings"
