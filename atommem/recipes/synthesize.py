"""`atommem synthesize`: SFT examples from an oracle or LLM teacher playing the agent loop.

    atommem synthesize --set teacher=oracle --set samples=results/data/hotpotqa_train.jsonl \
        --set out=results/sft_data/examples.jsonl --set stats_out=results/sft_data/stats.json

Writes `out` (one prompt-completion example per turn of each kept trajectory), `trajectories_out` (every
trajectory with its fraction correct and whether it was kept) and `stats_out` (kept fraction, turns, op mix).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from atommem.agent.env import EnvConfig
from atommem.config import ConfigError, require, require_positive
from atommem.data.records import read_samples
from atommem.io import write_json_atomic, write_jsonl_atomic
from atommem.llm.base import ModelConfig, SamplingConfig, build_llm
from atommem.llm.models import check_model_config
from atommem.memory.embedders import EmbedderConfig, build_embedder, check_embedder_config
from atommem.tracking import TrackingConfig, tracked_run

log = logging.getLogger(__name__)


@dataclass
class SynthesizeConfig:
    teacher: str = "oracle"  # "oracle" | "llm"
    samples: str = ""  # JSONL from `atommem prepare`
    max_samples: int | None = None
    out: str = ""  # examples JSONL
    trajectories_out: str | None = None
    stats_out: str | None = None
    min_fraction_correct: float = 0.5
    # llm teacher: the model that plays; oracle: only its tokenizer is used (chunking, token counts), so
    # set it to the student so chunks match what the student sees
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(temperature=0.6, max_new_tokens=1024))
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    batch_size: int = 8  # episodes in lock-step
    progress: bool = True
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        require(self.teacher in ("oracle", "llm"), "teacher", "oracle or llm", self.teacher)
        require(0.0 <= self.min_fraction_correct <= 1.0, "min_fraction_correct", "in [0, 1]", self.min_fraction_correct)
        require_positive(self, "batch_size")
        require_positive(self, "max_samples", optional=True)


CONFIG_CLASS = SynthesizeConfig


def check_config(cfg: SynthesizeConfig) -> None:
    if not cfg.samples:
        raise ConfigError("samples: required (a JSONL file from `atommem prepare`)")
    if not cfg.out:
        raise ConfigError("out: required (the examples JSONL path)")
    check_model_config(cfg.model)
    check_embedder_config(cfg.embedder)


def _tokenizer(model: ModelConfig):
    from transformers import AutoTokenizer

    from atommem.llm.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(model.tokenizer or model.name))


def main(cfg: SynthesizeConfig) -> dict:
    from atommem.train.synthesize import examples_from, play, score_and_filter, synthesis_stats

    check_config(cfg)
    samples = read_samples(cfg.samples, cfg.max_samples)
    with tracked_run(cfg.tracking, params=asdict(cfg)) as run:
        teacher = build_llm(cfg.model) if cfg.teacher == "llm" else None
        tokenizer = teacher.tokenizer if teacher is not None else _tokenizer(cfg.model)
        trajectories = play(samples, cfg.env, build_embedder(cfg.embedder), tokenizer, teacher, cfg.sampling,
                            cfg.batch_size, cfg.progress)
        scored = score_and_filter(trajectories, samples, cfg.min_fraction_correct)
        examples = examples_from(scored)
        stats = {"teacher": cfg.teacher, "samples": len(samples), **synthesis_stats(scored)}
        write_jsonl_atomic(cfg.out, examples)
        if cfg.trajectories_out:
            write_jsonl_atomic(cfg.trajectories_out, [
                {**item.trajectory.to_dict(), "fraction_correct": item.fraction_correct, "kept": item.kept}
                for item in scored
            ])
        if cfg.stats_out:
            write_json_atomic(cfg.stats_out, stats)
        run.log_metrics({"kept_fraction": stats["kept_fraction"], "examples": stats["examples"],
                         **{f"ops/{k}_per_turn": v for k, v in stats["kept"]["ops_per_turn"].items()}})
    log.info("%s teacher: kept %d of %d trajectories -> %d examples in %s", cfg.teacher,
             stats["kept"]["trajectories"], len(samples), stats["examples"], cfg.out)
    return stats
