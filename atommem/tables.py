"""Comparison tables: every finished evaluation as rows run x method x policy x benchmark x num_docs.

Scores and cost sit side by side. Cost columns are whatever `cost_*` means the summary groups carry
(LLM calls, input/output tokens, wall time, peak store size, ...); `amplification` is LLM input tokens
over context tokens.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import pandas as pd

from atommem.errors import InputError
from atommem.io import read_summary, write_text_atomic

KEY_COLUMNS = ["run", "method", "policy", "benchmark", "num_docs"]
REQUIRED_SCORES = ["em_macro", "em_micro", "f1_macro"]
# state_f1: statetrack groups only (the final memory against the true final state; blank in other rows)
OPTIONAL_SCORES = ["f1_micro", "judge_macro", "judge_micro", "state_f1"]
# cost columns in reading order; other cost_* columns follow alphabetically
COST_ORDER = ["cost_llm_calls", "cost_input_tokens", "cost_output_tokens", "cost_wall_s", "cost_peak_store"]


class TableInputError(InputError):
    """A summary.json lacks what the table needs; the message names the file and the key."""


def _amplification(group: dict) -> float:
    """LLM input tokens / context tokens: how many times a method re-reads its context."""
    if group.get("amplification") is not None:
        return float(group["amplification"])
    tokens, context = group.get("cost_input_tokens"), group.get("cost_context_tokens")
    if tokens is None or not context:
        return math.nan
    return float(tokens) / float(context)


def summary_rows(path: str | os.PathLike) -> list[dict]:
    """One row per `{benchmark}_{num_docs}` group of one summary.json ("overall" is left out)."""
    summary = read_summary(path)
    for key in ("method", "groups"):
        if key not in summary:
            raise TableInputError(f"{path}: no key {key!r}")
    rows = []
    for name, group in summary["groups"].items():
        if name == "overall":
            continue
        benchmark, _, docs = name.rpartition("_")
        if not benchmark or not docs.isdigit():
            raise TableInputError(f"{path}: group {name!r} is not '<benchmark>_<num_docs>'")
        row = {
            "run": summary.get("run") or summary["method"],
            "method": summary["method"],
            "policy": summary.get("policy") or "",
            "benchmark": benchmark,
            "num_docs": int(docs),
        }
        for key in REQUIRED_SCORES:
            if group.get(key) is None:
                raise TableInputError(f"{path}: group {name!r} has no key {key!r}")
            row[key] = group[key]
        row.update({k: group[k] for k in OPTIONAL_SCORES if group.get(k) is not None})
        row.update({k: v for k, v in sorted(group.items()) if k.startswith("cost_")})
        row["amplification"] = _amplification(group)
        rows.append(row)
    return rows


def collect(
    paths: Sequence[str | os.PathLike],
    sort: Sequence[str] = ("benchmark", "num_docs", "run"),
    keep: Sequence[str] = (),
    groups: Sequence[str] = (),
) -> pd.DataFrame:
    """All groups of all summaries as one frame: keys, scores, then cost columns.

    `keep` (run labels or method names) and `groups` ('<benchmark>_<num_docs>') select rows; optional
    columns no kept row has are left out.
    """
    rows = [row for path in paths for row in summary_rows(path)]
    if not rows:
        raise TableInputError(f"{', '.join(map(str, paths))}: no '<benchmark>_<num_docs>' groups (nothing scored)")
    if keep:
        found = sorted({row["run"] for row in rows} | {row["method"] for row in rows})
        rows = [row for row in rows if row["run"] in keep or row["method"] in keep]
        if not rows:
            raise TableInputError(f"rows: the filter {list(keep)} keeps none of the inputs' runs and methods "
                                  f"({', '.join(found)})")
    if groups:
        found = sorted({f"{row['benchmark']}_{row['num_docs']}" for row in rows})
        rows = [row for row in rows if f"{row['benchmark']}_{row['num_docs']}" in groups]
        if not rows:
            raise TableInputError(f"groups: the filter {list(groups)} keeps none of the inputs' groups "
                                  f"({', '.join(found)})")
    frame = pd.DataFrame(rows).dropna(axis="columns", how="all")
    unknown = [key for key in sort if key not in frame.columns]
    if unknown:
        raise TableInputError(f"sort: unknown column {unknown[0]!r}; columns: {', '.join(frame.columns)}")
    scores = REQUIRED_SCORES + [c for c in OPTIONAL_SCORES if c in frame.columns]
    costs = [c for c in COST_ORDER if c in frame.columns]
    costs += sorted(c for c in frame.columns if c.startswith("cost_") and c not in COST_ORDER)
    costs += ["amplification"] if "amplification" in frame.columns else []
    frame = frame[KEY_COLUMNS + scores + costs]
    return frame.sort_values(list(sort), kind="stable").reset_index(drop=True)


def _cell(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"
    return str(value).replace("|", "\\|")  # a pipe would split the cell


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured pipe table; numeric columns right-aligned."""
    header = "| " + " | ".join(frame.columns) + " |"
    align = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(frame[c]) else "---" for c in frame.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, align, *body]) + "\n"


def write_tables(frame: pd.DataFrame, out_csv: str | os.PathLike, out_md: str | os.PathLike) -> None:
    write_text_atomic(out_csv, frame.to_csv(index=False))
    write_text_atomic(out_md, to_markdown(frame))
