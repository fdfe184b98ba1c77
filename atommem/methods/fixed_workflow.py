"""Plumbing shared by the fixed-workflow baselines: batched LLM calls with per-sample cost accounting.

A fixed workflow advances all samples of a batch together, one `llm.generate` call per workflow step
over every request of every sample (like the agent's lock-step runner). `Ledger` keeps each sample's
cost: its LLM calls and tokens, and its share of the wall time of each step it took part in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from atommem.agent.chunking import chunk_text
from atommem.config import ConfigError
from atommem.data.records import LongSample
from atommem.eval.metrics import extract_boxed
from atommem.llm.base import LLM, Conversation, SamplingConfig, chat_prompt_ids
from atommem.methods.base import MethodContext, MethodResult

DEFAULT_WINDOW = 8192  # used when the backend does not say its model.max_model_len


@dataclass
class SampleCost:
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    wall_s: float = 0.0
    peak_store: int = 0


class Ledger:
    """Costs of the samples of one batch, indexed like the batch."""

    def __init__(self, samples: list[LongSample]):
        self.samples = samples
        self.costs = [SampleCost() for _ in samples]
        self.memories: list[list[str]] = [[] for _ in samples]  # each sample's memory at the end (note_memory)

    def generate(self, llm: LLM, sampling: SamplingConfig, requests: list[tuple[int, Conversation]]) -> list[str]:
        """One batched call for `requests` (sample index, conversation); returns the texts in order.

        Wall time is shared among the requests, so a sample with more requests in the step pays more.
        """
        if not requests:
            return []
        start = time.perf_counter()
        generations = llm.generate([conversation for _, conversation in requests], sampling)
        share = (time.perf_counter() - start) / len(requests)
        for (i, _), generation in zip(requests, generations, strict=True):
            cost = self.costs[i]
            cost.llm_calls += 1
            cost.input_tokens += generation.prompt_tokens
            cost.output_tokens += generation.completion_tokens
            cost.wall_s += share
        return [generation.text for generation in generations]

    def timed(self, i: int):
        """Context manager adding the time of a block (retrieval, embedding) to sample i."""
        return _Timed(self.costs[i])

    def note_store(self, i: int, size: int) -> None:
        self.costs[i].peak_store = max(self.costs[i].peak_store, size)

    def note_memory(self, i: int, texts: list[str]) -> None:
        """Sample i's memory now (the last call is the memory it ends with, scored by tasks.state_f1)."""
        self.memories[i] = [t for t in texts if t]

    def results(self, answers: list[list[str | None]], tokenizer) -> list[MethodResult]:
        return [
            MethodResult(
                sample_id=sample.id,
                benchmark=sample.benchmark,
                num_docs=sample.num_docs,
                answers=sample_answers,
                llm_calls=cost.llm_calls,
                input_tokens=cost.input_tokens,
                output_tokens=cost.output_tokens,
                wall_s=cost.wall_s,
                peak_store=cost.peak_store,
                context_tokens=count_tokens(tokenizer, sample.context),
                final_memory=memory,
            )
            for sample, cost, sample_answers, memory in zip(self.samples, self.costs, answers, self.memories,
                                                            strict=True)
        ]


    def answer(self, ctx: MethodContext, requests: list[tuple[int, Conversation]]) -> list[MethodResult]:
        """The final step: one request per question of every sample, in order; each reply's boxed answer."""
        replies = iter(self.generate(ctx.llm, ctx.sampling, requests))
        answers = [[extract_boxed(next(replies)) for _ in sample.questions] for sample in self.samples]
        return self.results(answers, ctx.llm.tokenizer)


class FixedWorkflow:
    """A baseline that runs `ctx.batch_size` samples at a time: `answer_requests` does a batch's work up
    to the answer prompts (one per question, in order), then one batched call answers them all."""

    name = ""
    OPTIONS: dict = {}  # the method_options it takes, with their defaults

    def run(self, samples: list[LongSample], ctx: MethodContext) -> list[MethodResult]:
        options = check_options(self.name, ctx.options, self.OPTIONS)
        self.check(options)
        results = []
        for batch in batches(samples, ctx.batch_size):
            ledger = Ledger(batch)
            results += ledger.answer(ctx, self.answer_requests(batch, ctx, ledger, options))
        return results

    def check(self, options: dict) -> None:
        """Raise ConfigError on a bad option value."""

    def answer_requests(self, samples: list[LongSample], ctx: MethodContext, ledger: Ledger,
                        options: dict) -> list[tuple[int, Conversation]]:
        raise NotImplementedError


class _Timed:
    def __init__(self, cost: SampleCost):
        self.cost = cost

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc) -> None:
        self.cost.wall_s += time.perf_counter() - self.start


def batches(samples: list[LongSample], size: int) -> list[list[LongSample]]:
    return [samples[start : start + size] for start in range(0, len(samples), size)]


def chunks_of(sample: LongSample, ctx: MethodContext) -> list[str]:
    """The sample's context chunked exactly as the agent reads it (same EnvConfig constants)."""
    env = ctx.env
    return chunk_text(sample.context, ctx.llm.tokenizer, env.chunk_tokens, env.chunk_overlap, env.max_chunks)


def count_tokens(tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False))


def prompt_tokens(tokenizer, conversation: Conversation) -> int:
    """Tokens of `conversation` as the backend will send it (chat template + generation prompt)."""
    return len(chat_prompt_ids(tokenizer, conversation))


def window(ctx: MethodContext) -> int:
    """Tokens the model accepts (prompt + completion): the backend's model.max_model_len."""
    cfg = getattr(ctx.llm, "cfg", None)
    return int(getattr(cfg, "max_model_len", DEFAULT_WINDOW))


def check_options(name: str, options: dict, allowed: dict) -> dict:
    """`allowed` maps option names to defaults; unknown names fail with the valid ones."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        valid = ", ".join(sorted(allowed)) or "none"
        raise ConfigError(f"method_options: {name} does not take {unknown[0]!r}; valid options: {valid}")
    return {**allowed, **options}
