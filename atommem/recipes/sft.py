"""`atommem sft`: supervised fine-tuning on synthesized examples with TRL's SFTTrainer.

    atommem sft --set model.name=smollm2-135m --set examples=results/sft_data/examples.jsonl --set out_dir=results/train/sft
    accelerate launch --config_file config/accelerate/deepspeed_zero3.yaml -m atommem.cli sft --config ...

Writes `out_dir/final/` (a plain HF folder, LoRA merged), `out_dir/metrics.jsonl` (the trainer's log
history) and resumable trainer checkpoints in `out_dir/checkpoints/`. Hyper-parameters carry TRL's
SFTConfig names; any other SFTConfig argument goes through `trainer_args`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from atommem.config import ConfigError
from atommem.llm.base import ModelConfig
from atommem.tracking import TrackingConfig


@dataclass
class SFTRecipeConfig:
    model: ModelConfig = field(default_factory=ModelConfig)  # the student (name, tokenizer, dtype)
    examples: str = ""  # JSONL from `atommem synthesize`
    out_dir: str = ""
    # reference recipe: 3 epochs, effective batch 16, max length about 18K
    num_train_epochs: float = 3.0
    max_steps: int = -1
    learning_rate: float = 1e-5
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = 0.03  # < 1: a ratio of the total steps (transformers 5 semantics)
    weight_decay: float = 0.0
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 16
    max_length: int | None = 18432
    gradient_checkpointing: bool = False
    bf16: bool = False
    logging_steps: int = 10
    save_steps: int = 200
    save_total_limit: int = 2
    seed: int = 42
    trainer_args: dict = field(default_factory=dict)  # any other trl.SFTConfig argument
    lora: dict | None = None  # peft.LoraConfig arguments, e.g. {r: 16, lora_alpha: 32, target_modules: all-linear}
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


CONFIG_CLASS = SFTRecipeConfig


def check_config(cfg: SFTRecipeConfig) -> None:
    if not cfg.examples:
        raise ConfigError("examples: required (a JSONL file from `atommem synthesize`)")
    if not cfg.out_dir:
        raise ConfigError("out_dir: required")
    if cfg.model.backend != "hf":
        raise ConfigError("model.backend: SFT trains a local model, use hf")


def main(cfg: SFTRecipeConfig):
    check_config(cfg)
    from atommem.train.sft import train_sft  # torch/trl only when training

    return train_sft(cfg)
