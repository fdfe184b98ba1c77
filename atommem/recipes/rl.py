"""`atommem rl`: multi-turn GRPO of the memory agent (the paper's RL stage; docs/training.md).

    atommem rl --set model.name=results/train/sft/final --set samples=results/data/train/statetrack_4.jsonl \
        --set out_dir=results/train/rl
    accelerate launch --config_file config/accelerate/fsdp.yaml -m atommem.cli rl --config ... --set rollout=vllm

`--print-config` shows every key; the workflow passes them from config/*.yaml's `rl` section.

Writes `out_dir/metrics.jsonl` (one row per step, the stable metric names of docs/architecture.md),
`out_dir/checkpoints/step_N/` and `out_dir/final/` (a plain HF model folder). Started again after a crash
it resumes from the latest complete checkpoint. The loop lives in atommem.train.rl_loop.
"""

from __future__ import annotations

from atommem.train.rl_config import RLConfig, check_config

CONFIG_CLASS = RLConfig


def main(cfg: RLConfig):
    check_config(cfg)
    from atommem.train.rl_loop import train  # torch/accelerate only when training

    return train(cfg)
