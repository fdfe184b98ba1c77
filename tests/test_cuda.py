"""The GPU layer, on a CUDA machine (skipped without one; CI has none): the paths that only a GPU takes.

- The HF backend on CUDA prefills a padded batch with SDPA (on CPU it runs prompts one row at a time), so
  padding must not change what a row samples, and the sampler's log-probs must be the trainer's.
- One GRPO step on the GPU, plain and under FSDP2 (config/accelerate/fsdp.yaml, one process), equals the
  same step on the CPU: same loss, KL, gradient norm and updated weights.
- bf16 autocast over fp32 master weights (config/paper.yaml's RL precision) moves the weights at lr 1e-6,
  and the KL reference under the same autocast gives KL 0 at the first step.
"""

import subprocess

import pytest
import torch
from accelerate import Accelerator
from test_multiprocess import ACCELERATE, ENV, REPO
from test_precision import _one_step, _rows

from atommem.llm.base import ModelConfig, SamplingConfig
from atommem.llm.hf import HFBackend
from atommem.train.grpo import TurnRow, collate, completion_logprobs
from atommem.train.rl_config import RLConfig
from atommem.train.rl_loop import load_policy, load_reference

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CONVERSATIONS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the capital of France? Explain."}],
    [{"role": "user", "content": "x y z " * 40}],
]


def test_sampler_logprobs_of_a_padded_cuda_batch_are_the_trainers(tiny_model_dir):
    llm = HFBackend(ModelConfig(name=tiny_model_dir, device="cuda", dtype="float32", max_batch_size=3))
    assert llm.device.type == "cuda" and not llm.prefill_per_row
    batch = llm.generate(CONVERSATIONS, SamplingConfig(temperature=1.0, max_new_tokens=16, seed=5))
    rows = [TurnRow(g.prompt_ids, g.completion_ids, None, 1.0) for g in batch]
    with torch.no_grad():
        trainer, _ = completion_logprobs(llm.model, collate(rows, llm.device), temperature=1.0)
    for row, gen in enumerate(batch):
        sampler = torch.tensor(gen.logprobs, device=llm.device)
        assert torch.allclose(trainer[row, : len(gen.logprobs)], sampler, atol=1e-3), row


def test_greedy_cuda_batch_equals_rows_alone(tiny_model_dir):
    llm = HFBackend(ModelConfig(name=tiny_model_dir, device="cuda", dtype="float32", max_batch_size=3))
    greedy = SamplingConfig(max_new_tokens=16)
    batch = llm.generate(CONVERSATIONS, greedy)
    for conv, in_batch in zip(CONVERSATIONS, batch, strict=True):
        alone = llm.generate([conv], greedy)[0]
        assert alone.completion_ids == in_batch.completion_ids
        assert torch.allclose(torch.tensor(alone.logprobs), torch.tensor(in_batch.logprobs), atol=1e-4)


def _launch(*args: str, **env: str) -> None:
    result = subprocess.run([ACCELERATE, "launch", "--num_processes", "1", "--mixed_precision", "no", *args],
                            capture_output=True, text=True, timeout=600, env={**ENV, **env}, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_rl_step_on_the_gpu_plain_and_fsdp2_equals_the_cpu_step(tmp_path, tiny_model_dir):
    script = str(REPO / "tests/multiprocess_rl_step.py")
    _launch(script, tiny_model_dir, str(tmp_path / "cpu"), CUDA_VISIBLE_DEVICES="")
    _launch(script, tiny_model_dir, str(tmp_path / "cuda"))
    _launch("--config_file", str(REPO / "config/accelerate/fsdp.yaml"), script, tiny_model_dir, str(tmp_path / "fsdp"))
    cpu = torch.load(tmp_path / "cpu" / "result.pt")
    lr = 1e-4  # the script's: weights move by about lr
    for name, kind in (("cuda", "DistributedType.NO"), ("fsdp", "DistributedType.FSDP")):
        gpu = torch.load(tmp_path / name / "result.pt")
        assert gpu["type"] == kind
        for key in ("loss", "kl", "entropy", "grad_norm"):
            assert gpu["stats"][key] == pytest.approx(cpu["stats"][key], rel=1e-3), (name, key)
        for param, weight in cpu["weights"].items():
            assert torch.allclose(weight, gpu["weights"][param], atol=0.05 * lr, rtol=0), (name, param)


def test_bf16_rl_step_on_cuda_moves_fp32_master_weights_at_lr_1e_6(tiny_model_dir, tmp_path):
    cfg = RLConfig(model=ModelConfig(name=tiny_model_dir, dtype="bfloat16"), samples="unused.jsonl",
                   out_dir=str(tmp_path), mixed_precision="bf16", kl_coef=0.001)
    accelerator = Accelerator(mixed_precision="bf16")
    policy, ref_model = load_policy(cfg, accelerator), load_reference(cfg, accelerator)
    model = policy.model
    assert model.device.type == "cuda"
    before = [p.detach().clone() for p in model.parameters()]
    stats = _one_step(model, ref_model, _rows(policy.tokenizer), accelerator)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    moved = [float((p.detach() - b).abs().max()) for p, b in zip(model.parameters(), before, strict=True)]
    assert sum(m > 0 for m in moved) / len(moved) > 0.9
    assert max(moved) == pytest.approx(1e-6, rel=0.1)
    assert stats["kl"] == 0.0
