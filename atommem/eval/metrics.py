"""Answer metrics: SQuAD normalisation, exact match and token F1 (boxed answers are read by the answer
grammar, `atommem.agent.ops.extract_boxed`, imported here for the prompted baselines).

Each prediction is compared with the gold answers (gold first, then aliases) of its OWN question and
the best match counts (fix 7 of docs/method-fixes.md: never against another question's golds). The F1 follows
HotpotQA's official evaluation, including its yes/no/noanswer rule.
"""

from __future__ import annotations

import re
import string
from collections import Counter

from atommem.agent.ops import extract_boxed  # noqa: F401 (the baselines read their replies through it)

_SPECIAL = ("yes", "no", "noanswer")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str | None, golds: list[str]) -> float:
    _check_golds(golds)
    if prediction is None:
        return 0.0
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def f1_score(prediction: str | None, golds: list[str]) -> float:
    _check_golds(golds)
    if prediction is None:
        return 0.0
    return max(_f1(prediction, g) for g in golds)


def _f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    # HotpotQA official eval: a yes/no/noanswer on either side only scores when both are identical
    if (pred in _SPECIAL or ref in _SPECIAL) and pred != ref:
        return 0.0
    pred_tokens, ref_tokens = pred.split(), ref.split()
    common = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred_tokens)
    recall = common / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def _check_golds(golds: list[str]) -> None:
    if isinstance(golds, str):
        raise TypeError("golds must be a list of answer strings, not one string")
    if not golds:
        raise ValueError("golds is empty: a question needs at least one gold answer")
