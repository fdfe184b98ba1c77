"""`atommem rl` and `atommem sft` sent SIGTERM or SIGUSR1 in the middle of a step finish that step, write a
checkpoint, exit with status 75 (PREEMPTED, what the SLURM profile requeues), and a rerun resumes from that
checkpoint to the weights of an uninterrupted run. The checkpoint interval is longer than the run, so the
only checkpoint there is to resume from is the one the signal asked for."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_checkpoint import _write_run_config
from test_kill_resume import (  # noqa: F401 (fixtures)
    ENV,
    REPO,
    assert_same_weights,
    examples_path,
    samples_path,
    sft_config,
)

from atommem.errors import PREEMPTED
from atommem.io import read_jsonl

RL_STEPS = 4


def command(stage: str, config: Path) -> list[str]:
    return [sys.executable, "-m", "atommem.cli", stage, "--config", str(config)]


def run_to_end(stage: str, config: Path) -> str:
    result = subprocess.run(command(stage, config), cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


def signal_when(stage: str, config: Path, sig: int, reached, timeout: float = 300) -> tuple[subprocess.CompletedProcess, int]:
    """Start the stage, send `sig` once `reached()` returns a step count (the steps finished so far); return
    the finished process and that count."""
    log = config.with_suffix(".log")
    with open(log, "w") as handle:
        process = subprocess.Popen(command(stage, config), cwd=REPO, env=ENV, stdout=handle, stderr=handle)
        deadline = time.monotonic() + timeout
        while (done := reached()) is None:
            assert process.poll() is None, f"ended before the awaited state: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "state not reached in time"
            time.sleep(0.05)
        process.send_signal(sig)
        process.wait(timeout=300)
    text = log.read_text()
    return subprocess.CompletedProcess(process.args, process.returncode, "", text), done


def preempted_line(result: subprocess.CompletedProcess, stage: str) -> str:
    assert result.returncode == PREEMPTED, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"atommem {stage}: preempted: "), line
    return line


# ---- rl ---------------------------------------------------------------------------------------------
def rl_config(tmp_path: Path, tiny_model_dir: str, out_dir: Path) -> Path:
    path = _write_run_config(tmp_path, tiny_model_dir, out_dir, RL_STEPS)
    cfg = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**cfg, "checkpoint_every": 100, "tracking": {"enabled": False}}))
    return path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_rl_signalled_mid_step_checkpoints_and_resumes(tmp_path, tiny_model_dir, rl_straight, sig):
    out = tmp_path / "out"
    config = rl_config(tmp_path, tiny_model_dir, out)
    metrics = out / "metrics.jsonl"

    def step_one_done() -> int | None:  # step 1's row is written: step 2 is under way
        rows = metrics.read_bytes().count(b"\n") if metrics.exists() else 0
        return rows if rows >= 1 else None

    result, done = signal_when("rl", config, sig, step_one_done)
    line = preempted_line(result, "rl")
    step = int(re.search(r"after step (\d+) of", line).group(1))
    assert step in (done, done + 1), (done, line)  # the step under way when the signal came, no further
    assert line == (f"atommem rl: preempted: {sig.name} after step {step} of {RL_STEPS}; checkpoint "
                    f"{out / 'checkpoints' / f'step_{step}'} written, a rerun resumes from it")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"step_{step}"]
    assert not (out / "final").exists()

    log = run_to_end("rl", config)
    assert re.search(rf"resumed from \S+ \(step {step}\)", log), log[-3000:]
    rows, straight_rows = read_jsonl(metrics), read_jsonl(rl_straight / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, RL_STEPS + 1))
    for a, b in zip(rows, straight_rows, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-7)
    assert_same_weights(out / "final", rl_straight / "final")


# ---- sft --------------------------------------------------------------------------------------------
def sft_run_config(tmp_path: Path, examples: Path, out_dir: Path) -> Path:
    path = sft_config(tmp_path, examples, out_dir)
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "save_steps": 100}))
    return path


def test_sft_signalled_mid_step_checkpoints_and_resumes(tmp_path, examples_path):  # noqa: F811
    straight = tmp_path / "straight"
    run_to_end("sft", sft_run_config(tmp_path, examples_path, straight))
    out = tmp_path / "out"
    config = sft_run_config(tmp_path, examples_path, out)
    log = config.with_suffix(".log")

    def step_one_logged() -> int | None:  # logging_steps 1: the first loss line is step 1 done
        losses = log.read_text().count("'loss'") if log.exists() else 0
        return losses if losses >= 1 else None

    result, done = signal_when("sft", config, signal.SIGTERM, step_one_logged)
    line = preempted_line(result, "sft")
    step = int(re.search(r"after step (\d+) of", line).group(1))
    assert step in (done, done + 1), (done, line)
    checkpoint = out / "checkpoints" / f"checkpoint-{step}"
    assert line.endswith(f"checkpoint {checkpoint} written, a rerun resumes from it"), line
    assert (checkpoint / "trainer_state.json").is_file() and not (out / "final").exists()

    resumed = run_to_end("sft", config)
    assert f"resuming SFT from {checkpoint}" in resumed
    assert_same_weights(out / "final", straight / "final")
