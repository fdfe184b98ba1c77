"""Config loading: dotted overrides, inline mappings, typed sections, errors that name the key."""

import pytest

from atommem.config import ConfigError, from_dict, load_config
from atommem.recipes.evaluate import EvaluateConfig
from atommem.train.rl_config import RLConfig


def test_overrides_and_inline_json():
    cfg = load_config('{"rl": {"learning_rate": 1e-06}}', ["env.top_k=3", "model.name=tiny-random"])
    assert cfg == {"rl": {"learning_rate": 1e-06}, "env": {"top_k": 3}, "model": {"name": "tiny-random"}}
    assert isinstance(cfg["rl"]["learning_rate"], float)


def test_unknown_and_mistyped_keys_are_named():
    with pytest.raises(ConfigError, match=r"env\.top_kk"):
        from_dict(EvaluateConfig, {"env": {"top_kk": 3}})
    with pytest.raises(ConfigError, match=r"env\.top_k"):
        from_dict(EvaluateConfig, {"env": {"top_k": "six"}})
    with pytest.raises(ConfigError, match=r"learning_rate: expected float, got '3e-6x'"):
        from_dict(RLConfig, {"learning_rate": "3e-6x"})
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/no/such/file.yaml")


def test_a_learning_rate_written_without_a_dot_is_a_float():
    # YAML 1.1 reads 3e-6 as the string '3e-6' (it wants 3.0e-6); the float field takes it as the number
    cfg = from_dict(RLConfig, load_config(None, ["learning_rate=3e-6", "sampling.temperature=1E0"]))
    assert cfg.learning_rate == 3e-6 and cfg.sampling.temperature == 1.0


def test_partial_section_keeps_the_fields_own_default():
    # RL's sampling defaults to temperature 1.0 (not SamplingConfig's 0.0); overriding one key keeps it
    cfg = from_dict(RLConfig, {"sampling": {"max_new_tokens": 12}})
    assert cfg.sampling.temperature == 1.0 and cfg.sampling.max_new_tokens == 12
