"""The SFT stage's config (`atommem sft`), beside its consumer atommem.train.sft; imports no torch, so the
CLI and the workflow check a config and its examples before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass

from atommem.config import ConfigError, option, require, require_positive
from atommem.io import read_jsonl
from atommem.llm.base import ModelConfig
from atommem.llm.models import check_model_config
from atommem.tracking import TrackingConfig


@dataclass
class SFTRecipeConfig:
    """SFT with TRL's SFTTrainer (its SFTConfig names). Defaults are the reference recipe of the paper: 3
    epochs, effective batch 16, max length about 18K (docs/training.md); config/config.yaml sizes it for a CPU."""

    model: ModelConfig = option(ModelConfig, "the student (name, tokenizer, dtype)")
    examples: str = option("", "JSONL from `atommem synthesize`")
    out_dir: str = option("", "final/, metrics.jsonl and checkpoints/ go here")
    num_train_epochs: float = option(3.0, "passes over the examples (reference: 3)")
    max_steps: int = option(-1, "optimizer steps; -1 = use num_train_epochs")
    learning_rate: float = option(1e-5, "peak learning rate (reference: 1e-5)")
    lr_scheduler_type: str = option("cosine", "transformers scheduler name")
    warmup_steps: float = option(0.03, "warmup steps, or a ratio of all steps when below 1 (transformers 5)")
    weight_decay: float = option(0.0, "AdamW weight decay")
    per_device_train_batch_size: int = option(1, "examples per device and micro-step")
    gradient_accumulation_steps: int = option(16, "micro-batches per optimizer step (reference batch: 16)")
    max_length: int | None = option(18432, "tokens per example; a longer prompt keeps its system message and its end "
                                                 "(reference: about 18K)")
    gradient_checkpointing: bool = option(False, "trade compute for activation memory")
    bf16: bool = option(False, "bfloat16 mixed precision (autocast on CPU too: emulated, so slower, without AVX512-BF16/AMX)")
    logging_steps: int = option(10, "steps between logged metrics")
    save_steps: int = option(200, "steps between resumable checkpoints")
    save_total_limit: int = option(2, "checkpoints kept on disk")
    seed: int = option(42, "training seed")
    trainer_args: dict = option(dict, "any other trl.SFTConfig argument")
    lora: dict | None = option(None, "peft.LoraConfig arguments, e.g. {r: 16, lora_alpha: 32, "
                                     "target_modules: all-linear}; null = full fine-tuning")
    tracking: TrackingConfig = option(TrackingConfig, "MLflow tracking")

    def __post_init__(self) -> None:
        require(self.num_train_epochs > 0, "num_train_epochs", "> 0", self.num_train_epochs)
        require(self.max_steps == -1 or self.max_steps >= 1, "max_steps", "-1 (use epochs) or >= 1", self.max_steps)
        require(self.learning_rate > 0, "learning_rate", "> 0", self.learning_rate)
        require(self.warmup_steps >= 0, "warmup_steps", ">= 0 (< 1: a ratio of the steps)", self.warmup_steps)
        require(self.weight_decay >= 0, "weight_decay", ">= 0", self.weight_decay)
        require_positive(self, "per_device_train_batch_size", "gradient_accumulation_steps", "logging_steps",
                         "save_steps", "save_total_limit")
        require_positive(self, "max_length", optional=True)


def check_config(cfg: SFTRecipeConfig) -> None:
    if not cfg.examples:
        raise ConfigError("examples: required (a JSONL file from `atommem synthesize`)")
    if not cfg.out_dir:
        raise ConfigError("out_dir: required")
    if cfg.model.backend != "hf":
        raise ConfigError("model.backend: SFT trains a local model, use hf")
    check_model_config(cfg.model)
    check_examples(cfg.examples)


def check_examples(path: str) -> None:
    """Every row of the examples JSONL is a prompt-completion pair of chat messages."""
    rows = read_jsonl(path)
    if not rows:
        raise ConfigError(f"examples: {path} has no examples (did every trajectory fail the filter?)")
    for line_no, row in enumerate(rows, 1):
        for name in ("prompt", "completion"):
            messages = row.get(name)
            if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages
            ):
                raise ConfigError(f"{path}: line {line_no}: field {name!r} must be a non-empty list of "
                                  f"{{role, content}} messages, got {type(messages).__name__}")
