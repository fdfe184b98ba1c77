"""`atommem sft`: supervised fine-tuning on synthesized examples with TRL's SFTTrainer.

    atommem sft --set model.name=smollm2-135m --set examples=results/sft_data/examples.jsonl --set out_dir=results/train/sft
    accelerate launch --config_file config/accelerate/deepspeed_zero3.yaml -m atommem.cli sft --config ...

Writes `out_dir/final/` (a plain HF folder, LoRA merged), `out_dir/metrics.jsonl` (the trainer's log
history) and resumable trainer checkpoints in `out_dir/checkpoints/`. Hyper-parameters carry TRL's
SFTConfig names; any other SFTConfig argument goes through `trainer_args`.
"""

from __future__ import annotations

from atommem.train.sft_config import SFTRecipeConfig, check_config

CONFIG_CLASS = SFTRecipeConfig


def main(cfg: SFTRecipeConfig):
    check_config(cfg)
    from atommem.train.sft import train_sft  # torch/trl only when training

    return train_sft(cfg)
