"""The SFT stage's config (`atommem sft`), beside its consumer atommem.train.sft; imports no torch, so the
CLI and the workflow check a config and its examples before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field

from atommem.config import ConfigError, require, require_positive
from atommem.io import read_jsonl
from atommem.llm.base import ModelConfig
from atommem.llm.models import check_model_config
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
