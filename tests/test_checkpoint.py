"""Checkpoints are complete or invisible; an RL run killed with SIGKILL resumes to the same step count."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from accelerate import Accelerator
from transformers import AutoModelForCausalLM

from atommem.data.loaders import load_benchmark, shipped_sample
from atommem.data.longcontext import build_long_samples
from atommem.io import write_jsonl_atomic
from atommem.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[1]


def test_save_load_round_trip_and_incomplete_folders_are_ignored(tmp_path):
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 4))
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    for step in (1, 2, 3):
        save_checkpoint(accelerator, tmp_path, step, {"data_position": 10 * step}, keep_last=2)
    (tmp_path / "step_9").mkdir()  # killed before its state file: incomplete
    (tmp_path / ".tmp_step_4").mkdir()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("step_")) == ["step_2", "step_3", "step_9"]
    assert latest_checkpoint(tmp_path) == tmp_path / "step_3"

    saved = [p.detach().clone() for p in model.parameters()]
    expected_draw = torch.rand(3)  # the torch RNG state right after the save
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    scheduler.step()
    state = load_checkpoint(accelerator, tmp_path / "step_3")
    assert state == {"step": 3, "data_position": 30}
    assert all(torch.equal(a, b) for a, b in zip(saved, model.parameters()))
    assert scheduler.last_epoch == 1
    assert torch.equal(torch.rand(3), expected_draw)


def _perturbed_reference(tmp_path, tiny_model_dir):
    """A reference that differs from the policy, so the KL term moves the weights from step 1 on (a random
    policy earns no reward, hence no policy gradient) and resumed steps have state worth comparing."""
    folder = tmp_path / "reference"
    if not folder.exists():
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.05 * torch.randn(param.shape, generator=generator))
        model.save_pretrained(folder)
    return folder


def _write_run_config(tmp_path, tiny_model_dir, out_dir, steps):
    records = load_benchmark("hotpotqa", shipped_sample("hotpotqa"))
    samples = build_long_samples(records, num_docs=3, max_samples=3, max_group_size=1)
    samples_path = tmp_path / "samples.jsonl"
    write_jsonl_atomic(samples_path, [s.to_dict() for s in samples])
    cfg = {
        "model": {"name": str(tiny_model_dir), "max_batch_size": 8},
        "ref_model": str(_perturbed_reference(tmp_path, tiny_model_dir)),
        "kl_coef": 0.1,
        "samples": str(samples_path),
        "val_samples": str(samples_path),
        "val_max_samples": 1,
        "out_dir": str(out_dir),
        "steps": steps,
        "prompts_per_step": 2,
        "group_size": 2,
        "learning_rate": 1e-3,
        "warmup_steps": 2,
        "checkpoint_every": 1,
        "keep_checkpoints": 2,
        "validate_every": 2,
        "probe_samples": 0,  # 3 samples: tests/test_rl_probe.py runs the probe
        "progress": False,
        "sampling": {"temperature": 1.0, "max_new_tokens": 6},
        "embedder": {"kind": "hashing", "dim": 64},
        "env": {"chunk_tokens": 300, "chunk_overlap": 20, "max_turns": 2},
    }
    path = tmp_path / f"{out_dir.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _command(config_path):
    return [sys.executable, "-m", "atommem.cli", "rl", "--config", str(config_path)]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def test_sigkill_then_resume_ends_at_the_same_step_count(tmp_path, tiny_model_dir):
    steps = 3
    out_dir = tmp_path / "killed"
    config_path = _write_run_config(tmp_path, tiny_model_dir, out_dir, steps)
    process = subprocess.Popen(_command(config_path), cwd=REPO, env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while latest_checkpoint(out_dir / "checkpoints") is None:
        if process.poll() is not None:
            pytest.fail(f"run ended before its first checkpoint: {process.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out_dir / "final").exists()

    resumed = subprocess.run(_command(config_path), cwd=REPO, env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, steps + 1))
    assert "val/em" in rows[1] and "val/em" not in rows[0]
    checkpoints = sorted(p.name for p in (out_dir / "checkpoints").iterdir())
    assert checkpoints == ["step_2", "step_3"]  # last two kept, no temp folders left
    assert json.loads((out_dir / "checkpoints" / "step_3" / "trainer_state.json").read_text()) == {
        "step": 3, "data_position": 6}
    AutoModelForCausalLM.from_pretrained(out_dir / "final")

    # same data, seeds and restored state: the resumed steps match an uninterrupted run
    straight_dir = tmp_path / "straight"
    straight = subprocess.run(_command(_write_run_config(tmp_path, tiny_model_dir, straight_dir, steps)),
                              cwd=REPO, env=_env(), capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr[-3000:]
    straight_rows = [json.loads(line) for line in (straight_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["kl"] != rows[0]["kl"]  # the weights did move
    for a, b in zip(rows, straight_rows, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-7)
        assert a["kl"] == pytest.approx(b["kl"], rel=1e-4, abs=1e-7)
        assert a["tokens/completion"] == b["tokens/completion"]
