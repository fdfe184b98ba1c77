"""`atommem gains`: how much each policy gains over the one before it, per group, with a paired
bootstrap interval over questions (atommem/eval/paired.py). Inputs are predictions.jsonl files in
training order (e.g. zero-shot, SFT, RL); each consecutive pair is one comparison."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from atommem.config import ConfigError, option
from atommem.errors import InputError
from atommem.eval.paired import compare_runs
from atommem.tables import to_markdown, write_tables

log = logging.getLogger(__name__)


@dataclass
class GainsConfig:
    inputs: list[str] = option(list, "predictions.jsonl paths in order; each is compared with the one before")
    out_csv: str = option("results/tables/gains.csv", "the table as CSV")
    out_md: str = option("results/tables/gains.md", "the table as Markdown")
    resamples: int = option(10_000, "bootstrap resamples of the questions")
    confidence: float = option(0.95, "two-sided level of the interval")
    seed: int = option(0, "seed of the resampling")

    def __post_init__(self):
        if self.resamples < 1:
            raise ConfigError(f"resamples: must be >= 1, got {self.resamples}")
        if not 0 < self.confidence < 1:
            raise ConfigError(f"confidence: must be in (0, 1), got {self.confidence}")


def run_label(path: str) -> str:
    """results/eval/<run>/predictions.jsonl -> <run>"""
    return Path(path).parent.name


def main(cfg: GainsConfig) -> None:
    if len(cfg.inputs) < 2:
        raise ConfigError("inputs: give at least two predictions.jsonl paths to compare")
    rows = []
    for path_a, path_b in zip(cfg.inputs, cfg.inputs[1:]):
        for gain in compare_runs(path_a, path_b, cfg.resamples, cfg.confidence, cfg.seed):
            rows.append({"from": run_label(path_a), "to": run_label(path_b), **asdict(gain),
                         "excludes_zero": not gain.ci_low <= 0 <= gain.ci_high})
    if not rows:
        raise InputError(f"{', '.join(cfg.inputs)}: no '<benchmark>_<num_docs>' group is scored by two consecutive runs")
    frame = pd.DataFrame(rows)
    write_tables(frame, cfg.out_csv, cfg.out_md)
    log.info("wrote %d comparisons to %s and %s\n%s", len(frame), cfg.out_csv, cfg.out_md, to_markdown(frame))


CONFIG_CLASS = GainsConfig
