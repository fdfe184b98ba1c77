"""OpenAI-compatible HTTP backend (/v1/chat/completions): vLLM serve, transformers serve, hosted APIs.

Used for teachers, judges and evaluation against a served model. Returns text and token counts only
(no token ids or log-probs).
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from atommem.llm.base import (
    Conversation,
    Generation,
    ModelConfig,
    SamplingConfig,
    chat_prompt_ids,
    chat_template_kwargs,
    row_seed,
)
from atommem.llm.models import load_tokenizer, resolve_model

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 429, 500, 502, 503, 504}
MAX_BACKOFF_S = 30.0


class OpenAIBackend:
    def __init__(self, cfg: ModelConfig):
        if not cfg.base_url:
            raise ValueError("model.base_url is required for backend 'openai' (e.g. http://localhost:8000/v1)")
        self.cfg = cfg
        self.base_url = cfg.base_url.rstrip("/")
        self.headers = {"Content-Type": "application/json"}
        api_key = os.environ.get(cfg.api_key_env)
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        # the name the server knows: `vllm serve X` / `transformers serve X` serve under X, so aliases send
        # what they resolve to (a hub id, or the converted folder that was served)
        self.model_name = resolve_model(cfg.name)
        self.tokenizer = _load_tokenizer(cfg.tokenizer, self.model_name)
        # Qwen3-style templates think unless told not to; vLLM and transformers serve accept this field
        self.template_kwargs = chat_template_kwargs(self.tokenizer) if self.tokenizer is not None else {}

    def generate(self, conversations: list[Conversation], sampling: SamplingConfig) -> list[Generation]:
        if not conversations:
            return []
        workers = max(1, min(self.cfg.max_batch_size, len(conversations)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda item: self._one(item[1], sampling, item[0]), enumerate(conversations)))

    def _one(self, conversation: Conversation, sampling: SamplingConfig, row: int) -> Generation:
        payload = {
            "model": self.model_name,
            "messages": conversation,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_new_tokens,
            # one seed per row: identical conversations in one batch (GRPO groups) must differ
            "seed": row_seed(sampling.seed, row),
        }
        if sampling.top_k > 0:
            payload["top_k"] = sampling.top_k  # not in the OpenAI spec; vLLM accepts it
        if self.template_kwargs:
            payload["chat_template_kwargs"] = self.template_kwargs
        body = self._post("/chat/completions", payload)
        try:
            choice = body["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise RuntimeError(f"{self.base_url}/chat/completions: unexpected response {str(body)[:500]}") from None
        usage = body.get("usage") or {}
        prompt_tokens = usage.get("prompt_tokens")
        completion_tokens = usage.get("completion_tokens")
        if prompt_tokens is None:
            prompt_tokens = len(chat_prompt_ids(self.tokenizer, conversation)) if self.tokenizer else 0
        if completion_tokens is None:
            completion_tokens = len(self.tokenizer.encode(text, add_special_tokens=False)) if self.tokenizer else 0
        return Generation(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        )

    def _post(self, path: str, payload: dict) -> dict:
        url = f"{self.base_url}{path}"
        last_error = ""
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                time.sleep(min(MAX_BACKOFF_S, 0.5 * 2 ** (attempt - 1)))
            try:
                response = requests.post(url, json=payload, headers=self.headers, timeout=self.cfg.request_timeout)
            except (requests.ConnectionError, requests.Timeout) as err:
                last_error = f"{type(err).__name__}: {err}"
                log.warning("POST %s failed (attempt %d): %s", url, attempt + 1, last_error)
                continue
            if response.status_code in RETRY_STATUS:
                last_error = f"HTTP {response.status_code}: {response.text[:300]}"
                log.warning("POST %s failed (attempt %d): %s", url, attempt + 1, last_error)
                continue
            if response.status_code != 200:  # a client error: retrying cannot help
                raise RuntimeError(f"POST {url} (model.base_url={self.base_url}) returned HTTP "
                                   f"{response.status_code}: {response.text[:500]}")
            return response.json()
        raise RuntimeError(
            f"POST {url} failed after {self.cfg.max_retries + 1} attempts; is a server running at "
            f"model.base_url={self.base_url}? last error: {last_error}"
        )


def _load_tokenizer(tokenizer: str | None, model_name: str):
    """The local tokenizer for chunking and token counts; optional unless model.tokenizer is set
    (a hosted judge like gpt-4o-mini has none we could load)."""
    from transformers import AutoTokenizer

    if tokenizer:
        return load_tokenizer(tokenizer)
    try:
        return AutoTokenizer.from_pretrained(model_name)
    except Exception as err:  # noqa: BLE001 - any load failure just means "no local tokenizer"
        log.warning("no local tokenizer for model %r (%s); set model.tokenizer to chunk or count "
                    "tokens locally", model_name, err)
        return None


def wait_until_ready(base_url: str, timeout: float = 90.0, interval: float = 0.5) -> None:
    """Poll until GET {base_url}/models or the server's /health answers 200; else raise TimeoutError
    naming base_url. (/health because transformers 5.17 serve answers /v1/models with HTTP 500 when the
    hub cache folder does not exist, though it serves chat completions fine.)"""
    base = base_url.rstrip("/")
    root = base[: -len("/v1")] if base.endswith("/v1") else base
    urls = [f"{base}/models", f"{root}/health"]
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        for url in urls:
            try:
                response = requests.get(url, timeout=min(5.0, timeout))
                if response.status_code == 200:
                    return
                last_error = f"GET {url}: HTTP {response.status_code}"
            except (requests.ConnectionError, requests.Timeout) as err:
                last_error = f"GET {url}: {type(err).__name__}"
        time.sleep(interval)
    raise TimeoutError(f"server at {base_url} not ready after {timeout:.0f} s ({last_error})")
