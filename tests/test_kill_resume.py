"""`atommem evaluate`, `atommem sft` and `atommem rl` killed with SIGKILL at seeded random moments (one of
them in the middle of a write), resumed twice: the outputs equal an uninterrupted run's, no finished batch
is computed again, and work of another config is moved aside instead of resumed."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_checkpoint import _write_run_config

from atommem.data.loaders import load_benchmark, shipped_sample
from atommem.data.longcontext import build_long_samples
from atommem.io import STALL_ENV, read_jsonl, write_jsonl_atomic

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def atommem(stage: str, config: Path) -> list[str]:
    return [sys.executable, "-m", "atommem.cli", stage, "--config", str(config)]


def run_to_end(command: list[str]) -> str:
    """Run to completion; return its log."""
    result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


def kill_when(command: list[str], reached, stall: str | None = None, timeout: float = 300) -> str:
    """Start `command`, SIGKILL it as soon as `reached()` is true; return its log. `stall` (NAME:N:MARKER)
    makes it stop half-way through a write and wait there (atommem.io's test hook)."""
    env = {**ENV, STALL_ENV: stall} if stall else ENV
    log_path = Path(command[-1]).with_suffix(f".{time.monotonic_ns()}.log")
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while not reached():
            if process.poll() is not None:
                pytest.fail(f"ended before the awaited state: {log_path.read_text()[-3000:]}")
            assert time.monotonic() < deadline, "state not reached in time"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
    return log_path.read_text()


def complete_rows(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-4, atol=1e-6, msg=name)


# ---- evaluate ---------------------------------------------------------------------------------------
NUM_SAMPLES = 5


@pytest.fixture(scope="module")
def samples_path(tmp_path_factory):
    samples = build_long_samples(load_benchmark("hotpotqa", shipped_sample("hotpotqa")), num_docs=6,
                                 max_group_size=2, max_samples=NUM_SAMPLES)
    path = tmp_path_factory.mktemp("samples") / "samples.jsonl"
    write_jsonl_atomic(path, [s.to_dict() for s in samples])
    return path


def evaluate_config(tmp_path: Path, samples_path: Path, out_dir: Path, **env) -> Path:
    return write_config(tmp_path / f"{out_dir.name}.yaml", {
        "samples": str(samples_path), "out_dir": str(out_dir), "batch_size": 1, "progress": False,
        "model": {"name": "tiny-random"}, "embedder": {"kind": "hashing", "dim": 64},
        "env": {"chunk_tokens": 256, "chunk_overlap": 8, "max_turns": 4, **env},
        "sampling": {"max_new_tokens": 8}, "tracking": {"enabled": False},
    })


def already_done(log: str) -> int:
    return int(re.search(r"\((\d+) already done\)", log).group(1))


def without_wall_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("cost_wall_s", "wall_s")} for row in rows]


@pytest.mark.parametrize("seed", [0, 1])
def test_evaluate_killed_twice_resumes_to_the_uninterrupted_result(tmp_path, samples_path, seed):
    rng = random.Random(seed)
    straight = tmp_path / "straight"
    run_to_end(atommem("evaluate", evaluate_config(tmp_path, samples_path, straight)))

    out = tmp_path / "killed"
    command = atommem("evaluate", evaluate_config(tmp_path, samples_path, out))
    partial = out / "partial.jsonl"
    # 1. killed half-way through writing batch n to partial.jsonl
    n = rng.randint(2, NUM_SAMPLES - 2)
    kill_when(command, (tmp_path / "stalled").exists, stall=f"partial.jsonl:{n}:{tmp_path / 'stalled'}")
    assert not partial.read_bytes().endswith(b"\n")  # a cut row
    finished = complete_rows(partial)
    assert finished == n - 1
    # 2. resumed, then killed at a random moment after it finished a few more batches
    more = rng.randint(finished + 1, NUM_SAMPLES - 1)
    log = kill_when(command, lambda: complete_rows(partial) >= more)
    assert already_done(log) == finished  # the cut row was dropped, the complete ones kept
    finished = complete_rows(partial)
    # 3. resumed to the end
    log = run_to_end(command)
    assert already_done(log) == finished
    assert f"finished {NUM_SAMPLES}/{NUM_SAMPLES} samples" in log
    assert len(re.findall(r"finished \d+/\d+ samples", log)) == NUM_SAMPLES - finished  # nothing redone

    assert without_wall_time(read_jsonl(out / "predictions.jsonl")) == without_wall_time(
        read_jsonl(straight / "predictions.jsonl"))
    assert without_wall_time(read_jsonl(out / "trajectories.jsonl")) == without_wall_time(
        read_jsonl(straight / "trajectories.jsonl"))
    assert not partial.exists()
    assert yaml.safe_load((out / "config.yaml").read_text())["out_dir"] == str(out)


