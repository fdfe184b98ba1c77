"""Training under `accelerate launch` with 2 CPU processes (DDP over gloo, config/accelerate/cpu.yaml):
one GRPO step equals the 1-process step, and the sft and rl recipes run end to end."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from atommem.data.loaders import load_benchmark, shipped_sample
from atommem.data.longcontext import build_long_samples
from atommem.io import read_jsonl, write_jsonl_atomic

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))
CPU_CONFIG = str(REPO / "config/accelerate/cpu.yaml")
# the launched processes import this checkout's atommem
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(processes: int, *args: str, timeout: float = 600, config: str = CPU_CONFIG) -> subprocess.CompletedProcess:
    # a port of its own: `make test` runs two tests at a time, and two launches on accelerate's default
    # port 29500 would meet in one process group
    result = subprocess.run([ACCELERATE, "launch", "--config_file", config, "--num_processes", str(processes),
                             "--main_process_port", str(free_port()), *args],
                            capture_output=True, text=True, timeout=timeout, env=ENV, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_one_rl_step_on_two_processes_equals_one_process(tmp_path, tiny_model_dir):
    results = {}
    for processes in (1, 2):
        launch(processes, str(REPO / "tests/multiprocess_rl_step.py"), tiny_model_dir, str(tmp_path / str(processes)))
        results[processes] = torch.load(tmp_path / str(processes) / "result.pt")
    one, two = results[1], results[2]
    assert two["processes"] == 2 and two["type"] == "DistributedType.MULTI_CPU"
    # every sample on exactly one rank, whole (a sample's group of episodes is built where the sample is)
    assert sorted(s for share in two["shares"] for s in share) == [0, 1, 2, 3]
    assert set(two["shares"][0]).isdisjoint(two["shares"][1])
    for name in ("loss", "kl", "entropy", "grad_norm"):
        assert two["stats"][name] == pytest.approx(one["stats"][name], rel=1e-5), name
    assert two["stats"]["tokens"] == one["stats"]["tokens"]
    lr = 1e-4  # the script's: weights move by about lr, the two runs agree far below that
    for name, weight in one["weights"].items():
        assert torch.allclose(weight, two["weights"][name], atol=1e-2 * lr, rtol=0), name


@pytest.fixture(scope="module")
def samples_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mp") / "samples.jsonl"
    records = load_benchmark("hotpotqa", shipped_sample("hotpotqa"))
    write_jsonl_atomic(path, [s.to_dict() for s in build_long_samples(records, num_docs=4, max_samples=2,
                                                                        max_group_size=2)])
    return path


@pytest.mark.slow
def test_rl_recipe_runs_on_two_processes(tmp_path, tiny_model_dir, samples_path):
    out_dir = tmp_path / "rl"
    launch(2, "-m", "atommem.cli", "rl", "--set", f"model.name={tiny_model_dir}", "--set", f"samples={samples_path}",
           "--set", f"out_dir={out_dir}", "--set", "steps=1", "--set", "prompts_per_step=2", "--set", "group_size=2",
           "--set", "embedder.kind=hashing", "--set", "env.chunk_tokens=256", "--set", "env.chunk_overlap=16",
           "--set", "env.max_turns=3", "--set", "sampling.max_new_tokens=8", "--set", "validate_every=0",
           "--set", "probe_samples=0",
           "--set", "progress=false", "--set", "mixed_precision=bf16", "--set", "tracking.enabled=false")
    (row,) = read_jsonl(out_dir / "metrics.jsonl")
    assert row["tokens/completion"] > 0 and row["kl"] == 0.0
    assert (out_dir / "final" / "config.json").exists()


@pytest.mark.slow
def test_sft_recipe_runs_on_two_processes(tmp_path, tiny_model_dir):
    examples = tmp_path / "examples.jsonl"
    prompt = [{"role": "system", "content": "You keep notes."}, {"role": "user", "content": "Where is Paris?"}]
    completion = [{"role": "assistant", "content": "<add_memory>Paris is in France.</add_memory>"}]
    write_jsonl_atomic(examples, [{"prompt": prompt, "completion": completion}] * 4)
    out_dir = tmp_path / "sft"
    launch(2, "-m", "atommem.cli", "sft", "--set", f"model.name={tiny_model_dir}", "--set", f"examples={examples}",
           "--set", f"out_dir={out_dir}", "--set", "max_steps=2", "--set", "per_device_train_batch_size=1",
           "--set", "gradient_accumulation_steps=1", "--set", "logging_steps=1", "--set", "bf16=true",
           "--set", "tracking.enabled=false")
    assert (out_dir / "final" / "config.json").exists()
    assert any("loss" in entry for entry in read_jsonl(out_dir / "metrics.jsonl"))
