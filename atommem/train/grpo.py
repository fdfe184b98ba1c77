"""GRPO pieces for the multi-turn memory agent: group advantages, per-turn rows, the clipped token loss with a
KL penalty, and one policy update over a batch of rows.

Why not TRL's GRPOTrainer: it trains one (prompt, completion) per sample, while every turn of our agent has a
prompt rebuilt from its memory state. Here each turn is its own (prompt, response) row carrying the
advantage of the episode it belongs to (the paper's RL stage, docs/training.md).

Old log-probs (one rule, `sampler_is_exact`): a row's `old_logprobs` are the sampler's log-probs only when
the sampler drew from the model's own distribution (temperature 1, top_p >= 1, top_k 0), because only then
are they the log_softmax(logits) that the loss computes, whatever the engine reports (raw or processed
log-probs). Otherwise they are None and the update uses the current policy's detached log-probs, which is
exact here because each batch gets a single optimizer step.

Precision: the trained weights are fp32 (master weights) and the forward passes of the policy and of the
KL reference run under the same accelerator autocast (bf16 when `mixed_precision: bf16`), so the KL at the
first step is exactly 0 and an update of lr 1e-6 is not rounded away.

Memory: `completion_logprobs` never holds a whole fp32 (rows, completion, vocab) tensor: log-softmax,
gather and entropy run over chunks of positions, forward and backward (`SelectedLogprobs`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from accelerate.utils import DistributedType

from atommem.llm.hf import position_ids
from atommem.train.rl_config import RLConfig


def group_advantages(rewards: Sequence[float], group_size: int, std_normalize: bool = False) -> list[float]:
    """Advantage = reward - mean of its group (consecutive blocks of `group_size`); optionally / group std."""
    if len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    advantages = []
    for start in range(0, len(rewards), group_size):
        group = torch.tensor(rewards[start : start + group_size], dtype=torch.float64)
        centred = group - group.mean()
        if std_normalize:
            # unbiased std as in DeepSeekMath; a constant group has zero advantage anyway
            centred = centred / (group.std() + 1e-4) if group_size > 1 else centred
        advantages.extend(centred.tolist())
    return advantages


@dataclass
class TurnRow:
    """One training sequence: a turn's prompt, the sampled response and its episode's advantage."""

    prompt_ids: list[int]
    completion_ids: list[int]
    old_logprobs: list[float] | None
    advantage: float
    sampler_logprobs: list[float] | None = None  # what the rollout engine reported, for the sampler/trainer gap


def sampler_is_exact(sampling) -> bool:
    """True when the sampler drew from the model's own distribution, so its log-probs are the old log-probs
    (the module docstring's rule; the RL loop passes this as `use_sampler_logprobs`)."""
    return sampling.temperature == 1.0 and sampling.top_p >= 1.0 and sampling.top_k == 0


def build_rows(trajectories, advantages: Sequence[float], use_sampler_logprobs: bool) -> list[TurnRow]:
    """Every turn of every trajectory becomes a row with its trajectory's advantage, from exactly the token
    ids the rollout sampled (a local engine records them on every turn)."""
    rows = []
    for trajectory, advantage in zip(trajectories, advantages, strict=True):
        for turn in trajectory.turns:
            if turn.completion_ids is None:
                # re-tokenising the text would train on ids the policy never sampled
                raise ValueError(f"sample {trajectory.sample_id}: turn {turn.turn} has no token ids; RL rollouts "
                                 "need a local engine (rollout: hf or vllm) that records them")
            sampled = list(turn.logprobs) if turn.logprobs is not None else None
            if turn.completion_ids:
                rows.append(TurnRow(list(turn.prompt_ids), list(turn.completion_ids),
                                    sampled if use_sampler_logprobs else None, float(advantage), sampled))
    return rows


@dataclass
class Batch:
    """Rows packed as [left-padded prompt | right-padded completion] so completions share positions."""

    input_ids: torch.Tensor  # (B, P + C)
    attention_mask: torch.Tensor  # (B, P + C)
    position_ids: torch.Tensor  # (B, P + C), counted from each row's first real token
    completion_mask: torch.Tensor  # (B, C) float, 1 on real completion tokens
    completion_ids: torch.Tensor  # (B, C)
    old_logprobs: torch.Tensor | None  # (B, C) or None when any row lacks sampler log-probs
    advantages: torch.Tensor  # (B,)
    sampler_logprobs: torch.Tensor | None = None  # (B, C) or None when any row lacks them


def collate(rows: Sequence[TurnRow], device: torch.device | str = "cpu", pad_id: int = 0) -> Batch:
    """Pad a micro-batch; pad ids are never attended to nor scored, so any valid id works."""
    prompt_len = max(len(r.prompt_ids) for r in rows)
    completion_len = max(len(r.completion_ids) for r in rows)
    ids, attn, comp_ids, comp_mask, old, sampled = [], [], [], [], [], []
    for r in rows:
        left = prompt_len - len(r.prompt_ids)
        right = completion_len - len(r.completion_ids)
        ids.append([pad_id] * left + r.prompt_ids + r.completion_ids + [pad_id] * right)
        attn.append([0] * left + [1] * (len(r.prompt_ids) + len(r.completion_ids)) + [0] * right)
        comp_ids.append(r.completion_ids + [pad_id] * right)
        comp_mask.append([1.0] * len(r.completion_ids) + [0.0] * right)
        if r.old_logprobs is not None:
            old.append(r.old_logprobs + [0.0] * right)
        if r.sampler_logprobs is not None:
            sampled.append(r.sampler_logprobs + [0.0] * right)
    attention_mask = torch.tensor(attn, device=device)
    return Batch(
        input_ids=torch.tensor(ids, device=device),
        attention_mask=attention_mask,
        position_ids=position_ids(attention_mask),
        completion_mask=torch.tensor(comp_mask, device=device),
        completion_ids=torch.tensor(comp_ids, device=device),
        old_logprobs=torch.tensor(old, device=device) if len(old) == len(rows) else None,
        advantages=torch.tensor([r.advantage for r in rows], device=device, dtype=torch.float32),
        sampler_logprobs=torch.tensor(sampled, device=device) if len(sampled) == len(rows) else None,
    )


# elements of one fp32 (positions, vocab) chunk: about 256 MB, 440 positions of a 152k vocabulary
CHUNK_ELEMENTS = 2**26


class SelectedLogprobs(torch.autograd.Function):
    """log_softmax(logits / T) at the chosen ids, and the entropy of softmax(logits / T), per position.

    Equal to the full computation, but the fp32 log-softmax exists one chunk of positions at a time, in the
    forward and in the backward (which recomputes softmax from the saved logits and log-normalisers);
    entropy carries no gradient.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, ids: torch.Tensor, temperature: float):
        positions, vocab = logits.shape
        step = max(1, CHUNK_ELEMENTS // vocab)
        logprobs = torch.empty(positions, dtype=torch.float32, device=logits.device)
        entropy, log_norm = torch.empty_like(logprobs), torch.empty_like(logprobs)
        for start in range(0, positions, step):
            rows = slice(start, start + step)
            scaled = logits[rows].float() / temperature
            lse = torch.logsumexp(scaled, dim=-1)
            logprobs[rows] = scaled.gather(-1, ids[rows, None]).squeeze(-1) - lse
            # H = -sum p log p = lse - sum p * scaled
            entropy[rows] = lse - (torch.exp(scaled - lse[:, None]) * scaled).sum(-1)
            log_norm[rows] = lse
        ctx.save_for_backward(logits, ids, log_norm)
        ctx.temperature = temperature
        ctx.mark_non_differentiable(entropy)
        return logprobs, entropy

    @staticmethod
    def backward(ctx, grad_logprobs: torch.Tensor, _grad_entropy):
        logits, ids, log_norm = ctx.saved_tensors
        temperature = ctx.temperature
        step = max(1, CHUNK_ELEMENTS // logits.shape[1])
        grad = torch.empty_like(logits)
        for start in range(0, logits.shape[0], step):
            rows = slice(start, start + step)
            upstream = grad_logprobs[rows, None]
            # d logprob / d scaled = onehot(id) - softmax(scaled)
            chunk = torch.exp(logits[rows].float() / temperature - log_norm[rows, None]) * -upstream
            chunk.scatter_add_(-1, ids[rows, None], upstream)
            grad[rows] = (chunk / temperature).to(grad.dtype)
        return grad, None, None


def completion_logprobs(model, batch: Batch, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs of the completion tokens (with grad if enabled) and their entropy (no grad)."""
    rows, completion_len = batch.completion_ids.shape
    # the logits that predict completion tokens: the last C+1 positions minus the final one (scored against
    # a dummy id and dropped, so the logits tensor is used as is, without a strided copy)
    logits = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        logits_to_keep=completion_len + 1,
        use_cache=False,
    ).logits
    targets = F.pad(batch.completion_ids, (0, 1))
    logprobs, entropy = SelectedLogprobs.apply(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), temperature if temperature > 0 else 1.0
    )
    return logprobs.view(rows, -1)[:, :-1], entropy.view(rows, -1)[:, :-1]


