"""`atommem evaluate`: run one memory method on one or more samples files and score every question.

Samples of all files run together (lock-step batches mix them); scores are grouped per
`<benchmark>_<num_docs>`, so one run over every benchmark and length gives one summary with a group each.

Writes to `out_dir`: predictions.jsonl (one scored row per question, with cost columns),
trajectories.jsonl (methods with agent turns), summary.json (macro/micro EM, F1, judge, mean costs).
Finished batches are kept in `out_dir/partial.jsonl`, so a killed run resumes where it stopped; only
when the partials come from the same config and inputs (atommem.fingerprint), else they are moved aside.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from atommem.agent.env import EnvConfig
from atommem.config import ConfigError, option, require_positive
from atommem.data.records import read_samples_lines
from atommem.eval.judge import JudgeConfig
from atommem.eval.scoring import add_judgements, score_trajectories, summarize, write_results
from atommem.eval.write_audit import audit_writes
from atommem.fingerprint import claim_output_dir
from atommem.io import append_jsonl, truncate_jsonl, write_jsonl_atomic
from atommem.llm.base import ModelConfig, SamplingConfig, build_llm
from atommem.llm.models import check_model_config
from atommem.memory.embedders import EmbedderConfig, build_embedder, check_embedder_config
from atommem.methods.ablations import apply_ablation
from atommem.methods.base import MethodContext, MethodResult
from atommem.methods.registry import AGENT_METHODS, get_method
from atommem.tracking import TrackingConfig, summary_metrics, tracked_run

log = logging.getLogger(__name__)

PARTIAL_FILE = "partial.jsonl"  # finished batches, one MethodResult per line


@dataclass
class EvaluateConfig:
    method: str = option("atommem", "the method evaluated: a name in atommem.methods.registry")
    run: str = option("atommem-zero-shot", "label of this evaluation (tables, MLflow run name)")
    policy: str = option("zero-shot", "label of the model checkpoint (zero-shot | sft | rl | ...)")
    samples: list[str] | str = option("", "JSONL file(s) from `atommem prepare`")
    out_dir: str = option("", "summary.json, predictions.jsonl and trajectories.jsonl go here")
    max_samples: int | None = option(None, "per samples file")
    batch_size: int = option(8, "samples processed together (lock-step episodes)")
    progress: bool = option(True, "show progress bars")
    model: ModelConfig = option(ModelConfig, "the evaluated model")
    sampling: SamplingConfig = option(SamplingConfig, "decoding (greedy by default)")
    embedder: EmbedderConfig = option(EmbedderConfig, "embedder of the memory store")
    env: EnvConfig = option(EnvConfig, "the agent environment")
    judge: JudgeConfig = option(JudgeConfig, "the LLM judge (off by default)")
    tracking: TrackingConfig = option(TrackingConfig, "MLflow tracking")
    method_options: dict = option(dict, "options of the method (see its module)")
    ablation: str | None = option(None, "agent methods only: a name in atommem.methods.ablations (env overrides)")
    ablation_switches: dict | None = option(None, "a custom ablation's env switches (then `ablation` is its label)")

    def __post_init__(self) -> None:
        require_positive(self, "batch_size")
        require_positive(self, "max_samples", optional=True)


CONFIG_CLASS = EvaluateConfig


def samples_files(cfg: EvaluateConfig) -> list[str]:
    return [cfg.samples] if isinstance(cfg.samples, str) else list(cfg.samples)


def check_config(cfg: EvaluateConfig) -> None:
    """Fail on bad input before any model is loaded."""
    files = samples_files(cfg)
    if not files or not all(files):
        raise ConfigError("samples: required (one or more JSONL files from `atommem prepare`)")
    if not cfg.out_dir:
        raise ConfigError("out_dir: required")
    if cfg.judge.enabled and not (cfg.judge.base_url and cfg.judge.model):
        raise ConfigError("judge.base_url and judge.model are required when judge.enabled is true")
    get_method(cfg.method)
    check_model_config(cfg.model)
    check_embedder_config(cfg.embedder)
    if cfg.ablation_switches is not None and cfg.ablation is None:
        raise ConfigError("ablation_switches: give the custom ablation a name in `ablation`")
    if cfg.ablation is not None:
        ablated_env(cfg)  # unknown name or a combination EnvConfig refuses
        if cfg.method not in AGENT_METHODS:
            raise ConfigError(f"ablation: only for the agent methods ({', '.join(AGENT_METHODS)}), not {cfg.method!r}")


def ablated_env(cfg: EvaluateConfig) -> EnvConfig:
    if cfg.ablation is None:
        return cfg.env
    return apply_ablation(cfg.env, cfg.ablation, cfg.ablation_switches)


def read_all_samples(cfg: EvaluateConfig) -> list:
    samples, where = [], {}
    for path in samples_files(cfg):
        for line_no, sample in read_samples_lines(path, cfg.max_samples):
            if sample.id in where:
                raise ConfigError(f"samples: sample id {sample.id!r} occurs twice, in {where[sample.id]} and in "
                                  f"{path} line {line_no}; give each file once")
            where[sample.id] = f"{path} line {line_no}"
            samples.append(sample)
    return samples


def main(cfg: EvaluateConfig) -> dict:
    check_config(cfg)
    samples = read_all_samples(cfg)
    out_dir = Path(cfg.out_dir)
    partial = out_dir / PARTIAL_FILE
    claim_output_dir(out_dir, asdict(cfg), {"samples": samples_files(cfg), "model": cfg.model.name},
                     resumable=[PARTIAL_FILE])
    done = {row["sample_id"]: MethodResult.from_dict(row) for row in truncate_jsonl(partial)}
    todo = [s for s in samples if s.id not in done]
    log.info("%s on %s: %d samples (%d already done)", cfg.method, ", ".join(samples_files(cfg)), len(samples),
             len(done))

    with tracked_run(cfg.tracking, params=asdict(cfg)) as tracker:
        if todo:
            ctx = MethodContext(
                llm=build_llm(cfg.model),
                sampling=cfg.sampling,
                embedder=build_embedder(cfg.embedder),
                env=ablated_env(cfg),
                batch_size=cfg.batch_size,
                options=cfg.method_options,
                progress=cfg.progress,
            )
            method = get_method(cfg.method)
            for start in range(0, len(todo), cfg.batch_size):
                for result in method.run(todo[start : start + cfg.batch_size], ctx):
                    done[result.sample_id] = result
                append_jsonl(partial, [done[s.id].to_dict() for s in todo[start : start + cfg.batch_size]])
                log.info("finished %d/%d samples", len(done), len(samples))

        results = [done[s.id] for s in samples]
        rows = score_trajectories(results, samples)
        # a generated task's write audit (statetrack's) goes beside the costs, per sample
        cost_by_sample = {r.sample_id: r.cost() | (audit_writes(r.trajectory) if r.trajectory else {})
                          for r in results}
        for row in rows:
            row.update(cost_by_sample[row["sample_id"]])
        if cfg.judge.enabled:
            add_judgements(rows, cfg.judge)
        summary = {"method": cfg.method, "policy": cfg.policy, "run": cfg.run, "ablation": cfg.ablation,
                   "config": asdict(cfg), **summarize(rows)}
        trajectories = [r.trajectory.to_dict() for r in results if r.trajectory is not None]
        if trajectories:
            write_jsonl_atomic(out_dir / "trajectories.jsonl", trajectories)
        write_results(rows, summary, out_dir)
        partial.unlink(missing_ok=True)
        tracker.log_metrics(summary_metrics(summary))
        tracker.log_artifact(out_dir / "summary.json")
    overall = summary["overall"]
    log.info("%s: EM %.3f (macro) / %.3f (micro), F1 %.3f over %d questions -> %s", cfg.run,
             overall.get("em_macro", 0.0), overall.get("em_micro", 0.0), overall.get("f1_macro", 0.0),
             overall["n_questions"], out_dir)
    return summary
