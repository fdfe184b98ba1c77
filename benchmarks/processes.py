"""One process with T threads against T processes of one thread each, on the same RL work (issue 33, part 2).

    .venv/bin/python benchmarks/processes.py                         # SmolLM2-135M, 2 steps of 2 x 4 episodes
    .venv/bin/python benchmarks/processes.py --model tiny-random --steps 1
    .venv/bin/python benchmarks/processes.py --processes 2 --env VLLM_CPU_OMP_THREADS_BIND=nobind

Runs the `atommem rl` recipe twice on the same samples and config, with vLLM rollouts colocated in each
process (what config/paper-cpu.yaml runs): once as one plain process with OMP_NUM_THREADS=T, once under
`accelerate launch --config_file config/accelerate/cpu.yaml` with T processes of one thread each (the DDP run
splits each step's samples between the processes). Each step's `time/rollout_s` and `time/update_s` come from
the run's metrics.jsonl (rank 0's clock: the ranks meet at the update's all-reduce, so rank 0's time is the
step's); the ratio per episode is what to read: T processes should be no slower than one.
Step 1 includes warm-up (the engine's first batches), so the table shows every step and the mean of the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from atommem.data.loaders import load_benchmark, shipped_sample  # noqa: E402
from atommem.data.longcontext import build_long_samples  # noqa: E402
from atommem.io import read_jsonl, write_jsonl_atomic  # noqa: E402

ACCELERATE = str(Path(sys.executable).with_name("accelerate"))
CPU_CONFIG = str(REPO / "config/accelerate/cpu.yaml")


def rl_args(args: argparse.Namespace, samples: Path, out_dir: Path) -> list[str]:
    settings = {
        "model.name": args.model, "samples": samples, "out_dir": out_dir, "steps": args.steps,
        "prompts_per_step": args.prompts, "group_size": args.group_size, "rollout": "vllm",
        "embedder.kind": args.embedder, "env.chunk_tokens": args.chunk_tokens, "env.chunk_overlap": 16,
        "env.max_turns": args.max_turns, "sampling.max_new_tokens": args.max_new_tokens,
        "validate_every": 0, "probe_samples": 0, "warmup_steps": 0, "kl_coef": args.kl_coef, "micro_batch_size": 1,
        "checkpoint_every": 1000, "progress": "false", "tracking.enabled": "false",
    }
    return [item for key, value in settings.items() for item in ("--set", f"{key}={value}")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(processes: int, threads: int, args: argparse.Namespace, samples: Path, out_dir: Path) -> float:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.update(dict(item.split("=", 1) for item in args.env))
    stage = ["-m", "atommem.cli", "rl", *rl_args(args, samples, out_dir)]
    if processes == 1:
        command = [sys.executable, *stage]
    else:
        # a port of its own, so that a launch beside another one (a test, a training job) does not join it
        command = [ACCELERATE, "launch", "--config_file", CPU_CONFIG, "--num_processes", str(processes),
                   "--main_process_port", str(free_port()), "--num_cpu_threads_per_process", str(threads), *stage]
    log = out_dir.with_suffix(".log")
    start = time.perf_counter()
    with open(log, "w") as handle:
        status = subprocess.run(command, env=env, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT).returncode
    if status != 0:
        sys.exit(f"processes.py: {processes} x {threads} failed (exit {status}); see {log}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="smollm2-135m | tiny-random | a local folder")
    parser.add_argument("--processes", type=int, default=2, help="T: processes of the second run, threads of the first")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=2, help="samples per step (over all processes)")
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--num-docs", type=int, default=6)
    parser.add_argument("--chunk-tokens", type=int, default=512)
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--embedder", default="hashing", help="hashing | sentence-transformers (MiniLM, the default "
                        "config's): the store's embedder, which runs in each process")
    parser.add_argument("--kl-coef", type=float, default=0.001, help="the paper's: every turn row runs in the update "
                        "(at 0, rows of advantage 0 are skipped, and an untrained policy's groups are mostly 0)")
    parser.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE",
                        help="extra environment for both runs, e.g. VLLM_CPU_OMP_THREADS_BIND=nobind")
    parser.add_argument("--out", default=None, help="folder for the runs' outputs and logs (default: a temp dir)")
    args = parser.parse_args()
    if args.group_size < 2:
        parser.error("--group-size must be at least 2 (GRPO's advantages compare episodes of one sample)")
    if args.prompts % args.processes:
        parser.error(f"--prompts {args.prompts} must split evenly over --processes {args.processes}")

    folder = Path(args.out or tempfile.mkdtemp(prefix="processes-"))
    folder.mkdir(parents=True, exist_ok=True)
    samples = folder / "samples.jsonl"
    records = load_benchmark("hotpotqa", shipped_sample("hotpotqa"))
    built = build_long_samples(records, num_docs=args.num_docs, max_samples=args.prompts, max_group_size=2)
    write_jsonl_atomic(samples, [s.to_dict() for s in built])

    t = args.processes
    layouts = {f"1 x {t}": (1, t), f"{t} x 1": (t, 1)}
    rows = {}
    for name, (processes, threads) in layouts.items():
        out_dir = folder / name.replace(" ", "")
        wall = run(processes, threads, args, samples, out_dir)
        rows[name] = (wall, list(read_jsonl(out_dir / "metrics.jsonl")))
        print(f"{name}: {wall:.0f} s wall, logs in {out_dir.with_suffix('.log')}", flush=True)

    episodes = args.prompts * args.group_size
    print(f"\n{args.model}, {args.steps} steps of {args.prompts} x {args.group_size} episodes, "
          f"{args.max_turns} turns of {args.max_new_tokens} new tokens at most; extra env: {args.env or 'none'}")
    print("| processes x threads | step | rollout s | update s | completion tokens |")
    print("|---|---:|---:|---:|---:|")
    for name, (_, metrics) in rows.items():
        for row in metrics:
            print(f"| {name} | {row['step']} | {row['time/rollout_s']:.1f} | {row['time/update_s']:.1f} | "
                  f"{row.get('tokens/completion', 0):.0f} |")

    def per_episode(metrics: list[dict], key: str) -> float:
        later = metrics[1:] or metrics  # step 1 warms the engine up
        return sum(row[key] for row in later) / len(later) / episodes

    one, many = rows[f"1 x {t}"][1], rows[f"{t} x 1"][1]
    summary = {}
    for key in ("time/rollout_s", "time/update_s"):
        summary[key] = {"1xT_s_per_episode": per_episode(one, key), "Tx1_s_per_episode": per_episode(many, key),
                        "ratio_Tx1_over_1xT": per_episode(many, key) / per_episode(one, key)}
        print(f"{key} per episode (steps after the first): 1 x {t} {summary[key]['1xT_s_per_episode']:.2f} s, "
              f"{t} x 1 {summary[key]['Tx1_s_per_episode']:.2f} s: ratio {summary[key]['ratio_Tx1_over_1xT']:.2f}")
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
