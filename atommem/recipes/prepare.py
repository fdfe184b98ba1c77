"""`atommem prepare`: benchmark file -> long-context samples (JSONL) + statistics (JSON).

    atommem prepare --set benchmark=hotpotqa --set num_docs=50 --set out=results/data/hotpotqa_50.jsonl

A generated task's name (atommem.tasks.TASKS) generates its samples instead, hidden among distractor
paragraphs of `distractors` (a benchmark file in `distractor_format`; empty = the shipped one), with the
knobs of the config section named after it; `benchmark=statetrack` generates state-tracking worlds:

    atommem prepare --set benchmark=statetrack --set seed=1 --set num_docs=10 --set max_samples=50 \
        --set distractor_format=hotpotqa --set out=results/data/statetrack_10.jsonl
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from atommem.config import ConfigError, option, require, require_positive
from atommem.data.download import fetch, fetch_member
from atommem.data.loaders import LOADERS, load_benchmark, shipped_sample
from atommem.data.longcontext import build_long_samples, context_token_stats, summarize_counts
from atommem.data.statetrack import StateTrackConfig
from atommem.io import write_json_atomic, write_jsonl_atomic
from atommem.tasks import TASKS, task_of
from atommem.tasks.base import Task

log = logging.getLogger(__name__)


@dataclass
class PrepareConfig:
    benchmark: str = option("hotpotqa", f"{' | '.join(LOADERS)} | {' | '.join(TASKS)} (generated)")
    path: str = option("", "official-format file; empty = the sample shipped in data/benchmarks/")
    url: str | None = option(None, "if set, download to `path` (a generated task: `distractors`) first, unless it is there")
    sha256: str | None = option(None, "expected checksum of what `url` serves (null: unverified, with a warning)")
    archive: str | None = option(None, "`url` serves a zip archive: keep it here and extract `member` to `path`")
    member: str | None = option(None, "the file of the archive to extract (its path inside, or a unique name)")
    num_docs: int = option(200, "documents per sample (paper: 200, 400, 800)")
    seed: int = option(42, "seed of question grouping and document shuffling (paper: 42)")
    skip_questions: int = option(0, "start after the first K questions of the file (train / held-out splits)")
    max_questions: int | None = option(None, "only the first M questions (after skipping)")
    max_group_size: int = option(10, "questions per sample are 1 (p=0.5) or uniform 2..max_group_size (paper: 10)")
    max_samples: int | None = option(None, "only the first S samples (a generated task: the number generated; "
                                           "unset: its default_samples, atommem/tasks)")
    out: str = option("", "samples JSONL")
    stats_out: str | None = option(None, "statistics JSON")
    tokenizer: str | None = option(None, "count tokens with this HF tokenizer if it loads offline")
    # generated tasks only: where their distractor paragraphs come from; a task's knobs are the field named
    # after it
    distractors: str = option("", "benchmark file; empty = the shipped sample of distractor_format")
    distractor_format: str = option("hotpotqa", " | ".join(LOADERS))
    distractor_parts: int = option(1, "split the file's paragraphs into this many disjoint parts ...")
    distractor_part: int = option(0, "... and use this one (train and held-aside samples use different parts)")
    statetrack: StateTrackConfig = option(StateTrackConfig, "statetrack only: the world's knobs")

    def __post_init__(self) -> None:
        require_positive(self, "num_docs", "max_group_size")
        require_positive(self, "max_questions", "max_samples", optional=True)
        require(self.skip_questions >= 0, "skip_questions", ">= 0", self.skip_questions)


def _check(cfg: PrepareConfig) -> None:
    task = task_of(cfg.benchmark)
    if cfg.benchmark not in LOADERS and task is None:
        raise ConfigError(
            f"benchmark: unknown {cfg.benchmark!r}; valid names: {', '.join([*LOADERS, *TASKS])}")
    if task is not None:
        if cfg.distractor_format not in LOADERS:
            raise ConfigError(f"distractor_format: unknown {cfg.distractor_format!r}; valid: {', '.join(LOADERS)}")
        if not 0 <= cfg.distractor_part < cfg.distractor_parts:
            raise ConfigError(f"distractor_part: must be in 0..distractor_parts-1, got {cfg.distractor_part}")
        try:
            getattr(cfg, task.name).check()
        except ValueError as err:
            raise ConfigError(str(err)) from None
    if not cfg.out:
        raise ConfigError("out: required (the samples JSONL path)")
    if cfg.url and not (cfg.distractors if task is not None else cfg.path):
        raise ConfigError("path: required when url is set (where the download is stored)")
    if bool(cfg.archive) != bool(cfg.member) or (cfg.member and not cfg.url):
        raise ConfigError(f"archive, member: set both, with url, or neither (archive {cfg.archive!r}, "
                          f"member {cfg.member!r}, url {cfg.url!r})")


def _load_tokenizer(name: str):
    """An offline HF tokenizer, or None (whitespace words are counted instead) if it cannot be loaded."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as err:
        log.warning("tokenizer %r does not load offline (%s); counting whitespace words", name, err)
        return None


