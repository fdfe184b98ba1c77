"""The real vLLM engine (the `cpu` extra, vllm-cpu) on the real SmolLM2: backend agreement with HF, a served
model behind the `openai` backend, and weight sync of the colocated RL engine.

Skipped only on a machine without vllm outside CI; in CI (`CI` set) a missing vllm fails the module.
SmolLM2, not tiny-random: vLLM's CPU attention has no kernel for tiny-random's head size 16.
One engine per module (about 30 s to start); the RL test builds its own, as the training loop does.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

if importlib.util.find_spec("vllm") is None and not os.environ.get("CI"):
    pytest.skip("vllm is not installed (pip install -e '.[cpu]'); CI installs it", allow_module_level=True)

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; plenty for these prompts, small on a shared machine

from atommem.agent.env import EnvConfig  # noqa: E402
from atommem.data.loaders import load_benchmark, shipped_sample  # noqa: E402
from atommem.data.longcontext import build_long_samples  # noqa: E402
from atommem.eval.judge import JudgeConfig, judge  # noqa: E402
from atommem.io import read_jsonl, write_jsonl_atomic  # noqa: E402
from atommem.llm.base import ModelConfig, SamplingConfig, build_llm  # noqa: E402
from atommem.llm.hf import HFBackend  # noqa: E402
from atommem.llm.openai_api import wait_until_ready  # noqa: E402
from atommem.llm.vllm_backend import VLLMBackend  # noqa: E402
from atommem.memory.embedders import EmbedderConfig  # noqa: E402
from atommem.train import rl_loop  # noqa: E402
from atommem.train.rl_config import RLConfig  # noqa: E402

pytestmark = pytest.mark.slow

CHATS = [
    [{"role": "user", "content": q}]
    for q in ("What is the capital of France?", "Write a haiku about memory.", "List three prime numbers.",
              "Who wrote Hamlet?", "Explain photosynthesis in one sentence.", "What is 12 times 7?")
]
GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=16)


@pytest.fixture(scope="module")
def vllm_llm(smollm2_dir):
    return build_llm(ModelConfig(name=smollm2_dir, backend="vllm", dtype="float32"))


@pytest.fixture(scope="module")
def hf_llm(smollm2_dir):
    return HFBackend(ModelConfig(name=smollm2_dir, dtype="float32"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_vllm_greedy_agrees_with_hf(vllm_llm, hf_llm):
    ours, theirs = vllm_llm.generate(CHATS, GREEDY), hf_llm.generate(CHATS, GREEDY)
    agreed = [_common_prefix(v.completion_ids, h.completion_ids) for v, h in zip(ours, theirs, strict=True)]
    total = sum(len(h.completion_ids) for h in theirs)
    print(f"vLLM/HF greedy agreement (fp32): {sum(agreed)}/{total} tokens, per prompt {agreed}")
    for v, h, n in zip(ours, theirs, agreed, strict=True):
        assert v.prompt_ids == h.prompt_ids  # the same chat template rendering, token for token
        # fp32 on both sides: the same argmax at least for the first 8 tokens (measured: every token)
        assert n >= min(8, len(h.completion_ids)), (v.text, h.text)
        # and the same log-probs of the tokens both chose, up to kernel rounding
        assert max(abs(a - b) for a, b in zip(v.logprobs[:n], h.logprobs[:n])) < 1e-3
    assert "Paris" in ours[0].text


def test_vllm_samples_with_logprobs_on_cpu(vllm_llm):
    # the CPU engine takes no per-request seed; sampling must still run and report one log-prob per token
    gens = vllm_llm.generate(CHATS[:2] * 2, SamplingConfig(temperature=1.0, max_new_tokens=8, seed=3))
    assert all(len(g.logprobs) == len(g.completion_ids) > 0 for g in gens)
    assert all(lp <= 0 for g in gens for lp in g.logprobs)


def test_openai_backend_against_vllm_api_server(smollm2_dir, tmp_path):
    """`vllm serve` as `python -m vllm.entrypoints.openai.api_server` (the CPU build's `vllm` script
    cannot find its own metadata: its distribution is named vllm-cpu)."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", smollm2_dir,
               "--served-model-name", smollm2_dir, "--host", "127.0.0.1", "--port", str(port),
               "--dtype", "float32", "--enforce-eager", "--max-model-len", "4096"]
    with open(tmp_path / "serve.log", "w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        wait_until_ready(base_url, timeout=300)
        llm = build_llm(ModelConfig(name=smollm2_dir, backend="openai", base_url=base_url))
        gens = llm.generate(CHATS[:2], SamplingConfig(max_new_tokens=16))
        assert all(g.text.strip() and g.prompt_tokens > 0 and 0 < g.completion_tokens <= 16 for g in gens)
        assert "Paris" in gens[0].text
        # the judge path talks to the same kind of server
        verdicts = judge(JudgeConfig(base_url=base_url, model=smollm2_dir, enabled=True),
                         ["What is the capital of France?"], ["Paris"], [["Paris"]])
        assert verdicts[0] in (True, False, None) and len(verdicts) == 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode is not None


def test_rl_step_with_vllm_rollouts_syncs_weights(smollm2_dir, tiny_model_dir, tmp_path, monkeypatch, hf_llm):
    records = load_benchmark("hotpotqa", shipped_sample("hotpotqa"))
    samples = build_long_samples(records, num_docs=2, max_samples=1, max_group_size=1)
    samples_path = tmp_path / "samples.jsonl"
    write_jsonl_atomic(samples_path, [s.to_dict() for s in samples])
    engines = []

    def build_engine_and_keep_it(*args):
        engines.append(build_engine(*args))
        return engines[-1]

    build_engine = rl_loop._build_engine
    monkeypatch.setattr(rl_loop, "_build_engine", build_engine_and_keep_it)
    cfg = RLConfig(
        model=ModelConfig(name=smollm2_dir, dtype="float32", max_batch_size=4, max_model_len=4096),
        # zero-reward groups give no policy gradient; a reference unlike the policy gives a KL gradient,
        # so one step at a large learning rate surely moves every weight (the tiny model is the cheapest one)
        ref_model=tiny_model_dir, kl_coef=1.0, learning_rate=1e-3, warmup_steps=0,
        samples=str(samples_path), out_dir=str(tmp_path / "rl"), steps=1, prompts_per_step=1, group_size=2,
        micro_batch_size=4, checkpoint_every=1, validate_every=0, probe_samples=0, rollout="vllm", progress=False,
        sampling=SamplingConfig(temperature=1.0, max_new_tokens=8),
        embedder=EmbedderConfig(kind="hashing", dim=64),
        env=EnvConfig(chunk_tokens=200, chunk_overlap=20, max_turns=2),
    )
    final = rl_loop.train(cfg)

    row = read_jsonl(tmp_path / "rl" / "metrics.jsonl")[0]
    print(f"sampler/trainer |Δ log p| on sampled tokens: mean {row['logprob_gap/mean']:.2e}, "
          f"max {row['logprob_gap/max']:.2e}")
    assert 0 <= row["logprob_gap/mean"] <= row["logprob_gap/max"] < 0.1  # fp32 on both sides
    trained = HFBackend(replace(hf_llm.cfg, name=str(final)))
    before, after = hf_llm.generate(CHATS[:3], GREEDY), trained.generate(CHATS[:3], GREEDY)
    assert [g.completion_ids for g in before] != [g.completion_ids for g in after]  # the step changed the policy
    # the synced engine decodes greedily under the trained weights: each of its tokens is the trained model's
    # best (up to fp32 kernel noise), not compared token by token, where one near-tie would flip a sequence
    for generation in engines[0].generate(CHATS[:3], GREEDY):
        chosen, best = _teacher_forced(trained.model, generation)
        assert float((best - chosen).max()) < 1e-3


def test_weight_sync_reaches_every_layer_the_tied_output_layer_too(smollm2_dir):
    """Each group of weights changed in turn and synced: the engine samples with the changed model's
    log-probs. CPU vLLM packs a copy of the output layer, which SmolLM2 ties to the input embedding and a
    reload left stale (log-prob gaps of 0.1 after an embedding change, 2e-5 once repacked)."""
    engine = VLLMBackend(ModelConfig(name=smollm2_dir, backend="vllm", dtype="float32", max_batch_size=2),
                         in_process=True)
    model = HFBackend(ModelConfig(name=smollm2_dir, dtype="float32")).model
    torch.manual_seed(0)
    for part in ("embed_tokens", "self_attn", "mlp", "norm"):
        with torch.no_grad():
            for name, param in model.named_parameters():
                if part in name:
                    param.add_(torch.randn_like(param) * 0.02 * param.std())
        engine.load_weights(rl_loop.vllm_named_weights(model))
        for generation in engine.generate(CHATS[:2], SamplingConfig(temperature=1.0, max_new_tokens=12, seed=0)):
            chosen, _ = _teacher_forced(model, generation)
            assert float((chosen - torch.tensor(generation.logprobs)).abs().max()) < 1e-3, part


def _teacher_forced(model, generation) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's log-prob of each generated token, and of the best token at each of those positions."""
    ids = torch.tensor([generation.prompt_ids + generation.completion_ids], device=model.device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(generation.prompt_ids) - 1 : -1].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    chosen = logprobs.gather(-1, torch.tensor(generation.completion_ids, device=model.device)[:, None]).squeeze(-1)
    return chosen, logprobs.max(dim=-1).values
