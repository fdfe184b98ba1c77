"""The GRPO training loop: rollouts through the evaluation environment, per-turn rows, one update per step.

Each step, with named phases:
  1. sample      `prompts_per_step` samples at the saved data position (shared out over processes);
  2. rollout     `group_size` episodes per sample in lock-step through Episode/run_lockstep, sampling
                 from the current policy (the same environment and prompts as evaluation);
  3. reward      per episode, `rl.reward` (atommem.train.reward): the paper's fraction of the sample's
                 questions answered with exact match, or on statetrack the memory's state F1, or their mean;
  4. advantage   reward - group mean (optionally / group std);
  5. update      every turn a (prompt, response) row with its episode's advantage; clipped token loss
                 + k3 KL to a frozen reference, token mean, grad clipping, one optimizer step;
  6. log         metrics.jsonl + MLflow with the stable names of docs/architecture.md;
  7. validate / probe / checkpoint every N steps; `final/` at the end.

The probe: the last `probe_samples` samples of the training file are left out of the training draw and
scored before step 1 (a metrics row of step 0) and every `validate_every` steps, with the last step always
included (so `validate_every: 0` probes before step 1 and after the last step only): `probe_episodes`
sampled episodes each at the rollout sampling, with the same seeds at every probe, and one greedy episode.
Fixed worlds, unlike the fresh ones each step trains on, so the probe curve shows learning, not which
worlds a step happened to draw; before step 1, pass@k against greedy EM is the headroom sampling offers.
Every probe also appends one row per world to probe_worlds.jsonl. With `rl.train_ids` the run trains on those
worlds only (the fixed-world check) and scores them greedily at every probe (`fixed/*`); `steps: 0` probes
only, the way config/rl-fixed-worlds.yaml chooses them. `rl.lora` and `rl.train_top_layers` make the update
cheaper (`trainable_policy`); the vLLM engine and final/ get merged weights.

Runs as one process on CPU, or under `accelerate launch` (DDP, or FSDP with the vLLM engine; on CPU
processes too, atommem.train.cpu_fsdp).
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from accelerate import Accelerator
from accelerate.utils import AutocastKwargs, DistributedType, set_seed
from transformers import AutoModelForCausalLM

from atommem.agent.env import Episode, Trajectory
from atommem.agent.runner import RolloutTimer, run_lockstep
from atommem.data.records import LongSample, read_samples
from atommem.errors import Preempted
from atommem.eval.scoring import score_trajectory
from atommem.eval.write_audit import WRITE_COLUMNS, audit_writes
from atommem.fingerprint import claim_output_dir
from atommem.io import append_jsonl, replace_dir, truncate_jsonl, write_jsonl_atomic, writing
from atommem.llm.base import Conversation, Generation, SamplingConfig
from atommem.llm.hf import HFBackend
from atommem.llm.models import resolve_model
from atommem.memory.embedders import build_embedder
from atommem.tracking import tracked_run
from atommem.train import cpu_fsdp
from atommem.train.checkpoint import latest_checkpoint, load_checkpoint, remove_incomplete, save_checkpoint
from atommem.train.grpo import LossConfig, build_rows, group_advantages, policy_update, sampler_is_exact
from atommem.train.preemption import StopRequest
from atommem.train.reward import answer_reward, episode_reward

if TYPE_CHECKING:
    from atommem.train.rl_config import RLConfig

log = logging.getLogger(__name__)

OP_NAMES = ("create", "read", "update", "delete", "scratchpad")


# ---- rollout engines ----------------------------------------------------------------------------------
class HFRolloutEngine:
    """Generates with the training model itself (shared parameters), so there are no weights to sync."""

    def __init__(self, backend: HFBackend, autocast):
        self.backend = backend
        self.tokenizer = backend.tokenizer
        self.autocast = autocast  # the accelerator's, so rollouts run in the training precision

    def generate(self, conversations: list[Conversation], sampling: SamplingConfig) -> list[Generation]:
        self.backend.model.eval()
        with self.autocast():
            return self.backend.generate(conversations, sampling)

    def sync_weights(self, model) -> None:
        pass


class VLLMRolloutEngine:
    """A vLLM engine colocated in each training process; `sync_weights` pushes the trained weights into it.

    On GPU (and with several CPU processes) every rank holds its own engine on its own device, built with
    vLLM's torchrun-style "external_launcher" executor (the setting vLLM and TRL use for colocation: no
    engine processes, RANK / LOCAL_RANK / MASTER_* from the launcher, the engine seeded per rank). A single
    CPU process gets the plain in-process engine (the only path the tests run). Parameters are handed over
    one at a time (FSDP2 DTensors gathered to full tensors as vLLM asks for them), so the full model is
    never materialised twice.
    """

    def __init__(self, model_cfg, accelerator: Accelerator, gpu_memory_utilization: float):
        from atommem.llm.vllm_backend import VLLMBackend, on_cpu

        engine_args = {}
        # one engine per rank (GPU, or several CPU processes): torchrun-style, inside the launcher's
        # process group; a single CPU process gets vLLM's own one-process group
        if not on_cpu(model_cfg) or accelerator.num_processes > 1:
            os.environ.setdefault("RANK", str(accelerator.process_index))
            os.environ.setdefault("LOCAL_RANK", str(accelerator.local_process_index))
            os.environ.setdefault("WORLD_SIZE", str(accelerator.num_processes))
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ.setdefault("MASTER_PORT", "29500")
            engine_args = {"distributed_executor_backend": "external_launcher"}
            if not on_cpu(model_cfg):
                # the engine shares the device with the policy, its gradients and optimizer state
                engine_args["gpu_memory_utilization"] = gpu_memory_utilization
            # each rank samples its own prompts: different engine seeds, one engine per device
            model_cfg = replace(model_cfg, seed=model_cfg.seed + accelerator.process_index, tensor_parallel_size=1)
        self.backend = VLLMBackend(model_cfg, in_process=True, **engine_args)
        self.tokenizer = self.backend.tokenizer

    def generate(self, conversations: list[Conversation], sampling: SamplingConfig) -> list[Generation]:
        return self.backend.generate(conversations, sampling)

    @torch.no_grad()
    def sync_weights(self, model) -> None:
        self.backend.load_weights(vllm_named_weights(model))


# FSDP1 and activation checkpointing insert these at every wrapped level; DDP adds `module.` in front
INNER_WRAPPERS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")


def unwrapped_name(name: str) -> str:
    """The checkpoint name of a parameter of a wrapped model (`module.model.layers.0...` -> `model.layers.0...`)."""
    for wrapper in INNER_WRAPPERS:
        name = name.replace(wrapper, "")
    return name.removeprefix("module.")


def vllm_named_weights(model):
    """(checkpoint name, full tensor) per parameter, gathered lazily: FSDP2 shards are DTensors. A LoRA
    policy (rl.lora) gives the plain model's names and merged weights, base + B @ A * scale, without changing
    its own."""
    deltas = lora_deltas(model)
    for name, param in model.named_parameters():
        if deltas is not None:
            if "lora_" in name:
                continue
            module = name.rsplit(".", 1)[0]
            name = unwrapped_name(name).removeprefix("base_model.model.").replace(".base_layer.", ".")
            tensor = param.data + deltas[module] if module in deltas else param.data
            yield name, tensor.detach()
            continue
        tensor = param.full_tensor() if hasattr(param, "full_tensor") else param.data
        yield unwrapped_name(name), tensor.detach()


def lora_deltas(model) -> dict[str, torch.Tensor] | None:
    """{name of a LoRA layer's base layer: its weight delta B @ A * scale}, or None for a model without LoRA."""
    deltas = {}
    for name, module in model.named_modules():
        if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer"):
            for adapter in module.active_adapters:
                delta = module.get_delta_weight(adapter).detach()
                key = f"{name}.base_layer"
                deltas[key] = deltas[key] + delta if key in deltas else delta
    return deltas or None


# ---- data -------------------------------------------------------------------------------------------
def sample_indices(num_samples: int, position: int, count: int, seed: int) -> list[int]:
    """Indices of the samples at data positions [position, position + count): one seeded shuffle per
    epoch, so the order depends only on (seed, position) and resumes exactly from a checkpoint."""
    indices = []
    for p in range(position, position + count):
        epoch, offset = divmod(p, num_samples)
        order = list(range(num_samples))
        random.Random(f"{seed}:{epoch}").shuffle(order)
        indices.append(order[offset])
    return indices


def process_share(batch: list, accelerator: Accelerator) -> list:
    """This process's samples of a step: every num_processes-th one. Shares are disjoint, and all episodes
    of a sample (its GRPO group) are rolled out on the process that holds it, so no group is split."""
    return batch[accelerator.process_index :: accelerator.num_processes]


def split_probe(samples: list[LongSample], probe_samples: int) -> tuple[list[LongSample], list[LongSample]]:
    """(training samples, probe samples): the probe is the file's last `probe_samples` samples."""
    if not probe_samples:
        return samples, []
    if probe_samples >= len(samples):
        raise ValueError(f"probe_samples={probe_samples} leaves none of the {len(samples)} samples to train on")
    return samples[:-probe_samples], samples[-probe_samples:]


def fixed_worlds(samples: list[LongSample], train_ids: list[str] | None) -> list[LongSample]:
    """The training samples: those of `train_ids` in their order (rl.train_ids), or all when it is null."""
    if train_ids is None:
        return samples
    by_id = {s.id: s for s in samples}
    missing = [i for i in train_ids if i not in by_id]
    if missing:
        raise ValueError(f"train_ids: {missing[0]!r} is not a training sample (absent, or a probe sample)")
    return [by_id[i] for i in train_ids]


# ---- metrics ----------------------------------------------------------------------------------------
def rollout_sums(trajectories: list[Trajectory], scored: list[list[dict]], advantages: list[float],
                 timer: RolloutTimer) -> dict[str, float]:
    """Additive counts of one process's rollouts (`scored`: each episode's question rows, `advantages`: each
    episode's); turned into the stable per-turn metrics after a sum over processes."""
    # score_trajectory repeats the episode's state_f1 on each of its rows where the sample has a true state
    state_f1s = [rows[0]["state_f1"] for rows in scored if rows and "state_f1" in rows[0]]
    turns = [t for traj in trajectories for t in traj.turns]
    # statetrack answers: was the gold answer in the memory shown when answering (None: no answer, or not statetrack)
    judged = [r for rows in scored for r in rows if r.get("memory_backed") is not None]
    sums = {f"ops/{name}": 0.0 for name in OP_NAMES} | {f"ops/{name}_adv": 0.0 for name in OP_NAMES}
    sums |= {column: 0.0 for column in WRITE_COLUMNS} | {f"{column}_adv": 0.0 for column in WRITE_COLUMNS}
    for trajectory, advantage in zip(trajectories, advantages, strict=True):
        for turn in trajectory.turns:
            for op in turn.ops:
                if op["name"] in OP_NAMES:
                    sums[f"ops/{op['name']}"] += 1
                    # the reward an episode's use of the op came with, relative to its group
                    sums[f"ops/{op['name']}_adv"] += advantage
        for column, count in audit_writes(trajectory).items():
            sums[column] += count
            sums[f"{column}_adv"] += advantage * count
    sums.update({
        "turns": len(turns),
        "episodes": len(trajectories),
        "invalid": sum(sum(t.invalid.values()) for t in turns),
        "store_size": sum(traj.turns[-1].store_size if traj.turns else 0 for traj in trajectories),
        "active": sum(timer.active_per_turn),
        "lockstep_turns": len(timer.active_per_turn),
        "tokens/prompt": sum(t.prompt_tokens for t in turns),
        "tokens/completion": sum(t.completion_tokens for t in turns),
        "episodes/turn_cap": sum(traj.truncated for traj in trajectories),
        "turns/length_cut": sum(t.finish_reason == "length" for t in turns),
        "questions": sum(len(traj.answers) for traj in trajectories),
        "questions/unanswered": sum(a is None for traj in trajectories for a in traj.answers),
        "answers/judged": len(judged),
        "answers/backed": sum(r["memory_backed"] for r in judged),
        "answers/rewarded": sum(r["em"] for r in judged),
        "answers/rewarded_not_backed": sum(r["em"] for r in judged if not r["memory_backed"]),
        # both scores whatever `rl.reward` is, so runs with different rewards compare on each
        "episodes/em": sum(answer_reward(rows) for rows in scored if rows),
        "episodes/state_f1": sum(state_f1s),
        "episodes/state_judged": len(state_f1s),
    })
    return sums


def frac_zero_std(rewards: list[float], group_size: int) -> float:
    """Share of groups (consecutive runs of `group_size` rewards) whose rewards are all equal: their
    advantages are all 0, so they give GRPO no signal."""
    groups = [rewards[i : i + group_size] for i in range(0, len(rewards), group_size)]
    return sum(max(g) == min(g) for g in groups) / len(groups)


def step_metrics(step: int, sums: dict[str, float], rewards: list[float], update: dict, lr: float,
                 times: dict[str, float], group_size: int) -> dict:
    turns = max(sums["turns"], 1)
    metrics = {
        "step": step,
        "reward/mean": statistics.fmean(rewards),
        "reward/std": statistics.pstdev(rewards),
        "reward/frac_zero_std": frac_zero_std(rewards, group_size),
        **{f"ops/{name}_per_turn": sums[f"ops/{name}"] / turns for name in OP_NAMES},
        # > 0: episodes that used the op more than their group mates got more reward, so the update favours it
        **{f"ops/{name}_advantage": sums[f"ops/{name}_adv"] / sums["episodes"] for name in OP_NAMES},
        "invalid/per_turn": sums["invalid"] / turns,
        # truncation: episodes the turn cap ended, turns max_new_tokens cut, questions left without an answer
        "episodes/turn_cap_frac": sums["episodes/turn_cap"] / sums["episodes"],
        "turns/length_cut_frac": sums["turns/length_cut"] / turns,
        "questions/unanswered_frac": sums["questions/unanswered"] / max(sums["questions"], 1),
        "store/size_mean": sums["store_size"] / sums["episodes"],
        "episode/turns_mean": sums["turns"] / sums["episodes"],
        "episode/em_mean": sums["episodes/em"] / sums["episodes"],
        "rollout/active_episodes_mean": sums["active"] / max(sums["lockstep_turns"], 1),
        "loss": update["loss"],
        "kl": update["kl"],
        "clip_frac": update["clip_frac"],
        "entropy": update["entropy"],
        "grad_norm": update["grad_norm"],
        "lr": lr,
        **{k: v for k, v in update.items() if k.startswith("logprob_gap/")},
        "tokens/prompt": int(sums["tokens/prompt"]),
        "tokens/completion": int(sums["tokens/completion"]),
        "tokens/skipped_frac": update["tokens_skipped_frac"],
        **times,
    }
    # statetrack: Updates that rewrote another fact's entry, Creates that repeat a shown fact (eval.write_audit)
    for write, judged in (("update_other_fact", "update_judged"), ("create_repeat", "create_judged")):
        if sums[f"writes_{judged}"]:
            metrics[f"writes/{write}_frac"] = sums[f"writes_{write}"] / sums[f"writes_{judged}"]
            metrics[f"writes/{write}_advantage"] = sums[f"writes_{write}_adv"] / sums["episodes"]
    if sums["episodes/state_judged"]:
        metrics["episode/state_f1_mean"] = sums["episodes/state_f1"] / sums["episodes/state_judged"]
    if sums["answers/judged"]:
        # a rewarded answer the memory did not hold was a guess: reward no memory operation earned
        metrics["answers/backed_frac"] = sums["answers/backed"] / sums["answers/judged"]
        if sums["answers/rewarded"]:
            metrics["reward/not_backed_frac"] = sums["answers/rewarded_not_backed"] / sums["answers/rewarded"]
    return metrics


def _sum_over_processes(accelerator: Accelerator, values: dict[str, float]) -> dict[str, float]:
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=accelerator.device)
    return dict(zip(keys, accelerator.reduce(tensor, "sum").tolist(), strict=True))


