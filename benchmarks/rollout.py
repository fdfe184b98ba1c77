"""Rollout throughput of the engines side by side, same model, data and settings, in one run:
HF one episode at a time, HF lock-step batch N, vLLM lock-step batch N (N = --episodes, default 8).

    .venv/bin/python benchmarks/rollout.py            # SmolLM2-135M + MiniLM on CPU
    .venv/bin/python benchmarks/rollout.py --dtype bfloat16 --engines hf

Prints episodes per second of each, as a ratio to HF one at a time (target: vLLM lock-step >= 3x), and the
share of turn time spent outside the LLM call (retrieval, prompt building, parsing; target <= 5%).
Needs the `cpu` (or `gpu`) extra for the vLLM line.
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


def timed(llm, groups, make_episodes, sampling) -> tuple[float, int, RolloutTimer]:
    """Wall seconds, turns and timer of lock-step runs over each group of samples, one group after another."""
    timer, turns = RolloutTimer(), 0
    start = time.perf_counter()
    for group in groups:
        trajectories = run_lockstep(make_episodes(group), llm, sampling, progress=False, timer=timer)
        turns += sum(len(t.turns) for t in trajectories)
    return time.perf_counter() - start, turns, timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--embedder", default="sentence-transformers", choices=["sentence-transformers", "hashing"])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--num-docs", type=int, default=8)
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--chunk-tokens", type=int, default=256)
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--engines", nargs="+", default=["hf", "vllm"], choices=["hf", "vllm"],
                        help="hf one-at-a-time is always run: it is the baseline of every ratio")
    args = parser.parse_args()

    records = load_benchmark("hotpotqa", shipped_sample("hotpotqa"))
    samples = build_long_samples(records, args.num_docs, max_group_size=2, max_samples=args.episodes)
    env = EnvConfig(chunk_tokens=args.chunk_tokens, chunk_overlap=16, max_turns=args.max_turns)
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=args.max_new_tokens)
    embedder = build_embedder(EmbedderConfig(kind=args.embedder))
    batch = len(samples)
    print(f"model {args.model} ({args.dtype}), embedder {args.embedder}, {batch} episodes, {args.num_docs} docs, "
          f"max {args.max_turns} turns, {args.max_new_tokens} new tokens, greedy")

    print(f"{'engine':<24}{'episodes/s':>12}{'vs hf one at a time':>21}{'turns':>7}{'wall s':>9}{'outside LLM':>13}")
    baseline = None  # episodes/s of hf one at a time

    def report(label, seconds, turns, timer):
        nonlocal baseline
        rate = batch / seconds
        baseline = baseline or rate
        print(f"{label:<24}{rate:>12.3f}{rate / baseline:>20.2f}x{turns:>7}{seconds:>9.1f}{timer.env_share:>12.1%}",
              flush=True)

    for backend in ["hf"] + [e for e in args.engines if e != "hf"]:
        llm = build_llm(ModelConfig(name=args.model, backend=backend, dtype=args.dtype, max_batch_size=batch))

        def episodes(chosen, llm=llm):
            return [Episode(s, env, embedder, llm.tokenizer) for s in chosen]

        run_lockstep(episodes(samples[:1]), llm, sampling, progress=False)  # warm-up: kernels, caches
        if backend == "hf":
            report("hf one at a time", *timed(llm, [[s] for s in samples], episodes, sampling))
        if backend in args.engines:
            report(f"{backend} lock-step batch {batch}", *timed(llm, [samples], episodes, sampling))
        del llm
    print("target: vllm lock-step >= 3.00x hf one at a time; share outside the LLM <= 5%")


if __name__ == "__main__":
    main()
