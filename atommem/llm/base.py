"""The LLM contract every backend follows: chat conversations in, `Generation`s out.

Backends (hf, openai, vllm) are imported lazily by `build_llm`, so importing this module never pulls in
torch, transformers or vllm.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from atommem.config import option, require, require_positive

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

DTYPE_NAMES = ("float32", "bfloat16", "float16", "auto")  # the hf backend maps them to torch dtypes
Conversation = list[dict]  # [{"role": "system", "content": ...}, {"role": "user", "content": ...}, ...]


@dataclass
class SamplingConfig:
    temperature: float = option(0.0, "0 = greedy")
    top_p: float = option(1.0, "nucleus sampling")
    top_k: int = option(0, "0 = off")
    # the CPU workflow's turn length; the paper's runs (config/paper.yaml) allow 2048
    max_new_tokens: int = option(96, "tokens generated per turn (the statetrack oracle writes up to about 90)")
    seed: int = option(0, "sampling seed")

    def __post_init__(self) -> None:
        require(self.temperature >= 0, "temperature", ">= 0 (0 = greedy)", self.temperature)
        require(0 < self.top_p <= 1, "top_p", "in (0, 1]", self.top_p)
        require(self.top_k >= 0, "top_k", ">= 0 (0 = off)", self.top_k)
        require_positive(self, "max_new_tokens")


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    prompt_ids: list[int] | None = None  # local backends only
    completion_ids: list[int] | None = None  # up to and including EOS
    logprobs: list[float] | None = None  # per completion token, local backends only
    finish_reason: str = "stop"  # "stop" | "length"


@dataclass
class ModelConfig:
    name: str = option("smollm2-135m", "alias (smollm2-135m, tiny-random, qwen3-8b ...), hub id or local folder")
    backend: str = option("hf", "generation backend: hf | openai | vllm")
    base_url: str | None = option(None, "openai backend: server URL, e.g. http://localhost:8000/v1")
    api_key_env: str = option("OPENAI_API_KEY", "openai backend: env var holding the key")
    tokenizer: str | None = option(None, "tokenizer name or folder (null = name)")
    dtype: str = option("float32", "weights dtype: float32 | bfloat16 | float16 | auto")
    device: str = option("auto", "torch device of the hf backend")
    max_batch_size: int = option(8, "micro-batch size of one generate call")
    max_model_len: int = option(8192, "context window in tokens")
    request_timeout: float = option(600.0, "openai backend: seconds per HTTP request")
    max_retries: int = option(4, "openai backend: retries on connection errors / 5xx, with exponential backoff")
    tensor_parallel_size: int = option(1, "vllm backend: GPUs per engine")
    gpu_memory_utilization: float = option(0.85, "vllm backend: GPU memory fraction")
    seed: int = option(0, "vllm backend: engine seed")

    def __post_init__(self) -> None:
        require(self.backend in BACKENDS, "backend", f"one of {', '.join(BACKENDS)}", self.backend)
        require(self.dtype in DTYPE_NAMES, "dtype", f"one of {', '.join(DTYPE_NAMES)}", self.dtype)
        require(bool(self.name), "name", "a model alias, folder or hub id", self.name)
        require_positive(self, "max_batch_size", "max_model_len", "tensor_parallel_size")
        require(self.request_timeout > 0, "request_timeout", "> 0 seconds", self.request_timeout)
        require(self.max_retries >= 0, "max_retries", ">= 0", self.max_retries)
        require(0 < self.gpu_memory_utilization <= 1, "gpu_memory_utilization", "in (0, 1]",
                self.gpu_memory_utilization)


class LLM(Protocol):
    tokenizer: PreTrainedTokenizerBase  # used for chunking and token counts

    def generate(self, conversations: list[Conversation], sampling: SamplingConfig) -> list[Generation]: ...


# backend name -> (module, class); imported only when chosen
BACKENDS = {
    "hf": ("atommem.llm.hf", "HFBackend"),
    "openai": ("atommem.llm.openai_api", "OpenAIBackend"),
    "vllm": ("atommem.llm.vllm_backend", "VLLMBackend"),
}


def build_llm(cfg: ModelConfig) -> LLM:
    if cfg.backend not in BACKENDS:
        raise ValueError(f"model.backend: unknown backend {cfg.backend!r}; valid backends: {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[cfg.backend]
    return getattr(importlib.import_module(module_name), class_name)(cfg)


def chat_template_kwargs(tokenizer) -> dict:
    """Extra chat-template arguments: Qwen3-style templates think by default; the agent must not."""
    template = getattr(tokenizer, "chat_template", None) or ""
    return {"enable_thinking": False} if "enable_thinking" in template else {}


def chat_prompt_ids(tokenizer, conversation: Conversation) -> list[int]:
    """Token ids of `conversation` rendered with the chat template plus the assistant generation prompt.

    Special tokens come only from the template: a message content holding a special token's string (a
    document or a model-written memory with `<|im_end|>`) is tokenized as plain text, so it cannot end a
    turn or open a new one.
    """
    text = _render(tokenizer, conversation)
    # the template already writes any BOS/special tokens; adding them again would duplicate them
    if not any(_holds_special(tokenizer, m["content"]) for m in conversation):
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    # render with placeholders, then tokenize the template's text with special tokens and each content
    # without them (the common case above keeps the single-pass ids the model was trained on)
    holders = [f"\x00atommem-content-{i}\x00" for i in range(len(conversation))]
    text = _render(tokenizer, [{**m, "content": h} for m, h in zip(conversation, holders)])
    ids, pos = [], 0
    for holder, message in zip(holders, conversation):
        at = text.find(holder, pos)
        if at < 0:
            raise ValueError("the chat template changes message contents; cannot keep them free of special tokens")
        ids += tokenizer(text[pos:at], add_special_tokens=False)["input_ids"]
        ids += tokenizer(message["content"], add_special_tokens=False, split_special_tokens=True)["input_ids"]
        pos = at + len(holder)
    return ids + tokenizer(text[pos:], add_special_tokens=False)["input_ids"]


def _render(tokenizer, conversation: Conversation) -> str:
    return tokenizer.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=False, **chat_template_kwargs(tokenizer)
    )


def _holds_special(tokenizer, content: str) -> bool:
    return any(token in content for token in tokenizer.added_tokens_encoder)


def system_prefix_len(tokenizer, conversation: Conversation, ids: list[int]) -> int:
    """How many leading tokens of `ids` (the rendered `conversation`) are its system message; 0 without one,
    or when the template does not render the system message alone as a prefix."""
    if not conversation or conversation[0]["role"] != "system":
        return 0
    text = tokenizer.apply_chat_template(conversation[:1], tokenize=False, **chat_template_kwargs(tokenizer))
    head = tokenizer(text, add_special_tokens=False)["input_ids"]
    return len(head) if ids[: len(head)] == head else 0


def fit_prompt(ids: list[int], budget: int, keep_head: int = 0) -> list[int]:
    """THE rule for an over-long prompt, in generation (RL rollouts, evaluation) and SFT alike: keep its
    first `keep_head` tokens (the system message: the agent's instructions) and its last tokens (the current
    chunk, the memory and the generation prompt), dropping the middle. Warned once per process: failing
    mid-run on one long prompt would waste a whole evaluation or RL step."""
    if len(ids) <= budget:
        return ids
    keep_head = keep_head if keep_head < budget else 0  # a system message alone over budget: the end only
    global _truncation_warned
    if not _truncation_warned:
        log.warning(
            "a prompt of %d tokens exceeds its budget of %d tokens; keeping its system message (%d tokens) and "
            "its last %d tokens (further truncations are not logged)", len(ids), budget, keep_head,
            budget - keep_head,
        )
        _truncation_warned = True
    return ids[:keep_head] + ids[len(ids) - (budget - keep_head) :]


def generation_prompt_ids(tokenizer, conversation: Conversation, max_model_len: int, max_new_tokens: int) -> list[int]:
    """The prompt a local engine generates from: the chat template, fitted into max_model_len - max_new_tokens."""
    budget = max_model_len - max_new_tokens
    if budget < 1:
        raise ValueError(
            f"sampling.max_new_tokens ({max_new_tokens}) leaves no room for the prompt "
            f"within model.max_model_len ({max_model_len})"
        )
    return fit_chat_prompt(tokenizer, conversation, budget)


def fit_chat_prompt(tokenizer, conversation: Conversation, budget: int) -> list[int]:
    """`chat_prompt_ids` of the conversation, over-long ones cut by `fit_prompt`'s rule."""
    ids = chat_prompt_ids(tokenizer, conversation)
    keep_head = system_prefix_len(tokenizer, conversation, ids) if len(ids) > budget else 0
    return fit_prompt(ids, budget, keep_head)


_truncation_warned = False


def row_seed(seed: int, index: int) -> int:
    """Seed for row `index` of a batch: distinct rows (e.g. a GRPO group of identical prompts) get
    independent streams, and nearby seeds (seed, seed+1) do not share streams across rows."""
    import numpy as np

    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0]) & 0x7FFFFFFF
