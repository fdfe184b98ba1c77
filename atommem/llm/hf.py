"""Local transformers backend: batched chat generation with token ids and log-probs.

Our own decoding loop (not `model.generate`) so that each row samples from its own seeded
`torch.Generator` (results do not depend on micro-batching or on the global RNG) and so that the
log-prob of every sampled token comes out of the same forward pass. The GRPO trainer reuses `model`,
`tokenizer` and `logprobs()` of this object.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from atommem.llm.base import (
    Conversation,
    Generation,
    ModelConfig,
    SamplingConfig,
    chat_prompt_ids,
    fit_prompt,
    row_seed,
)
from atommem.llm.models import resolve_model

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}


class HFBackend:
    def __init__(self, cfg: ModelConfig):
        if cfg.dtype not in DTYPES:
            raise ValueError(f"model.dtype: unknown dtype {cfg.dtype!r}; valid: {', '.join(DTYPES)}")
        self.cfg = cfg
        path = resolve_model(cfg.name)
        tokenizer_path = resolve_model(cfg.tokenizer) if cfg.tokenizer else path
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        self.device = torch.device(_pick_device(cfg.device))
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[cfg.dtype]).to(self.device)
        self.model.eval()
        self.eos_ids = _eos_ids(self.model.generation_config, self.tokenizer)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.eos_ids)

    # ---- generation -------------------------------------------------------------------------------
    def generate(self, conversations: list[Conversation], sampling: SamplingConfig) -> list[Generation]:
        prompts = [
            fit_prompt(chat_prompt_ids(self.tokenizer, conv), self.cfg.max_model_len, sampling.max_new_tokens)
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
        positions = _positions(attention_mask)
        completions: list[list[int]] = [[] for _ in range(n)]
        logprobs: list[list[float]] = [[] for _ in range(n)]
        finished = [False] * n
        past = None
        for _ in range(sampling.max_new_tokens):
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=positions,
                past_key_values=past,
                use_cache=True,
                logits_to_keep=1,  # never materialise (batch, prompt_len, vocab) logits
            )
            past = out.past_key_values
            tokens, token_logprobs = _sample(out.logits[:, -1, :].float(), sampling, generators)
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

    # ---- teacher forcing --------------------------------------------------------------------------
    def logprobs(
        self,
        prompt_ids_list: list[list[int]],
        completion_ids_list: list[list[int]],
        temperature: float = 1.0,
        grad: bool = False,
    ) -> list[torch.Tensor]:
        """Log-probs of each completion token given its prompt, as `generate` reports them:
        log_softmax(logits / temperature), or of the raw logits when temperature is 0.
        Returns one 1-D float32 tensor per row, with autograd when `grad` is true."""
        if len(prompt_ids_list) != len(completion_ids_list):
            raise ValueError(
                f"logprobs: {len(prompt_ids_list)} prompts but {len(completion_ids_list)} completions"
            )
        results: list[torch.Tensor] = []
        size = self.cfg.max_batch_size
        with torch.enable_grad() if grad else torch.no_grad():
            for start in range(0, len(prompt_ids_list), size):
                prompts = prompt_ids_list[start : start + size]
                completions = completion_ids_list[start : start + size]
                results += self._teacher_forced(prompts, completions, temperature)
        return results

    def _teacher_forced(self, prompts, completions, temperature: float) -> list[torch.Tensor]:
        # left padding puts every completion at the end, so only the last `keep` logits are needed
        input_ids, attention_mask = self._left_pad([list(p) + list(c) for p, c in zip(prompts, completions)])
        keep = max(len(c) for c in completions) + 1
        logits = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=_positions(attention_mask),
            use_cache=False,
            logits_to_keep=keep,
        ).logits.float()
        if temperature > 0:
            logits = logits / temperature
        logp = torch.log_softmax(logits, dim=-1)
        rows = []
        for i, completion in enumerate(completions):
            c = len(completion)
            # kept index j predicts the token at kept index j + 1; the completion fills the last c slots
            predicted = logp[i, keep - 1 - c : keep - 1]
            target = torch.tensor(list(completion), dtype=torch.long, device=self.device)
            rows.append(predicted.gather(-1, target[:, None]).squeeze(-1))
        return rows

    def _left_pad(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        length = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for i, seq in enumerate(sequences):
            if seq:
                ids[i, length - len(seq) :] = torch.tensor(seq, dtype=torch.long)
                mask[i, length - len(seq) :] = 1
        return ids.to(self.device), mask.to(self.device)


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    # with left padding, each row's first real token must sit at position 0
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