# ---- metrics.jsonl ----------------------------------------------------------------------------------
def truncate_metrics(path: Path, last_step: int) -> None:
    """Keep the complete rows of steps <= last_step: steps after the checkpoint are re-run after a resume."""
    rows = truncate_jsonl(path)
    if any(row["step"] > last_step for row in rows):
        write_jsonl_atomic(path, [row for row in rows if row["step"] <= last_step])


def append_metrics(path: Path, row: dict) -> None:
    append_jsonl(path, [row])


# ---- validation -------------------------------------------------------------------------------------
def validate(cfg: RLConfig, accelerator, engine, samples: list[LongSample], embedder) -> dict[str, float]:
    """Greedy EM/F1 on the validation samples (macro: mean over samples of the per-sample mean)."""
    mine = samples[accelerator.process_index :: accelerator.num_processes]
    episodes = [Episode(s, cfg.env, embedder, engine.tokenizer) for s in mine]
    greedy = replace(cfg.sampling, temperature=0.0)
    trajectories = run_lockstep(episodes, engine, greedy, progress=cfg.progress, desc="validation") if episodes else []
    sums = {"em": 0.0, "f1": 0.0, "n": float(len(mine))}
    for trajectory, sample in zip(trajectories, mine, strict=True):
        rows = score_trajectory(trajectory, sample)
        sums["em"] += sum(r["em"] for r in rows) / len(rows)
        sums["f1"] += sum(r["f1"] for r in rows) / len(rows)
    total = _sum_over_processes(accelerator, sums)
    return {"val/em": total["em"] / total["n"], "val/f1": total["f1"] / total["n"]}


