"""Is one policy better than another on the same questions? A paired bootstrap over questions.

Both runs answered the same questions, so the question is the unit: resampling the per-question EM
differences (b - a) with replacement gives an interval for the mean gain that keeps each question's
pairing (a hard question stays hard for both). The interval excluding 0 is what "RL beats SFT" means
in our closing notes.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from atommem.errors import InputError
from atommem.io import read_jsonl


@dataclass(frozen=True)
class Gain:
    benchmark: str
    num_docs: int
    n_questions: int
    em_a: float
    em_b: float
    em_diff: float  # em_b - em_a
    ci_low: float
    ci_high: float

    @property
    def group(self) -> str:
        return f"{self.benchmark}_{self.num_docs}"


def question_em(path: str | os.PathLike) -> dict[tuple[str, int], dict[tuple[str, str], float]]:
    """(benchmark, num_docs) -> {(sample_id, question_id): em} from an evaluation's predictions.jsonl."""
    groups: dict[tuple[str, int], dict[tuple[str, str], float]] = defaultdict(dict)
    for i, row in enumerate(read_jsonl(path), 1):
        missing = [k for k in ("sample_id", "question_id", "benchmark", "num_docs", "em") if k not in row]
        if missing:
            raise InputError(f"{path}: row {i} has no key {missing[0]!r}")
        groups[(row["benchmark"], int(row["num_docs"]))][(row["sample_id"], row["question_id"])] = float(row["em"])
    return dict(groups)


def paired_bootstrap(em_a: np.ndarray, em_b: np.ndarray, resamples: int, confidence: float,
                     seed: int) -> tuple[float, float]:
    """Percentile interval of mean(em_b - em_a) over `resamples` resamplings of the questions."""
    diffs = np.asarray(em_b, dtype=float) - np.asarray(em_a, dtype=float)
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(resamples, len(diffs)))].mean(axis=1)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def compare_runs(path_a: str | os.PathLike, path_b: str | os.PathLike, resamples: int = 10_000,
                 confidence: float = 0.95, seed: int = 0) -> list[Gain]:
    """One Gain per group both runs scored; the groups' questions must be the same in both."""
    runs_a, runs_b = question_em(path_a), question_em(path_b)
    gains = []
    for group in sorted(set(runs_a) & set(runs_b)):
        a, b = runs_a[group], runs_b[group]
        if set(a) != set(b):
            only = sorted(set(a) ^ set(b))[0]
            raise InputError(f"{path_a} and {path_b}: group '{group[0]}_{group[1]}' is not the same questions "
                             f"(question {only[1]!r} of sample {only[0]!r} is in one only)")
        keys = sorted(a)
        em_a, em_b = np.array([a[k] for k in keys]), np.array([b[k] for k in keys])
        low, high = paired_bootstrap(em_a, em_b, resamples, confidence, seed)
        gains.append(Gain(*group, len(keys), float(em_a.mean()), float(em_b.mean()),
                          float(em_b.mean() - em_a.mean()), low, high))
    return gains
