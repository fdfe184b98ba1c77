"""GPU-hours per stage of a paper-scale config, from the throughput measured on one H200, scaled by model size.

    python benchmarks/gpu_hours.py                                        # config/paper.yaml
    python benchmarks/gpu_hours.py --configfile config/paper.yaml config/paper-small.yaml
    python benchmarks/gpu_hours.py --set rl.steps=200 --set model.name=qwen3-4b
    python benchmarks/gpu_hours.py --measure-episodes                    # re-measure EPISODE below (CPU, ~1 min)

The configs are merged as Snakemake merges them: config/config.yaml, then each --configfile, then --set.

Arithmetic (docs/paper-scale.md explains it):
- Work: the config's questions, samples (groups of 1..max_group_size questions, cut exactly as
  `atommem prepare` cuts them), turns per episode (chunks of the context plus answer turns, capped by
  env.max_turns) and tokens per turn. Tokens per document and per-turn overheads are measured (EPISODE);
  completion lengths of the trained policy and of the baselines are estimates (ESTIMATES).
- FLOPs: 2 x params per token processed by inference (rollouts, evaluation, the embedder, the KL
  reference), 6 x params per trained token (forward and backward), 8 x with gradient checkpointing (one
  more forward). Attention's own FLOPs (about +20% at 12k-token rows for Qwen3-8B) are left out on both
  sides of the ratio.
- Rate, "measured": the FLOP/s that the H200 runs achieved with SmolLM2-135M (MEASURED), assumed to hold at
  any model size. A 135M model keeps an H200 under 3% busy, so these hours are a ceiling.
- Rate, "at MFU": ASSUMED_MFU of the card's dense bf16 peak, a planning floor that no run here measured.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from atommem.config import ConfigError, load_config  # noqa: E402
from atommem.data.longcontext import group_sizes  # noqa: E402

# Parameters of the models a config can name (hub model cards; SmolLM2 counted in docs/training.md).
PARAMS = {
    "smollm2-135m": 134.5e6, "qwen3-0.6b": 0.6e9, "qwen3-1.7b": 1.7e9, "qwen3-4b": 4.0e9,
    "qwen3-8b": 8.19e9, "qwen3-14b": 14.8e9, "Qwen/Qwen3-Embedding-0.6B": 0.6e9,
}
H200_BF16_PEAK = 989e12    # dense bf16 FLOP/s of an H100 SXM or H200 (the same tensor cores)
ASSUMED_MFU = 0.40         # the floor column: share of that peak a well-tuned 8B run reaches (assumed)
NODE_GPUS, DAY_HOURS = 8, 24


@dataclass(frozen=True)
class Measured:
    """One measured stage: tokens processed in `seconds` on one H200 by SmolLM2-135M."""
    tokens: float
    seconds: float
    flops_per_token_param: int  # 2 inference, 6 training (no checkpointing, no reference in these runs)
    source: str

    @property
    def flops_per_s(self) -> float:
        return self.flops_per_token_param * PARAMS["smollm2-135m"] * self.tokens / self.seconds


# learn.yaml's 48 statetrack worlds: 253 oracle turns, 195k tokens (prompt + completion), so one episode is
# 195k / 48 = 4,062 tokens; an RL step of 16 x 8 episodes is 128 x 4,062 = 520k tokens (episodes of the SFT
# policy assumed as long as the oracle's). Times are the middle of each measured range.
TOKENS_PER_WORLD = 195_000 / 48
MEASURED = {
    "train_sft": Measured(195_000, 37.5, 6, "SFT, 1 epoch of 253 turns: 34-41 s (2026-11-30-rl-h200, 2026-12-04)"),
    "train_rl": Measured(128 * TOKENS_PER_WORLD, 15.0, 6, "RL update, 16 x 8 episodes: 14-16 s (2026-12-04)"),
    "infer": Measured(128 * TOKENS_PER_WORLD, 28.0, 2, "HF rollouts, 16 x 8 episodes: 24-32 s (2026-12-04)"),
}

# Agent episodes at paper.yaml's env on the shipped HotpotQA sample, played by the oracle (SmolLM2's
# tokenizer stands in for Qwen3's): `python benchmarks/gpu_hours.py --measure-episodes`, 2026-12-07.
EPISODE = {
    "doc_tokens": {"hotpotqa": 145.5, "2wikimultihopqa": 122.2, "musique": 130.5},  # a rendered document
    "read_overhead": 800,     # a reading turn's prompt beyond its chunk: system, memory shown, scratchpad, questions
    "answer_prompt": 1050,    # an answer turn's prompt: system, memory shown, scratchpad, the question
    "answer_turns": 1.0,      # answer-phase turns per question (Reads before the answer included)
    "oracle_completion": 90,  # the oracle's tokens a turn at 200 documents (66 at 400, 52 at 800)
}
# Estimates, not measured at this scale: completion tokens of the trained policy and of each baseline call.
ESTIMATES = {
    "policy_completion": 300,     # the policy's turn: ops, scratchpad, a short reasoning (max 2,048)
    "answer_completion": 32,      # a baseline's answer
    "memagent_memory": 1024,      # MemAgent's rewritten memory: its prompt carries it, its reply rewrites it
    "crud_fact_tokens": 30,       # Static-CRUD: one extracted fact; max_facts of them a chunk
    "crud_decision_prompt": 600,  # Static-CRUD: a fact and its top-k entries
    "crud_decision_completion": 8,
}


def merged_config(configfiles: list[str], overrides: list[str]) -> dict:
    cfg = load_config(ROOT / "config/config.yaml")
    for path in configfiles:
        cfg = _merge(cfg, load_config(path))
    return _merge(cfg, load_config(None, overrides))


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def params_of(name: str, key: str) -> float:
    if name not in PARAMS:
        raise ConfigError(f"{key}: no parameter count for {name!r} in benchmarks/gpu_hours.py PARAMS "
                          f"({', '.join(PARAMS)})")
    return PARAMS[name]


@dataclass
class Work:
    """Tokens of one stage: inference tokens (2 x params each) and trained tokens (train_factor x params)."""
    label: str
    count: str
    infer_tokens: float = 0.0
    train_tokens: float = 0.0
    train_factor: int = 6
    measured: str = "infer"     # which MEASURED rate the trained tokens use
    embed_tokens: float = 0.0   # tokens through the embedder server (another model)
    gpus: int = 1
    on_path: float = 0.0        # share of the stage on the critical path (SFT, one RL run, the RL evaluation)

    def flops(self, p: float, p_embed: float) -> tuple[float, float, float]:
        """(inference, training, embedder) FLOPs."""
        return 2 * p * self.infer_tokens, self.train_factor * p * self.train_tokens, 2 * p_embed * self.embed_tokens

    def gpu_hours(self, p: float, p_embed: float) -> tuple[float, float]:
        infer, train, embed = self.flops(p, p_embed)
        measured = ((infer + embed) / MEASURED["infer"].flops_per_s
                    + (train / MEASURED[self.measured].flops_per_s if train else 0.0)) / 3600
        floor = (infer + train + embed) / (ASSUMED_MFU * H200_BF16_PEAK) / 3600
        return measured, floor


class Shape:
    """Episode and call shapes of one config: chunks, turns and tokens, per benchmark and document count."""

    def __init__(self, cfg: dict):
        self.env, self.cfg = cfg["env"], cfg
        self.window = self.env["chunk_tokens"] + 2 * self.env["chunk_overlap"]
        self.completion = min(cfg["sampling"]["max_new_tokens"], ESTIMATES["policy_completion"])

    def context(self, benchmark: str, docs: int) -> float:
        return docs * EPISODE["doc_tokens"][benchmark]

    def chunks(self, benchmark: str, docs: int) -> int:
        return min(self.env["max_chunks"], math.ceil(self.context(benchmark, docs) / self.env["chunk_tokens"]))

    def agent(self, benchmark: str, docs: int, questions: float, completion: float) -> tuple[float, float]:
        """(turns, tokens) of one agent episode: reading turns, then answer turns, capped by max_turns."""
        reads = self.chunks(benchmark, docs)
        answers = questions * EPISODE["answer_turns"]
        turns = min(self.env["max_turns"], reads + answers)
        reads = min(reads, turns)
        answers = turns - reads
        read_prompt = self.window + EPISODE["read_overhead"]
        tokens = reads * (read_prompt + completion) + answers * (EPISODE["answer_prompt"] + completion)
        return turns, tokens

    def method(self, name: str, benchmark: str, docs: int, questions: float) -> tuple[float, float, float]:
        """(LLM calls, tokens, embedded tokens) of one sample of an evaluation method."""
        chunks, answer = self.chunks(benchmark, docs), ESTIMATES["answer_completion"]
        window_room = self.cfg["model"]["max_model_len"] - self.cfg["sampling"]["max_new_tokens"]
        if name == "memagent":
            memory = ESTIMATES["memagent_memory"]
            return (chunks + questions,
                    chunks * (self.window + 2 * memory) + questions * (memory + answer), 0.0)
        if name == "full-context":
            return questions, questions * (min(self.context(benchmark, docs), window_room) + answer), 0.0
        if name == "rag":
            prompt = min(self.env["top_k"] * (self.window + 16), window_room)
            return questions, questions * (prompt + answer), chunks * self.window
        if name == "store-all":
            turns = questions * EPISODE["answer_turns"]
            return turns, turns * (EPISODE["answer_prompt"] + self.completion), chunks * self.window
        if name == "static-crud":
            facts = chunks * self.cfg["evaluate"]["method_options"].get("max_facts", 8)
            tokens = (chunks * (self.window + facts / chunks * ESTIMATES["crud_fact_tokens"])
                      + facts * (ESTIMATES["crud_decision_prompt"] + ESTIMATES["crud_decision_completion"])
                      + questions * (self.env["retrieval_token_budget"] + answer))
            return chunks + facts + questions, tokens, facts * ESTIMATES["crud_fact_tokens"]
        turns, tokens = self.agent(benchmark, docs, questions, self.completion)  # the agent and its ablations
        return turns, tokens, turns * self.completion  # its Creates and Updates are embedded


def samples_of(num_questions: int, cfg: dict) -> tuple[int, float]:
    """(samples, mean questions a sample) of `num_questions` cut as `atommem prepare` cuts them."""
    sizes = group_sizes(num_questions, cfg["data"]["seed"], cfg["data"]["max_group_size"])
    return len(sizes), num_questions / len(sizes)


def stages(cfg: dict) -> list[Work]:
    shape, data, rl, sft = Shape(cfg), cfg["data"], cfg["rl"], cfg["sft"]
    train_bench, train_docs = data["train"]["benchmark"], data["train"]["num_docs"]
    n_train, q_train = samples_of(data["train"]["questions"], cfg)
    oracle_turns, oracle_tokens = shape.agent(train_bench, train_docs, q_train, EPISODE["oracle_completion"])
    works = [Work("synthesis (oracle; embedder only)",
                  f"{n_train:,} samples x {oracle_turns:.1f} turns", embed_tokens=n_train * oracle_turns
                  * EPISODE["oracle_completion"], gpus=cfg["resources"]["synthesize"]["gpu"])]
    ckpt = 2 if sft.get("gradient_checkpointing") else 0
    works.append(Work("SFT", f"{n_train * oracle_turns:,.0f} turns x {sft['num_train_epochs']} epochs",
                      train_tokens=n_train * oracle_tokens * sft["num_train_epochs"], train_factor=6 + ckpt,
                      measured="train_sft", gpus=cfg["resources"]["sft"]["gpu"], on_path=1.0))

    runs = 1 + sum(1 for v in (rl.get("variants") or {}).values() if v is not None)
    turns, episode_tokens = shape.agent(train_bench, train_docs, q_train, shape.completion)
    episodes = rl["steps"] * rl["prompts_per_step"] * rl["group_size"]
    probes = (rl["steps"] // rl["validate_every"] + 1 if rl["validate_every"] else 2) if rl["probe_samples"] else 0
    probe_episodes = probes * rl["probe_samples"] * (rl["probe_episodes"] + 1)  # sampled + one greedy
    gpus = cfg["resources"]["rl"]["gpu"]
    works.append(Work(f"RL rollouts ({runs} run(s))", f"{runs} x {episodes:,} episodes x {turns:.1f} turns",
                      infer_tokens=runs * episodes * episode_tokens, embed_tokens=runs * episodes * turns
                      * shape.completion, gpus=gpus, on_path=1 / runs))
    reference = 2 if rl["kl_coef"] > 0 else 0
    ckpt = 2 if rl.get("gradient_checkpointing") else 0
    works.append(Work("RL update", f"{runs} x {episodes:,} episodes of {episode_tokens:,.0f} tokens",
                      train_tokens=runs * episodes * episode_tokens, train_factor=6 + ckpt + reference,
                      measured="train_rl", gpus=gpus, on_path=1 / runs))
    works.append(Work("RL probes", f"{runs} x {probes} probes x {probe_episodes // max(probes, 1)} episodes",
                      infer_tokens=runs * probe_episodes * episode_tokens, gpus=gpus, on_path=1 / runs))

    max_q = data["eval"]["max_questions"] or 600
    n_eval, q_eval = samples_of(max_q, cfg)
    groups = [(b, n) for b in data["benchmarks"] for n in data["doc_counts"]]
    evals = [(f"evaluate atommem-{p}", "atommem", groups) for p in cfg["evaluate"]["policies"]]
    evals += [(f"evaluate {m}", m, groups) for m in cfg["evaluate"]["baselines"]]
    ablation_groups = [(b, n) for b in cfg["ablations"]["benchmarks"] for n in cfg["ablations"]["doc_counts"]]
    evals += [(f"evaluate ablation-{a}", "atommem", ablation_groups) for a in cfg["ablations"]["runs"]]
    for label, method, chosen in evals:
        calls = tokens = embedded = 0.0
        for benchmark, docs in chosen:
            c, t, e = shape.method(method, benchmark, docs, q_eval)
            calls, tokens, embedded = calls + n_eval * c, tokens + n_eval * t, embedded + n_eval * e
        works.append(Work(label, f"{len(chosen)} groups x {n_eval} samples, {calls:,.0f} calls",
                          infer_tokens=tokens, embed_tokens=embedded, gpus=cfg["resources"]["evaluate"]["gpu"],
                          on_path=float(label == "evaluate atommem-rl")))
    return works


def table(cfg: dict) -> tuple[list[dict], dict]:
    """One row per stage (tokens, FLOPs, GPU-hours both ways) and the totals."""
    p = params_of(cfg["model"]["name"], "model.name")
    p_embed = params_of(cfg["embedder"]["name"], "embedder.name") if cfg["embedder"]["kind"] == "openai" else 0.0
    rows = []
    for work in stages(cfg):
        measured, floor = work.gpu_hours(p, p_embed)
        rows.append({"stage": work.label, "work": work.count, "tokens": work.infer_tokens + work.train_tokens + work.embed_tokens,
                     "flops": sum(work.flops(p, p_embed)), "gpu_h": measured, "gpu_h_mfu": floor,
                     "gpus": work.gpus, "on_path": work.on_path})
    total = {key: sum(r[key] for r in rows) for key in ("tokens", "flops", "gpu_h", "gpu_h_mfu")}
    return rows, total


def print_table(cfg: dict, configfiles: list[str]) -> None:
    rows, total = table(cfg)
    print(f"config: config/config.yaml + {' + '.join(configfiles) or '(none)'}; model {cfg['model']['name']} "
          f"({params_of(cfg['model']['name'], 'model.name') / 1e9:.2f}B params)")
    for key, m in MEASURED.items():
        print(f"measured {key}: {m.tokens / m.seconds:,.0f} tokens/s x {m.flops_per_token_param} x 134.5M = "
              f"{m.flops_per_s / 1e12:.2f} TFLOP/s ({m.flops_per_s / H200_BF16_PEAK:.1%} of peak): {m.source}")
    print("tokens: through the policy (inference and training) and the embedder; PFLOP: 1e15 FLOPs")
    print(f"| stage | work | tokens | PFLOP | GPU-h (measured rate) | GPU-h ({ASSUMED_MFU:.0%} MFU) | GPUs |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['stage']} | {r['work']} | {r['tokens'] / 1e6:,.0f}M | {r['flops'] / 1e15:,.0f} | "
              f"{r['gpu_h']:,.1f} | {r['gpu_h_mfu']:,.1f} | {r['gpus']} |")
    print(f"| total | | {total['tokens'] / 1e6:,.0f}M | {total['flops'] / 1e15:,.0f} | {total['gpu_h']:,.1f} | "
          f"{total['gpu_h_mfu']:,.1f} | |")
    for key, label in (("gpu_h", "measured rate"), ("gpu_h_mfu", f"{ASSUMED_MFU:.0%} MFU")):
        node = total[key] / NODE_GPUS
        print(f"one {NODE_GPUS}-GPU node, {label}: {node:,.1f} h ({node / DAY_HOURS:.2f} days) with every GPU busy; "
              f"critical path {critical_path(rows, key):,.1f} h")


def critical_path(rows: list[dict], key: str) -> float:
    """Hours of the chain no packing shortens: SFT, one RL run, the RL policy's evaluation. Synthesis is left
    out: the oracle's time is the CPU's (benchmarks/scaling.py measures the environment)."""
    return sum(r[key] / r["gpus"] * r["on_path"] for r in rows)


def measure_episodes(cfg: dict) -> None:
    """Play the oracle at the config's env on the shipped HotpotQA sample at each document count and print
    what EPISODE holds: prompt tokens of reading and answer turns, completion tokens, answer turns."""
    from atommem.agent.chunking import chunk_text
    from atommem.agent.env import EnvConfig
    from atommem.config import from_dict
    from atommem.data.loaders import load_benchmark, shipped_sample
    from atommem.data.longcontext import build_long_samples
    from atommem.llm.base import SamplingConfig
    from atommem.llm.models import load_tokenizer
    from atommem.memory.embedders import EmbedderConfig, build_embedder
    from atommem.train.synthesize import play

    env = from_dict(EnvConfig, cfg["env"])
    tokenizer, embedder = load_tokenizer("smollm2-135m"), build_embedder(EmbedderConfig(kind="hashing"))
    records = load_benchmark("hotpotqa", shipped_sample("hotpotqa"))

    def mean(xs: list[float]) -> float:
        return sum(xs) / max(len(xs), 1)

    for docs in cfg["data"]["doc_counts"]:
        samples = build_long_samples(records, docs, seed=cfg["data"]["seed"],
                                     max_group_size=cfg["data"]["max_group_size"], max_samples=8)
        trajectories = play(samples, env, embedder, tokenizer, None, SamplingConfig(), batch_size=8, progress=False)
        reads = [t for tr in trajectories for t in tr.turns if t.phase == "read"]
        answers = [t for tr in trajectories for t in tr.turns if t.phase == "answer"]
        chunks = [len(tokenizer.encode(c, add_special_tokens=False)) for s in samples
                  for c in chunk_text(s.context, tokenizer, env.chunk_tokens, env.chunk_overlap, env.max_chunks)]
        questions = sum(len(s.questions) for s in samples)
        print(f"{docs} docs: {len(trajectories)} episodes of {mean([len(t.turns) for t in trajectories]):.1f} "
              f"turns, context {mean([t.context_tokens for t in trajectories]):,.0f} tokens "
              f"({mean([t.context_tokens / docs for t in trajectories]):.1f} a document); "
              f"{len(reads)} reading turns, prompt {mean([t.prompt_tokens for t in reads]):,.0f} "
              f"(chunk {mean(chunks):,.0f}); {len(answers)} answer turns for {questions} questions, prompt "
              f"{mean([t.prompt_tokens for t in answers]):,.0f}; completion "
              f"{mean([t.completion_tokens for t in reads + answers]):,.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", nargs="+", default=["config/paper.yaml"],
                        help="applied on top of config/config.yaml, in order")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. rl.steps=200")
    parser.add_argument("--measure-episodes", action="store_true",
                        help="play the oracle on the shipped HotpotQA sample and print EPISODE's values")
    args = parser.parse_args(argv)
    try:
        cfg = merged_config(args.configfile, args.set)
        if args.measure_episodes:
            measure_episodes(cfg)
        else:
            print_table(cfg, args.configfile)
    except ConfigError as err:
        print(f"gpu_hours: {err}", file=sys.stderr)
        return 2
    except KeyError as err:
        print(f"gpu_hours: config key missing: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
