"""LLM judge: does a prediction mean the same as one of the gold answers? PASS/FAIL per question.

Talks to any OpenAI-compatible /chat/completions endpoint (vLLM, `transformers serve`, a hosted API)
with a plain HTTP call, temperature 0. A reply we cannot read as PASS or FAIL becomes None, which the
summary leaves out rather than counting as wrong.
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from atommem.config import option, require, require_positive

SYSTEM_PROMPT = (
    "You grade answers to questions. Reply with exactly one word: PASS if the predicted answer means "
    "the same as at least one of the gold answers (ignore wording, formatting and extra detail that "
    "does not change the meaning), otherwise FAIL."
)
_VERDICT = re.compile(r"\b(PASS|FAIL)\b")
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


@dataclass
class JudgeConfig:
    base_url: str | None = option(None, "e.g. http://127.0.0.1:8000/v1")
    model: str = option("", "the judge model's served name")
    api_key_env: str = option("OPENAI_API_KEY", "env var holding the key; unset = no auth header")
    max_workers: int = option(8, "concurrent judge requests")
    enabled: bool = option(False, "judge the answers")
    max_tokens: int = option(16, "tokens of the judge's verdict")
    timeout_s: float = option(120.0, "seconds per request")
    max_attempts: int = option(3, "tries per request (with backoff)")

    def __post_init__(self) -> None:
        require_positive(self, "max_workers", "max_tokens", "max_attempts")
        require(self.timeout_s > 0, "timeout_s", "> 0 seconds", self.timeout_s)


def judge(cfg: JudgeConfig, questions: list[str], predictions: list[str | None], golds: list[list[str]]) -> list[bool | None]:
    """One verdict per question: True = PASS, False = FAIL (also for a missing prediction), None = unreadable."""
    if not (len(questions) == len(predictions) == len(golds)):
        raise ValueError(
            f"judge: {len(questions)} questions, {len(predictions)} predictions, {len(golds)} gold lists; lengths must match"
        )
    if not cfg.base_url:
        raise ValueError("judge.base_url is required when the judge is used")
    client = _Client(cfg)

    def verdict(i: int) -> bool | None:
        if predictions[i] is None or not predictions[i].strip():
            return False  # nothing to grade: no need to ask
        return parse_verdict(client.ask(build_prompt(questions[i], predictions[i], golds[i])))

    with ThreadPoolExecutor(max_workers=max(1, cfg.max_workers)) as pool:
        return list(pool.map(verdict, range(len(questions))))


def build_prompt(question: str, prediction: str, golds: list[str]) -> str:
    gold_lines = "\n".join(f"- {g}" for g in golds)
    return f"Question: {question}\nGold answers:\n{gold_lines}\nPredicted answer: {prediction}\nVerdict (PASS or FAIL):"


def parse_verdict(reply: str | None) -> bool | None:
    """PASS -> True, FAIL -> False; with both words present the last one is the conclusion; else None."""
    if not reply:
        return None
    words = _VERDICT.findall(_THINK.sub("", reply).upper())
    if not words:
        return None
    return words[-1] == "PASS"


class _Client:
    def __init__(self, cfg: JudgeConfig):
        self.cfg = cfg
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        key = os.environ.get(cfg.api_key_env)
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def ask(self, prompt: str) -> str | None:
        payload = {
            "model": self.cfg.model,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}],
            "temperature": 0.0,
            "max_tokens": self.cfg.max_tokens,
        }
        last_error = ""
        for attempt in range(self.cfg.max_attempts):
            try:
                response = requests.post(self.url, json=payload, headers=self.headers, timeout=self.cfg.timeout_s)
            except requests.RequestException as err:
                last_error = str(err)
            else:
                if response.status_code == 200:
                    try:
                        return response.json()["choices"][0]["message"]["content"]
                    except (ValueError, KeyError, IndexError, TypeError):
                        return None  # a reply we cannot read is an unparseable verdict, not a crash
                last_error = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code < 500 and response.status_code != 429:
                    break  # a client error (wrong model name, bad key) will not fix itself
            if attempt + 1 < self.cfg.max_attempts:
                time.sleep(0.5 * 2**attempt)
        raise RuntimeError(f"judge request to {self.url} (judge.base_url) failed: {last_error}")
