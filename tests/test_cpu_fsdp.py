"""FSDP2 across CPU processes (config/accelerate/fsdp-cpu.yaml, atommem.train.cpu_fsdp): one GRPO step on
2 and 4 processes equals the 1-process step; the rollout engine gets the full weights; a checkpoint of the
shards restores the same weights and optimizer state; final/ is a plain HF folder; the reference is sharded
like the policy. One SFT step on 2 and on 4 processes equals the 1-process step."""

from types import SimpleNamespace

import pytest
import torch
from accelerate.utils import DistributedType
from safetensors.torch import load_file
from test_multiprocess import CPU_CONFIG, REPO, launch
from transformers import AutoModelForCausalLM

from atommem.data.loaders import load_benchmark, shipped_sample
from atommem.data.longcontext import build_long_samples
from atommem.io import read_jsonl, write_jsonl_atomic
from atommem.train import cpu_fsdp

FSDP_CPU_CONFIG = str(REPO / "config/accelerate/fsdp-cpu.yaml")
STEP = str(REPO / "tests/multiprocess_rl_step.py")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, tiny_model_dir) -> dict:
    out = tmp_path_factory.mktemp("one")
    launch(1, STEP, tiny_model_dir, str(out))
    return torch.load(out / "result.pt")


@pytest.mark.parametrize("processes", [2, 4])
def test_one_rl_step_under_fsdp2_equals_one_process(tmp_path, tiny_model_dir, one_process, processes):
    launch(processes, STEP, tiny_model_dir, str(tmp_path), "--checkpoint", config=FSDP_CPU_CONFIG)
    one, fsdp = one_process, torch.load(tmp_path / "result.pt")
    assert fsdp["processes"] == processes and fsdp["type"] == "DistributedType.FSDP"
    for name in ("loss", "kl", "entropy", "grad_norm"):
        assert fsdp["stats"][name] == pytest.approx(one["stats"][name], rel=1e-5), name
    assert fsdp["stats"]["tokens"] == one["stats"]["tokens"]
    # the full weights the rollout engine receives after the step: the 1-process update's
    assert fsdp["weights"].keys() == one["weights"].keys()
    for name, weight in one["weights"].items():
        assert torch.allclose(weight, fsdp["weights"][name], atol=1e-6, rtol=0), name

    # the reference is sharded like the policy: each process holds a share, together the whole model
    assert len(fsdp["ref_bytes"]) == processes
    assert sum(fsdp["ref_bytes"]) == one["ref_bytes"][0]
    assert max(fsdp["ref_bytes"]) < one["ref_bytes"][0] / processes * 1.1

    # the checkpoint brings back the weights and every process's optimizer state
    assert fsdp["resumed_step"] == 1 and all(fsdp["optimizer_state_equal"])
    for name, weight in fsdp["weights"].items():
        assert torch.equal(weight, fsdp["resumed_weights"][name]), name
    # final/ is a plain HF folder with the trained weights
    final = AutoModelForCausalLM.from_pretrained(tmp_path / "final", dtype=torch.float32)
    assert final.config.architectures == ["LlamaForCausalLM"]
    for name, param in final.named_parameters():
        assert torch.equal(param.detach(), fsdp["weights"][name]), name


def test_only_fsdp2_launches_are_made_fsdp_on_cpu_processes(monkeypatch):
    processes = SimpleNamespace(distributed_type=DistributedType.MULTI_CPU)  # what accelerate makes of them
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    assert cpu_fsdp.requested(processes)
    assert not cpu_fsdp.requested(SimpleNamespace(distributed_type=DistributedType.NO))  # one process
    monkeypatch.setenv("FSDP_VERSION", "1")
    with pytest.raises(ValueError, match="fsdp_version: 2"):
        cpu_fsdp.requested(processes)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "false")  # a DDP launch (config/accelerate/cpu.yaml)
    assert not cpu_fsdp.requested(processes)


SFT_NOTES = (("Where is Paris?", "Paris is in France."), ("Who wrote Hamlet?", "Shakespeare wrote it."),
             ("Where is Lima?", "Lima is in Peru."), ("Who painted Guernica?", "Picasso painted it."))


