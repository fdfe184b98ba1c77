"""A failed write ends the job with one line naming the path and the cause (exit 74), and costs nothing
that was written before: the last complete checkpoint stays loadable and a rerun resumes from it.

Two real failures, no mocks: a file size limit (RLIMIT_FSIZE set in the child, SIGXFSZ ignored, so a
write past it fails with EFBIG) and, where this runs as root, a small tmpfs that fills up (ENOSPC).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_checkpoint import _write_run_config
from test_kill_resume import (  # noqa: F401 (fixtures)
    assert_same_weights,
    evaluate_config,
    examples_path,
    samples_path,
    sft_config,
)

from atommem.errors import WRITE_FAILED
from atommem.io import read_json, read_jsonl

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
RL_STEPS = 2
# tiny-random: model.safetensors is about 26 MB, a checkpoint's optimizer.bin about twice that
FILE_LIMIT = 40_000_000


def file_size_limit(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel's signal kills the writer instead of EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def run(stage: str, config: Path, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "atommem.cli", stage, "--config", str(config)], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=600, preexec_fn=preexec)


def failed_write_line(result: subprocess.CompletedProcess, stage: str) -> str:
    assert result.returncode == WRITE_FAILED, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    # one error line, at the end but for what a progress bar redraws when the process exits
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"atommem {stage}: error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def rl_config(tmp_path: Path, tiny_model_dir: str, out_dir: Path) -> Path:
    """The kill tests' RL run, keeping one checkpoint: a new one may replace the old one only once complete."""
    path = _write_run_config(tmp_path, tiny_model_dir, out_dir, RL_STEPS)
    cfg = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**cfg, "keep_checkpoints": 1, "tracking": {"enabled": False}}))
    return path


def checkpoints(out_dir: Path) -> list[str]:
    return sorted(p.name for p in (out_dir / "checkpoints").iterdir())


def resumed_step(log: str) -> int | None:
    match = re.search(r"resumed from \S+ \(step (\d+)\)", log)
    return int(match.group(1)) if match else None


