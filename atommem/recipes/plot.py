"""`atommem plot`: draw one of the paper's figures (PDF + PNG beside it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from atommem import plots
from atommem.config import ConfigError, option, require

log = logging.getLogger(__name__)

# figure name -> (function, what its inputs are)
FIGURES = {
    "op_frequency": (plots.op_frequency, "metrics.jsonl"),
    "train_reward": (plots.train_reward, "metrics.jsonl"),
    "em_by_length": (plots.em_by_length, "summary.json"),
}


@dataclass
class PlotConfig:
    figure: str = option("op_frequency", "op_frequency | train_reward | em_by_length")
    # {label: path}, or a list of paths: metrics.jsonl labelled by their folder name, summary.json
    # labelled by their run
    inputs: dict | list = option(dict, "{label: path}, or paths: metrics.jsonl labelled by their folder, summary.json by their run")
    out: str = option("results/figures/op_frequency.pdf", "the figure (PDF; a PNG is written beside it)")
    smoothing: float = option(0.8, "EMA weight for the training curves")
    std_band: bool = option(False, "train_reward: shade mean +- std of the reward")

    def __post_init__(self) -> None:
        require(self.figure in FIGURES, "figure", f"one of {', '.join(FIGURES)}", self.figure)
        require(0 <= self.smoothing < 1, "smoothing", "in [0, 1) (an EMA weight)", self.smoothing)


def main(cfg: PlotConfig) -> None:
    if not cfg.inputs:
        raise ConfigError("inputs: give at least one path")
    draw, kind = FIGURES[cfg.figure]
    if kind == "summary.json":
        written = draw(cfg.inputs, cfg.out)
    else:
        runs = cfg.inputs if isinstance(cfg.inputs, dict) else _label_by_folder(cfg.inputs)
        extra = {"std_band": cfg.std_band} if cfg.figure == "train_reward" else {}
        written = draw(runs, cfg.out, smoothing=cfg.smoothing, **extra)
    log.info("wrote %s", ", ".join(map(str, written)))


def _label_by_folder(paths: list[str]) -> dict[str, str]:
    """results/train/{run}/metrics.jsonl -> {run: path}; two files in same-named folders need labels."""
    runs = {}
    for i, path in enumerate(paths):
        label = Path(path).parent.name
        if label in runs:
            raise ConfigError(f"inputs[{i}]: label {label!r} is taken; give inputs as {{label: path}}")
        runs[label] = path
    return runs


CONFIG_CLASS = PlotConfig