# ---- probe ------------------------------------------------------------------------------------------
PROBE_SEED = 500_009  # offsets the probe's sampling seeds from the training steps' (seed + 1_000_003 * step)


def probe(cfg: RLConfig, accelerator, engine, samples: list[LongSample], embedder) -> dict[str, float]:
    """The fixed probe samples scored by the current policy (module docstring), macro over samples:
    `probe/sampled_reward` (mean `rl.reward` of k sampled episodes), `probe/sampled_em`, `probe/pass_at_k`
    (share of questions at least one of the k answered with exact match), `probe/best_of_k_reward` (the best
    of the k rewards), `probe/greedy_em` and `probe/greedy_reward` (one greedy episode); on statetrack also
    `probe/sampled_state_f1` and `probe/greedy_state_f1`."""
    metrics, _ = probe_worlds(cfg, accelerator, engine, samples, embedder, cfg.probe_episodes)
    return metrics


def probe_worlds(cfg: RLConfig, accelerator, engine, samples: list[LongSample], embedder, k: int,
                 prefix: str = "probe") -> tuple[dict[str, float], list[dict]]:
    """`probe`'s metrics under `prefix`, and one row per sample (this process's) with the same values for
    that sample alone (`id` added): the per-world breakdown of probe_worlds.jsonl. k = 0: greedy only."""
    mine = samples[accelerator.process_index :: accelerator.num_processes]
    # the same seeds at every probe: two probes differ by the policy, not by the draw
    sampling = replace(cfg.sampling, seed=cfg.sampling.seed + PROBE_SEED + 7 * accelerator.process_index)
    sampled = [Episode(s, cfg.env, embedder, engine.tokenizer) for s in mine for _ in range(k)]
    sampled = run_lockstep(sampled, engine, sampling, progress=cfg.progress, desc=f"{prefix} sampled") if sampled else []
    greedy = [Episode(s, cfg.env, embedder, engine.tokenizer) for s in mine]
    greedy_sampling = replace(cfg.sampling, temperature=0.0)
    greedy = run_lockstep(greedy, engine, greedy_sampling, progress=cfg.progress, desc=f"{prefix} greedy") if greedy else []
    with_state = bool(samples) and all(s.final_state is not None for s in samples)
    keys = ["sampled_reward", "sampled_em", "pass_at_k", "best_of_k_reward"] if k else []
    keys += ["greedy_em", "greedy_reward"]
    if with_state:
        keys += ["sampled_state_f1", "greedy_state_f1"] if k else ["greedy_state_f1"]
    worlds = []
    for index, sample in enumerate(mine):
        world = {"id": sample.id}
        if k:
            episodes = sampled[index * k : (index + 1) * k]
            scored = [score_trajectory(t, sample) for t in episodes]
            rewards = [episode_reward(t, sample, cfg.reward, rows) for t, rows in zip(episodes, scored, strict=True)]
            world["sampled_reward"] = sum(rewards) / k
            world["sampled_em"] = sum(answer_reward(rows) for rows in scored) / k
            world["best_of_k_reward"] = max(rewards)
            solved = [any(rows[q]["em"] for rows in scored) for q in range(len(sample.questions))]
            world["pass_at_k"] = sum(solved) / len(solved)
            if with_state:
                world["sampled_state_f1"] = sum(rows[0]["state_f1"] for rows in scored) / k
        greedy_rows = score_trajectory(greedy[index], sample)
        world["greedy_em"] = answer_reward(greedy_rows)
        world["greedy_reward"] = episode_reward(greedy[index], sample, cfg.reward, greedy_rows)
        if with_state:
            world["greedy_state_f1"] = greedy_rows[0]["state_f1"]
        worlds.append(world)
    sums = {key: sum(world[key] for world in worlds) for key in keys} | {"n": float(len(mine))}
    total = _sum_over_processes(accelerator, sums)
    return {f"{prefix}/{key}": total[key] / total["n"] for key in keys}, worlds


