"""Cheaper RL updates (rl.lora, rl.train_top_layers) against reference computations on the tiny random
model, and the fixed-world options (rl.train_ids, steps 0 probing the candidate worlds)."""

from __future__ import annotations

import copy

import pytest
import torch
from accelerate import Accelerator
from transformers import AutoModelForCausalLM, AutoTokenizer

from atommem.config import ConfigError
from atommem.io import read_jsonl
from atommem.llm.base import chat_prompt_ids
from atommem.train.grpo import LossConfig, TurnRow, policy_update
from atommem.train.rl_config import RLConfig, check_config
from atommem.train.rl_loop import save_final, trainable_policy, vllm_named_weights

NO_CLIP = LossConfig(micro_batch_size=1, kl_coef=0.0, max_grad_norm=1e9)


def _rows(tokenizer) -> list[TurnRow]:
    prompt = chat_prompt_ids(tokenizer, [{"role": "user", "content": "Where is Paris?"}])
    good = tokenizer("<add_memory>Paris is in France.</add_memory>", add_special_tokens=False)["input_ids"]
    bad = tokenizer("blah blah", add_special_tokens=False)["input_ids"]
    return [TurnRow(prompt, good, None, 1.0), TurnRow(prompt[:-2], bad, None, -1.0)]


def _step(model, rows, optimizer) -> dict:
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return policy_update(model, None, rows, optimizer, scheduler, Accelerator(cpu=True), NO_CLIP)


def _adamw(model, lr):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)


