"""MemAgent baseline: a fixed overwrite workflow with one memory block.

For each chunk the model rewrites its memory (the whole reply becomes the new memory); after the last
chunk it answers each question from the memory alone. LLM calls per sample = chunks + questions. All
samples of a batch advance together: one generate call per chunk position, one for all answers.
"""

from __future__ import annotations

from atommem.data.records import LongSample
from atommem.methods import baseline_prompts as bp
from atommem.methods.base import MethodContext
from atommem.methods.fixed_workflow import FixedWorkflow, Ledger, chunks_of


class MemAgentMethod(FixedWorkflow):
    name = "memagent"

    def answer_requests(self, samples: list[LongSample], ctx: MethodContext, ledger: Ledger, options: dict):
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
                ledger.note_memory(i, [memories[i]])
        return [(i, bp.memagent_answer(q.question, memories[i]))
                for i, sample in enumerate(samples) for q in sample.questions]