@dataclass
class TokenLoss:
    loss: torch.Tensor  # per token: -min(r*A, clip(r)*A) + kl_coef * kl
    kl: torch.Tensor  # per token k3 estimate of KL(policy || reference); zeros without a reference
    clipped: torch.Tensor  # per token bool: the clipped branch was taken (no policy gradient)


def token_loss(
    new_logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float,
    clip_high: float,
    ref_logprobs: torch.Tensor | None = None,
    kl_coef: float = 0.0,
) -> TokenLoss:
    """The clipped surrogate per token (asymmetric clip range 1-clip_low .. 1+clip_high) plus k3 KL."""
    advantages = advantages.unsqueeze(-1) if advantages.dim() == new_logprobs.dim() - 1 else advantages
    ratio = torch.exp(new_logprobs - old_logprobs)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * advantages
    loss = -torch.min(unclipped, clipped)
    is_clipped = ((ratio < 1 - clip_low) & (advantages < 0)) | ((ratio > 1 + clip_high) & (advantages > 0))
    if ref_logprobs is None:
        kl = torch.zeros_like(new_logprobs)
    else:
        # k3 "low-variance" estimator (Schulman): unbiased, always >= 0
        delta = ref_logprobs - new_logprobs
        kl = torch.exp(delta) - delta - 1
        loss = loss + kl_coef * kl
    return TokenLoss(loss=loss, kl=kl, clipped=is_clipped)