def probe_step(cfg: RLConfig, accelerator, engine, probe_set: list[LongSample], fixed: list[LongSample],
               embedder, step: int, path: Path) -> dict[str, float]:
    """Everything scored at a probe: the probe samples (`probe/*`, k sampled episodes and one greedy each)
    and, with rl.train_ids, the fixed training worlds greedily (`fixed/*`); their per-world values are
    appended to `path` (probe_worlds.jsonl: step, set, id, ...)."""
    from accelerate.utils import gather_object

    start = time.perf_counter()
    metrics, rows = {}, []
    for name, worlds, k in (("probe", probe_set, cfg.probe_episodes), ("fixed", fixed, 0)):
        if worlds:
            values, mine = probe_worlds(cfg, accelerator, engine, worlds, embedder, k, prefix=name)
            metrics.update(values)
            rows += [{"step": step, "set": name, **world} for world in mine]
    rows = gather_object(rows) if accelerator.num_processes > 1 else rows
    if accelerator.is_main_process and rows:
        append_jsonl(path, rows)
    return metrics | {"time/probe_s": time.perf_counter() - start}


# ---- setup ------------------------------------------------------------------------------------------
def _warmup_then_constant(warmup_steps: int):
    return lambda step: min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0


def load_policy(cfg: RLConfig, accelerator: Accelerator) -> HFBackend:
    """The trained copy, in fp32 whatever model.dtype (the inference dtype): these are the master weights
    AdamW updates, and `mixed_precision` sets the compute dtype (autocast). Loaded through the HF backend so
    the HF rollout engine generates with the very same module."""
    return HFBackend(replace(cfg.model, backend="hf", dtype="float32", device=str(accelerator.device)))


