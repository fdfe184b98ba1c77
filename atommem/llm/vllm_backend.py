"""vLLM backend for GPU rollouts and evaluation (install the `gpu` extra). vllm is imported only when a
backend is built, so this module imports fine on CPU-only machines.

Prompts are rendered with the same chat template helper as the HF backend and passed as token ids, so
`prompt_ids` are exactly what the model saw. Log-probs are vLLM's default raw log-probs (temperature 1,
before top-k/top-p); for temperature 1 they match HFBackend's.
"""

from __future__ import annotations

from atommem.llm.base import (
    Conversation,
    Generation,
    ModelConfig,
    SamplingConfig,
    generation_prompt_ids,
    row_seed,
)
from atommem.llm.models import resolve_model


class VLLMBackend:
    def __init__(self, cfg: ModelConfig):
        try:
            from vllm import LLM as VLLMEngine
            from vllm import SamplingParams
        except ImportError as err:
            raise ImportError(
                "model.backend 'vllm' needs the vllm package (GPU machines only): "
                "pip install -e '.[gpu]'; on CPU use backend 'hf' or 'openai'"
            ) from err
        self.cfg = cfg
        self._sampling_params = SamplingParams
        path = resolve_model(cfg.name)
        self.llm = VLLMEngine(
            model=path,
            tokenizer=resolve_model(cfg.tokenizer) if cfg.tokenizer else path,
            dtype=cfg.dtype,
            tensor_parallel_size=cfg.tensor_parallel_size,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            max_model_len=cfg.max_model_len,
            seed=cfg.seed,
        )
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, conversations: list[Conversation], sampling: SamplingConfig) -> list[Generation]:
        prompts = [
            generation_prompt_ids(self.tokenizer, conv, self.cfg.max_model_len, sampling.max_new_tokens)
            for conv in conversations
        ]
        params = [
            self._sampling_params(
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k,  # 0 = off in vLLM too
                max_tokens=sampling.max_new_tokens,
                seed=row_seed(sampling.seed, row),
                logprobs=0,  # 0 = only the sampled token's log-prob
            )
            for row in range(len(prompts))
        ]
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompts], params, use_tqdm=False)
        results = []
        for ids, output in zip(prompts, outputs):
            completion = output.outputs[0]
            token_ids = list(completion.token_ids)
            logprobs = [step[token].logprob for step, token in zip(completion.logprobs or [], token_ids)]
            results.append(
                Generation(
                    text=self.tokenizer.decode(token_ids, skip_special_tokens=True),
                    prompt_tokens=len(ids),
                    completion_tokens=len(token_ids),
                    prompt_ids=ids,
                    completion_ids=token_ids,
                    logprobs=logprobs,
                    finish_reason="length" if completion.finish_reason == "length" else "stop",
                )
            )
        return results
