"""`atommem compare`: collect finished evaluations (summary.json files) into one CSV + Markdown table."""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass

from atommem.config import ConfigError, option
from atommem.tables import collect, write_tables

log = logging.getLogger(__name__)


@dataclass
class CompareConfig:
    inputs: list[str] = option(list, "summary.json paths; glob patterns allowed")
    out_csv: str = option("results/tables/main.csv", "the table as CSV")
    out_md: str = option("results/tables/main.md", "the table as Markdown")
    rows: list[str] = option(list, "keep only these run labels or method names; [] keeps all")
    groups: list[str] = option(list, "keep only these '<benchmark>_<num_docs>'; [] keeps all")
    sort: list[str] = option(lambda: ["benchmark", "num_docs", "run"], "row order: columns to sort by")


def expand_inputs(patterns: list[str]) -> list[str]:
    """Paths as given, glob patterns expanded (sorted); a pattern or path that matches nothing fails."""
    paths = []
    for i, pattern in enumerate(patterns):
        matches = sorted(glob.glob(pattern))
        if not matches:
            raise ConfigError(f"inputs[{i}]: {pattern} matches no file")
        paths.extend(matches)
    return paths


def main(cfg: CompareConfig) -> None:
    if not cfg.inputs:
        raise ConfigError("inputs: give at least one summary.json path")
    frame = collect(expand_inputs(cfg.inputs), sort=cfg.sort, keep=cfg.rows, groups=cfg.groups)
    write_tables(frame, cfg.out_csv, cfg.out_md)
    log.info("wrote %d rows to %s and %s", len(frame), cfg.out_csv, cfg.out_md)


CONFIG_CLASS = CompareConfig
