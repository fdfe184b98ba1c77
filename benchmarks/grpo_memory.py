"""Peak GPU memory of one GRPO update at the paper's lengths, against docs/training.md's estimate.

    python benchmarks/grpo_memory.py                  # needs a CUDA GPU; about 2 minutes on an H200
    python benchmarks/grpo_memory.py --layers 2 4     # the layer counts to measure (at least two)

Builds Qwen3-8B-shaped models (hidden 4096, MLP 12288, 32 query / 8 KV heads of 128, vocabulary 151,936,
untied embeddings) with random weights and only a few layers, and runs `atommem.train.grpo.policy_update`
exactly as the paper's RL job does (fp32 master weights, bf16 autocast, gradient checkpointing, AdamW, a
fp32 KL reference) on rows of the paper's length: a 10k-token prompt and a 2,048-token completion. For
each micro-batch size b it prints the memory that does not depend on b (weights, gradients, AdamW moments,
reference, gradients) and the peak the forward and backward passes add to it, and the same with the full fp32 log-softmax that the
chunked `SelectedLogprobs` replaced, side by side. The update's peak per layer, from the difference
between two layer counts, extrapolates to Qwen3-8B's 36 layers: that is the activation memory every FSDP
rank holds, which docs/training.md estimates as 7.3 GB x b plus 1 GB.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import AutocastKwargs
from transformers import Qwen3Config, Qwen3ForCausalLM

from atommem.train import grpo

GB = 1e9
QWEN3_8B = dict(hidden_size=4096, intermediate_size=12288, num_attention_heads=32, num_key_value_heads=8,
                head_dim=128, vocab_size=151936, max_position_embeddings=40960, tie_word_embeddings=False,
                rope_theta=1e6, rms_norm_eps=1e-6)


class FullLogprobs:
    """The computation SelectedLogprobs replaced: fp32 log-softmax and entropy over (positions, vocab)."""

    @staticmethod
    def apply(logits, ids, temperature):
        logp = F.log_softmax(logits.float() / temperature, dim=-1)
        entropy = -(logp.exp() * logp).sum(-1).detach()
        return logp.gather(-1, ids[:, None]).squeeze(-1), entropy


def rows(b: int, prompt: int, completion: int, vocab: int, seed: int) -> list[grpo.TurnRow]:
    g = torch.Generator().manual_seed(seed)
    return [grpo.TurnRow(torch.randint(vocab, (prompt,), generator=g).tolist(),
                         torch.randint(vocab, (completion,), generator=g).tolist(),
                         None, advantage=1.0 if i % 2 == 0 else -1.0) for i in range(b)]


def measure(layers: int, cache: bool, batch_sizes: list[int], args) -> dict:
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    accelerator = Accelerator(mixed_precision="bf16", kwargs_handlers=[AutocastKwargs(cache_enabled=cache)])
    config = Qwen3Config(num_hidden_layers=layers, **QWEN3_8B)
    with torch.device("cuda"):
        model = Qwen3ForCausalLM(config).float()
        ref = Qwen3ForCausalLM(config).float().eval().requires_grad_(False)
    model.gradient_checkpointing_enable()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    cfg = grpo.LossConfig(kl_coef=0.001, micro_batch_size=1, temperature=1.0)
    # gradients stay allocated (zeroed, not freed) from here on, so that the forward/backward peak below is
    # the activations and log-prob temporaries alone, wherever in the pass it falls
    zero_grad = optimizer.zero_grad
    optimizer.zero_grad = lambda set_to_none=True: zero_grad(set_to_none=False)
    # one step first, so AdamW's moments and the gradients exist and the static memory is all there
    grpo.policy_update(model, ref, rows(1, 64, 16, config.vocab_size, 0), optimizer, scheduler, accelerator, cfg)
    torch.cuda.synchronize()
    static = torch.cuda.memory_allocated()
    params = sum(p.numel() for p in model.parameters())
    out = {"params": params, "static": static}
    step = optimizer.step

    def step_after_recording_the_peak(*a, **k):
        # the forward/backward peak, before AdamW's own temporaries (sharded under FSDP, like its moments)
        out["_backward_peak"] = torch.cuda.max_memory_allocated()
        return step(*a, **k)

    optimizer.step = step_after_recording_the_peak
    for name, impl in (("chunked", grpo.SelectedLogprobs), ("full", FullLogprobs)):
        grpo_impl, grpo.SelectedLogprobs = grpo.SelectedLogprobs, impl
        try:
            for b in batch_sizes:
                cfg.micro_batch_size = b
                torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
                grpo.policy_update(model, ref, rows(b, args.prompt_tokens, args.completion_tokens,
                                                    config.vocab_size, b), optimizer, scheduler, accelerator, cfg)
                torch.cuda.synchronize()
                out[name, b] = (out["_backward_peak"] - static, time.perf_counter() - start)
        finally:
            grpo.SelectedLogprobs = grpo_impl
    del model, ref, optimizer
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--prompt-tokens", type=int, default=10_000)
    parser.add_argument("--completion-tokens", type=int, default=2048)
    parser.add_argument("--target-layers", type=int, default=36, help="Qwen3-8B's layer count")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("grpo_memory.py measures GPU memory: no CUDA device here")
    if len(args.layers) < 2:
        parser.error("--layers: give at least two layer counts (the per-layer cost is their difference)")

    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; rows of {args.prompt_tokens} prompt + "
          f"{args.completion_tokens} completion tokens, bf16 autocast, fp32 master weights and reference, "
          "gradient checkpointing")
    for cache in (True, False):
        # autocast's cache keeps the bf16 copy of every weight it cast until the forward ends: all layers'
        # copies at once, which gradient checkpointing then cannot free (the recompute casts again anyway)
        print(f"autocast weight cache {'on (torch default)' if cache else 'off'}:")
        results = {n: measure(n, cache, args.batch_sizes, args) for n in sorted(args.layers)}
        report(results, args)


def report(results: dict, args) -> None:
    for n, r in results.items():
        print(f"  {n} layers: {r['params'] / 1e9:.2f}e9 parameters, static {r['static'] / GB:.1f} GB "
              "(fp32 weights, gradients, AdamW moments and reference)")
        for b in args.batch_sizes:
            (chunk, chunk_s), (full, full_s) = r["chunked", b], r["full", b]
            print(f"    b={b}: forward/backward peak beyond those: chunked {chunk / GB:6.2f} GB ({chunk_s:.1f} s), "
                  f"full fp32 log-softmax {full / GB:6.2f} GB ({full_s:.1f} s), saved {(full - chunk) / GB:.2f} GB")
    low, high = min(results), max(results)
    for b in args.batch_sizes:
        per_layer = (results[high]["chunked", b][0] - results[low]["chunked", b][0]) / (high - low)
        at_target = results[low]["chunked", b][0] + per_layer * (args.target_layers - low)
        estimate = 7.3 * b + 1
        print(f"  b={b}: {per_layer / GB:.3f} GB per layer; extrapolated to {args.target_layers} layers "
              f"{at_target / GB:.1f} GB per rank (docs/training.md estimates {estimate:.1f} GB)")

if __name__ == "__main__":
    main()
