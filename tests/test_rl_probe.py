"""A short RL run at the test config's scale (tiny random model, statetrack worlds): the probe's metrics
before step 1 and at the last step, the truncation counters every step, a state reward, and the
train_reward figure drawing the probe beside the per-step reward."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from atommem.agent.env import EnvConfig
from atommem.config import ConfigError
from atommem.data.loaders import load_benchmark, shipped_sample
from atommem.data.statetrack import StateTrackConfig, build_statetrack_samples, distractor_pool
from atommem.io import read_jsonl, write_jsonl_atomic
from atommem.llm.base import ModelConfig, SamplingConfig
from atommem.memory.embedders import EmbedderConfig
from atommem.plots import train_reward
from atommem.train.rl_config import RLConfig, check_config

PROBE = ("probe/sampled_reward", "probe/sampled_em", "probe/pass_at_k", "probe/best_of_k_reward",
         "probe/greedy_em", "probe/greedy_reward", "probe/sampled_state_f1", "probe/greedy_state_f1")
COUNTERS = ("episodes/turn_cap_frac", "turns/length_cut_frac", "questions/unanswered_frac")


def rl_config(tmp_path, tiny_model_dir, **overrides) -> RLConfig:
    pool = distractor_pool(load_benchmark("hotpotqa", shipped_sample("hotpotqa")))
    samples = build_statetrack_samples(pool, StateTrackConfig(), num_docs=4, num_samples=3, seed=1)
    path = tmp_path / "train.jsonl"
    write_jsonl_atomic(path, [s.to_dict() for s in samples])
    # config/test.yaml's sizes
    settings = dict(model=ModelConfig(name=tiny_model_dir, max_batch_size=8), samples=str(path),
                    out_dir=str(tmp_path / "rl"), steps=2, prompts_per_step=1, group_size=2, kl_coef=0.0,
                    warmup_steps=0, micro_batch_size=1, checkpoint_every=1, validate_every=0, rollout="hf",
                    probe_samples=1, probe_episodes=2, progress=False,
                    sampling=SamplingConfig(temperature=1.0, max_new_tokens=24),
                    embedder=EmbedderConfig(kind="hashing", dim=64),
                    env=EnvConfig(chunk_tokens=256, chunk_overlap=16, max_turns=12))
    return RLConfig(**(settings | overrides))


def test_a_short_run_logs_the_probe_and_the_truncation_counters(tmp_path, tiny_model_dir):
    from atommem.train import rl_loop

    cfg = rl_config(tmp_path, tiny_model_dir, reward="answer+state")
    check_config(cfg)
    rl_loop.train(cfg)
    rows = read_jsonl(tmp_path / "rl" / "metrics.jsonl")
    assert [row["step"] for row in rows] == [0, 1, 2]
    # before step 1: the probe alone; validate_every 0 probes again after the last step only
    assert set(rows[0]) == {"step", "time/probe_s", *PROBE}
    assert not any(key.startswith("probe/") for key in rows[1]) and set(PROBE) <= set(rows[2])
    for row in rows:
        assert all(0.0 <= row[key] <= 1.0 for key in PROBE if key in row)
    for row in rows[1:]:
        assert all(0.0 <= row[key] <= 1.0 for key in COUNTERS)
        # both scores every step, whatever the reward (here their mean)
        assert 0.0 <= row["episode/em_mean"] <= 1.0 and 0.0 <= row["episode/state_f1_mean"] <= 1.0
    # a random model never ends a reply by itself within 24 tokens, nor answers within 12 turns
    assert rows[1]["turns/length_cut_frac"] == 1.0 and rows[1]["questions/unanswered_frac"] == 1.0
    assert rows[0]["probe/greedy_em"] == rows[0]["probe/pass_at_k"] == 0.0
    # resumed at its last checkpoint (the end), a run probes nothing again; started afresh after being
    # killed before its first checkpoint, it drops the earlier attempt's probe row instead of repeating it
    rl_loop.train(cfg)
    assert read_jsonl(tmp_path / "rl" / "metrics.jsonl") == rows
    shutil.rmtree(tmp_path / "rl" / "checkpoints")
    write_jsonl_atomic(tmp_path / "rl" / "metrics.jsonl", rows[:1])
    rl_loop.train(cfg)
    assert [row["step"] for row in read_jsonl(tmp_path / "rl" / "metrics.jsonl")] == [0, 1, 2]
    # the figure: per-step reward and the probe beside it
    written = train_reward({"full": tmp_path / "rl" / "metrics.jsonl"}, tmp_path / "train_reward.pdf")
    assert all(path.stat().st_size > 0 for path in written)


def test_the_probe_leaves_samples_to_train_on_and_the_state_reward_needs_statetrack(tmp_path, tiny_model_dir):
    with pytest.raises(ConfigError, match="probe_samples: 3 probe samples leave none of the 3"):
        check_config(rl_config(tmp_path, tiny_model_dir, probe_samples=3))
    cfg = rl_config(tmp_path, tiny_model_dir, reward="state")
    check_config(cfg)
    path = tmp_path / "hotpotqa.jsonl"
    rows = read_jsonl(cfg.samples)
    write_jsonl_atomic(path, [{k: v for k, v in row.items() if k != "final_state"} for row in rows])
    with pytest.raises(ConfigError, match="needs statetrack samples"):
        check_config(replace(cfg, samples=str(path)))