def test_evaluate_partials_of_another_config_are_moved_aside(tmp_path, samples_path):
    out = tmp_path / "run"
    marker = tmp_path / "stalled"
    kill_when(atommem("evaluate", evaluate_config(tmp_path, samples_path, out)), marker.exists,
              stall=f"partial.jsonl:3:{marker}")
    log = run_to_end(atommem("evaluate", evaluate_config(tmp_path, samples_path, out, top_k=2)))
    assert already_done(log) == 0
    moved = [line for line in log.splitlines() if "moved aside" in line]
    assert len(moved) == 1 and "env.top_k" in moved[0]
    stale = list(out.glob("partial.jsonl.stale-*"))
    assert len(stale) == 1 and complete_rows(stale[0]) == 2


# ---- sft --------------------------------------------------------------------------------------------
SFT_STEPS = 4


@pytest.fixture(scope="module")
def examples_path(tmp_path_factory, samples_path):
    folder = tmp_path_factory.mktemp("synth")
    config = write_config(folder / "synthesize.yaml", {
        "teacher": "oracle", "samples": str(samples_path), "out": str(folder / "examples.jsonl"),
        "trajectories_out": str(folder / "trajectories.jsonl"), "stats_out": str(folder / "stats.json"),
        "model": {"name": "tiny-random"}, "embedder": {"kind": "hashing", "dim": 64},
        "env": {"chunk_tokens": 256, "chunk_overlap": 8}, "progress": False, "tracking": {"enabled": False},
    })
    run_to_end(atommem("synthesize", config))
    # few short examples: TRL costs seconds per step on CPU
    rows = sorted(read_jsonl(folder / "examples.jsonl"), key=lambda r: len(json.dumps(r)))[:SFT_STEPS]
    write_jsonl_atomic(folder / "examples.jsonl", rows)
    return folder / "examples.jsonl"


def sft_config(tmp_path: Path, examples: Path, out_dir: Path, learning_rate: float = 3e-3) -> Path:
    return write_config(tmp_path / f"{out_dir.name}.yaml", {
        "model": {"name": "tiny-random"}, "examples": str(examples), "out_dir": str(out_dir),
        "max_steps": SFT_STEPS, "learning_rate": learning_rate, "warmup_steps": 0,
        "lr_scheduler_type": "constant", "per_device_train_batch_size": 1, "gradient_accumulation_steps": 1,
        "max_length": 1024, "logging_steps": 1, "save_steps": 1, "save_total_limit": 2, "seed": 0,
        "tracking": {"enabled": False},
    })


def sft_checkpoints(out_dir: Path, complete: bool = True) -> list[int]:
    """Steps of the checkpoint folders; complete: only those whose trainer_state.json (written last) reads."""
    def readable(folder: Path) -> bool:
        try:
            return isinstance(json.loads((folder / "trainer_state.json").read_text()), dict)
        except (OSError, ValueError):
            return False

    folders = (out_dir / "checkpoints").glob("checkpoint-*")
    return sorted(int(p.name.split("-")[1]) for p in folders if not complete or readable(p))


def resumed_from(log: str, pattern: str) -> int | None:
    match = re.search(pattern, log)
    return int(match.group(1)) if match else None


