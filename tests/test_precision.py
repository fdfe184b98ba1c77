"""Training precision: fp32 master weights under bf16 autocast, the KL reference under the same autocast,
and the one rule for when sampler log-probs stand in for old log-probs."""

import pytest
import torch
from accelerate import Accelerator
from transformers import AutoModelForCausalLM, AutoTokenizer

from atommem.llm.base import ModelConfig, SamplingConfig, chat_prompt_ids
from atommem.train.grpo import LossConfig, TurnRow, policy_update, sampler_is_exact
from atommem.train.rl_config import RLConfig
from atommem.train.rl_loop import load_policy, load_reference


def _rows(tokenizer) -> list[TurnRow]:
    prompt = chat_prompt_ids(tokenizer, [{"role": "user", "content": "Where is Paris?"}])
    good = tokenizer("<add_memory>Paris is in France.</add_memory>", add_special_tokens=False)["input_ids"]
    bad = tokenizer("blah blah", add_special_tokens=False)["input_ids"]
    return [TurnRow(prompt, good, None, 1.0), TurnRow(prompt, bad, None, -1.0)]


def _one_step(model, ref_model, rows, accelerator) -> dict:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    return policy_update(model, ref_model, rows, optimizer, scheduler, accelerator,
                         LossConfig(kl_coef=0.001, micro_batch_size=1))


def test_bf16_run_changes_the_weights_at_lr_1e_6(tiny_model_dir, tmp_path):
    """model.dtype bfloat16 + bf16 autocast, as config/paper.yaml: the RL loop's policy and reference."""
    cfg = RLConfig(model=ModelConfig(name=tiny_model_dir, dtype="bfloat16", device="cpu"),
                   samples="unused.jsonl", out_dir=str(tmp_path), mixed_precision="bf16", kl_coef=0.001)
    accelerator = Accelerator(cpu=True, mixed_precision="bf16")
    policy, ref_model = load_policy(cfg, accelerator), load_reference(cfg, accelerator)
    model = policy.model
    before = [p.detach().clone() for p in model.parameters()]
    stats = _one_step(model, ref_model, _rows(policy.tokenizer), accelerator)

    assert all(p.dtype == torch.float32 for p in model.parameters())  # the master weights
    moved = [float((p.detach() - b).abs().max()) for p, b in zip(model.parameters(), before, strict=True)]
    # AdamW's first step moves every weight with a gradient by about lr
    assert sum(m > 0 for m in moved) / len(moved) > 0.9
    assert max(moved) == pytest.approx(1e-6, rel=0.1)
    # the reference runs under the policy's autocast: identical weights, identical log-probs
    assert stats["kl"] == 0.0


def test_bf16_weights_alone_round_an_lr_1e_6_update_away(tiny_model_dir):
    """Why the master weights are fp32: the same step on bf16 parameters leaves nearly all of them as they were."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    before = [p.detach().clone() for p in model.parameters()]
    _one_step(model, None, _rows(tokenizer), Accelerator(cpu=True, mixed_precision="bf16"))
    changed = sum(int((p.detach() != b).sum()) for p, b in zip(model.parameters(), before, strict=True))
    total = sum(p.numel() for p in before)
    assert changed / total < 0.05


@pytest.mark.parametrize(
    "sampling, exact",
    [
        (SamplingConfig(temperature=1.0), True),
        (SamplingConfig(temperature=0.7), False),
        (SamplingConfig(temperature=1.0, top_p=0.99), False),  # the paper's sampling: old = detached current
        (SamplingConfig(temperature=1.0, top_k=50), False),
    ],
)
def test_sampler_logprobs_stand_in_only_for_unfiltered_temperature_1(sampling, exact):
    assert sampler_is_exact(sampling) is exact
