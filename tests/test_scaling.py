"""benchmarks/scaling.py: the smallest size runs in its own process and reports real LLM calls, input tokens,
a store the oracle-driven episodes fill, an RL update and peak memory; the growth table and its targets."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks/scaling.py"
spec = importlib.util.spec_from_file_location("scaling", SCRIPT)
scaling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(scaling)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, timeout=900)


def test_the_smallest_size_runs(tmp_path):
    out = tmp_path / "scaling.json"
    result = run("--sizes", "10", "--questions", "1", "10", "--episodes", "2", "--max-new-tokens", "4",
                 "--json", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    # 10 questions bring 20 supporting documents: they do not fit in 10, and the size says so
    assert len(report["skipped"]) == 1 and report["skipped"][0].startswith("10 documents x 10 questions")
    [r] = report["results"]
    assert (r["docs"], r["questions"], r["episodes"]) == (10, 1, 2)
    assert r["llm_calls"] == 4  # per episode: its one chunk, then its question's answer
    assert r["input_tokens"] > r["llm_calls"] * 300  # the system message alone is ~360 tokens
    assert r["peak_store"] >= 1 and r["answered"] == 2  # the oracle's Create, then its answer
    assert r["model_s"] > 0 and r["env_s"] > 0 and r["update_s"] > 0 and r["update_tokens"] > 0
    assert r["rss_mib"] >= r["rss_eval_mib"] >= r["rss_start_mib"] > 0
    assert "| 10 | 1 | 2 |" in result.stdout and "targets:" in result.stdout


def size(docs: int, env_s: float, rss_over_start: float) -> dict:
    return {"docs": docs, "questions": 1, "episodes": 4, "eval_s": 10.0, "update_s": 5.0, "llm_calls": docs,
            "input_tokens": 1000 * docs, "peak_store": docs, "model_s": 10.0, "env_s": env_s,
            "rss_start_mib": 500.0, "rss_eval_mib": 500.0 + rss_over_start, "rss_mib": 500.0 + rss_over_start,
            "update_tokens": 100}


def test_growth_ratios_and_the_targets(capsys):
    assert scaling.report([size(10, 0.1, 10), size(50, 0.4, 50)]) == []
    assert "| 1 | 10 -> 50 | 5x | 5.00x | 5.00x | 0.80x | 0.20x | 5.00x | 5.00x | 1.00x |" in capsys.readouterr().out
    missed = scaling.report([size(10, 0.1, 10), size(50, 0.6, 60)])
    assert missed == ["50 documents x 1 questions: environment 6.0% of model time",
                      "10 -> 50 documents x 1 questions: RSS over start grew 6.00x for 5x the documents"]


def test_bad_sizes_are_one_line_and_exit_2():
    result = run("--sizes", "0")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--sizes" in result.stderr