@dataclass
class LossConfig:
    """The update's share of RLConfig; its defaults are RLConfig's, written there once."""

    clip_low: float = RLConfig.clip_low
    clip_high: float = RLConfig.clip_high
    kl_coef: float = RLConfig.kl_coef
    temperature: float = 1.0  # of the rollouts (RLConfig.sampling), which the log-probs are taken at
    micro_batch_size: int = RLConfig.micro_batch_size
    max_grad_norm: float = RLConfig.max_grad_norm

    @classmethod
    def of(cls, cfg: RLConfig) -> LossConfig:
        return cls(clip_low=cfg.clip_low, clip_high=cfg.clip_high, kl_coef=cfg.kl_coef,
                   temperature=cfg.sampling.temperature, micro_batch_size=cfg.micro_batch_size,
                   max_grad_norm=cfg.max_grad_norm)


def accumulating(accelerator, model, last: bool):
    """DDP: no gradient all-reduce before the step's last micro-batch (it reduces the accumulated sum once).
    FSDP reduce-scatters every micro-batch instead: accumulating unsharded gradients would cost a whole
    fp32 model per GPU."""
    if last or accelerator.distributed_type == DistributedType.FSDP:
        return contextlib.nullcontext()
    return accelerator.no_sync(model)


def policy_update(model, ref_model, rows: Sequence[TurnRow], optimizer, scheduler, accelerator, cfg: LossConfig) -> dict:
    """One optimizer step on all rows: micro-batches accumulate gradients of the token-mean loss.

    The loss of a micro-batch is its summed token loss divided by the number of completion tokens of the
    whole step (over all processes), so the accumulated gradient is the exact token mean. Every process
    runs the same number of micro-batches (padding with zero-weight repeats) because sharded models
    (FSDP) need every forward to be collective.

    Also measured: |sampler log-prob - trainer log-prob| of every sampled token (mean and max over the step,
    `logprob_gap/*`), before the update, so both score the same weights: near 0 when the HF policy samples,
    the kernel/precision mismatch of an inference engine such as vLLM.
    """
    model.train()
    local_tokens = sum(len(r.completion_ids) for r in rows)
    padding_row = rows[:1]
    if cfg.kl_coef == 0:
        # without the KL term a row of advantage 0 has loss 0 and gradient 0 at every token: skipping it
        # gives the same update (its tokens stay in the token-mean denominator) for none of the compute
        rows = [r for r in rows if r.advantage != 0]
    # rows of similar length share a micro-batch: less padding to run through the model (same loss)
    rows = sorted(rows, key=lambda r: len(r.prompt_ids) + len(r.completion_ids))
    micro_batches = [rows[i : i + cfg.micro_batch_size] for i in range(0, len(rows), cfg.micro_batch_size)]
    run_tokens = sum(len(r.completion_ids) for r in rows)
    counts = accelerator.gather(torch.tensor([len(micro_batches), local_tokens, run_tokens],
                                             device=accelerator.device))
    counts = counts.view(-1, 3)
    num_micro, global_tokens = int(counts[:, 0].max()), int(counts[:, 1].sum())
    global_run_tokens = int(counts[:, 2].sum())
    # DDP/FSDP average gradients over processes; multiply back so the result is sum / global tokens
    scale = accelerator.num_processes / max(global_tokens, 1)

    totals = {"loss": 0.0, "kl": 0.0, "clipped": 0.0, "entropy": 0.0, "gap": 0.0, "gap_tokens": 0.0}
    gap_max = 0.0
    optimizer.zero_grad(set_to_none=True)
    for i in range(num_micro):
        padding_repeat = i >= len(micro_batches)
        repeated = (micro_batches[-1] if micro_batches else padding_row) if padding_repeat else micro_batches[i]
        batch = collate(repeated, accelerator.device)
        with accumulating(accelerator, model, last=i == num_micro - 1):
            with accelerator.autocast():
                new_logprobs, entropy = completion_logprobs(model, batch, cfg.temperature)
            ref_logprobs = None
            if ref_model is not None and cfg.kl_coef > 0:
                # the policy's autocast: the same weights give the same log-probs, KL 0 at the first step
                with torch.no_grad(), accelerator.autocast():
                    ref_logprobs, _ = completion_logprobs(ref_model, batch, cfg.temperature)
            old_logprobs = batch.old_logprobs if batch.old_logprobs is not None else new_logprobs.detach()
            terms = token_loss(new_logprobs, old_logprobs, batch.advantages, cfg.clip_low, cfg.clip_high,
                               ref_logprobs, cfg.kl_coef)
            mask = batch.completion_mask
            weight = 0.0 if padding_repeat else scale
            accelerator.backward((terms.loss * mask).sum() * weight)
        if not padding_repeat:
            totals["loss"] += float((terms.loss.detach() * mask).sum())
            totals["kl"] += float((terms.kl.detach() * mask).sum())
            totals["clipped"] += float((terms.clipped.float() * mask).sum())
            totals["entropy"] += float((entropy * mask).sum())
            if batch.sampler_logprobs is not None:
                gap = (new_logprobs.detach() - batch.sampler_logprobs).abs() * mask
                totals["gap"] += float(gap.sum())
                totals["gap_tokens"] += float(mask.sum())
                gap_max = max(gap_max, float(gap.max()))
    grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)

    summed = accelerator.reduce(torch.tensor(list(totals.values()), device=accelerator.device), "sum")
    denom = max(global_tokens, 1)
    loss, kl, clipped = (float(x) / denom for x in summed[:3])
    metrics = {"loss": loss, "kl": kl, "clip_frac": clipped,
               "entropy": float(summed[3]) / max(global_run_tokens, 1),  # over the tokens that ran
               "grad_norm": float(grad_norm), "tokens": global_tokens,
               "tokens_skipped_frac": 1 - global_run_tokens / denom}
    gap_sum, gap_tokens = float(summed[4]), float(summed[5])
    if gap_tokens > 0:
        metrics["logprob_gap/mean"] = gap_sum / gap_tokens
        metrics["logprob_gap/max"] = float(accelerator.gather(torch.tensor([gap_max], device=accelerator.device)).max())
    return metrics