@pytest.fixture(scope="module")
def straight(tmp_path_factory, tiny_model_dir) -> Path:
    folder = tmp_path_factory.mktemp("straight")
    out = folder / "out"
    result = run("rl", rl_config(folder, tiny_model_dir, out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def assert_resumes_to_the_straight_result(config: Path, out: Path, straight: Path, from_step: int) -> None:
    result = run("rl", config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert resumed_step(result.stderr) == from_step
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == list(range(1, RL_STEPS + 1))
    assert_same_weights(out / "final", straight / "final")
    assert checkpoints(out) == [f"step_{RL_STEPS}"]


def test_rl_checkpoint_past_a_file_size_limit(tmp_path, tiny_model_dir, straight):
    out = tmp_path / "out"
    config = rl_config(tmp_path, tiny_model_dir, out)
    # 1. a first checkpoint, written without a limit (the run is then killed)
    process = subprocess.Popen([sys.executable, "-m", "atommem.cli", "rl", "--config", str(config)], cwd=REPO,
                               env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (out / "checkpoints/step_1/trainer_state.json").exists():
        assert process.poll() is None and time.monotonic() < deadline, "no first checkpoint"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoints(out) in (["step_1"], [".tmp_step_2", "step_1"])
    # 2. under the limit: resumes, trains step 2, and its checkpoint cannot be written
    line = failed_write_line(run("rl", config, file_size_limit(FILE_LIMIT)), "rl")
    assert line.startswith(f"atommem rl: error: {out / 'checkpoints/step_2'}: write failed: File too large"), line
    assert checkpoints(out) == ["step_1"]  # the temp folder is gone, the old checkpoint kept
    assert read_json(out / "checkpoints/step_1/trainer_state.json") == {"step": 1, "data_position": 2}
    assert not (out / "final").exists()
    # 3. without the limit: resumes from step 1 to the uninterrupted run's weights
    assert_resumes_to_the_straight_result(config, out, straight, from_step=1)


@pytest.fixture
def small_disk(tmp_path, straight):
    """A tmpfs with room for one checkpoint and a half (the size of the straight run's last one)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    checkpoint = sum(p.stat().st_size for p in (straight / "checkpoints").rglob("*") if p.is_file())
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={checkpoint * 3 // 2}", "tmpfs", str(disk)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_rl_checkpoint_on_a_full_disk(tmp_path, tiny_model_dir, straight, small_disk):
    out = small_disk / "out"
    config = rl_config(tmp_path, tiny_model_dir, out)
    # step 1's checkpoint fits; step 2's does not while step 1's is kept (it is deleted only after)
    line = failed_write_line(run("rl", config), "rl")
    assert line.startswith(f"atommem rl: error: {out / 'checkpoints/step_2'}: write failed: No space left on device"), line
    assert checkpoints(out) == ["step_1"]
    assert read_json(out / "checkpoints/step_1/trainer_state.json") == {"step": 1, "data_position": 2}
    # room again (a bigger disk): the rerun resumes from step 1 to the uninterrupted run's weights
    subprocess.run(["mount", "-o", "remount,size=1g", str(small_disk)], check=True)
    assert_resumes_to_the_straight_result(config, out, straight, from_step=1)


def two_samples(config: Path) -> Path:
    config.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "max_samples": 2}))
    return config


def test_evaluate_output_past_a_file_size_limit(tmp_path, samples_path):  # noqa: F811
    straight = tmp_path / "straight"
    assert run("evaluate", two_samples(evaluate_config(tmp_path, samples_path, straight))).returncode == 0
    out = tmp_path / "limited"
    config = two_samples(evaluate_config(tmp_path, samples_path, out))
    # room for the small files (config.yaml, fingerprint.json), not for a finished batch with its trajectory
    limit = max(p.stat().st_size for p in straight.iterdir() if p.suffix in (".yaml", ".json") and
                p.name != "summary.json") + 1024
    line = failed_write_line(run("evaluate", config, file_size_limit(limit)), "evaluate")
    assert line == f"atommem evaluate: error: {out / 'partial.jsonl'}: write failed: File too large", line
    assert (out / "partial.jsonl").read_bytes() == b""  # the failed append was cut back: no partial row
    assert not (out / "summary.json").exists()
    result = run("evaluate", config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(0 already done)" in result.stderr
    for name in ("predictions.jsonl", "trajectories.jsonl"):
        drop = ("cost_wall_s", "wall_s")
        rows = [{k: v for k, v in r.items() if k not in drop} for r in read_jsonl(out / name)]
        assert rows == [{k: v for k, v in r.items() if k not in drop} for r in read_jsonl(straight / name)]
    shutil.rmtree(straight)


def test_sft_checkpoint_on_a_full_disk(tmp_path, examples_path):  # noqa: F811
    """TRL writes checkpoint-N in place; a save that fails removes the cut folder and keeps the one before
    (transformers prunes old checkpoints only after a save completes)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    straight = tmp_path / "straight"
    config = sft_one_checkpoint(sft_config(tmp_path, examples_path, straight))
    assert run("sft", config).returncode == 0
    checkpoint = sum(p.stat().st_size for p in (straight / "checkpoints").rglob("*") if p.is_file())
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={checkpoint * 3 // 2}", "tmpfs", str(disk)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        out = disk / "out"
        config = sft_one_checkpoint(sft_config(tmp_path, examples_path, out))
        line = failed_write_line(run("sft", config), "sft")
        assert line.startswith(f"atommem sft: error: {out / 'checkpoints/checkpoint-2'}: write failed: "
                               "No space left on device"), line
        assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1"]
        assert read_json(out / "checkpoints/checkpoint-1/trainer_state.json")["global_step"] == 1
        subprocess.run(["mount", "-o", "remount,size=1g", str(disk)], check=True)
        result = run("sft", config)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"resuming SFT from {out / 'checkpoints/checkpoint-1'}" in result.stderr
        assert_same_weights(out / "final", straight / "final")
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def sft_one_checkpoint(config: Path) -> Path:
    """The kill tests' SFT run keeping one checkpoint, without MLflow."""
    cfg = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**cfg, "save_total_limit": 1, "tracking": {"enabled": False}}))
    return config
