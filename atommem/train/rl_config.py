"""The RL stage's config (`atommem rl`), beside its consumer atommem.train.rl_loop; imports no torch, so the
CLI and the workflow check a config before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass

from atommem.agent.env import EnvConfig
from atommem.config import ConfigError, option, require, require_positive
from atommem.data.records import read_samples
from atommem.llm.base import ModelConfig, SamplingConfig
from atommem.llm.models import check_model_config, check_model_name
from atommem.memory.embedders import EmbedderConfig, check_embedder_config
from atommem.tracking import TrackingConfig
from atommem.train.reward import REWARDS, check_reward


def _rollout_sampling() -> SamplingConfig:
    # temperature 1.0 as in the paper; top_p 1.0 (paper: 0.99) so the sampler draws from exactly the
    # distribution whose log-probs the loss uses (see atommem.train.grpo for how old log-probs are chosen)
    return SamplingConfig(temperature=1.0, top_p=1.0, top_k=0)


@dataclass
class RLConfig:
    """Multi-turn GRPO. Defaults are the paper's RL recipe (docs/training.md); config/config.yaml sizes
    the run for a CPU."""

    model: ModelConfig = option(ModelConfig, "policy init (usually the SFT folder)")
    ref_model: str | None = option(None, "frozen KL reference; null = the policy init (model.name)")
    samples: str = option("", "training samples JSONL (from `atommem prepare`)")
    val_samples: str | None = option(None, "samples validated greedily every `validate_every` steps")
    val_max_samples: int | None = option(None, "validation samples used (null = all)")
    out_dir: str = option("", "metrics.jsonl, checkpoints/ and final/ go here")
    steps: int = option(100, "optimizer steps (the paper shows about 100); 0: probe before step 1 only (per world in "
                        "probe_worlds.jsonl) and save the start policy as final/: how rl.train_ids are chosen "
                        "(config/rl-fixed-worlds.yaml)")
    prompts_per_step: int = option(8, "samples per step, over all processes (paper: 8)")
    group_size: int = option(8, "episodes per sample; advantage = reward - group mean (paper: 8)")
    learning_rate: float = option(1e-6, "constant after warmup (paper: 1e-6)")
    warmup_steps: int = option(20, "linear warmup steps, then constant (paper: 20)")
    kl_coef: float = option(0.001, "weight of the k3 KL to the reference (paper: 0.001); 0 skips the reference")
    clip_low: float = option(0.2, "lower ratio clip: ratios below 1 - clip_low are clipped (paper: 0.2)")
    clip_high: float = option(0.28, "upper ratio clip: ratios above 1 + clip_high are clipped (paper: 0.28)")
    std_normalize: bool = option(False, "divide advantages by the group std (paper: no)")
    max_grad_norm: float = option(1.0, "gradient clipping")
    micro_batch_size: int = option(4, "turn rows per forward/backward; one optimizer step per RL step")
    gradient_checkpointing: bool = option(False, "trade compute for activation memory")
    mixed_precision: str = option("no", "accelerate's no | bf16 | fp16; bf16 autocast pays on GPUs and AVX512-BF16/AMX CPUs, elsewhere it is emulated (benchmarks/train_dtype.py)")
    checkpoint_every: int = option(10, "steps between resumable checkpoints")
    keep_checkpoints: int = option(2, "checkpoints kept on disk")
    validate_every: int = option(10, "steps between validations and probes (0: validate never, probe before "
                                 "step 1 and after the last step only)")
    reward: str = option("answer", "answer (the paper's: share of questions with exact match) | state (statetrack: "
                         "state_f1 of the memory an episode ends with; departs from the paper) | answer+state "
                         "(their mean); atommem/train/reward.py")
    probe_samples: int = option(8, "the last N samples of `samples`, left out of the training draw, scored before "
                                "step 1 and every validate_every steps: sampled reward, pass@k and greedy EM (0 = off)")
    probe_episodes: int = option(8, "k: sampled episodes per probe sample, at the rollout sampling")
    train_ids: list[str] | None = option(None, "train on these sample ids of `samples` only (null = all but the probe): "
                                         "the fixed-world check, with prompts_per_step = their number every step "
                                         "sees each once; they must not be probe samples; greedy EM on them is "
                                         "logged as fixed/* at every probe")
    lora: dict | None = option(None, "peft.LoraConfig arguments of the update, e.g. {r: 16, lora_alpha: 32, "
                               "lora_dropout: 0.0, target_modules: all-linear}; merged into the weights the "
                               "vLLM engine gets and final/ saves; null = full update")
    train_top_layers: int | None = option(None, "update only the top N transformer layers and the final norm "
                                          "(embeddings and lm_head frozen); null = all")
    rollout: str = option("hf", "hf (shares the training model; CPU, one GPU) | vllm (colocated in each process)")
    # not model.gpu_memory_utilization, which sizes an evaluation engine that has the GPU to itself
    vllm_gpu_memory_utilization: float = option(0.35, "rollout vllm on GPU: share of the GPU the colocated engine "
                                                "takes for weights and KV cache; the trainer keeps the rest")
    seed: int = option(0, "training seed")
    progress: bool = option(True, "show progress bars")
    sampling: SamplingConfig = option(_rollout_sampling, "rollout decoding (T 1.0 as in the paper)")
    embedder: EmbedderConfig = option(EmbedderConfig, "embedder of the memory store")
    env: EnvConfig = option(EnvConfig, "the agent environment")
    tracking: TrackingConfig = option(TrackingConfig, "MLflow tracking")

    def __post_init__(self) -> None:
        require(self.steps >= 0, "steps", ">= 0 (0: probe only)", self.steps)
        require_positive(self, "train_top_layers", optional=True)
        require_positive(self, "prompts_per_step", "micro_batch_size", "checkpoint_every", "keep_checkpoints")
        # an episode alone in its group has advantage 0: nothing to learn from
        require(self.group_size >= 2, "group_size", ">= 2", self.group_size)
        require_positive(self, "val_max_samples", optional=True)
        require(self.learning_rate > 0, "learning_rate", "> 0", self.learning_rate)
        require(self.warmup_steps >= 0, "warmup_steps", ">= 0", self.warmup_steps)
        require(self.kl_coef >= 0, "kl_coef", ">= 0 (0 = no reference model)", self.kl_coef)
        require(0 <= self.clip_low < 1, "clip_low", "in [0, 1)", self.clip_low)
        require(self.clip_high >= 0, "clip_high", ">= 0", self.clip_high)
        require(self.max_grad_norm > 0, "max_grad_norm", "> 0", self.max_grad_norm)
        require(self.validate_every >= 0, "validate_every", ">= 0 (0 = never)", self.validate_every)
        require(self.reward in REWARDS, "reward", " | ".join(REWARDS), self.reward)
        require(self.probe_samples >= 0, "probe_samples", ">= 0 (0 = no probe)", self.probe_samples)
        require_positive(self, "probe_episodes")
        require(self.mixed_precision in ("no", "bf16", "fp16"), "mixed_precision", "no, bf16 or fp16",
                self.mixed_precision)
        require(self.rollout in ("hf", "vllm"), "rollout", "hf or vllm", self.rollout)
        require(0 < self.vllm_gpu_memory_utilization < 1, "vllm_gpu_memory_utilization", "in (0, 1)",
                self.vllm_gpu_memory_utilization)


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
        check_model_name(cfg.ref_model, "ref_model", needs=("weights",))
    check_embedder_config(cfg.embedder)
    # the loop reads them again after loading the model; a bad row must fail before that
    samples = read_samples(cfg.samples)
    if cfg.val_samples:
        read_samples(cfg.val_samples, cfg.val_max_samples)
    if cfg.probe_samples >= len(samples):
        raise ConfigError(f"probe_samples: {cfg.probe_samples} probe samples leave none of the {len(samples)} in "
                          f"{cfg.samples} to train on; lower it (0 = no probe) or give more samples")
    check_reward(cfg.reward, samples, cfg.samples)
    if cfg.steps == 0 and not cfg.probe_samples and not cfg.train_ids:
        raise ConfigError("steps: 0 probes only, but probe_samples is 0 and train_ids is null: nothing to probe")
    if cfg.train_ids is not None:
        check_train_ids(cfg.train_ids, samples, cfg.probe_samples, cfg.samples)
    if cfg.lora is not None:
        check_lora(cfg.lora)


def check_train_ids(train_ids: list[str], samples: list, probe_samples: int, path: str) -> None:
    """rl.train_ids name samples of the file, none twice and none of the probe (its last probe_samples)."""
    if not train_ids:
        raise ConfigError("train_ids: empty; null trains on every sample but the probe")
    ids = [s.id for s in samples]
    probe = set(ids[len(ids) - probe_samples :]) if probe_samples else set()
    seen = set()
    for sample_id in train_ids:
        if sample_id not in ids:
            raise ConfigError(f"train_ids: {sample_id!r} is not a sample id of {path}")
        if sample_id in probe:
            raise ConfigError(f"train_ids: {sample_id!r} is a probe sample (the last probe_samples={probe_samples} "
                              f"of {path}); choose another or lower probe_samples")
        if sample_id in seen:
            raise ConfigError(f"train_ids: {sample_id!r} is given twice")
        seen.add(sample_id)


def check_lora(lora: dict) -> None:
    """The LoRA arguments make a peft.LoraConfig (peft imported only here, before any model loads)."""
    try:
        from peft import LoraConfig

        LoraConfig(task_type="CAUSAL_LM", **lora)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"lora: {err}") from None