def test_top_layers_update_is_the_full_update_restricted_to_them(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = _rows(tokenizer)
    full = copy.deepcopy(base)
    _step(full, rows, _adamw(full, 1e-3))
    top = trainable_policy(RLConfig(train_top_layers=1), copy.deepcopy(base))
    trained = {name for name, p in top.named_parameters() if p.requires_grad}
    assert trained and all(name.startswith(("model.layers.1.", "model.norm.")) for name in trained)
    _step(top, rows, _adamw(top, 1e-3))
    before, after_full, after_top = base.state_dict(), full.state_dict(), top.state_dict()
    for name, weight in after_top.items():
        if name in trained:
            # the same gradients (same forward, same loss) and the same per-parameter AdamW step
            torch.testing.assert_close(weight, after_full[name], rtol=0, atol=1e-7)
            assert not torch.equal(weight, before[name]), name
        else:
            assert torch.equal(weight, before[name]), name  # frozen: bit for bit


def test_lora_update_merges_to_the_hand_computed_delta(tiny_model_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = _rows(tokenizer)
    # the full gradient G of every weight, read exactly where the optimizer steps (a weight's change under
    # SGD would carry W's fp32 rounding, comparable to G's smallest elements)
    plain = copy.deepcopy(base)
    names = {id(p): n for n, p in plain.named_parameters()}
    gradient = {}

    class RecordingSGD(torch.optim.SGD):
        def step(self, closure=None):
            for group in self.param_groups:
                gradient.update({names[id(p)]: p.grad.detach().clone() for p in group["params"] if p.grad is not None})
            return super().step(closure)

    _step(plain, rows, RecordingSGD(plain.parameters(), lr=1.0))

    r, alpha, lr, eps = 4, 8, 1e-3, 1e-8
    # peft draws A from the global generator: seeded, the check does not depend on the tests before it
    torch.manual_seed(0)
    lora = trainable_policy(RLConfig(lora={"r": r, "lora_alpha": alpha, "lora_dropout": 0.0,
                                           "target_modules": "all-linear"}), copy.deepcopy(base))
    a_init = {n: p.detach().clone() for n, p in lora.named_parameters() if "lora_A" in n}
    assert all("lora_" in n for n, p in lora.named_parameters() if p.requires_grad)
    _step(lora, rows, torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=lr,
                                        weight_decay=0.0, eps=eps))
    merged = dict(vllm_named_weights(lora))
    assert set(merged) == set(dict(base.named_parameters()))  # the plain model's names, what vLLM loads
    scale = alpha / r
    checked = 0
    for name, weight in base.state_dict().items():
        key = "base_model.model." + name.replace(".weight", ".lora_A.default.weight")
        if key not in a_init:
            assert torch.equal(merged[name], weight), name  # not adapted: unchanged
            continue
        a = a_init[key]
        # B starts at 0, so A gets no gradient and B's is scale * G @ A^T; AdamW's first step is
        # lr * g / (|g| + eps) per element
        g_b = scale * gradient[name] @ a.T
        b = -lr * g_b / (g_b.abs() + eps)
        delta = b @ a * scale
        assert delta.abs().max() > 1e-4
        # up to the fp32 rounding of W + delta and of the autograd path (0.5% of the largest delta at most)
        torch.testing.assert_close(merged[name] - weight, delta, rtol=1e-3, atol=5e-7)
        checked += 1
    assert checked == 2 * 7  # q, k, v, o, gate, up, down in each of the 2 layers

    # final/: a plain model folder with the merged weights
    final = save_final(Accelerator(cpu=True), lora, tokenizer, tmp_path)
    saved = AutoModelForCausalLM.from_pretrained(final).state_dict()
    for name, weight in merged.items():
        torch.testing.assert_close(saved[name], weight, rtol=0, atol=1e-7)


def test_lora_on_the_top_layers_only(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = trainable_policy(RLConfig(lora={"r": 2, "target_modules": "all-linear"}, train_top_layers=1), model)
    trained = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trained and all("lora_" in n and ".layers.1." in n for n in trained)


def _samples_cfg(tmp_path, tiny_model_dir, **overrides) -> RLConfig:
    from test_rl_probe import rl_config

    return rl_config(tmp_path, tiny_model_dir, **overrides)  # 3 statetrack worlds, the last one probed


@pytest.mark.parametrize("train_ids, message", [
    (["statetrack-4-9"], "train_ids: 'statetrack-4-9' is not a sample id of"),
    (["statetrack-4-2"], "train_ids: 'statetrack-4-2' is a probe sample (the last probe_samples=1"),
    (["statetrack-4-0", "statetrack-4-0"], "train_ids: 'statetrack-4-0' is given twice"),
])
def test_train_ids_name_training_samples(tmp_path, tiny_model_dir, train_ids, message):
    cfg = _samples_cfg(tmp_path, tiny_model_dir, train_ids=train_ids)
    ids = [row["id"] for row in read_jsonl(cfg.samples)]
    assert ids == ["statetrack-4-0", "statetrack-4-1", "statetrack-4-2"]
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as err:
        check_config(cfg)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="lora: "):
        check_config(_samples_cfg(tmp_path, tiny_model_dir, lora={"rank": 4}))


def test_fixed_worlds_run_and_the_probe_only_run(tmp_path, tiny_model_dir):
    from atommem.train import rl_loop

    # steps 0: the candidate worlds (the probe) scored one by one, nothing trained; final/ is the start policy
    cfg = _samples_cfg(tmp_path, tiny_model_dir, steps=0, probe_samples=2, train_ids=None)
    check_config(cfg)
    final = rl_loop.train(cfg)
    rows = read_jsonl(tmp_path / "rl" / "probe_worlds.jsonl")
    assert [(r["step"], r["set"], r["id"]) for r in rows] == [(0, "probe", "statetrack-4-1"),
                                                               (0, "probe", "statetrack-4-2")]
    assert all(0 <= r["sampled_reward"] <= 1 and 0 <= r["greedy_em"] <= 1 for r in rows)
    assert [m["step"] for m in read_jsonl(tmp_path / "rl" / "metrics.jsonl")] == [0]
    start = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    assert all(torch.equal(w, start[n]) for n, w in AutoModelForCausalLM.from_pretrained(final).state_dict().items())

    # one fixed world, a LoRA update: every step trains on it, and the probe scores it greedily (fixed/*)
    cfg = _samples_cfg(tmp_path, tiny_model_dir, train_ids=["statetrack-4-0"], out_dir=str(tmp_path / "fixed"),
                       lora={"r": 2, "target_modules": "all-linear"})
    check_config(cfg)
    rl_loop.train(cfg)
    metrics = read_jsonl(tmp_path / "fixed" / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [0, 1, 2]
    assert {"fixed/greedy_em", "fixed/greedy_reward", "probe/sampled_reward"} <= set(metrics[0]) & set(metrics[2])
    worlds = read_jsonl(tmp_path / "fixed" / "probe_worlds.jsonl")
    assert {(r["step"], r["set"], r["id"]) for r in worlds} == {
        (s, name, i) for s in (0, 2) for name, i in (("probe", "statetrack-4-2"), ("fixed", "statetrack-4-0"))}
    final = AutoModelForCausalLM.from_pretrained(tmp_path / "fixed" / "final")
    assert not any("lora" in name for name in final.state_dict())
    # resumed at its last checkpoint (the adapters and their AdamW state), the run has nothing left to do
    rl_loop.train(cfg)
    assert read_jsonl(tmp_path / "fixed" / "metrics.jsonl") == metrics
    assert read_jsonl(tmp_path / "fixed" / "probe_worlds.jsonl") == worlds
