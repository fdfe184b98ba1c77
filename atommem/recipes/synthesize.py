"""`atommem synthesize`: SFT examples from an oracle or LLM teacher playing the agent loop.

    atommem synthesize --set teacher=oracle --set samples=results/data/hotpotqa_train.jsonl \
        --set out=results/sft_data/examples.jsonl --set stats_out=results/sft_data/stats.json

Writes `out` (one prompt-completion example per turn of each kept trajectory), `trajectories_out` (every
trajectory with its fraction correct and whether it was kept) and `stats_out` (kept fraction, turns, op mix).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from atommem.agent.env import EnvConfig
from atommem.config import ConfigError, option, require, require_positive
from atommem.data.records import read_samples
from atommem.io import write_json_atomic, write_jsonl_atomic
from atommem.llm.base import ModelConfig, SamplingConfig, build_llm
from atommem.llm.models import check_model_config, load_tokenizer
from atommem.memory.embedders import EmbedderConfig, build_embedder, check_embedder_config
from atommem.tracking import TrackingConfig, tracked_run

log = logging.getLogger(__name__)


@dataclass
class SynthesizeConfig:
    teacher: str = option("oracle", "oracle (knows the supporting facts) | llm (a model plays the agent)")
    samples: str = option("", "JSONL from `atommem prepare`")
    max_samples: int | None = option(None, "samples played (null = all)")
    out: str = option("", "examples JSONL")
    trajectories_out: str | None = option(None, "every trajectory with its fraction correct and whether it was kept")
    stats_out: str | None = option(None, "kept fraction, turns and op mix (JSON)")
    min_fraction_correct: float = option(0.5, "keep trajectories with at least this fraction correct (paper: half)")
    # llm teacher: the model that plays; oracle: only its tokenizer is used (chunking, token counts), so
    # set it to the student so chunks match what the student sees
    model: ModelConfig = option(ModelConfig, "the llm teacher, or the student whose tokenizer the oracle uses")
    sampling: SamplingConfig = option(lambda: SamplingConfig(temperature=0.6),
                                      "the llm teacher's decoding (paper: temperature 0.6)")
    embedder: EmbedderConfig = option(EmbedderConfig, "embedder of the memory store")
    env: EnvConfig = option(EnvConfig, "the agent environment")
    batch_size: int = option(8, "episodes in lock-step")
    progress: bool = option(True, "show progress bars")
    tracking: TrackingConfig = option(TrackingConfig, "MLflow tracking")

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
    check_model_config(cfg.model, needs_weights=cfg.teacher == "llm")  # the oracle uses the tokenizer only
    check_embedder_config(cfg.embedder)


def main(cfg: SynthesizeConfig) -> dict:
    from atommem.train.synthesize import examples_from, play, score_and_filter, synthesis_stats

    check_config(cfg)
    samples = read_samples(cfg.samples, cfg.max_samples)
    with tracked_run(cfg.tracking, params=asdict(cfg)) as run:
        teacher = build_llm(cfg.model) if cfg.teacher == "llm" else None
        tokenizer = teacher.tokenizer if teacher is not None else load_tokenizer(cfg.model.tokenizer or cfg.model.name)
        trajectories = play(samples, cfg.env, build_embedder(cfg.embedder), tokenizer, teacher, cfg.sampling,
                            cfg.batch_size, cfg.progress)
        scored = score_and_filter(trajectories, samples, cfg.min_fraction_correct)
        examples = examples_from(scored)
        if not examples:  # an empty examples file would only fail later, in sft
            best = max(item.fraction_correct for item in scored)
            raise ConfigError(f"min_fraction_correct: the filter ({cfg.min_fraction_correct:g}) keeps none of the "
                              f"{len(scored)} trajectories (best {best:.2f} of its questions right); no examples, "
                              "nothing written")
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