def load_reference(cfg: RLConfig, accelerator: Accelerator) -> torch.nn.Module | None:
    """The frozen KL reference, in the policy's fp32 and run under its autocast (grpo.policy_update), so
    equal weights give equal log-probs."""
    if cfg.kl_coef <= 0:
        return None
    path = resolve_model(cfg.ref_model or cfg.model.name)
    ref = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval().requires_grad_(False)
    return place_reference(accelerator, ref)


def place_reference(accelerator: Accelerator, ref: torch.nn.Module) -> torch.nn.Module:
    """The reference ready for the launch. Under FSDP it is sharded like the policy (an unsharded 8B reference
    would take 32 GB of every GPU); otherwise each process holds a copy. Logs what this process holds."""
    if accelerator.distributed_type == DistributedType.FSDP:
        if accelerator.is_fsdp2:
            from accelerate.utils.fsdp_utils import fsdp2_prepare_model

            ref = fsdp2_prepare_model(accelerator, ref)
        else:
            ref = accelerator.prepare_model(ref, evaluation_mode=True)
    else:
        ref = ref.to(accelerator.device)
    log.info("reference model: %.1f MB of parameters on process %d of %d", cpu_fsdp.local_bytes(ref) / 2**20,
             accelerator.process_index, accelerator.num_processes)
    return ref