def test_sft_killed_twice_resumes_to_the_uninterrupted_result(tmp_path, examples_path):
    rng = random.Random(0)
    straight = tmp_path / "straight"
    run_to_end(atommem("sft", sft_config(tmp_path, examples_path, straight)))

    out = tmp_path / "killed"
    command = atommem("sft", sft_config(tmp_path, examples_path, out))
    # 1. killed as soon as a random step's checkpoint folder appears: most likely while it is being saved
    step = rng.randint(2, SFT_STEPS - 1)
    kill_when(command, lambda: step in sft_checkpoints(out, complete=False))
    last = max(sft_checkpoints(out), default=None)
    # 2. resumed from the last complete checkpoint, killed once the next one is complete
    log = kill_when(command, lambda: max(sft_checkpoints(out), default=0) > (last or 0))
    assert resumed_from(log, r"resuming SFT from \S*checkpoint-(\d+)") == last
    last = max(sft_checkpoints(out))
    # 3. resumed to the end
    log = run_to_end(command)
    assert resumed_from(log, r"resuming SFT from \S*checkpoint-(\d+)") == last

    assert_same_weights(out / "final", straight / "final")
    losses = {r["step"]: r["loss"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r}
    straight_losses = {r["step"]: r["loss"] for r in read_jsonl(straight / "metrics.jsonl") if "loss" in r}
    assert losses.keys() == straight_losses.keys() == set(range(1, SFT_STEPS + 1))
    assert losses == pytest.approx(straight_losses, rel=1e-4)

    # a new learning rate: the old checkpoints are moved aside and training starts at step 0
    log = run_to_end(atommem("sft", sft_config(tmp_path, examples_path, out, learning_rate=1e-3)))
    assert "resuming SFT" not in log and "moved aside" in log and "learning_rate" in log
    assert len(list(out.glob("checkpoints.stale-*"))) == 1


# ---- rl ---------------------------------------------------------------------------------------------
RL_STEPS = 3


def rl_checkpoints(out_dir: Path) -> list[int]:
    return sorted(int(p.name.split("_")[1]) for p in (out_dir / "checkpoints").glob("step_*")
                  if (p / "trainer_state.json").exists())


def test_rl_killed_twice_resumes_to_the_uninterrupted_result(tmp_path, tiny_model_dir):
    rng = random.Random(0)
    straight = tmp_path / "straight"
    run_to_end(atommem("rl", _write_run_config(tmp_path, tiny_model_dir, straight, RL_STEPS)))

    out = tmp_path / "killed"
    command = atommem("rl", _write_run_config(tmp_path, tiny_model_dir, out, RL_STEPS))
    metrics = out / "metrics.jsonl"
    # 1. killed half-way through writing a random step's metrics row (before that step's checkpoint)
    step = rng.randint(2, RL_STEPS - 1)
    marker = tmp_path / "stalled"
    kill_when(command, marker.exists, stall=f"metrics.jsonl:{step}:{marker}")
    assert not metrics.read_bytes().endswith(b"\n")
    assert rl_checkpoints(out)[-1] == step - 1
    # 2. resumed from that checkpoint, killed as soon as the next one is complete
    log = kill_when(command, lambda: rl_checkpoints(out)[-1] >= step)
    assert resumed_from(log, r"resumed from \S+ \(step (\d+)\)") == step - 1
    last = rl_checkpoints(out)[-1]
    # 3. resumed to the end
    log = run_to_end(command)
    assert resumed_from(log, r"resumed from \S+ \(step (\d+)\)") == last

    rows, straight_rows = read_jsonl(metrics), read_jsonl(straight / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, RL_STEPS + 1))  # the cut row gone, none twice
    for a, b in zip(rows, straight_rows, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-7)
        assert a["kl"] == pytest.approx(b["kl"], rel=1e-4, abs=1e-7)
        assert a["tokens/completion"] == b["tokens/completion"]
    assert_same_weights(out / "final", straight / "final")

    # another learning rate: the checkpoints are not resumed from (the old run ended at the last step)
    cfg = yaml.safe_load(Path(command[-1]).read_text())
    log = run_to_end(atommem("rl", write_config(tmp_path / "new-lr.yaml", {**cfg, "learning_rate": 1e-2})))
    assert "resumed from" not in log and "moved aside" in log and "learning_rate" in log
    assert [r["step"] for r in read_jsonl(metrics)] == list(range(1, RL_STEPS + 1))
