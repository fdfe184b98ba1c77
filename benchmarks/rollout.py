"""Lock-step batched rollout vs one episode at a time, same model, data and settings, in one run.

    .venv/bin/python benchmarks/rollout.py            # SmolLM2-135M + MiniLM on CPU
    .venv/bin/python benchmarks/rollout.py --model tiny-random --embedder hashing

Prints episodes per second of both, their ratio (target >= 3x at batch 8), and the share of turn time
spent outside the LLM call (retrieval, prompt building, parsing; target <= 5%).
"""

from __future__ import annotations

import argparse
import time

from atommem.agent.env import EnvConfig, Episode
from atommem.agent.runner import RolloutTimer, run_lockstep
from atommem.data.loaders import load_benchmark, shipped_sample
from atommem.data.longcontext import build_long_samples
from atommem.llm.base import ModelConfig, SamplingConfig, build_llm
from atommem.memory.embedders import EmbedderConfig, build_embedder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--embedder", default="sentence-transformers", choices=["sentence-transformers", "hashing"])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--num-docs", type=int, default=8)
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--chunk-tokens", type=int, default=256)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()

    records = load_benchmark("hotpotqa", shipped_sample("hotpotqa"))
    samples = build_long_samples(records, args.num_docs, max_group_size=2, max_samples=args.episodes)
    env = EnvConfig(chunk_tokens=args.chunk_tokens, chunk_overlap=16, max_turns=args.max_turns)
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=args.max_new_tokens)
    llm = build_llm(ModelConfig(name=args.model, dtype=args.dtype, max_batch_size=args.episodes))
    embedder = build_embedder(EmbedderConfig(kind=args.embedder))

    def episodes(batch):
        return [Episode(s, env, embedder, llm.tokenizer) for s in batch]

    run_lockstep(episodes(samples[:1]), llm, sampling, progress=False)  # warm-up: kernels, caches

    batched_timer = RolloutTimer()
    t0 = time.perf_counter()
    batched = run_lockstep(episodes(samples), llm, sampling, progress=False, timer=batched_timer)
    batched_s = time.perf_counter() - t0

    single_timer = RolloutTimer()
    t0 = time.perf_counter()
    single = [run_lockstep(episodes([s]), llm, sampling, progress=False, timer=single_timer)[0] for s in samples]
    single_s = time.perf_counter() - t0

    turns_b = sum(len(t.turns) for t in batched)
    turns_s = sum(len(t.turns) for t in single)
    print(f"model {args.model} ({args.dtype}), embedder {args.embedder}, {len(samples)} episodes, {args.num_docs} docs, "
          f"max {args.max_turns} turns, {args.max_new_tokens} new tokens")
    print(f"{'mode':<22}{'episodes/s':>12}{'turns':>8}{'wall s':>9}{'outside LLM':>13}")
    print(f"{'lock-step batch ' + str(len(samples)):<22}{len(samples) / batched_s:>12.3f}{turns_b:>8}{batched_s:>9.1f}"
          f"{batched_timer.env_share:>12.1%}")
    print(f"{'one at a time':<22}{len(samples) / single_s:>12.3f}{turns_s:>8}{single_s:>9.1f}{single_timer.env_share:>12.1%}")
    print(f"speed-up of lock-step batching: {single_s / batched_s:.2f}x (target >= 3x)")
    print(f"share of turn time outside the LLM (lock-step): {batched_timer.env_share:.1%} (target <= 5%)")


if __name__ == "__main__":
    main()