def sample_stats(samples, cfg: PrepareConfig, source: Path, tokenizer=None) -> dict:
    word_stats = context_token_stats(samples)
    stats = {
        "benchmark": cfg.benchmark,
        "source": str(source),
        "num_docs": cfg.num_docs,
        "seed": cfg.seed,
        "num_samples": len(samples),
        "num_questions": sum(len(s.questions) for s in samples),
        "questions_per_sample": summarize_counts([len(s.questions) for s in samples]),
        "docs_per_sample": summarize_counts([len(s.documents) for s in samples]),
        "context_chars": summarize_counts([len(s.context) for s in samples]),
        "context_words": word_stats,
    }
    if tokenizer is not None:
        stats["context_tokens"] = {"tokenizer": cfg.tokenizer, **context_token_stats(samples, tokenizer)}
    return stats


def _source_file(cfg: PrepareConfig, key: str, path: str, benchmark_format: str) -> Path:
    """The benchmark file at `path` (the shipped sample when empty), downloaded first if a url is set."""
    source = Path(path) if path else shipped_sample(benchmark_format)
    if cfg.member:
        fetch_member(cfg.url, cfg.archive, cfg.member, source, cfg.sha256)
    elif cfg.url:
        fetch(cfg.url, source, cfg.sha256)
    if not source.exists():
        raise ConfigError(f"{key}: benchmark file not found: {source}")
    return source


def _generated_samples(cfg: PrepareConfig, task: Task) -> tuple[list, Path]:
    source = _source_file(cfg, "distractors", cfg.distractors, cfg.distractor_format)
    pool = task.distractor_pool(load_benchmark(cfg.distractor_format, source), cfg.distractor_parts,
                                cfg.distractor_part)
    num_samples = cfg.max_samples or task.default_samples
    try:
        samples = task.generate(pool, getattr(cfg, task.name), cfg.num_docs, num_samples, cfg.seed)
    except ValueError as err:
        raise ConfigError(f"{err} ({source}, part {cfg.distractor_part} of {cfg.distractor_parts})") from None
    return samples, source


def main(cfg: PrepareConfig) -> None:
    _check(cfg)
    task = task_of(cfg.benchmark)
    if task is not None:
        samples, source = _generated_samples(cfg, task)
    else:
        samples, source = _benchmark_samples(cfg)
    write_jsonl_atomic(cfg.out, (s.to_dict() for s in samples))
    log.info("wrote %d samples to %s", len(samples), cfg.out)

    if cfg.stats_out:
        tokenizer = _load_tokenizer(cfg.tokenizer) if cfg.tokenizer else None
        stats = sample_stats(samples, cfg, source, tokenizer)
        stats["config"] = asdict(cfg)
        write_json_atomic(cfg.stats_out, stats)
        log.info(
            "wrote stats to %s: %d samples, %d questions, mean %.0f words per context",
            cfg.stats_out, stats["num_samples"], stats["num_questions"], stats["context_words"]["mean"],
        )


def _benchmark_samples(cfg: PrepareConfig) -> tuple[list, Path]:
    source = _source_file(cfg, "path", cfg.path, cfg.benchmark)

    records = load_benchmark(cfg.benchmark, source)
    if not records:
        raise ConfigError(f"{source}: no questions (the file holds an empty list)")
    if cfg.skip_questions >= len(records):
        raise ConfigError(f"skip_questions: {cfg.skip_questions} skips all {len(records)} questions of {source}; "
                          "no sample is left to build")
    log.info("loaded %d %s questions from %s", len(records), cfg.benchmark, source)
    samples = build_long_samples(
        records,
        cfg.num_docs,
        seed=cfg.seed,
        benchmark=cfg.benchmark,
        max_questions=cfg.max_questions,
        max_samples=cfg.max_samples,
        skip_questions=cfg.skip_questions,
        max_group_size=cfg.max_group_size,
    )
    return samples, source


CONFIG_CLASS = PrepareConfig
