"""The RL stage's config (`atommem rl`), beside its consumer atommem.train.rl_loop; imports no torch, so the
CLI and the workflow check a config before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field

from atommem.agent.env import EnvConfig
from atommem.config import ConfigError, require, require_positive
from atommem.data.records import read_samples
from atommem.llm.base import ModelConfig, SamplingConfig
from atommem.llm.models import check_model_config, check_model_name
from atommem.memory.embedders import EmbedderConfig, check_embedder_config
from atommem.tracking import TrackingConfig


def _rollout_sampling() -> SamplingConfig:
    # temperature 1.0 as in the paper; top_p 1.0 (paper: 0.99) so the sampler draws from exactly the
    # distribution whose log-probs the loss uses (see atommem.train.grpo for how old log-probs are chosen)
    return SamplingConfig(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=256)


@dataclass
class RLConfig:
    model: ModelConfig = field(default_factory=ModelConfig)  # policy init (usually the SFT folder)
    ref_model: str | None = None  # frozen KL reference; None = the policy init (model.name)
    samples: str = ""  # training samples JSONL
    val_samples: str | None = None  # validated greedily every `validate_every` steps
    val_max_samples: int | None = None
    out_dir: str = ""
    steps: int = 100
    prompts_per_step: int = 8  # samples per step (over all processes)
    group_size: int = 8  # episodes per sample; advantage = reward - group mean
    learning_rate: float = 1e-6
    warmup_steps: int = 20  # linear warmup, then constant
    kl_coef: float = 0.001  # k3 KL to the reference; 0 skips loading the reference
    clip_low: float = 0.2
    clip_high: float = 0.28
    std_normalize: bool = False
    max_grad_norm: float = 1.0
    micro_batch_size: int = 4  # turn rows per forward/backward; one optimizer step per RL step
    gradient_checkpointing: bool = False
    mixed_precision: str = "no"  # accelerate's: "no" | "bf16" | "fp16"; bf16 autocast halves CPU step time
    checkpoint_every: int = 10
    keep_checkpoints: int = 2
    validate_every: int = 10  # 0 = never
    rollout: str = "hf"  # "hf" (shares the training model; CPU, one GPU) | "vllm" (colocated, GPU)
    seed: int = 0
    progress: bool = True
    sampling: SamplingConfig = field(default_factory=_rollout_sampling)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        require_positive(self, "steps", "prompts_per_step", "group_size", "micro_batch_size", "checkpoint_every",
                         "keep_checkpoints")
        require_positive(self, "val_max_samples", optional=True)
        require(self.learning_rate > 0, "learning_rate", "> 0", self.learning_rate)
        require(self.warmup_steps >= 0, "warmup_steps", ">= 0", self.warmup_steps)
        require(self.kl_coef >= 0, "kl_coef", ">= 0 (0 = no reference model)", self.kl_coef)
        require(0 <= self.clip_low < 1, "clip_low", "in [0, 1)", self.clip_low)
        require(self.clip_high >= 0, "clip_high", ">= 0", self.clip_high)
        require(self.max_grad_norm > 0, "max_grad_norm", "> 0", self.max_grad_norm)
        require(self.validate_every >= 0, "validate_every", ">= 0 (0 = never)", self.validate_every)
        require(self.mixed_precision in ("no", "bf16", "fp16"), "mixed_precision", "no, bf16 or fp16",
                self.mixed_precision)
        require(self.rollout in ("hf", "vllm"), "rollout", "hf or vllm", self.rollout)


def check_config(cfg: RLConfig) -> None:
    """Fail on bad input before any model is loaded."""
    if not cfg.samples:
        raise ConfigError("samples: required (a JSONL file from `atommem prepare`)")
    if not cfg.out_dir:
        raise ConfigError("out_dir: required")
    if cfg.model.backend != "hf":
        raise ConfigError("model.backend: the policy is trained locally, use hf (choose the engine with rollout)")
    if cfg.sampling.temperature <= 0:
        raise ConfigError("sampling.temperature: GRPO needs sampling (> 0) so a group's episodes differ")
    check_model_config(cfg.model)
    if cfg.ref_model:
        check_model_name(cfg.ref_model, "ref_model")
    check_embedder_config(cfg.embedder)
    # the loop reads them again after loading the model; a bad row must fail before that
    read_samples(cfg.samples)
    if cfg.val_samples:
        read_samples(cfg.val_samples, cfg.val_max_samples)
