"""benchmarks/processes.py: one process with 2 threads and 2 processes of one thread run the RL recipe (vLLM
rollouts colocated) on the same work, and the script prints their per-step times and the ratio."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks/processes.py"


@pytest.mark.slow
def test_one_process_against_two_on_the_same_work(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--steps", "1", "--prompts", "2", "--group-size", "2",
                             "--num-docs", "4", "--max-turns", "1", "--max-new-tokens", "4", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for layout in ("1 x 2", "2 x 1"):
        assert f"| {layout} | 1 |" in result.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("time/rollout_s", "time/update_s"):
        assert summary[key]["1xT_s_per_episode"] > 0 and summary[key]["Tx1_s_per_episode"] > 0
        assert summary[key]["ratio_Tx1_over_1xT"] > 0
