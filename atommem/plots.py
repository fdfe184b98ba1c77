"""The paper's figures from run outputs: op frequency and reward per RL step, EM against document count.

Each figure is written as a PDF with a PNG beside it, atomically. Figures are built with
`matplotlib.figure.Figure` (no pyplot), so nothing here touches the global backend: the same code works
in a headless job and inside a notebook.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from atommem.errors import InputError
from atommem.io import atomic_path, read_jsonl, read_summary

OPS = ("create", "read", "update", "delete")
METRIC_LABELS = {"em_macro": "EM (macro)", "em_micro": "EM (micro)", "f1_macro": "F1 (macro)"}
RAW_ALPHA = 0.25  # raw values drawn faint behind the smoothed line, as in the paper


class PlotInputError(InputError):
    """An input file lacks what a figure needs; the message names the file and the key."""


def ema(values: Sequence[float], weight: float = 0.8) -> list[float]:
    """Exponential moving average, debiased so the first points are not pulled towards zero."""
    smoothed, last = [], 0.0
    for i, value in enumerate(values, 1):
        last = weight * last + (1 - weight) * value
        smoothed.append(last / (1 - weight**i))
    return smoothed


def read_series(path: str | os.PathLike, key: str, every_step: bool = True) -> tuple[list[int], list[float]]:
    """(steps, values) of metric `key` from a metrics.jsonl written by the RL loop.

    `every_step`: a metric of every step (a row without it is an error, except the row of step 0, which
    holds the probe taken before training); else one logged on some steps only (probe/, val/), read from
    the rows that have it, at least one."""
    rows = read_jsonl(path)
    if not rows:
        raise PlotInputError(f"{path}: no metric rows")
    steps, values = [], []
    for line_no, row in enumerate(rows, 1):
        if row.get(key) is None and (not every_step or row.get("step") == 0):
            continue
        for needed in ("step", key):
            if row.get(needed) is None:
                raise PlotInputError(f"{path}: line {line_no} has no key {needed!r} (has: {', '.join(sorted(row))})")
        if not all(isinstance(row[k], (int, float)) and not isinstance(row[k], bool) for k in ("step", key)):
            raise PlotInputError(f"{path}: line {line_no}: 'step' and {key!r} must be numbers")
        steps.append(row["step"])
        values.append(float(row[key]))
    if not steps:
        raise PlotInputError(f"{path}: no row has the key {key!r}")
    return steps, values


def has_metric(path: str | os.PathLike, key: str) -> bool:
    return any(row.get(key) is not None for row in read_jsonl(path))


def _draw(ax, steps, values, label, color, smoothing, std=None):
    """Raw values faint, EMA on top; a run with one step is a dot (a line needs two points)."""
    marker = "o" if len(steps) == 1 else None
    ax.plot(steps, values, color=color, alpha=RAW_ALPHA, linewidth=1, marker=marker)
    smooth = ema(values, smoothing)
    ax.plot(steps, smooth, color=color, linewidth=2, label=label, marker=marker)
    if std is not None:
        spread = ema(std, smoothing)
        lower = [m - s for m, s in zip(smooth, spread)]
        upper = [m + s for m, s in zip(smooth, spread)]
        ax.fill_between(steps, lower, upper, color=color, alpha=0.12, linewidth=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def save_figure(fig: Figure, out: str | os.PathLike) -> list[Path]:
    """Write `out` (.pdf) and the PNG beside it atomically; return both paths."""
    out = Path(out)
    if out.suffix != ".pdf":
        raise PlotInputError(f"out: {out} must end in .pdf (a .png is written beside it)")
    written = []
    for path, fmt in ((out, "pdf"), (out.with_suffix(".png"), "png")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
        written.append(path)
    return written


def op_frequency(runs: Mapping[str, str | os.PathLike], out: str | os.PathLike, smoothing: float = 0.8) -> list[Path]:
    """Four panels (Create, Read, Update, Delete): ops per turn against RL step, one line per run."""
    fig = Figure(figsize=(15, 3.4), layout="constrained")
    axes = fig.subplots(1, len(OPS))
    for (label, path), color in zip(runs.items(), _colors(len(runs))):
        for ax, op in zip(axes, OPS):
            steps, values = read_series(path, f"ops/{op}_per_turn")
            _draw(ax, steps, values, label, color, smoothing)
    for ax, op in zip(axes, OPS):
        ax.set_title(op.capitalize())
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("frequency per turn")
    axes[-1].legend(loc="best", fontsize="small")
    return save_figure(fig, out)


# the probe's curves (rl.probe_samples): fixed samples, so they show learning where the per-step reward,
# on the fresh samples each step draws, mostly shows which samples it drew
PROBE_CURVES = (("probe/sampled_reward", "-", "sampled reward"), ("probe/greedy_em", "--", "greedy EM"))


def train_reward(
    runs: Mapping[str, str | os.PathLike], out: str | os.PathLike, smoothing: float = 0.8, std_band: bool = False
) -> list[Path]:
    """reward/mean against RL step, one line per run (full / scratchpad-only / store-only); beside it, when
    the runs logged a probe, the probe samples' sampled reward (solid) and greedy EM (dashed) against step,
    step 0 being the policy before training. Probe points are few and unsmoothed."""
    runs = dict(runs)
    probed = [label for label, path in runs.items() if has_metric(path, PROBE_CURVES[0][0])]
    fig = Figure(figsize=(11 if probed else 6, 4), layout="constrained")
    axes = fig.subplots(1, 2 if probed else 1, squeeze=False, sharey=True)[0]
    ax = axes[0]
    for (label, path), color in zip(runs.items(), _colors(len(runs))):
        steps, values = read_series(path, "reward/mean")
        std = read_series(path, "reward/std")[1] if std_band else None
        _draw(ax, steps, values, label, color, smoothing, std)
    ax.set_xlabel("RL step")
    ax.set_ylabel("training reward")
    ax.set_title("per step (fresh samples)" if probed else "")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    if probed:
        probe_ax = axes[1]
        for (label, path), color in zip(runs.items(), _colors(len(runs))):
            if label not in probed:
                continue
            for key, style, name in PROBE_CURVES:
                if has_metric(path, key):
                    steps, values = read_series(path, key, every_step=False)
                    probe_ax.plot(steps, values, style, color=color, marker="o", label=f"{label}: {name}")
        probe_ax.set_xlabel("RL step (0: before training)")
        probe_ax.set_ylabel("reward / EM")
        probe_ax.set_title("probe (fixed samples, never trained on)")
        probe_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        probe_ax.grid(alpha=0.3)
        probe_ax.legend(loc="best", fontsize="small")
    return save_figure(fig, out)


def summary_label(summary: dict) -> str:
    """The run label of an evaluation; method (policy) when the summary has no run label."""
    if summary.get("run"):
        return str(summary["run"])
    policy = summary.get("policy")
    return f"{summary['method']} ({policy})" if policy else str(summary["method"])


def read_em_points(path: str | os.PathLike, metric: str = "em_macro") -> list[tuple[str, int, float]]:
    """(benchmark, num_docs, value) for every `{benchmark}_{num_docs}` group of one summary.json."""
    summary = read_summary(path)
    groups = summary.get("groups")
    if not isinstance(groups, dict):
        raise PlotInputError(f"{path}: no 'groups' mapping")
    points = []
    for key, group in groups.items():
        if key == "overall":
            continue
        benchmark, _, docs = key.rpartition("_")
        if not benchmark or not docs.isdigit():
            raise PlotInputError(f"{path}: group {key!r} is not '<benchmark>_<num_docs>'")
        if group.get(metric) is None:
            raise PlotInputError(f"{path}: group {key!r} has no key {metric!r}")
        if not isinstance(group[metric], (int, float)):
            raise PlotInputError(f"{path}: group {key!r}: {metric!r} must be a number")
        points.append((benchmark, int(docs), float(group[metric])))
    return points


def em_by_length(
    summaries: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
    out: str | os.PathLike,
    metric: str = "em_macro",
) -> list[Path]:
    """EM against document count, one panel per benchmark, one line per method/policy label.

    A list takes each label from its summary.json (`run`, else method and policy); summaries with the
    same label (one folder per benchmark and document count) join into one line. A mapping gives labels.
    """
    labelled = summaries.items() if isinstance(summaries, Mapping) else ((None, p) for p in summaries)
    # benchmark -> label -> {num_docs: value}
    table: dict[str, dict[str, dict[int, float]]] = {}
    labels: list[str] = []
    for label, path in labelled:
        label = label or summary_label(read_summary(path))
        if label not in labels:
            labels.append(label)
        for benchmark, docs, value in read_em_points(path, metric):
            table.setdefault(benchmark, {}).setdefault(label, {})[docs] = value
    if not table:
        raise PlotInputError("em_by_length: the summaries have no '<benchmark>_<num_docs>' groups")
    colors = dict(zip(labels, _colors(len(labels))))
    benchmarks = sorted(table)
    fig = Figure(figsize=(4.5 * len(benchmarks), 3.6), layout="constrained")
    axes = fig.subplots(1, len(benchmarks), squeeze=False)[0]
    for ax, benchmark in zip(axes, benchmarks):
        for label in labels:
            points = sorted(table[benchmark].get(label, {}).items())
            if points:
                ax.plot(*zip(*points), marker="o", color=colors[label], label=label)
        ax.set_title(benchmark)
        ax.set_xlabel("documents")
        ax.set_xticks(sorted({d for line in table[benchmark].values() for d in line}))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(METRIC_LABELS.get(metric, metric))
    axes[-1].legend(loc="best", fontsize="small")
    return save_figure(fig, out)
