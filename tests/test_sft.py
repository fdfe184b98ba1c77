"""Oracle synthesis writes prompt-completion examples; a few SFT steps on them lower their loss."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from atommem.agent.env import EnvConfig
from atommem.data.loaders import load_benchmark, shipped_sample
from atommem.data.longcontext import build_long_samples
from atommem.io import read_jsonl, write_jsonl_atomic
from atommem.llm.base import ModelConfig, chat_prompt_ids
from atommem.memory.embedders import EmbedderConfig
from atommem.recipes import sft as sft_recipe
from atommem.recipes import synthesize as synthesize_recipe
from atommem.train.grpo import TurnRow, collate, completion_logprobs


@pytest.fixture(scope="module")
def examples_path(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("synth")
    records = load_benchmark("hotpotqa", shipped_sample("hotpotqa"))
    samples_path = tmp / "samples.jsonl"
    write_jsonl_atomic(samples_path, [s.to_dict() for s in build_long_samples(records, num_docs=4, max_samples=2, max_group_size=2)])
    cfg = synthesize_recipe.SynthesizeConfig(
        teacher="oracle", samples=str(samples_path), out=str(tmp / "examples.jsonl"),
        trajectories_out=str(tmp / "trajectories.jsonl"), stats_out=str(tmp / "stats.json"),
        model=ModelConfig(name=str(tiny_model_dir)), embedder=EmbedderConfig(kind="hashing"),
        env=EnvConfig(chunk_tokens=256, chunk_overlap=32), progress=False,
    )
    stats = synthesize_recipe.main(cfg)
    assert stats["kept_fraction"] == 1.0 and stats["kept"]["invalid_per_turn"] == 0.0
    assert stats["examples"] == stats["all"]["turns"] == len(read_jsonl(cfg.out))
    assert json.loads((tmp / "stats.json").read_text())["kept"]["ops"]["create"] > 0
    return tmp / "examples.jsonl"


def test_examples_are_trl_prompt_completion_rows(examples_path):
    rows = read_jsonl(examples_path)
    assert [m["role"] for m in rows[0]["prompt"]] == ["system", "user"]
    assert rows[0]["completion"][0]["role"] == "assistant"
    assert rows[-1]["completion"][0]["content"].startswith("<final_answer>\\boxed{")


def _completion_nll(model_dir, rows):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    turn_rows = [
        TurnRow(chat_prompt_ids(tokenizer, r["prompt"]),
                tokenizer(r["completion"][0]["content"], add_special_tokens=False)["input_ids"], None, 0.0)
        for r in rows
    ]
    batch = collate(turn_rows)
    with torch.no_grad():
        logprobs, _ = completion_logprobs(model, batch)
    return float(-(logprobs * batch.completion_mask).sum() / batch.completion_mask.sum())


def _sft_config(tiny_model_dir, examples, out_dir, **overrides):
    # few steps on few examples: TRL's fused chunked LM head costs seconds per step on CPU
    values = dict(max_steps=4, learning_rate=3e-3, warmup_steps=0, lr_scheduler_type="constant",
                  per_device_train_batch_size=2, gradient_accumulation_steps=1, max_length=2048, logging_steps=1,
                  save_steps=3)
    return sft_recipe.SFTRecipeConfig(model=ModelConfig(name=str(tiny_model_dir)), examples=str(examples),
                                      out_dir=str(out_dir), **{**values, **overrides})


def test_sft_lowers_the_completion_loss_and_writes_a_plain_folder(tmp_path, tiny_model_dir, examples_path):
    rows = read_jsonl(examples_path)[:2]
    subset = tmp_path / "subset.jsonl"
    write_jsonl_atomic(subset, rows)
    final = sft_recipe.main(_sft_config(tiny_model_dir, subset, tmp_path / "sft"))
    assert _completion_nll(final, rows) < _completion_nll(tiny_model_dir, rows) - 0.5
    assert (final / "config.json").exists() and (final / "tokenizer.json").exists()
    history = read_jsonl(tmp_path / "sft" / "metrics.jsonl")
    assert any("loss" in entry for entry in history)


def test_lora_sft_saves_a_merged_plain_folder(tmp_path, tiny_model_dir, examples_path):
    rows = read_jsonl(examples_path)[:1]
    subset = tmp_path / "subset.jsonl"
    write_jsonl_atomic(subset, rows)
    lora = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    # bf16 too: on a machine without a GPU that is CPU autocast (the default workflow trains that way)
    final = sft_recipe.main(_sft_config(tiny_model_dir, subset, tmp_path / "lora", lora=lora, max_steps=2,
                                               save_steps=10, bf16=True))
    assert not (final / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(final)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged.state_dict()[name], base.state_dict()[name])