def sft_step(processes: int, config: str, model_dir: str, examples, out_dir) -> tuple[dict, dict, str]:
    """(the step's logged row, final/'s weights, the launch's output) of one SFT step over every example."""
    result = launch(processes, "-m", "atommem.cli", "sft", "--set", f"model.name={model_dir}", "--set", f"examples={examples}",
           "--set", f"out_dir={out_dir}", "--set", "max_steps=1", "--set", f"per_device_train_batch_size={len(SFT_NOTES) // processes}",
           "--set", "gradient_accumulation_steps=1", "--set", "logging_steps=1", "--set", "learning_rate=1e-4",
           "--set", "tracking.enabled=false", config=config)
    (row,) = [entry for entry in read_jsonl(out_dir / "metrics.jsonl") if "loss" in entry]
    return row, load_file(out_dir / "final" / "model.safetensors"), result.stdout + result.stderr


@pytest.mark.parametrize("processes", [2, 4])
def test_one_sft_step_under_fsdp2_equals_one_process(tmp_path, tiny_model_dir, processes):
    examples = tmp_path / "examples.jsonl"
    rows = []
    for question, note in SFT_NOTES:
        prompt = [{"role": "system", "content": "You keep notes."}, {"role": "user", "content": question}]
        rows.append({"prompt": prompt, "completion": [{"role": "assistant", "content": f"<add_memory>{note}</add_memory>"}]})
    write_jsonl_atomic(examples, rows)
    one, one_weights, _ = sft_step(1, CPU_CONFIG, tiny_model_dir, examples, tmp_path / "one")
    two, two_weights, output = sft_step(processes, FSDP_CPU_CONFIG, tiny_model_dir, examples, tmp_path / "many")
    assert f"training on {processes} process(es), FSDP" in output
    # 4 ranks sum the fp32 gradient shards' squares in another order than one process: the grad norm met
    # 1.2e-5 there (loss and weights as close as on 2)
    for name, rel in (("loss", 1e-5), ("grad_norm", 1e-5 if processes == 2 else 2e-5)):
        assert two[name] == pytest.approx(one[name], rel=rel), name
    assert two_weights.keys() == one_weights.keys()
    for name, weight in one_weights.items():
        assert torch.allclose(weight, two_weights[name], atol=1e-6, rtol=0), name


@pytest.mark.slow
def test_engines_synced_from_fsdp2_shards_sample_the_trained_policy(tmp_path, smollm2_dir, tiny_model_dir):
    """Two RL steps of the recipe on 2 processes under FSDP2 with a colocated vLLM engine in each: step 2's
    rollouts come from engines that received step 1's weights gathered from the shards, and their log-probs
    equal the trainer's (`logprob_gap/*`: fp32 on both sides, top_p 1). Step 1 moves every weight (lr 1e-3 and
    a KL gradient to a reference unlike the policy), so an engine left with the start weights samples far
    from the trained policy: with the sync skipped by hand, step 2's gap was 11.1 (3e-5 synced)."""
    samples = tmp_path / "samples.jsonl"
    records = load_benchmark("hotpotqa", shipped_sample("hotpotqa"))
    write_jsonl_atomic(samples, [s.to_dict() for s in build_long_samples(records, num_docs=2, max_samples=2,
                                                                         max_group_size=1)])
    out_dir = tmp_path / "rl"
    settings = {"model.name": smollm2_dir, "model.dtype": "float32", "model.max_model_len": 4096,
                "ref_model": tiny_model_dir, "kl_coef": 1.0, "learning_rate": 1e-3, "warmup_steps": 0,
                "samples": samples, "out_dir": out_dir, "steps": 2, "prompts_per_step": 2, "group_size": 2,
                "rollout": "vllm", "sampling.max_new_tokens": 8, "sampling.top_p": 1.0,
                "embedder.kind": "hashing", "env.chunk_tokens": 200, "env.chunk_overlap": 20, "env.max_turns": 2,
                "validate_every": 0, "probe_samples": 0, "checkpoint_every": 100, "progress": "false",
                "tracking.enabled": "false"}
    result = launch(2, "-m", "atommem.cli", "rl", *[item for key, value in settings.items()
                                                    for item in ("--set", f"{key}={value}")],
                    config=FSDP_CPU_CONFIG, timeout=900)
    assert "training on 2 process(es), FSDP" in result.stdout + result.stderr
    first, second = read_jsonl(out_dir / "metrics.jsonl")
    print(f"sampler/trainer |Δ log p| max: step 1 {first['logprob_gap/max']:.2e}, step 2 {second['logprob_gap/max']:.2e}")
    assert first["logprob_gap/max"] < 1e-2
    assert second["logprob_gap/max"] < 1e-2
