"""Time split of one GRPO step on CPU: rollout (LLM generation) vs environment vs policy update, and the
update's cost side by side for the ways of training (full, LoRA, top N layers) on the same rows.

    .venv/bin/python benchmarks/grpo_step.py                       # tiny random model, seconds
    .venv/bin/python benchmarks/grpo_step.py --model smollm2-135m  # the real CPU policy
    .venv/bin/python benchmarks/grpo_step.py --model smollm2-135m --updates full,lora,top8,top4

Runs exactly the RL loop's pieces (Episode + run_lockstep rollouts, EM rewards, group advantages,
per-turn rows, policy_update, rl_loop.trainable_policy for rl.lora / rl.train_top_layers) on shipped
HotpotQA samples and prints where the time went. The rollouts run once, with the start policy; every update
then starts from a fresh copy of it with a fresh AdamW. Episodes per CPU-hour count the step as rollout +
environment + that update: the rollout engine generates with merged weights (vLLM is synced with them), so
its cost does not depend on the update; HF rollouts through unmerged LoRA adapters would cost more.
"""

from __future__ import annotations

import argparse
import copy
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
from atommem.train.rl_config import RLConfig
from atommem.train.rl_loop import HFRolloutEngine, episode_reward, trainable_policy


def update_config(name: str, lora_r: int) -> RLConfig:
    """full | lora | topN | lora-topN: the RL options that choose what the update trains."""
    lora = {"r": lora_r, "lora_alpha": 2 * lora_r, "lora_dropout": 0.0, "target_modules": "all-linear"}
    top = int(name.rsplit("top", 1)[1]) if "top" in name else None
    return RLConfig(lora=lora if name.startswith("lora") else None, train_top_layers=top)


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
    parser.add_argument("--updates", default="full", help="comma-separated, timed in this order on the same rows: "
                        "full | lora | topN (rl.train_top_layers: N) | lora-topN")
    parser.add_argument("--every-row", action="store_true", help="advantages +-1 by episode instead of the rewards' "
                        "(an untrained policy's are all 0, and kl_coef 0 skips such rows): every row runs, as in a "
                        "step whose groups all differ")
    parser.add_argument("--lora-r", type=int, default=16, help="LoRA rank (alpha = 2 r, all linear layers)")
    args = parser.parse_args()
    updates = args.updates.split(",")

    accelerator = Accelerator(cpu=True, mixed_precision=args.mixed_precision)
    load_start = time.perf_counter()
    policy = HFBackend(ModelConfig(name=args.model, device="cpu", max_batch_size=args.prompts * args.group_size))
    pristine = copy.deepcopy(policy.model)  # every update starts from the policy the rollouts sampled
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
    advantages = group_advantages(rewards, args.group_size)
    if args.every_row:
        advantages = [1.0 if i % 2 else -1.0 for i in range(len(episodes))]
    rows = build_rows(trajectories, advantages,
                      use_sampler_logprobs=sampler_is_exact(sampling))
    rows_s = time.perf_counter() - step_start - timer.llm_s - timer.env_s
    timings = {}
    for name in updates:
        model = trainable_policy(update_config(name, args.lora_r), copy.deepcopy(pristine))
        trained = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trained, lr=1e-6)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        model, optimizer = accelerator.prepare(model, optimizer)
        update_start = time.perf_counter()
        stats = policy_update(model, ref_model, rows, optimizer, scheduler, accelerator,
                              LossConfig(kl_coef=args.kl_coef, micro_batch_size=args.micro_batch_size))
        timings[name] = (time.perf_counter() - update_start, sum(p.numel() for p in trained))
        print(f"update {name}: {timings[name][0]:.1f} s", flush=True)
        del model, optimizer, trained
        accelerator.free_memory()  # the accelerator holds every prepared model and optimizer until told
    update_s = timings[updates[0]][0]
    total_s = timer.llm_s + timer.env_s + rows_s + update_s
    other_s = rows_s

    print(f"model {args.model} (loaded in {load_s:.1f} s); {len(episodes)} episodes, {timer.turns} lock-step turns, "
          f"{len(rows)} rows, {stats['tokens']} completion tokens, "
          f"{sum(len(r.prompt_ids) for r in rows)} prompt tokens, torch threads {torch.get_num_threads()}")
    for name, seconds in (("rollout (LLM generate)", timer.llm_s), ("environment", timer.env_s),
                          ("update (fwd+bwd+step)", update_s), ("rewards, rows, other", other_s)):
        print(f"  {name:24s} {seconds:8.2f} s  {100 * seconds / total_s:5.1f} %")
    print(f"  {'total step':24s} {total_s:8.2f} s  (update: {updates[0]})")
    # tokens through the update's forward and backward: the rows that ran (kl_coef 0 skips advantage-0 rows)
    ran = [r for r in rows if args.kl_coef > 0 or r.advantage != 0]
    tokens = sum(len(r.prompt_ids) + len(r.completion_ids) for r in ran)
    rollout_s = timer.llm_s + timer.env_s + rows_s
    full_s = timings.get("full", (None,))[0]
    print(f"\nupdates on the same {len(ran)} rows ({tokens} tokens); step = {rollout_s:.1f} s rollout + env + rows, "
          "plus the update")
    print("| update | trained params | update s | tokens/s | update speed-up | episodes/CPU-hour | vs full |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (seconds, trained) in timings.items():
        per_hour = len(episodes) * 3600 / (rollout_s + seconds)
        speedup = f"{full_s / seconds:.2f}x" if full_s else "-"
        ratio = f"{(rollout_s + full_s) / (rollout_s + seconds):.2f}x" if full_s else "-"
        print(f"| {name} | {trained / 1e6:.2f} M | {seconds:.1f} | {tokens / seconds:.0f} | {speedup} | "
              f"{per_hour:.0f} | {ratio} |")
    # ru_maxrss is in KiB on Linux: the whole process's peak, model loading included
    print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
