"""How the agent's cost grows with its input: evaluation episodes and the RL update at 10, 50, 200 and 800
documents, with 1 and 10 questions a sample, at the paper's environment (EnvConfig's defaults: 4,000-token
chunks, top-6 retrieval within 4,096 tokens, 41 turns).

    python benchmarks/scaling.py                                  # every size; 800 documents take minutes
    python benchmarks/scaling.py --sizes 10 50 --questions 1      # what CI runs is the smallest size

The policy is the tiny random model and the embedder the hashing one, so the environment's own cost shows
beside a model that costs little. A random model writes no valid tag: it would read the first chunk for 41
turns and never fill the store. So the oracle drives the episodes: every turn the tiny model generates from
the turn's prompt (the LLM calls, input tokens and model time are real), and the environment executes the
oracle's reply, so chunks advance, the store fills and the answer phase runs as under a working policy. The
oracle's own time is counted apart. The RL update then trains on the rows the model sampled (its own ids),
advantages +-1 by episode so that every row runs.

Each size runs in its own process, so its peak RSS is its own. Printed per size: wall time, LLM calls,
input tokens, peak store size, peak RSS (and its growth over the process after loading the model), model
and environment seconds (the environment: building the episodes, which tokenizes and chunks the context,
and every turn's retrieval, prompt and parsing), the update's seconds; then the growth ratio of each
between consecutive sizes. Targets: environment time under 5% of model time at every size, and memory
growing no faster than the documents.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SIZES = [10, 50, 200, 800]
QUESTIONS = [1, 10]
ENV_SHARE_TARGET = 0.05


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class OracleDriven:
    """An LLM for `run_lockstep`: the tiny model generates from every prompt and is timed; the episodes
    execute the oracle's reply (see the module docstring). The generation keeps the model's ids and
    log-probs, which the RL update trains on."""

    def __init__(self, policy, episodes):
        self.policy, self.episodes = policy, episodes
        self.oracle_s = 0.0

    def generate(self, conversations, sampling):
        from atommem.train.oracle import respond

        generations = self.policy.generate(conversations, sampling)
        start = time.perf_counter()
        active = [e for e in self.episodes if not e.done]
        for episode, generation in zip(active, generations, strict=True):
            generation.text = respond(episode)
        self.oracle_s += time.perf_counter() - start
        return generations


def measure(docs: int, questions: int, args) -> dict:
    """One size, in this process: the evaluation episodes, then one RL update on their rows."""
    from atommem.data.loaders import load_benchmark, shipped_sample
    from atommem.data.longcontext import build_long_samples

    # first, so that a size the sample cannot hold fails before torch loads
    records = load_benchmark("hotpotqa", shipped_sample("hotpotqa"))
    samples = build_long_samples(records, docs, group_size=questions, max_samples=args.episodes)

    import torch
    from accelerate import Accelerator

    from atommem.agent.env import EnvConfig, Episode
    from atommem.agent.runner import RolloutTimer, run_lockstep
    from atommem.llm.base import ModelConfig, SamplingConfig
    from atommem.llm.hf import HFBackend
    from atommem.memory.embedders import HashingEmbedder
    from atommem.train.grpo import LossConfig, build_rows, policy_update

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    env = EnvConfig()
    # the window fits the paper's prompt (chunk, retrieved memory, system, questions) and the completion
    policy = HFBackend(ModelConfig(name="tiny-random", device="cpu", max_batch_size=len(samples),
                                   max_model_len=16384))
    embedder = HashingEmbedder(dim=256)
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    rss_start = rss_mib()

    start = time.perf_counter()
    episodes = [Episode(s, env, embedder, policy.tokenizer) for s in samples]
    setup_s = time.perf_counter() - start
    llm, timer = OracleDriven(policy, episodes), RolloutTimer()
    trajectories = run_lockstep(episodes, llm, sampling, progress=False, timer=timer)
    eval_s = time.perf_counter() - start
    rss_eval = rss_mib()

    accelerator = Accelerator(cpu=True)
    advantages = [1.0 if i % 2 else -1.0 for i in range(len(trajectories))]
    rows = build_rows(trajectories, advantages, use_sampler_logprobs=False)
    model = policy.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    start = time.perf_counter()
    policy_update(model, None, rows, optimizer, scheduler, accelerator, LossConfig(micro_batch_size=1))
    update_s = time.perf_counter() - start

    turns = [t for tr in trajectories for t in tr.turns]
    return {
        "docs": docs, "questions": questions, "episodes": len(trajectories),
        "context_tokens": sum(tr.context_tokens for tr in trajectories) / len(trajectories),
        "eval_s": eval_s, "llm_calls": len(turns), "input_tokens": sum(t.prompt_tokens for t in turns),
        "model_s": timer.llm_s - llm.oracle_s, "oracle_s": llm.oracle_s, "env_s": timer.env_s + setup_s,
        "setup_s": setup_s, "peak_store": max(tr.peak_store_size for tr in trajectories),
        "answered": sum(s == "answered" for tr in trajectories for s in tr.answer_status),
        "update_s": update_s, "update_tokens": sum(len(r.prompt_ids) + len(r.completion_ids) for r in rows),
        "rss_start_mib": rss_start, "rss_eval_mib": rss_eval, "rss_mib": rss_mib(),
    }


def run_size(docs: int, questions: int, args) -> dict | str:
    """A size in a fresh process; a size the sample cannot hold (10 questions' documents in 10) is a string."""
    cmd = [sys.executable, __file__, "--one", str(docs), str(questions), "--episodes", str(args.episodes),
           "--max-new-tokens", str(args.max_new_tokens), "--threads", str(args.threads)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return f"{docs} documents x {questions} questions: {last}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def ratio(a: float, b: float) -> str:
    return f"{b / a:.2f}x" if a else "-"


def report(results: list[dict]) -> list[str]:
    """The table, the growth ratios and the targets missed (empty when both targets hold)."""
    print("| docs | questions | episodes | wall s | LLM calls | input tokens | peak store | peak RSS MiB "
          "(+ over start) | model s | env s | env / model | update s | update tokens |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    missed = []
    for r in results:
        share = r["env_s"] / r["model_s"]
        print(f"| {r['docs']} | {r['questions']} | {r['episodes']} | {r['eval_s'] + r['update_s']:.1f} | "
              f"{r['llm_calls']} | {r['input_tokens']:,} | {r['peak_store']} | {r['rss_mib']:.0f} "
              f"(+{r['rss_mib'] - r['rss_start_mib']:.0f}) | {r['model_s']:.2f} | {r['env_s']:.2f} | {share:.1%} | "
              f"{r['update_s']:.1f} | {r['update_tokens']:,} |")
        if share >= ENV_SHARE_TARGET:
            missed.append(f"{r['docs']} documents x {r['questions']} questions: environment {share:.1%} of model time")
    print("\ngrowth between consecutive sizes (same questions a sample); per-turn values divide by LLM calls")
    print("| questions | docs | docs | LLM calls | input tokens | env s per turn | model s per turn | peak store "
          "| RSS over start | update s |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for q in sorted({r["questions"] for r in results}):
        chain = sorted((r for r in results if r["questions"] == q), key=lambda r: r["docs"])
        for a, b in zip(chain, chain[1:]):
            grow = {k: (a[k], b[k]) for k in ("llm_calls", "input_tokens", "peak_store", "update_s")}
            env_turn = (a["env_s"] / a["llm_calls"], b["env_s"] / b["llm_calls"])
            model_turn = (a["model_s"] / a["llm_calls"], b["model_s"] / b["llm_calls"])
            rss = (a["rss_mib"] - a["rss_start_mib"], b["rss_mib"] - b["rss_start_mib"])
            docs = b["docs"] / a["docs"]
            print(f"| {q} | {a['docs']} -> {b['docs']} | {docs:.0f}x | {ratio(*grow['llm_calls'])} | "
                  f"{ratio(*grow['input_tokens'])} | {ratio(*env_turn)} | {ratio(*model_turn)} | "
                  f"{ratio(*grow['peak_store'])} | {ratio(*rss)} | {ratio(*grow['update_s'])} |")
            if rss[0] > 0 and rss[1] / rss[0] > docs:
                missed.append(f"{a['docs']} -> {b['docs']} documents x {q} questions: RSS over start grew "
                              f"{rss[1] / rss[0]:.2f}x for {docs:.0f}x the documents")
    print(f"targets: environment < {ENV_SHARE_TARGET:.0%} of model time at every size; "
          "memory grows no faster than the documents")
    for line in missed:
        print(f"MISSED: {line}")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES, help="documents a sample")
    parser.add_argument("--questions", type=int, nargs="+", default=QUESTIONS, help="questions a sample")
    parser.add_argument("--episodes", type=int, default=4, help="samples of each size, in one lock-step batch")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="tokens the model generates a turn")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each size's process")
    parser.add_argument("--json", help="also write the measurements here")
    parser.add_argument("--one", type=int, nargs=2, metavar=("DOCS", "QUESTIONS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(*args.one, args)))
        return 0
    if min(args.sizes + args.questions + [args.episodes, args.max_new_tokens, args.threads]) < 1:
        print("scaling: --sizes, --questions, --episodes, --max-new-tokens and --threads must be >= 1", file=sys.stderr)
        return 2
    results, skipped = [], []
    for q in args.questions:
        for docs in sorted(args.sizes):
            result = run_size(docs, q, args)
            (skipped if isinstance(result, str) else results).append(result)
            if not isinstance(result, str):
                print(f"measured {docs} documents x {q} questions: {result['eval_s'] + result['update_s']:.1f} s",
                      file=sys.stderr, flush=True)
    for line in skipped:
        print(f"skipped: {line}")
    if not results:
        return 1
    missed = report(results)
    if args.json:
        from atommem.io import write_text_atomic

        write_text_atomic(args.json, json.dumps({"results": results, "skipped": skipped, "missed": missed}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