def prepare_policy(accelerator: Accelerator, model, learning_rate: float, lr_lambda):
    """(model, optimizer, scheduler): AdamW over the trained parameters and its LR schedule, model and
    optimizer prepared for the launch (DDP, FSDP). The scheduler is not prepared: accelerate would step it
    once per process."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate,
                                  weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    model, optimizer = accelerator.prepare(model, optimizer)
    return model, optimizer, scheduler


def decoder_layers(model) -> torch.nn.ModuleList:
    """The transformer blocks of a causal LM (Llama, Qwen, SmolLM2: model.model.layers)."""
    layers = getattr(model.get_decoder(), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise ValueError(f"{type(model).__name__}: no decoder layer list (model.get_decoder().layers)")
    return layers


def trainable_policy(cfg: RLConfig, model):
    """What the update trains: everything (the paper's), LoRA adapters on the linear layers (`rl.lora`, a
    peft model around the same module, so the HF engine generates through the adapters), or the top
    `rl.train_top_layers` blocks and the final norm, with embeddings, lm_head and the blocks below frozen, so
    the backward pass stops at the lowest trained block. Both: adapters on the top N blocks only."""
    layers = decoder_layers(model)
    top = cfg.train_top_layers
    if top is not None and top > len(layers):
        raise ValueError(f"train_top_layers: {top} > the model's {len(layers)} layers")
    if cfg.lora is not None:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **cfg.lora))
        if top is not None:  # the adapters of the blocks below stay at their init (B = 0): no change there
            for layer in layers[: len(layers) - top]:
                layer.requires_grad_(False)
        return model
    if top is not None:
        model.requires_grad_(False)
        for layer in layers[len(layers) - top :]:
            layer.requires_grad_(True)
        norm = getattr(model.get_decoder(), "norm", None)
        if norm is not None:
            norm.requires_grad_(True)
    return model


def _build_engine(cfg: RLConfig, accelerator: Accelerator, policy: HFBackend):
    if cfg.rollout == "vllm":
        # the sampler runs in the training precision, like the HF engine under the accelerator's autocast
        dtype = "bfloat16" if cfg.mixed_precision == "bf16" else cfg.model.dtype
        return VLLMRolloutEngine(
            replace(cfg.model, backend="vllm", dtype=dtype), accelerator, cfg.vllm_gpu_memory_utilization
        )
    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        raise ValueError("rollout: hf generation cannot run on a sharded model; use rollout=vllm with FSDP")
    return HFRolloutEngine(policy, accelerator.autocast)


def save_final(accelerator: Accelerator, model, tokenizer, out_dir: Path) -> Path:
    """A plain HF folder, written beside `final/` and renamed into place."""
    final, tmp = out_dir / "final", out_dir / ".final.tmp"
    state_dict = accelerator.get_state_dict(model)  # collective under FSDP: every process calls it
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        with writing(final, cleanup=lambda: shutil.rmtree(tmp, ignore_errors=True)):  # disk full: a WriteError
            unwrapped = accelerator.unwrap_model(model)
            if hasattr(unwrapped, "merge_and_unload"):  # rl.lora: the plain model, adapters merged (the run ends)
                unwrapped.merge_and_unload().save_pretrained(tmp, safe_serialization=True)
            else:
                unwrapped.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        replace_dir(tmp, final)
    accelerator.wait_for_everyone()
    return final


# ---- the loop ---------------------------------------------------------------------------------------
def train(cfg: RLConfig) -> Path:
    # without a GPU, a multi-process launch (config/accelerate/cpu.yaml) becomes DDP over gloo
    # autocast's weight cache would keep a bf16 copy of every layer until the forward ends, which gradient
    # checkpointing cannot free: 0.3 GB a layer more for Qwen3-8B shapes, at no speed gain
    # (benchmarks/grpo_memory.py, docs/training.md)
    stop = StopRequest().install()  # from here on, SIGTERM and SIGUSR1 stop the run after a step
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=cfg.mixed_precision,
                              kwargs_handlers=[AutocastKwargs(cache_enabled=False)])
    cpu_fsdp.enable(accelerator)  # an FSDP launch on CPU processes: accelerate's FSDP2, as on GPUs
    if cfg.prompts_per_step % accelerator.num_processes:
        raise ValueError(f"prompts_per_step={cfg.prompts_per_step} must divide over {accelerator.num_processes} processes")
    set_seed(cfg.seed)
    log.info("training on %d process(es), %s", accelerator.num_processes, accelerator.distributed_type.value)
    out_dir = Path(cfg.out_dir)
    ckpt_root, metrics_path = out_dir / "checkpoints", out_dir / "metrics.jsonl"
    # the probe samples (the file's last probe_samples) are never drawn for training
    samples, probe_set = split_probe(read_samples(cfg.samples), cfg.probe_samples)
    samples = fixed_worlds(samples, cfg.train_ids)
    fixed = samples if cfg.train_ids is not None else []  # scored greedily at every probe (fixed/*)
    probe_path = out_dir / "probe_worlds.jsonl"
    val_samples = read_samples(cfg.val_samples, cfg.val_max_samples) if cfg.val_samples else []
    embedder = build_embedder(cfg.embedder)

    policy = load_policy(cfg, accelerator)
    model, tokenizer = policy.model, policy.tokenizer
    partial = cfg.lora is not None or cfg.train_top_layers is not None
    if partial and accelerator.distributed_type == DistributedType.FSDP:
        raise ValueError("lora / train_top_layers: not with FSDP here; train every weight or use DDP")
    if cfg.gradient_checkpointing:
        # frozen embeddings give the blocks inputs without grad, which reentrant checkpointing would drop
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False} if partial else None)
    model = trainable_policy(cfg, model)
    ref_model = load_reference(cfg, accelerator)
    trained = [p for p in model.parameters() if p.requires_grad]
    log.info("updating %d of %d parameters", sum(p.numel() for p in trained), sum(p.numel() for p in model.parameters()))
    model, optimizer, scheduler = prepare_policy(accelerator, model, cfg.learning_rate,
                                                 _warmup_then_constant(cfg.warmup_steps))
    accelerator.register_for_checkpointing(scheduler)  # registered only to be checkpointed
    engine = _build_engine(cfg, accelerator, policy)
    loss_cfg = LossConfig.of(cfg)
    # the rule of atommem.train.grpo: sampler log-probs are the old log-probs only for unfiltered T=1 sampling
    use_sampler_logprobs = sampler_is_exact(cfg.sampling)

    step, position = 0, 0
    if accelerator.is_main_process:
        # checkpoints of another config or other inputs are moved aside, not resumed from
        claim_output_dir(out_dir, asdict(cfg), {"model": cfg.model.name, "ref_model": cfg.ref_model,
                         "samples": cfg.samples, "val_samples": cfg.val_samples},
                         resumable=["checkpoints", "metrics.jsonl", "probe_worlds.jsonl"])
        remove_incomplete(ckpt_root)
    accelerator.wait_for_everyone()
    checkpoint = latest_checkpoint(ckpt_root)
    if checkpoint is not None:
        state = load_checkpoint(accelerator, checkpoint)
        step, position = state["step"], state["data_position"]
        log.info("resumed from %s (step %d)", checkpoint, step)
    if accelerator.is_main_process:
        # a fresh start keeps no row, not even an earlier attempt's probe row of step 0
        truncate_metrics(metrics_path, step if step else -1)
        truncate_metrics(probe_path, step if step else -1)
    engine.sync_weights(model)  # a resumed policy differs from the checkpoint the engine loaded

    with tracked_run(cfg.tracking, params=asdict(cfg), main_process=accelerator.is_main_process) as run:
        if (probe_set or fixed) and step == 0:
            # before step 1: the policy the run starts from, and the headroom sampling offers over greedy
            before = {"step": 0, **probe_step(cfg, accelerator, engine, probe_set, fixed, embedder, 0, probe_path)}
            if accelerator.is_main_process:
                append_metrics(metrics_path, before)
                run.log_metrics(before, step=0)
            if accelerator.is_main_process and probe_set:
                log.info("probe before step 1 (%d samples x %d episodes): sampled reward %.3f; headroom: pass@%d "
                         "%.3f against greedy EM %.3f", len(probe_set), cfg.probe_episodes,
                         before["probe/sampled_reward"], cfg.probe_episodes, before["probe/pass_at_k"],
                         before["probe/greedy_em"])
        while step < cfg.steps:
            step += 1
            # 1. sample
            batch = [samples[i] for i in sample_indices(len(samples), position, cfg.prompts_per_step, cfg.seed)]
            position += cfg.prompts_per_step
            mine = process_share(batch, accelerator)
            # 2. rollout
            episodes = [Episode(s, cfg.env, embedder, tokenizer) for s in mine for _ in range(cfg.group_size)]
            timer = RolloutTimer()
            sampling = replace(cfg.sampling, seed=cfg.sampling.seed + 1_000_003 * step + accelerator.process_index)
            trajectories = run_lockstep(episodes, engine, sampling, progress=cfg.progress, timer=timer)
            # 3. reward, 4. advantage
            scored = [score_trajectory(t, e.sample) for t, e in zip(trajectories, episodes, strict=True)]
            rewards = [episode_reward(t, e.sample, cfg.reward, rows)
                       for t, e, rows in zip(trajectories, episodes, scored, strict=True)]
            advantages = group_advantages(rewards, cfg.group_size, cfg.std_normalize)
            # 5. update
            rows = build_rows(trajectories, advantages, use_sampler_logprobs)
            lr = scheduler.get_last_lr()[0]
            start = time.perf_counter()
            update = policy_update(model, ref_model, rows, optimizer, scheduler, accelerator, loss_cfg)
            update_s = time.perf_counter() - start
            engine.sync_weights(model)  # the next rollout (or validation) samples from the updated policy
            # 6. log
            sums = _sum_over_processes(accelerator, rollout_sums(trajectories, scored, advantages, timer))
            all_rewards = accelerator.gather(torch.tensor(rewards, device=accelerator.device)).tolist()
            times = {"time/rollout_s": timer.llm_s, "time/update_s": update_s, "time/env_s": timer.env_s}
            metrics = step_metrics(step, sums, all_rewards, update, lr, times, cfg.group_size)
            # 7. validate, checkpoint
            if val_samples and cfg.validate_every and (step % cfg.validate_every == 0 or step == cfg.steps):
                metrics.update(validate(cfg, accelerator, engine, val_samples, embedder))
            if (probe_set or fixed) and ((cfg.validate_every and step % cfg.validate_every == 0) or step == cfg.steps):
                metrics.update(probe_step(cfg, accelerator, engine, probe_set, fixed, embedder, step, probe_path))
            if accelerator.is_main_process:
                append_metrics(metrics_path, metrics)
                run.log_metrics(metrics, step=step)
                log.info("step %d reward %.3f loss %.4f kl %.5f", step, metrics["reward/mean"],
                         metrics["loss"], metrics["kl"])
            # SIGTERM / SIGUSR1 (atommem.train.preemption): this step is done; checkpoint it and stop
            preempted = step < cfg.steps and stop.requested()
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or preempted:
                saved = save_checkpoint(accelerator, ckpt_root, step, {"data_position": position}, cfg.keep_checkpoints)
            if preempted:
                raise Preempted(f"{stop.signal} after step {step} of {cfg.steps}; checkpoint {saved} written, "
                                "a rerun resumes from it")
        # steps 0 (how rl.train_ids are chosen): the probe alone, and final/ is the start policy
        final = save_final(accelerator, model, tokenizer, out_dir)
        if accelerator.is_main_process:
            run.log_artifact(metrics_path)
    return final
