"""Time split of one GRPO step on CPU: rollout (LLM generation) vs environment vs policy update.

    .venv/bin/python benchmarks/grpo_step.py                       # tiny random model, seconds
    .venv/bin/python benchmarks/grpo_step.py --model smollm2-135m  # the real CPU policy

Runs exactly the RL loop's pieces (Episode + run_lockstep rollouts, EM rewards, group advantages,
per-turn rows, policy_update) on shipped HotpotQA samples and prints where the time went.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from accelerate import Accelerator

from atommem.agent.env import EnvConfig, Episode
from atommem.agent.runner import RolloutTimer, run_lockstep
from atommem.data.loaders import load_benchmark, shipped_sample
from atommem.data.longcontext import build_long_samples
from atommem.llm.base import ModelConfig, SamplingConfig
from atommem.llm.hf import HFBackend
from atommem.memory.embedders import HashingEmbedder
from atommem.train.grpo import LossConfig, build_rows, group_advantages, policy_update, sampler_is_exact
from atommem.train.rl_loop import HFRolloutEngine, episode_reward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-random", help="tiny-random | smollm2-135m | a local folder")
    parser.add_argument("--prompts", type=int, default=2, help="samples per step")
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--num-docs", type=int, default=6)
    parser.add_argument("--chunk-tokens", type=int, default=512)
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--micro-batch-size", type=int, default=4)
    parser.add_argument("--mixed-precision", default="no", choices=["no", "bf16"])
    parser.add_argument("--kl-coef", type=float, default=0.0, help="> 0 loads a KL reference, as the RL job does")
    args = parser.parse_args()

    accelerator = Accelerator(cpu=True, mixed_precision=args.mixed_precision)
    load_start = time.perf_counter()
    policy = HFBackend(ModelConfig(name=args.model, device="cpu", max_batch_size=args.prompts * args.group_size))
    model = policy.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    ref_model = None
    if args.kl_coef > 0:
        ref_model = HFBackend(ModelConfig(name=args.model, device="cpu")).model.eval().requires_grad_(False)
    load_s = time.perf_counter() - load_start

    records = load_benchmark("hotpotqa", shipped_sample("hotpotqa"))
    samples = build_long_samples(records, num_docs=args.num_docs, max_samples=args.prompts, max_group_size=2)
    env = EnvConfig(chunk_tokens=args.chunk_tokens, chunk_overlap=min(100, args.chunk_tokens // 4),
                    max_turns=args.max_turns)
    embedder = HashingEmbedder(dim=256)
    engine = HFRolloutEngine(policy, accelerator.autocast)
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)

    step_start = time.perf_counter()
    episodes = [Episode(s, env, embedder, policy.tokenizer) for s in samples for _ in range(args.group_size)]
    timer = RolloutTimer()
    trajectories = run_lockstep(episodes, engine, sampling, progress=False, timer=timer)
    rewards = [episode_reward(t, e.sample) for t, e in zip(trajectories, episodes, strict=True)]
    rows = build_rows(trajectories, group_advantages(rewards, args.group_size),
                      use_sampler_logprobs=sampler_is_exact(sampling))
    update_start = time.perf_counter()
    stats = policy_update(model, ref_model, rows, optimizer, scheduler, accelerator,
                          LossConfig(kl_coef=args.kl_coef, micro_batch_size=args.micro_batch_size))
    update_s = time.perf_counter() - update_start
    total_s = time.perf_counter() - step_start
    other_s = total_s - timer.llm_s - timer.env_s - update_s

    print(f"model {args.model} (loaded in {load_s:.1f} s); {len(episodes)} episodes, {timer.turns} lock-step turns, "
          f"{len(rows)} rows, {stats['tokens']} completion tokens, "
          f"{sum(len(r.prompt_ids) for r in rows)} prompt tokens, torch threads {torch.get_num_threads()}")
    for name, seconds in (("rollout (LLM generate)", timer.llm_s), ("environment", timer.env_s),
                          ("update (fwd+bwd+step)", update_s), ("rewards, rows, other", other_s)):
        print(f"  {name:24s} {seconds:8.2f} s  {100 * seconds / total_s:5.1f} %")
    print(f"  {'total step':24s} {total_s:8.2f} s")
    # ru_maxrss is in KiB on Linux: the whole process's peak, model loading included
    print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
