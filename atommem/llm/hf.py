"""Local transformers backend: batched chat generation with token ids and log-probs.

Our own decoding loop (not `model.generate`) so that each row samples from its own seeded
`torch.Generator` (results do not depend on micro-batching or on the global RNG) and so that the
log-prob of every sampled token comes out of the same forward pass. The GRPO trainer shares `model` and
`tokenizer` of this object; its teacher-forced log-probs are atommem.train.grpo.completion_logprobs.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, DynamicCache

from atommem.llm.base import Conversation, Generation, ModelConfig, SamplingConfig, generation_prompt_ids, row_seed
from atommem.llm.models import load_tokenizer, resolve_model

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}


class HFBackend:
    def __init__(self, cfg: ModelConfig):
        if cfg.dtype not in DTYPES:
            raise ValueError(f"model.dtype: unknown dtype {cfg.dtype!r}; valid: {', '.join(DTYPES)}")
        self.cfg = cfg
        path = resolve_model(cfg.name)
        self.tokenizer = load_tokenizer(cfg.tokenizer or cfg.name)
        self.device = torch.device(_pick_device(cfg.device))
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[cfg.dtype]).to(self.device)
        self.model.eval()
        # CPU attention (SmolLM2, bf16, one thread, batch 6 of ~1,100 tokens; measured): SDPA over a padded
        # batch falls back to materialised attention, so prompts are run one row at a time (no padding,
        # about 1.5x faster), and one-token decode steps use eager attention (2 to 3x faster than SDPA).
        on_cpu = self.device.type == "cpu"
        self.prefill_per_row = on_cpu
        self.decode_attention = "eager" if on_cpu else None
        self.eos_ids = _eos_ids(self.model.generation_config, self.tokenizer)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.eos_ids)

    # ---- generation -------------------------------------------------------------------------------
    def generate(self, conversations: list[Conversation], sampling: SamplingConfig) -> list[Generation]:
        prompts = [
            generation_prompt_ids(self.tokenizer, conv, self.cfg.max_model_len, sampling.max_new_tokens)
            for conv in conversations
        ]
        size = self.cfg.max_batch_size
        results: list[Generation] = []
        for start in range(0, len(prompts), size):
            results += self._generate_batch(prompts[start : start + size], sampling, first_row=start)
        return results

    @torch.no_grad()
    def _generate_batch(self, prompts: list[list[int]], sampling: SamplingConfig, first_row: int) -> list[Generation]:
        n = len(prompts)
        generators = None
        if sampling.temperature > 0:
            generators = [
                torch.Generator(device=self.device).manual_seed(row_seed(sampling.seed, first_row + i))
                for i in range(n)
            ]
        input_ids, attention_mask = self._left_pad(prompts)
        positions = position_ids(attention_mask)
        completions: list[list[int]] = [[] for _ in range(n)]
        logprobs: list[list[float]] = [[] for _ in range(n)]
        finished = [False] * n
        logits, past = self._prefill(prompts, input_ids, attention_mask, positions)
        for step in range(sampling.max_new_tokens):
            if step > 0:
                with self._attention(self.decode_attention):
                    out = self.model(
                        input_ids=input_ids,
                        attention_mask=attention_mask,
                        position_ids=positions,
                        past_key_values=past,
                        use_cache=True,
                        logits_to_keep=1,
                    )
                logits, past = out.logits[:, -1, :], out.past_key_values
            tokens, token_logprobs = _sample(logits.float(), sampling, generators)
            for i, (token, logprob) in enumerate(zip(tokens.tolist(), token_logprobs.tolist())):
                if not finished[i]:
                    completions[i].append(token)
                    logprobs[i].append(logprob)
                    finished[i] = token in self.eos_ids
            if all(finished):
                break
            # finished rows keep decoding throw-away tokens; their outputs are ignored
            input_ids = tokens[:, None]
            positions = positions[:, -1:] + 1
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((n, 1))], dim=1)
        return [
            Generation(
                text=self.tokenizer.decode(completions[i], skip_special_tokens=True),
                prompt_tokens=len(prompts[i]),
                completion_tokens=len(completions[i]),
                prompt_ids=list(prompts[i]),
                completion_ids=completions[i],
                logprobs=logprobs[i],
                finish_reason="stop" if finished[i] else "length",
            )
            for i in range(n)
        ]

    def _prefill(self, prompts, input_ids, attention_mask, positions) -> tuple[torch.Tensor, DynamicCache]:
        """Last-position logits (batch, vocab) of the prompts and their KV cache, left-padded like input_ids."""
        if not self.prefill_per_row or len(prompts) == 1:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                             use_cache=True, logits_to_keep=1)  # never materialise (batch, len, vocab) logits
            return out.logits[:, -1, :], out.past_key_values
        rows = [
            self.model(input_ids=torch.tensor([p], device=self.device), use_cache=True, logits_to_keep=1)
            for p in prompts
        ]
        width = input_ids.shape[1]
        cache = DynamicCache()
        for layer in range(len(rows[0].past_key_values.layers)):
            keys, values = [], []
            for row in rows:
                cached = row.past_key_values.layers[layer]
                pad = (0, 0, width - cached.keys.shape[-2], 0)  # left padding on the sequence axis
                keys.append(F.pad(cached.keys, pad))
                values.append(F.pad(cached.values, pad))
            cache.update(torch.cat(keys), torch.cat(values), layer)
        return torch.cat([row.logits[:, -1, :] for row in rows]), cache

    @contextmanager
    def _attention(self, implementation: str | None):
        """Run the block with another attention implementation (None: the loaded one), then restore it."""
        loaded = self.model.config._attn_implementation
        if implementation is None or implementation == loaded:
            yield
            return
        self.model.set_attn_implementation(implementation)
        try:
            yield
        finally:
            self.model.set_attn_implementation(loaded)

    def _left_pad(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        length = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for i, seq in enumerate(sequences):
            if seq:
                ids[i, length - len(seq) :] = torch.tensor(seq, dtype=torch.long)
                mask[i, length - len(seq) :] = 1
        return ids.to(self.device), mask.to(self.device)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted from each row's first real token (0 there), whatever left padding precedes it:
    the same for a row alone or padded in a batch, in generation and in training."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def _sample(logits: torch.Tensor, sampling: SamplingConfig, generators) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row; return it with its log-prob under log_softmax(logits / temperature)."""
    if sampling.temperature <= 0:
        logp = torch.log_softmax(logits, dim=-1)
        tokens = logp.argmax(dim=-1)
    else:
        scaled = logits / sampling.temperature
        logp = torch.log_softmax(scaled, dim=-1)
        probs = torch.softmax(_filter_top_k_top_p(scaled, sampling.top_k, sampling.top_p), dim=-1)
        tokens = torch.cat([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(generators)])
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


def _filter_top_k_top_p(scaled: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    if top_k > 0 and top_k < scaled.shape[-1]:
        kth = torch.topk(scaled, top_k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(scaled, descending=True, dim=-1)
        sorted_probs = torch.softmax(sorted_logits, dim=-1)
        # drop a token once the mass before it already reaches top_p (the top token always stays)
        drop = sorted_probs.cumsum(-1) - sorted_probs >= top_p
        scaled = scaled.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return scaled


def _pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _eos_ids(generation_config, tokenizer) -> set[int]:
    eos = generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("model has no eos_token_id in its generation config or tokenizer")
    return ids
