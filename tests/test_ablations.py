"""Named ablations of the AtomMem agent: EnvConfig overrides, validation, and their use in evaluate."""

from __future__ import annotations

import pytest

from atommem.agent.env import EnvConfig
from atommem.config import ConfigError
from atommem.methods.ablations import ABLATIONS, apply_ablation
from atommem.recipes.evaluate import EvaluateConfig, check_config

PAPER_ABLATIONS = ["no-scratchpad", "no-store", "no-memory", "no-update", "no-delete", "topk-3", "topk-6", "topk-12"]


def test_every_paper_ablation_is_named():
    assert set(PAPER_ABLATIONS) <= set(ABLATIONS)


@pytest.mark.parametrize(
    "name, enabled",
    [
        ("no-scratchpad", {"answer", "create", "read", "update", "delete"}),
        ("no-store", {"answer", "scratchpad"}),
        ("no-memory", {"answer"}),
        ("no-update", {"answer", "scratchpad", "create", "read", "delete"}),
        ("no-delete", {"answer", "scratchpad", "create", "read", "update"}),
        ("store-all", {"answer", "scratchpad", "read", "update", "delete"}),
    ],
)
def test_ablation_switches_the_enabled_ops(name, enabled):
    env = apply_ablation(EnvConfig(), name)
    assert env.enabled_ops() == enabled


@pytest.mark.parametrize("k", [3, 6, 12])
def test_topk_ablations(k):
    assert apply_ablation(EnvConfig(top_k=1), f"topk-{k}").top_k == k


def test_ablation_leaves_its_input_and_other_keys_alone():
    env = EnvConfig(chunk_tokens=256, disabled_ops=["delete"])
    out = apply_ablation(env, "no-update")
    assert out.disabled_ops == ["delete", "update"] and out.chunk_tokens == 256
    assert env.disabled_ops == ["delete"]


def test_unknown_ablation_fails_with_the_valid_names():
    with pytest.raises(ConfigError, match="valid ablations: no-scratchpad, no-store, no-memory"):
        apply_ablation(EnvConfig(), "no-scratch")


def test_custom_switches_go_through_the_same_rules():
    env = EnvConfig(disabled_ops=["delete"])
    out = apply_ablation(env, "my-ablation", {"disabled_ops": ["update"], "top_k": 2})
    assert out.disabled_ops == ["delete", "update"] and out.top_k == 2  # disabled ops add up
    with pytest.raises(ConfigError, match="my-ablation.*top_kk"):
        apply_ablation(env, "my-ablation", {"top_kk": 2})


def test_evaluate_checks_the_ablation_before_loading_a_model():
    base = dict(samples="x.jsonl", out_dir="out")
    check_config(EvaluateConfig(**base, ablation="no-delete"))
    with pytest.raises(ConfigError, match="valid ablations"):
        check_config(EvaluateConfig(**base, ablation="topk-5"))
    with pytest.raises(ConfigError, match="only for the agent methods"):
        check_config(EvaluateConfig(**base, method="rag", ablation="no-store"))
    with pytest.raises(ValueError, match="store_all needs env.use_store"):
        check_config(EvaluateConfig(**base, ablation="store-all", env=EnvConfig(use_store=False)))
    check_config(EvaluateConfig(**base, ablation="mine", ablation_switches={"top_k": 1}))
    with pytest.raises(ConfigError, match="ablation_switches: give the custom ablation a name"):
        check_config(EvaluateConfig(**base, ablation_switches={"top_k": 1}))


def test_evaluate_runs_an_ablation(tmp_path):
    from atommem.data.loaders import load_benchmark, shipped_sample
    from atommem.data.longcontext import build_long_samples
    from atommem.io import read_json, read_jsonl, write_jsonl_atomic
    from atommem.llm.base import ModelConfig, SamplingConfig
    from atommem.recipes.evaluate import main

    samples = build_long_samples(load_benchmark("hotpotqa", shipped_sample("hotpotqa")), num_docs=2, seed=1,
                                 max_samples=1, max_group_size=1)
    path = tmp_path / "samples.jsonl"
    write_jsonl_atomic(path, [s.to_dict() for s in samples])
    cfg = EvaluateConfig(samples=str(path), out_dir=str(tmp_path / "out"), ablation="no-memory", progress=False,
                         model=ModelConfig(name="tiny-random", max_model_len=2048),
                         sampling=SamplingConfig(max_new_tokens=8),
                         env=EnvConfig(chunk_tokens=256, chunk_overlap=16, max_turns=4))
    cfg.embedder.kind = "hashing"
    main(cfg)
    summary = read_json(tmp_path / "out" / "summary.json")
    assert summary["ablation"] == "no-memory"
    system = read_jsonl(tmp_path / "out" / "trajectories.jsonl")[0]["turns"][0]["messages"][0]["content"]
    assert "<add_memory>" not in system and "<update_memory>" not in system
