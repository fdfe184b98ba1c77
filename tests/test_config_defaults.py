"""Every default is written once: in the config dataclasses. config/config.yaml is checked against them
here (and the schema's defaults against config.yaml in test_workflow.py), and the overlays restate none.

config/config.yaml is the CPU workflow; where it sizes a run for two cores it departs from the dataclass
default (the paper's value), and each such key is named in CPU_SIZING below. Any other key it sets
must equal the dataclass default."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from atommem.agent.env import EnvConfig
from atommem.data.statetrack import StateTrackConfig
from atommem.llm.base import ModelConfig
from atommem.memory.embedders import EmbedderConfig
from atommem.recipes.evaluate import EvaluateConfig
from atommem.recipes.plot import PlotConfig
from atommem.recipes.prepare import PrepareConfig
from atommem.recipes.synthesize import SynthesizeConfig
from atommem.tracking import TrackingConfig
from atommem.train.rl_config import RLConfig
from atommem.train.sft_config import SFTRecipeConfig

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_CONFIG = yaml.safe_load((ROOT / "config/config.yaml").read_text())

# workflow section -> the dataclass instance whose defaults it sets (the recipe that reads it)
SECTIONS = {
    "model": ModelConfig(),
    "synthesize.teacher_model": ModelConfig(),
    "sampling": EvaluateConfig().sampling,
    "synthesize.sampling": SynthesizeConfig().sampling,
    "rl.sampling": RLConfig().sampling,
    "embedder": EmbedderConfig(),
    "env": EnvConfig(),
    "data": PrepareConfig(),
    "data.statetrack.world": StateTrackConfig(),
    "synthesize": SynthesizeConfig(),
    "sft": SFTRecipeConfig(),
    "rl": RLConfig(),
    "tracking": TrackingConfig(),
    "evaluate": EvaluateConfig(),
    "figures": PlotConfig(),
}

# config/config.yaml's departures from the paper's defaults, to finish on a 2-core CPU in minutes
CPU_SIZING = {
    "env.chunk_tokens", "env.chunk_overlap", "env.retrieval_token_budget", "env.max_turns",
    "data.max_group_size",
    # the default run's worlds: long enough for Updates and Deletes, 4 questions for a finer reward
    "data.statetrack.world.events", "data.statetrack.world.questions",
    "sft.num_train_epochs", "sft.learning_rate", "sft.warmup_steps",
    "sft.gradient_accumulation_steps", "sft.max_length",
    "sft.seed",
    "rl.steps", "rl.prompts_per_step", "rl.group_size", "rl.warmup_steps", "rl.micro_batch_size",
    "rl.checkpoint_every", "rl.validate_every", "rl.kl_coef", "rl.probe_samples", "rl.probe_episodes",
    "evaluate.batch_size",
    "tracking.enabled",  # the workflow tracks its runs; a bare CLI call does not
    # the workflow generates with vLLM (its CPU build on CPU); a bare ModelConfig/RLConfig keeps hf, which
    # loads any model (tiny-random has no vLLM CPU kernel)
    "model.backend", "rl.rollout",
}


def at(mapping: dict, dotted: str):
    for key in dotted.split("."):
        mapping = mapping[key]
    return mapping


def field_defaults(instance) -> dict:
    return {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)}


def workflow_vs_dataclass() -> dict[str, tuple]:
    """dotted key -> (config.yaml value, dataclass default), for every plain key both have."""
    pairs = {}
    for section, instance in SECTIONS.items():
        values = at(WORKFLOW_CONFIG, section)
        for name, default in field_defaults(instance).items():
            if name in values and not dataclasses.is_dataclass(default):
                pairs[f"{section}.{name}"] = (values[name], default)
    return pairs


def test_config_yaml_equals_the_dataclass_defaults_but_for_the_cpu_sizing():
    pairs = workflow_vs_dataclass()
    departing = {key for key, (value, default) in pairs.items() if value != default}
    assert departing - CPU_SIZING == set(), "config.yaml departs from the dataclass default (or name it CPU_SIZING)"
    assert CPU_SIZING - departing == set(), "CPU_SIZING names a key config.yaml no longer departs on"


def test_every_config_field_has_help():
    from atommem.eval.judge import JudgeConfig
    from atommem.llm.base import SamplingConfig
    from atommem.recipes.compare import CompareConfig
    from atommem.recipes.convert_model import ConvertModelConfig

    for cls in (RLConfig, SFTRecipeConfig, SynthesizeConfig, EnvConfig, ModelConfig, SamplingConfig, EvaluateConfig,
                PrepareConfig, EmbedderConfig, TrackingConfig, PlotConfig, CompareConfig, JudgeConfig,
                ConvertModelConfig):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"


def leaves(mapping: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            flat.update(leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_overlays_restate_no_default():
    """An overlay applied on config.yaml (paper, test, learn) does not set a key back to the value it already
    has from the dataclass default; a CPU_SIZING key it may set to anything, since that undoes the sizing."""
    restated_defaults = {key: value for key, (value, default) in workflow_vs_dataclass().items()
                         if key not in CPU_SIZING and value == default}
    for name in ("paper.yaml", "test.yaml", "learn.yaml"):
        overlay = leaves(yaml.safe_load((ROOT / "config" / name).read_text()))
        same = {key: value for key, value in overlay.items() if restated_defaults.get(key, object()) == value}
        assert same == {}, f"config/{name} restates defaults"


def test_paper_small_sets_only_what_it_shrinks():
    """config/paper-small.yaml, applied on paper.yaml, changes every key it sets: a key restated at
    paper.yaml's value would hide which of the paper's values the smaller run departs from."""
    import copy

    from snakemake.utils import update_config

    paper = copy.deepcopy(WORKFLOW_CONFIG)
    update_config(paper, yaml.safe_load((ROOT / "config/paper.yaml").read_text()))
    paper = leaves(paper)
    small = leaves(yaml.safe_load((ROOT / "config/paper-small.yaml").read_text()))
    assert small
    for key, value in small.items():
        if key in paper:
            assert value != paper[key], f"config/paper-small.yaml restates {key}: {value!r}"
        else:  # null drops a section paper.yaml has (rl.variants.<name>)
            assert value is None and any(k.startswith(f"{key}.") for k in paper), key
