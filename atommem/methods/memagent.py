"""MemAgent baseline: a fixed overwrite workflow with one memory block.

For each chunk the model rewrites its memory (the whole reply becomes the new memory); after the last
chunk it answers each question from the memory alone. LLM calls per sample = chunks + questions. All
samples of a batch advance together: one generate call per chunk position, one for all answers.
"""

from __future__ import annotations

from atommem.data.records import LongSample
from atommem.eval.metrics import extract_boxed
from atommem.methods import baseline_prompts as bp
from atommem.methods.base import MethodContext, MethodResult
from atommem.methods.fixed_workflow import Ledger, batches, check_options, chunks_of


class MemAgentMethod:
    name = "memagent"

    def run(self, samples: list[LongSample], ctx: MethodContext) -> list[MethodResult]:
        check_options(self.name, ctx.options, {})
        return [r for batch in batches(samples, ctx.batch_size) for r in self._run_batch(batch, ctx)]

    def _run_batch(self, samples: list[LongSample], ctx: MethodContext) -> list[MethodResult]:
        tokenizer = ctx.llm.tokenizer
        ledger = Ledger(samples)
        chunks = []
        for i, sample in enumerate(samples):
            with ledger.timed(i):
                chunks.append(chunks_of(sample, ctx))
        memories = [""] * len(samples)
        for step in range(max((len(c) for c in chunks), default=0)):
            active = [i for i in range(len(samples)) if step < len(chunks[i])]
            requests = [
                (i, bp.memagent_read([q.question for q in samples[i].questions], memories[i], chunks[i][step],
                                     step, len(chunks[i])))
                for i in active
            ]
            for i, text in zip(active, ledger.generate(ctx.llm, ctx.sampling, requests)):
                if text.strip():  # an empty reply keeps the old memory rather than erasing it
                    memories[i] = text.strip()
                ledger.note_store(i, 1 if memories[i] else 0)
        requests = [(i, bp.memagent_answer(q.question, memories[i]))
                    for i, sample in enumerate(samples) for q in sample.questions]
        replies = iter(ledger.generate(ctx.llm, ctx.sampling, requests))
        answers = [[extract_boxed(next(replies)) for _ in s.questions] for s in samples]
        return ledger.results(answers, tokenizer)
