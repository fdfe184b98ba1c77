"""Training step time on CPU: float32 against bfloat16 autocast, side by side in one run.

    .venv/bin/python benchmarks/train_dtype.py                 # SmolLM2-135M, 768-token sequences
    .venv/bin/python benchmarks/train_dtype.py --model tiny-random

One forward + backward of a causal-LM loss per repeat, the two precisions alternating so that a busy
machine slows both alike. bfloat16 autocast pays off only on CPUs with native bf16 matrix instructions
(AVX512-BF16 or AMX); elsewhere it is emulated. Prints the CPU's flags and each precision's tokens/s with
its ratio to float32.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoModelForCausalLM

from atommem.llm.models import resolve_model


def cpu_bf16_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = set(f.read().split())
    except OSError:
        return []
    return sorted(flags & {"avx512_bf16", "amx_bf16", "avx512f"})


def step(model, ids: torch.Tensor, bf16: bool) -> float:
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="smollm2-135m | tiny-random | a local folder")
    parser.add_argument("--tokens", type=int, default=768, help="sequence length")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = AutoModelForCausalLM.from_pretrained(resolve_model(args.model), dtype=torch.float32)
    model.train()
    ids = torch.randint(0, model.config.vocab_size, (1, args.tokens), generator=torch.Generator().manual_seed(0))
    step(model, ids, bf16=False)  # warm-up: first calls allocate and pick kernels
    step(model, ids, bf16=True)
    seconds = {False: 0.0, True: 0.0}
    for _ in range(args.repeats):
        for bf16 in (False, True):
            seconds[bf16] += step(model, ids, bf16)
    print(f"cpu flags: {' '.join(cpu_bf16_flags()) or 'none of avx512f/avx512_bf16/amx_bf16'}; "
          f"threads {torch.get_num_threads()}")
    base = args.repeats * args.tokens / seconds[False]
    for bf16, name in ((False, "float32"), (True, "bfloat16 autocast")):
        rate = args.repeats * args.tokens / seconds[bf16]
        print(f"{name:18s} {rate:8.1f} tokens/s  {rate / base:.2f}x")


if __name__ == "__main__":
    main()
